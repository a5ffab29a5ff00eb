"""V6 checks: RAs ignored while forwarding, half-disabled IPv6, ICMPv6 redirects."""

from __future__ import annotations

from pathlib import Path

from hostnet.checks import ipv6 as v6
from hostnet.checks.interfaces import ConfTable, table_from_mapping
from hostnet.observe.parse_net import parse_ipv6_route
from tests.helpers.state import run_checks

FIX = Path(__file__).resolve().parents[1] / "fixtures/roots"
Z = "0" * 32


def test_parse_ipv6_route() -> None:
    text = (f"{Z} 00 {Z} 00 fe800000000000000000000000000001 00000400 1 0 00450003 wan0\n"
            f"{Z} 00 {Z} 00 {Z} ffffffff 1 0 00200200 lo\n"
            f"20010db8000000000000000000000000 40 {Z} 00 {Z} 00000100 1 0 00000001 eth0\n"
            f"{Z} 00 {Z} 00 fe800000000000000000000000000001 00000400 1 0 00000003 eth1\n")
    got = [r for r in parse_ipv6_route(text) if r.default and r.type == "unicast"]
    assert [(d.device, d.from_ra) for d in got] == [("wan0", True), ("eth1", False)]


def _table(ra: int, fwd: int = 1) -> ConfTable:
    return table_from_mapping("ipv6", {
        "all": {"forwarding": fwd}, "eth0": {"forwarding": fwd, "accept_ra": ra, "autoconf": 1,
                                              "disable_ipv6": 0}})


def test_ra_ignored_when_forwarding() -> None:
    ra_route = [v6.DefaultRoute("eth0", True)]
    [f] = v6.evaluate_ra(_table(1), ra_route)
    assert f.suggestion == "net.ipv6.conf.eth0.accept_ra = 2"
    [f] = v6.evaluate_ra(_table(1), [])
    assert "no IPv6 default route" in f.message
    assert v6.evaluate_ra(_table(2), ra_route) == []
    assert v6.evaluate_ra(_table(1, fwd=0), ra_route) == []
    static = [v6.DefaultRoute("eth0", False)]
    assert v6.evaluate_ra(_table(1), static) == []


def test_half_disabled() -> None:
    t = table_from_mapping("ipv6", {"all": {"disable_ipv6": 1}, "default": {"disable_ipv6": 0},
                                    "eth0": {"disable_ipv6": 1}})
    [f] = v6.evaluate_disable(t)
    assert f.suggestion == "net.ipv6.conf.default.disable_ipv6 = 1"
    t = table_from_mapping("ipv6", {"all": {"disable_ipv6": 0}, "default": {"disable_ipv6": 0},
                                    "lo": {"disable_ipv6": 1}, "eth0": {"disable_ipv6": 0}})
    [f] = v6.evaluate_disable(t)
    assert "::1" in f.message and f.suggestion == "net.ipv6.conf.lo.disable_ipv6 = 0"
    same = table_from_mapping("ipv6", {"all": {"disable_ipv6": 1}, "eth0": {"disable_ipv6": 1}})
    assert v6.evaluate_disable(same) == []


def test_redirects_v6_interface_value_only() -> None:
    t = table_from_mapping("ipv6", {"all": {"accept_redirects": 0},
                                    "eth0": {"accept_redirects": 1, "forwarding": 0},
                                    "eth1": {"accept_redirects": 1, "forwarding": 1}})
    [f] = v6.evaluate_redirects6(t)
    assert "eth0" in f.message and "eth1" not in f.message


def test_fixtures() -> None:
    router, _ = run_checks(v6.CHECKS, FIX / "doctor-router", "nat-router")
    assert [f.key for f in router] == ["net.ipv6.conf.wan0.accept_ra"]  # wan1 has 2, lan0 0
    found, _ = run_checks(v6.CHECKS, FIX / "doctor-webserver", "server")
    assert [f.code for f in found] == ["V6102"]


def test_ra_rule_follows_ipv6_accept_ra() -> None:
    """V6101 fires exactly where ipv6_accept_ra() (net/ipv6/ndisc.c) ignores RAs and the
    interface needs them: forwarding on, accept_ra 1. accept_ra 0 ignores RAs on purpose;
    the interface's own forwarding counts, not conf/all."""
    ra_route = [v6.DefaultRoute("eth0", True)]
    for fwd, ra, fires in ((0, 0, False), (0, 1, False), (0, 2, False), (1, 0, False),
                           (1, 1, True), (1, 2, False)):
        t = table_from_mapping("ipv6", {
            "all": {"forwarding": 0}, "eth0": {"forwarding": fwd, "accept_ra": ra,
                                               "autoconf": 1, "disable_ipv6": 0}})
        assert bool(v6.evaluate_ra(t, ra_route)) is fires, (fwd, ra)
    # all.forwarding = 1 but the interface's own 0: RAs are still taken there
    t = table_from_mapping("ipv6", {"all": {"forwarding": 1}, "eth0": {
        "forwarding": 0, "accept_ra": 1, "autoconf": 1, "disable_ipv6": 0}})
    assert v6.evaluate_ra(t, ra_route) == []
    # unknown routes (None): nothing is claimed
    assert v6.evaluate_ra(_table(1), None) == []


def test_ra_not_judged_on_bridge_ports() -> None:
    t = table_from_mapping("ipv6", {"all": {"forwarding": 1}, "vnet0": {
        "forwarding": 1, "accept_ra": 1, "autoconf": 1, "disable_ipv6": 0}})
    assert len(v6.evaluate_ra(t, [])) == 1
    assert v6.evaluate_ra(t, [], ports=["vnet0"]) == []


def test_redirects6_leave_ports_and_ifbs_alone() -> None:
    t = table_from_mapping("ipv6", {
        "all": {"accept_redirects": 1}, "eth0": {"accept_redirects": 1},
        "ifb0": {"accept_redirects": 1}, "veth1": {"accept_redirects": 1}})
    found = v6.evaluate_redirects6(t, ports=["ifb0", "veth1"])
    assert [f.code for f in found] == ["V6103"]
    assert "ifb0" not in found[0].message and "veth1" not in found[0].message
    assert "eth0" in found[0].message
