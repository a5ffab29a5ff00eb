"""``vm list`` rows from a snapshot: what exists, what is missing, and the text form."""

from __future__ import annotations

from dataclasses import replace

from hostnet.vm.report import render_text, status
from tests.unit.test_vm_planner import VM, bare, complete


def test_complete_vm_row() -> None:
    (row,) = status([VM], complete())
    assert row.ok and row.exists and row.is_tap
    assert (row.owner, row.group, row.flags) == (107, 110, ("tap", "vnet_hdr", "persist"))
    assert row.routes == ("203.0.113.11 via tapweb1", "2001:db8::11 via tapweb1")
    assert row.proxies == ("203.0.113.11 on eth0", "2001:db8::11 on eth0")
    d = row.to_dict()
    assert d["ok"] and d["missing"] == [] and d["want_owner"] == 107
    assert render_text([row]).splitlines() == [
        "web1  tap tapweb1  routed  ok",
        "  link: up, carrier no, mtu 1500, 0 queue(s) attached",
        "  owner 107 group 110 (config 107/110); flags tap,vnet_hdr,persist",
        "  addresses: 203.0.113.2/32, fe80::1/64",
        "  routes: 203.0.113.11 via tapweb1; 2001:db8::11 via tapweb1",
        "  proxy: 203.0.113.11 on eth0; 2001:db8::11 on eth0",
    ]


def test_missing_vm_row_lists_everything_to_do() -> None:
    (row,) = status([VM], bare())
    assert not row.ok and not row.exists
    assert row.routes == ("203.0.113.11: no route", "2001:db8::11: no route")
    assert "create tap tapweb1 owner 107 group 110 flags tap,no_pi,vnet_hdr, persistent" in (
        row.missing)
    assert "sysctl net.ipv4.ip_forward = 1 (was 0)" in row.missing
    text = render_text([row])
    assert "  link: missing" in text and "  missing: route 203.0.113.11/32 dev tapweb1" in text


def test_problems_are_shown_not_raised() -> None:
    (row,) = status([replace(VM, uplink="eth9")], bare())
    assert any("uplink eth9 does not exist" in m for m in row.missing)
    assert render_text([]) == "no [[vm]] entries"
