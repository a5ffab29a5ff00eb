"""HD checks: the pure evaluations and the doctor-* fixture trees."""

from __future__ import annotations

from ipaddress import ip_address, ip_network
from pathlib import Path

from hostnet.checks import hardening as hd
from hostnet.checks.interfaces import table_from_mapping
from hostnet.findings import Finding
from hostnet.model.net import Address, Family, Interface, Network, Route
from tests.helpers.state import run_checks

FIX = Path(__file__).resolve().parents[1] / "fixtures/roots"


def test_redirects_or_on_host_and_fix_covers_all_default_iface() -> None:
    t = table_from_mapping("ipv4", {
        "all": {"accept_redirects": 0, "secure_redirects": 0, "forwarding": 0},
        "default": {"accept_redirects": 0, "secure_redirects": 0, "forwarding": 0},
        "eth0": {"accept_redirects": 1, "secure_redirects": 0, "forwarding": 0},
    })
    [f] = hd.evaluate_redirects(t)
    assert f.code == "HD103" and str(f.severity) == "warning"
    assert "eth0 (all=0, eth0=1 -> 1)" in f.message
    assert f.suggestion is not None
    assert "net.ipv4.conf.eth0.accept_redirects = 0" in f.suggestion.splitlines()
    assert "net.ipv4.conf.all.accept_redirects = 0" in f.suggestion.splitlines()
    assert f.evidence["interfaces"][0]["effective"] == 1


def test_redirects_and_on_router_interface() -> None:
    t = table_from_mapping("ipv4", {
        "all": {"accept_redirects": 0, "forwarding": 1, "secure_redirects": 1},
        "eth0": {"accept_redirects": 1, "forwarding": 1, "secure_redirects": 1},
    })
    assert hd.evaluate_redirects(t, role_send=True) == []


def test_secure_redirects_lowers_severity_only_without_shared_media() -> None:
    conf = {"accept_redirects": 1, "secure_redirects": 1, "forwarding": 0, "shared_media": 0}
    t = table_from_mapping("ipv4", {"all": conf, "eth0": {**conf, "secure_redirects": 0}})
    [f] = hd.evaluate_redirects(t)
    assert str(f.severity) == "info"
    assert f.evidence["secure_redirects_in_force"] == {"eth0": True}
    # shared_media on (the kernel default): secure_redirects is not consulted at all
    t = table_from_mapping("ipv4", {"all": conf, "eth0": {**conf, "shared_media": 1}})
    [f] = hd.evaluate_redirects(t)
    assert str(f.severity) == "warning" and "shared_media" in f.message


def test_send_redirects_only_matter_when_forwarding() -> None:
    base = {"accept_redirects": 0, "secure_redirects": 1, "send_redirects": 1}
    t = table_from_mapping("ipv4", {"all": {**base, "forwarding": 0},
                                    "eth0": {**base, "forwarding": 0}})
    assert hd.evaluate_redirects(t) == []
    t = table_from_mapping("ipv4", {"all": {**base, "forwarding": 1},
                                    "eth0": {**base, "forwarding": 1}})
    [f] = hd.evaluate_redirects(t)
    assert f.code == "HD104"
    assert hd.evaluate_redirects(t, role_send=True) == []


def test_source_route_and() -> None:
    t = table_from_mapping("ipv4", {"all": {"accept_source_route": 0},
                                    "eth0": {"accept_source_route": 1}})
    assert hd.evaluate_source_route(t) == []
    t = table_from_mapping("ipv4", {"all": {"accept_source_route": 1},
                                    "eth0": {"accept_source_route": 1}})
    [f] = hd.evaluate_source_route(t)
    assert "net.ipv4.conf.all.accept_source_route = 0" in (f.suggestion or "")


def _net(*routes: tuple[str, str], addressed: tuple[str, ...] = ("eth0",),
         known: bool = True) -> Network:
    """A Network with (destination, device) IPv4 routes and interfaces with global addresses."""
    ifaces = tuple(Interface(n, "ether", addresses=(Address(ip_address(f"192.0.2.{i + 1}"), 24),),
                             addresses_known=True) for i, n in enumerate(addressed))
    return Network(interfaces=ifaces, routes=tuple(
        Route(Family.IPV4, ip_network(d), dev, metric=m)
        for m, (d, dev) in enumerate(routes)), routes_known=known)


SINGLE = _net(("0.0.0.0/0", "eth0"), ("192.0.2.0/24", "eth0")).return_paths()
DUAL = _net(("0.0.0.0/0", "up0"), ("0.0.0.0/0", "up1"), ("192.0.2.0/24", "up0"),
            ("198.51.100.0/24", "up1"), addressed=("up0", "up1")).return_paths()
#: a NAT router: the default route on wan0 only, the LAN connected on lan0
NAT_ONE_UPLINK = _net(("0.0.0.0/0", "wan0"), ("203.0.113.0/24", "wan0"),
                      ("192.0.2.0/24", "lan0"), addressed=("wan0", "lan0")).return_paths()
UNKNOWN = _net(addressed=("up0", "up1"), known=False).return_paths()


def test_return_paths_from_routes() -> None:
    assert SINGLE.single and not SINGLE.multiple
    assert DUAL.multiple and not DUAL.single and DUAL.uplinks == ("up0", "up1")
    assert NAT_ONE_UPLINK.single  # one uplink: each source has one way back
    assert not UNKNOWN.single and not UNKNOWN.multiple and not UNKNOWN.known
    # a destination routed out of two devices (backup route) is a second path back
    backup = _net(("0.0.0.0/0", "eth0"), ("198.51.100.0/24", "eth0"),
                  ("198.51.100.0/24", "eth1"), addressed=("eth0", "eth1")).return_paths()
    assert backup.multiple and backup.overlapping == {"198.51.100.0/24": ["eth0", "eth1"]}
    # routes not read, but only one addressed interface: one path back
    assert _net(known=False).return_paths().single


