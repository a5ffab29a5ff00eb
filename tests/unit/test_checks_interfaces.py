"""The all/interface combination rules of include/linux/inetdevice.h, as pure functions."""

from __future__ import annotations

import itertools
import json

import pytest

from hostnet.checks.interfaces import (
    ConfTable,
    combine,
    conf_key,
    read_table,
    rule_for,
    table_from_mapping,
)
from hostnet.model.net import Family, Interface, Network
from hostnet.observe.parse_net import parse_ip_addr_json, parse_ip_route_json, parse_snmp_forwarded


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


# -- which interfaces are L3 (issue 8 item 9) ---------------------------------------------------

IP_ADDR = """[
 {"ifname": "lo", "link_type": "loopback", "flags": ["LOOPBACK", "UP"], "operstate": "UNKNOWN",
  "addr_info": [{"family": "inet", "local": "127.0.0.1", "prefixlen": 8, "scope": "host"}]},
 {"ifname": "eth0", "flags": ["UP"], "operstate": "UP",
  "addr_info": [{"family": "inet", "local": "203.0.113.2", "prefixlen": 24, "scope": "global"}]},
 {"ifname": "br0", "flags": ["UP"], "operstate": "UP", "linkinfo": {"info_kind": "bridge"},
  "addr_info": [{"family": "inet", "local": "192.0.2.1", "prefixlen": 24, "scope": "global"}]},
 {"ifname": "vnet0", "flags": ["UP"], "operstate": "UP", "master": "br0",
  "linkinfo": {"info_kind": "tun", "info_data": {"type": "tap"}, "info_slave_kind": "bridge"},
  "addr_info": [{"family": "inet6", "local": "fe80::1", "prefixlen": 64, "scope": "link"}]},
 {"ifname": "ifb0", "flags": ["UP"], "operstate": "UP", "linkinfo": {"info_kind": "ifb"},
  "addr_info": []},
 {"ifname": "dummy0", "flags": [], "operstate": "DOWN", "linkinfo": {"info_kind": "dummy"},
  "addr_info": []},
 {"ifname": "wg0", "flags": ["UP"], "operstate": "UNKNOWN",
  "linkinfo": {"info_kind": "wireguard"}, "addr_info": []},
 {"ifname": "wg1", "flags": ["UP"], "operstate": "UNKNOWN",
  "linkinfo": {"info_kind": "wireguard"}, "addr_info": []},
 {"ifname": "vrfport", "flags": ["UP"], "operstate": "UP", "master": "vrf-blue",
  "linkinfo": {"info_slave_kind": "vrf"},
  "addr_info": [{"family": "inet", "local": "198.51.100.1", "prefixlen": 24, "scope": "global"}]}
]"""


def _network(routes_known: bool = True) -> Network:
    routes = parse_ip_route_json(
        '[{"dst": "default", "gateway": "203.0.113.1", "dev": "eth0"},'
        ' {"dst": "198.51.100.128/25", "dev": "wg0", "scope": "link"}]')
    return Network(interfaces=tuple(parse_ip_addr_json(IP_ADDR)), routes=tuple(routes),
                   routes_known=routes_known)


def test_is_l3_link_level() -> None:
    by = {i.name: i for i in parse_ip_addr_json(IP_ADDR)}
    assert by["vnet0"].port_kind == "bridge" and by["vnet0"].addresses_known
    assert {n for n, i in by.items() if i.is_l3} == {"eth0", "br0", "wg0", "wg1", "vrfport"}
    # links seen without their addresses (ip link, sysfs): judged as before
    assert Interface("eth9", "ether", state="down", admin_up=False).is_l3
    assert not Interface("ifb1", "ifb").is_l3
    assert not Interface("lo", "loopback").is_l3


def test_is_l3_with_routes() -> None:
    net = _network()
    # wg1: up, no address and no route uses it; wg0 carries a route (unnumbered tunnel)
    assert [i.name for i in net.l3()] == ["eth0", "br0", "wg0", "vrfport"]
    assert net.is_l3("not-in-ip-output")  # only under /proc/sys/net/ipv4/conf: kept
    assert "wg1" in [i.name for i in _network(routes_known=False).l3()]
    assert not net.handles_ip("vnet0") and not net.handles_ip("ifb0")
    assert net.handles_ip("vrfport") and net.handles_ip("dummy0")


def test_multipath_route_counts_every_device() -> None:
    routes = parse_ip_route_json(
        '[{"dst": "default", "protocol": "static", "metric": 10, "nexthops": ['
        '{"gateway": "192.0.2.254", "dev": "up0", "weight": 1},'
        '{"gateway": "198.51.100.254", "dev": "up1", "weight": 1}]}]')
    assert [(r.device, str(r.gateway), r.metric) for r in routes] == [
        ("up0", "192.0.2.254", 10), ("up1", "198.51.100.254", 10)]
    paths = Network(routes=tuple(routes), routes_known=True).return_paths()
    assert paths.multiple and paths.uplinks == ("up0", "up1")


def test_snmp_forwarded() -> None:
    text = ("Ip: Forwarding DefaultTTL InReceives InHdrErrors InAddrErrors ForwDatagrams x\n"
            "Ip: 1 64 10 0 0 7 0\nIcmp: InMsgs\nIcmp: 0\n")
    assert parse_snmp_forwarded(text) == 7
    assert parse_snmp_forwarded("Icmp: InMsgs\nIcmp: 0\n") is None


def test_ip_route_table_all_keeps_the_family_asked_for() -> None:
    """``ip -j route show table all`` lists IPv6 routes too (fe80::/64 on every link):
    they must not count as IPv4 paths (they would make every host look multi-homed)."""
    text = json.dumps([
        {"dst": "default", "gateway": "198.51.100.2", "dev": "wan0", "flags": []},
        {"dst": "192.0.2.0/24", "dev": "lan0", "protocol": "kernel", "scope": "link"},
        {"dst": "fe80::/64", "dev": "wan0", "protocol": "kernel", "metric": 256,
         "pref": "medium"},
        {"dst": "fe80::/64", "dev": "lan0", "protocol": "kernel", "metric": 256,
         "pref": "medium"},
        {"dst": "default", "dev": "lan0", "metric": 1024, "pref": "medium"},
        {"dst": "default", "gateway": "fe80::1", "dev": "lan0"},
        {"type": "multicast", "dst": "ff00::/8", "dev": "wan0", "table": "local",
         "pref": "medium"}])
    v4 = parse_ip_route_json(text)
    assert [(str(r.destination), r.device) for r in v4] == [
        ("0.0.0.0/0", "wan0"), ("192.0.2.0/24", "lan0")]
    assert Network(routes=tuple(v4), routes_known=True).return_paths().single
    assert len(parse_ip_route_json(text, Family.IPV6)) == 5
