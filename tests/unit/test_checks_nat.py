"""NT checks: NAT without forwarding, forwarding on a server, proxy ARP, router expectations."""

from __future__ import annotations

import json
from ipaddress import ip_address
from pathlib import Path

from hostnet.checks import nat as nt
from hostnet.checks.interfaces import table_from_mapping
from hostnet.model.firewall import NatRule
from hostnet.observe.parse_rules import iptables_to, parse_iptables_save, parse_nft_json
from tests.helpers.state import run_checks

FIX = Path(__file__).resolve().parents[1] / "fixtures/roots"
MASQ = NatRule("masquerade", "ip", "nat", "post", "postrouting", "nft")
LOCAL = NatRule("dnat", "ip", "nat", "out", "output", "nft")


def test_nat_without_forwarding() -> None:
    [f] = nt.evaluate_nat_forwarding([MASQ], 0)
    assert f.code == "NT101" and str(f.severity) == "error"
    assert f.suggestion == "net.ipv4.ip_forward = 1"
    assert f.evidence["nat_rules"] == ["masquerade in table ip nat chain post"]
    assert nt.evaluate_nat_forwarding([MASQ], 1) == []
    assert nt.evaluate_nat_forwarding([LOCAL], 0) == []  # only this host's own traffic
    assert nt.evaluate_nat_forwarding([MASQ], None) == []  # unknown: say nothing


def test_forwarding_on_a_server() -> None:
    [f] = nt.evaluate_forwarding_role("server", 1, 0, "off")
    assert f.code == "NT102" and f.suggestion == "net.ipv4.ip_forward = 0"
    [f] = nt.evaluate_forwarding_role("desktop", 0, 1, "off")
    assert str(f.severity) == "info" and f.key == "net.ipv6.conf.all.forwarding"
    assert nt.evaluate_forwarding_role("nat-router", 1, 1, "on") == []
    assert nt.evaluate_forwarding_role("server", 1, 0, "off", skip_ipv4=True) == []


def test_router_advertisements_only_named_for_ipv6_forwarding() -> None:
    """Issue 8 item 8: IPv4 forwarding does not turn off IPv6 router advertisements."""
    [v4] = nt.evaluate_forwarding_role("server", 1, 0, "off")
    assert "advertisement" not in v4.message and "IPv4" in v4.message
    [v6] = nt.evaluate_forwarding_role("server", 0, 1, "off")
    assert "router advertisements" in v6.message and "accept_ra" in v6.message


OWN = nt.Locality(frozenset({ip_address("192.0.2.1"), ip_address("127.0.0.1")}), True)


def _dnat(*targets: str, hook: str = "prerouting") -> NatRule:
    return NatRule("dnat", "ip", "nat", "pre", hook, "nft", targets)


def test_dnat_to_own_address_needs_no_forwarding() -> None:
    """Issue 8 item 4: prerouting DNAT to a local address is delivered locally."""
    assert nt.evaluate_nat_forwarding([_dnat("192.0.2.1")], 0, OWN) == []
    assert nt.evaluate_nat_forwarding([_dnat("127.0.0.1")], 0, nt.Locality()) == []
    [f] = nt.evaluate_nat_forwarding([_dnat("192.0.2.1"), _dnat("198.51.100.20")], 0, OWN)
    assert str(f.severity) == "error" and f.suggestion == "net.ipv4.ip_forward = 1"
    assert f.evidence["non_local_targets"] == ["198.51.100.20"]
    assert "198.51.100.20 (not an address of this host)" in f.message
    # ranges and prefixes: all local, none local, or not known
    assert nt.evaluate_nat_forwarding([_dnat("192.0.2.1-192.0.2.1")], 0, OWN) == []
    [f] = nt.evaluate_nat_forwarding([_dnat("198.51.100.10-198.51.100.20")], 0, OWN)
    assert str(f.severity) == "error"
    [f] = nt.evaluate_nat_forwarding([_dnat("192.0.2.0/30")], 0, OWN)
    assert str(f.severity) == "info"
    # IPv6 targets do not need IPv4 forwarding
    assert nt.evaluate_nat_forwarding([_dnat("2001:db8::1")], 0, OWN) == []


def test_dnat_with_unknown_target_is_said_not_claimed() -> None:
    [f] = nt.evaluate_nat_forwarding([_dnat()], 0, OWN)  # a map, @set, port-only target
    assert str(f.severity) == "info" and f.suggestion is None
    assert "cannot be told" in f.message and "literal address" in f.message
    [f] = nt.evaluate_nat_forwarding([_dnat("192.0.2.1")], 0, nt.Locality())  # no addresses
    assert str(f.severity) == "info" and "addresses were not read" in f.message
    assert nt.evaluate_nat_forwarding([_dnat()], 1, OWN) == []


