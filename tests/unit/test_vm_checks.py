"""VM1xx checks on typed inputs: each fires on its condition and stays quiet otherwise."""

from __future__ import annotations

import struct
from dataclasses import replace

import pytest

from hostnet.checks import vm as checks
from hostnet.model.vm import LinkSnapshot, ObservedLink, TunInfo, TunNode, VmCheckInput
from hostnet.observe.links import relevant_events
from tests.unit.test_vm_planner import VM, complete

TUN_OK = TunNode("/dev/net/tun", True, True, 10, 200, 0o666, 0, 0)


def data(**kw: object) -> VmCheckInput:
    base = VmCheckInput((VM,), TUN_OK, complete())
    return replace(base, **kw)  # type: ignore[arg-type]


def codes(d: VmCheckInput) -> list[str]:
    return [f.code for f in checks.evaluate(d)]


def test_healthy_host_is_clean() -> None:
    assert codes(data()) == []


@pytest.mark.parametrize(("node", "expected"), [
    (TunNode("/dev/net/tun", False), "is missing"),
    (TunNode("/dev/net/tun", True, False), "is not a character device"),
    (TunNode("/dev/net/tun", True, True, 1, 3, 0o666), "not the tun character device 10:200"),
    (TunNode("/dev/net/tun", True, True, 10, 200, 0o600, 0, 0), "mode 0600"),
])
def test_vm101_tun_node(node: TunNode, expected: str) -> None:
    (f,) = checks.check_tun(data(tun=node))
    assert f.code == "VM101" and expected in f.message


def test_vm101_group_access_counts() -> None:
    group_rw = TunNode("/dev/net/tun", True, True, 10, 200, 0o660, 0, 110)
    qemu = replace(VM, owner_gids=(110,))
    assert checks.check_tun(data(tun=group_rw, vms=(qemu,))) == []  # group 110 may open it
    other = replace(VM, owner_gids=(999,), gid=None)
    (f,) = checks.check_tun(data(tun=group_rw, vms=(other,)))
    assert "60-hostnet-tun.rules" in f.message and "chmod" in f.message
    assert f.suggestion and 'GROUP="kvm"' in f.suggestion


def test_vm102_owner_mismatch() -> None:
    snap = complete()
    tap = snap.links["tapweb1"]
    assert tap.tun is not None
    wrong = replace(tap, tun=replace(tap.tun, owner=0))
    snap = replace(snap, links={**snap.links, "tapweb1": wrong})
    (f,) = checks.check_tap_owner(data(links=snap))
    assert f.code == "VM102" and "owner 0" in f.message and "owner 107" in f.message


def test_vm103_proxy_arp_on_uplink_or_all() -> None:
    snap = complete()
    eth0 = replace(snap.links["eth0"], proxy_arp=1)
    on_uplink = replace(snap, links={**snap.links, "eth0": eth0})
    (f,) = checks.check_uplink_proxy_arp(data(links=on_uplink))
    assert f.key == "net.ipv4.conf.eth0.proxy_arp" and f.suggestion == f"{f.key} = 0"
    (g,) = checks.check_uplink_proxy_arp(data(links=replace(snap, all_proxy_arp=1)))
    assert g.key == "net.ipv4.conf.all.proxy_arp"


def test_vm104_route_via_missing_tap() -> None:
    snap = complete()
    links = {k: v for k, v in snap.links.items() if k != "tapweb1"}
    gone = replace(snap, links=links, routes=())
    found = checks.check_routes(data(links=gone))
    assert [f.key for f in found] == ["203.0.113.11", "2001:db8::11"]
    assert "tapweb1 does not exist" in found[0].message
    elsewhere = replace(snap, routes=(replace(snap.routes[0], link="eth0"), snap.routes[1]))
    (f,) = checks.check_routes(data(links=elsewhere))
    assert "leaves by eth0" in f.message


def test_vm105_forwarding_off() -> None:
    found = checks.check_forwarding(data(links=replace(complete(), ip_forward=0,
                                                       ipv6_forwarding=0)))
    assert [f.key for f in found] == ["net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"]


def test_no_vms_no_findings() -> None:
    empty = VmCheckInput((), TunNode("/dev/net/tun", False), LinkSnapshot(None))
    assert checks.evaluate(empty) == []


def test_observed_link_types() -> None:
    link = ObservedLink("t", 1, "tun", True, True, 1500,
                        tun=TunInfo(True, None, None, False, False, False, True))
    assert link.tun is not None and link.tun.owner is None


def _msg(kind: int, body: bytes) -> bytes:
    length = 16 + len(body)
    pad = b"\0" * ((4 - length % 4) % 4)
    return struct.pack("=IHHII", length, kind, 0, 0, 0) + body + pad


def test_relevant_events_skip_arp_cache_churn() -> None:
    link = _msg(16, b"\0" * 16)  # RTM_NEWLINK
    arp = _msg(28, struct.pack("=BxxxiHBB", 2, 3, 2, 0, 1))  # RTM_NEWNEIGH, no NTF_PROXY
    proxy = _msg(29, struct.pack("=BxxxiHBB", 2, 3, 0, 0x08, 1))  # RTM_DELNEIGH proxy
    route = _msg(24, b"\0" * 12)  # RTM_NEWROUTE
    assert relevant_events(link + arp + route) == 2
    assert relevant_events(arp) == 0
    assert relevant_events(proxy) == 1
    assert relevant_events(b"\x01\x02") == 0