def test_rp_filter_off_strict_only_with_one_path_back() -> None:
    t = table_from_mapping("ipv4", {"all": {"rp_filter": 0}, "eth0": {"rp_filter": 0}})
    [f] = hd.evaluate_rp_filter(t, "strict", "server", SINGLE)
    assert str(f.severity) == "warning"
    assert (f.suggestion or "").splitlines() == ["net.ipv4.conf.all.rp_filter = 1",
                                                 "net.ipv4.conf.default.rp_filter = 1",
                                                 "net.ipv4.conf.eth0.rp_filter = 1"]
    # issue 8 item 5: a dual-homed server gets loose, not strict
    t2 = table_from_mapping("ipv4", {"all": {"rp_filter": 0}, "up0": {"rp_filter": 0},
                                     "up1": {"rp_filter": 0}})
    [f] = hd.evaluate_rp_filter(t2, "strict", "server", DUAL)
    assert "= 1" not in (f.suggestion or "") and "net.ipv4.conf.all.rp_filter = 2" in (
        f.suggestion or "")
    assert "several paths back" in f.message and f.evidence["uplinks"] == ["up0", "up1"]
    # routes not read: strict cannot be shown safe
    [f] = hd.evaluate_rp_filter(t2, "strict", "server", UNKNOWN)
    assert "net.ipv4.conf.all.rp_filter = 2" in (f.suggestion or "")
    [f] = hd.evaluate_rp_filter(t, "any", "desktop", SINGLE)
    assert str(f.severity) == "info" and "= 2" in (f.suggestion or "")


def test_strict_reported_where_routes_show_several_paths() -> None:
    t = table_from_mapping("ipv4", {"all": {"rp_filter": 1}, "up0": {"rp_filter": 0},
                                    "up1": {"rp_filter": 2}})
    [f] = hd.evaluate_rp_filter(t, "strict", "server", DUAL)
    assert str(f.severity) == "warning"
    assert "up0 (all=1, up0=0 -> 1)" in f.message and "up1 (" not in f.message
    assert (f.suggestion or "").splitlines() == ["net.ipv4.conf.all.rp_filter = 2",
                                                 "net.ipv4.conf.default.rp_filter = 2",
                                                 "net.ipv4.conf.up0.rp_filter = 2"]
    # issue 8 item 9: strict on a NAT router with one uplink is not a problem
    nat = table_from_mapping("ipv4", {"all": {"rp_filter": 1}, "wan0": {"rp_filter": 1},
                                      "lan0": {"rp_filter": 1}})
    assert hd.evaluate_rp_filter(nat, "loose", "nat-router", NAT_ONE_UPLINK) == []
    # routes not read on a router with several interfaces: said as a possibility (info)
    [f] = hd.evaluate_rp_filter(nat, "loose", "nat-router", UNKNOWN)
    assert str(f.severity) == "info" and "not read" in f.message
    one = table_from_mapping("ipv4", {"all": {"rp_filter": 1}, "eth0": {"rp_filter": 1}})
    assert hd.evaluate_rp_filter(one, "loose", "nat-router", SINGLE) == []


def test_log_martians_or() -> None:
    t = table_from_mapping("ipv4", {"all": {"log_martians": 1}, "eth0": {"log_martians": 0}})
    assert hd.evaluate_log_martians(t, True) == []
    t = table_from_mapping("ipv4", {"all": {"log_martians": 0}, "eth0": {"log_martians": 0}})
    assert [f.code for f in hd.evaluate_log_martians(t, True)] == ["HD108"]
    assert hd.evaluate_log_martians(t, False) == []


def _run(tree: str, role: str) -> dict[str, Finding]:
    found, _ = run_checks(hd.CHECKS, FIX / tree, role)
    out: dict[str, Finding] = {}
    for f in found:
        out.setdefault(f.code, f)
    return out


def test_webserver_fixture() -> None:
    got = _run("doctor-webserver", "server")
    assert set(got) == {"HD101", "HD103", "HD107"}  # source route: all=0 AND eth0=1 -> off
    hd101 = got["HD101"]
    assert hd101.suggestion == "net.ipv4.tcp_syncookies = 1"
    assert hd101.evidence["net.ipv4.tcp_syncookies"] == 0


def test_router_fixture() -> None:
    got = _run("doctor-router", "nat-router")
    assert set(got) == {"HD107"}  # redirects: forwarding interfaces AND all=0 -> off


def test_dualhomed_fixture_strict_reported_loose_proposed() -> None:
    got = _run("doctor-dualhomed", "server")
    assert set(got) == {"HD107"}
    f = got["HD107"]
    assert "strict" in f.message and "default routes on up0, up1" in f.message
    assert "net.ipv4.conf.all.rp_filter = 2" in (f.suggestion or "")


def test_bridge_ports_ifb_and_down_devices_not_judged() -> None:
    """Issue 8 item 9: vnet0 (a bridge port), ifb0 and dummy0 (down, no addresses) have
    rp_filter 0, send_redirects 1, log_martians 0; only L3 interfaces are judged."""
    found, _ = run_checks(hd.CHECKS, FIX / "doctor-bridge-ports", "vm-host")
    judged = {e["interface"] for f in found for e in f.evidence.get("interfaces", [])}
    assert not judged & {"vnet0", "ifb0", "dummy0"}, found
    assert not {f.code for f in found} & {"HD104", "HD107", "HD108"}