def test_parse_dnat_targets() -> None:
    def nft(expr: dict[str, object], family: str = "ip") -> tuple[str, ...]:
        doc = {"nftables": [
            {"chain": {"family": family, "table": "t", "name": "pre", "hook": "prerouting",
                       "type": "nat", "prio": -100, "policy": "accept"}},
            {"rule": {"family": family, "table": "t", "chain": "pre", "expr": [expr]}}]}
        [rule] = parse_nft_json(json.dumps(doc)).nat
        return rule.targets

    assert nft({"dnat": {"addr": "192.0.2.1", "port": 443}}) == ("192.0.2.1",)
    assert nft({"dnat": {"family": "ip", "addr": "192.0.2.1"}}, "inet") == ("192.0.2.1",)
    assert nft({"dnat": {"addr": {"range": ["192.0.2.10", "192.0.2.20"]}}}) == (
        "192.0.2.10-192.0.2.20",)
    assert nft({"dnat": {"addr": {"prefix": {"addr": "192.0.2.0", "len": 30}}}}) == (
        "192.0.2.0/30",)
    assert nft({"dnat": {"addr": {"map": {"key": {"payload": {"field": "dport"}}, "data": {
        "set": [[1, "192.0.2.7"], [2, "192.0.2.8"]]}}}}}) == ("192.0.2.7", "192.0.2.8")
    assert nft({"dnat": {"addr": {"map": {"key": {}, "data": "@m"}}}}) == ()
    # a named map of the same table is read (its elements as they are now)
    doc = {"nftables": [
        {"map": {"family": "ip", "table": "t", "name": "fw", "type": "inet_service",
                 "map": "ipv4_addr", "elem": [[80, "192.0.2.5"], [81, "192.0.2.6"]]}},
        {"map": {"family": "ip", "table": "t", "name": "empty", "type": "inet_service",
                 "map": "ipv4_addr"}},
        {"rule": {"family": "ip", "table": "t", "chain": "pre", "expr": [
            {"dnat": {"addr": {"map": {"key": {}, "data": "@fw"}}}}]}},
        {"rule": {"family": "ip", "table": "t", "chain": "pre", "expr": [
            {"dnat": {"addr": {"map": {"key": {}, "data": "@empty"}}}}]}}]}
    assert [r.targets for r in parse_nft_json(json.dumps(doc)).nat] == [
        ("192.0.2.5", "192.0.2.6"), ()]
    assert nft({"xt": {"type": "target", "name": "DNAT"}}) == ()
    text = ("*nat\n-A PREROUTING -p tcp --dport 80 -j DNAT --to-destination 192.0.2.10:8080\n"
            "-A PREROUTING -p tcp --dport 81 -j DNAT --to-destination "
            "192.0.2.10-192.0.2.20:80-90\n"
            "-A PREROUTING -p tcp --dport 82 -j DNAT --to-destination :8080\n"
            "-A POSTROUTING -j SNAT --to-source 203.0.113.1\nCOMMIT\n")
    assert [r.targets for r in parse_iptables_save(text).nat] == [
        ("192.0.2.10",), ("192.0.2.10-192.0.2.20",), (), ("203.0.113.1",)]
    assert iptables_to("[2001:db8::1]:80") == "2001:db8::1"


def test_open_router_fixes() -> None:
    [f] = nt.evaluate_open_router("eth0", forwarded=0, role_routes=False, role="server")
    assert f.code == "NT105" and str(f.severity) == "warning"
    assert f.suggestion == "net.ipv4.ip_forward = 0" and f.evidence["fix"] == "forwarding-off"
    # something has been routed through it, it is not known, or the role routes: the
    # forward-chain policy (the host's own traffic never passes the forward hook)
    for forwarded, routes in ((12, False), (None, False), (0, True)):
        [f] = nt.evaluate_open_router("eth0", forwarded=forwarded, role_routes=routes,
                                      role="server")
        assert f.suggestion == nt.FORWARD_POLICY and f.evidence["fix"] == "forward-policy"
    assert "policy drop" in nt.FORWARD_POLICY and "hook forward" in nt.FORWARD_POLICY
    assert nt.evaluate_open_router(None, forwarded=0, role_routes=False, role="server") == []


def test_proxy_arp() -> None:
    t = table_from_mapping("ipv4", {"all": {"proxy_arp": 0}, "eth0": {"proxy_arp": 1}})
    [f] = nt.evaluate_proxy_arp(t, {"eth0": "ether"}, "unexpected", "server")
    assert "net.ipv4.conf.eth0.proxy_arp = 0" in (f.suggestion or "")
    assert nt.evaluate_proxy_arp(t, {"eth0": "ether", "vnet0": "tap"}, "allowed", "vm-host") == []
    [f] = nt.evaluate_proxy_arp(t, {"eth0": "ether"}, "allowed", "vm-host")
    assert "no tap" in f.message


def _codes(tree: str, role: str) -> set[str]:
    found, _ = run_checks(nt.CHECKS, FIX / tree, role)
    return {f.code for f in found}


def test_fixtures() -> None:
    assert _codes("doctor-dualhomed", "server") == set()  # DNAT 8080 -> its own 443
    assert _codes("doctor-openrouter", "desktop") == {"NT105"}  # NT102 v4: NT105 says it
    assert _codes("doctor-openrouter", "nat-router") == {"NT105"}
    assert _codes("doctor-bridge-ports", "vm-host") == set()
    assert _codes("doctor-webserver", "server") == {"NT101"}
    assert _codes("doctor-router", "nat-router") == {"NT103"}
    assert _codes("doctor-router", "server") == {"NT102", "NT103"}
    assert _codes("doctor-webserver", "nat-router") == {"NT101", "NT104"}
