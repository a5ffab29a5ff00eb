"""NT checks: NAT without forwarding, forwarding on a server, proxy ARP, router expectations."""

from __future__ import annotations

from pathlib import Path

from hostnet.checks import nat as nt
from hostnet.checks.interfaces import table_from_mapping
from hostnet.checks.roles import NatRule
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
    assert _codes("doctor-webserver", "server") == {"NT101"}
    assert _codes("doctor-router", "nat-router") == {"NT103"}
    assert _codes("doctor-router", "server") == {"NT102", "NT103"}
    assert _codes("doctor-webserver", "nat-router") == {"NT101", "NT104"}
