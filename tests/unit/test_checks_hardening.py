"""HD checks: the pure evaluations and the doctor-* fixture trees."""

from __future__ import annotations

from pathlib import Path

from hostnet.checks import hardening as hd
from hostnet.checks.interfaces import table_from_mapping
from hostnet.findings import Finding
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


def test_rp_filter_off_and_strict_on_multihomed_router() -> None:
    t = table_from_mapping("ipv4", {"all": {"rp_filter": 0}, "eth0": {"rp_filter": 0}})
    [f] = hd.evaluate_rp_filter(t, "strict", "server")
    assert str(f.severity) == "warning" and "= 1" in (f.suggestion or "")
    [f] = hd.evaluate_rp_filter(t, "any", "desktop")
    assert str(f.severity) == "info"
    t = table_from_mapping("ipv4", {"all": {"rp_filter": 1}, "wan0": {"rp_filter": 0},
                                    "wan1": {"rp_filter": 2}})
    [f] = hd.evaluate_rp_filter(t, "loose", "nat-router")
    assert "wan0 (all=1, wan0=0 -> 1)" in f.message and "wan1" not in f.message
    assert "net.ipv4.conf.all.rp_filter = 2" in (f.suggestion or "")
    one = table_from_mapping("ipv4", {"all": {"rp_filter": 1}, "eth0": {"rp_filter": 1}})
    assert hd.evaluate_rp_filter(one, "loose", "nat-router") == []  # single-homed: fine


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
