"""The all/interface combination rules of include/linux/inetdevice.h, as pure functions."""

from __future__ import annotations

import itertools

import pytest

from hostnet.checks.interfaces import (
    ConfTable,
    combine,
    conf_key,
    read_table,
    rule_for,
    table_from_mapping,
)


@pytest.mark.parametrize("leaf", ["rp_filter", "arp_ignore", "arp_announce"])
def test_max_keys(leaf: str) -> None:
    for a, i in itertools.product(range(3), range(3)):
        assert combine(rule_for(leaf), a, i) == max(a, i)


@pytest.mark.parametrize("leaf", ["log_martians", "proxy_arp", "send_redirects",
                                  "secure_redirects", "accept_local"])
def test_or_keys(leaf: str) -> None:
    assert [combine(rule_for(leaf), a, i) for a, i in itertools.product((0, 1), (0, 1))] == [0, 1, 1, 1]


@pytest.mark.parametrize("leaf", ["accept_source_route", "bootp_relay", "mc_forwarding"])
def test_and_keys(leaf: str) -> None:
    assert [combine(rule_for(leaf), a, i) for a, i in itertools.product((0, 1), (0, 1))] == [0, 0, 0, 1]


def test_accept_redirects_depends_on_interface_forwarding() -> None:
    table = [(a, i) for a, i in itertools.product((0, 1), (0, 1))]
    assert [combine(rule_for("accept_redirects"), a, i, iface_forwarding=1) for a, i in table] == [0, 0, 0, 1]
    assert [combine(rule_for("accept_redirects"), a, i, iface_forwarding=0) for a, i in table] == [0, 1, 1, 1]


def test_forwarding_and_unknown_keys_use_the_interface_value() -> None:
    assert rule_for("forwarding") == "iface"
    assert combine(rule_for("forwarding"), 1, 0) == 0
    assert combine(rule_for("mtu_whatever"), 5, 7) == 7


def test_combine_rules_come_from_the_catalogue() -> None:
    # arp_accept became IN_DEV_MAXCONF when it gained the value 2 (include/linux/inetdevice.h)
    assert rule_for("arp_accept") == "max"
    assert rule_for("src_valid_mark") == "or"


def test_conf_key_turns_dots_in_names_into_slashes() -> None:
    assert conf_key("ipv4", "eth0.100", "rp_filter") == "net.ipv4.conf.eth0/100.rp_filter"


def test_table_effective_and_evidence() -> None:
    t = table_from_mapping("ipv4", {
        "all": {"accept_redirects": 0, "forwarding": 1},
        "default": {"accept_redirects": 1, "forwarding": 1},
        "eth0": {"accept_redirects": 1, "forwarding": 1},
        "eth1": {"accept_redirects": 1, "forwarding": 0},
        "lo": {"accept_redirects": 1, "forwarding": 1},
    })
    assert t.interfaces == ["eth0", "eth1", "lo"]
    assert t.effective("eth0", "accept_redirects").value == 0  # forwards: AND
    e1 = t.effective("eth1", "accept_redirects")
    assert e1.value == 1  # does not forward: OR
    assert "OR" in e1.rule
    ev = e1.evidence()
    assert ev["net.ipv4.conf.all.accept_redirects"] == 0
    assert ev["net.ipv4.conf.eth1.accept_redirects"] == 1
    assert ev["interface_forwarding"] == 0
    assert [e.iface for e in t.each("accept_redirects")] == ["eth0", "eth1"]


def test_ipv6_uses_the_interface_value_only() -> None:
    t = ConfTable("ipv6", {"all": {"accept_redirects": 0}, "eth0": {"accept_redirects": 1}})
    assert t.effective("eth0", "accept_redirects").value == 1


def test_read_table_reads_all_default_and_interfaces() -> None:
    seen: list[str] = []

    def read(key: str) -> int | None:
        seen.append(key)
        return 2 if key.endswith("all.rp_filter") else 0

    t = read_table("ipv4", ["eth0"], ["rp_filter"], read)
    assert seen == ["net.ipv4.conf.all.rp_filter", "net.ipv4.conf.default.rp_filter",
                    "net.ipv4.conf.eth0.rp_filter"]
    assert t.effective("eth0", "rp_filter").value == 2
