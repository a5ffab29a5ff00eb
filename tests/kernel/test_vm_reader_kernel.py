"""The rtnetlink reader (hostnet.observe.links / host.rtnl) against what iproute2 and
/proc/sys show for the same namespace: links with tun owner and flags, per-interface
proxy_arp/proxy_ndp/accept_ra/forwarding, addresses, host routes of the main table only,
proxy entries; and the event socket's receive buffer."""

from __future__ import annotations

import ipaddress
import json
import socket
from collections.abc import Callable

from hostnet.observe.links import open_event_socket, read_proxies, read_snapshot, read_tun_node
from tests.helpers.netns import Netns
from tests.helpers.vm_lab import uplinked

ip = ipaddress.ip_address


def test_reader_matches_iproute2(netns: Callable[..., Netns]) -> None:
    ns, _ = uplinked(netns, "rd")
    for argv in (["ip", "tuntap", "add", "dev", "tapa", "mode", "tap", "user", "nobody",
                  "group", "nogroup", "vnet_hdr", "multi_queue"],
                 ["ip", "tuntap", "add", "dev", "tunb", "mode", "tun", "pi"],
                 ["ip", "link", "set", "tapa", "mtu", "1400", "up"],
                 ["ip", "addr", "add", "198.51.100.1/32", "dev", "tapa"],
                 ["ip", "addr", "add", "2001:db8::1/64", "dev", "tapa", "nodad"],
                 ["ip", "route", "add", "198.51.100.20/32", "dev", "tapa"],
                 ["ip", "route", "add", "198.51.100.21/32", "dev", "tapa", "table", "100"],
                 ["ip", "route", "add", "198.51.100.64/26", "dev", "tapa"],
                 ["ip", "-6", "route", "add", "2001:db8::20/128", "dev", "tapa"],
                 ["ip", "neigh", "add", "proxy", "198.51.100.20", "dev", "up0"],
                 ["ip", "neigh", "add", "proxy", "2001:db8::20", "dev", "up0"]):
        ns.run(argv)
    ns.sysctl("net.ipv4.conf.up0.proxy_arp", "1")
    ns.sysctl("net.ipv6.conf.up0.proxy_ndp", "1")
    ns.sysctl("net.ipv6.conf.up0.accept_ra", "2")
    ns.sysctl("net.ipv4.conf.all.forwarding", "1")
    snap = read_snapshot(ns.name)

    shown = {d["ifname"]: d for d in json.loads(ns.run(["ip", "-d", "-j", "link"]).stdout)}
    assert set(snap.links) == set(shown)
    for name, d in shown.items():
        got = snap.links[name]
        assert (got.index, got.mtu, got.mac) == (d["ifindex"], d["mtu"], d.get("address", ""))
        assert got.up == ("UP" in d["flags"]) and got.carrier == ("LOWER_UP" in d["flags"])
    tapa, tunb = snap.links["tapa"], snap.links["tunb"]
    assert tapa.tun is not None and tunb.tun is not None
    assert (tapa.tun.tap, tapa.tun.owner, tapa.tun.group) == (True, 65534, 65534)
    assert (tapa.tun.vnet_hdr, tapa.tun.multi_queue, tapa.tun.persist, tapa.tun.pi) == (
        True, True, True, False)
    assert (tunb.tun.tap, tunb.tun.owner, tunb.tun.pi) == (False, None, True)
    up0 = snap.links["up0"]
    assert (up0.kind, up0.proxy_arp, up0.proxy_ndp, up0.accept_ra, up0.forwarding) == (
        "veth", 1, 1, 2, 1)
    assert snap.links["tapa"].proxy_arp == 0
    assert (snap.ip_forward, snap.ipv6_forwarding, snap.all_proxy_arp) == (1, 0, 0)

    addrs = {(a.link, str(a.address), a.prefixlen) for a in snap.addresses}
    assert {("tapa", "198.51.100.1", 32), ("tapa", "2001:db8::1", 64),
            ("up0", "203.0.113.2", 24)} <= addrs
    routes = {(str(r.dst), r.prefixlen, r.link) for r in snap.routes}
    assert ("198.51.100.20", 32, "tapa") in routes and ("2001:db8::20", 128, "tapa") in routes
    assert not any(r[0] in ("198.51.100.21", "198.51.100.64") for r in routes)  # table 100, /26
    proxies = {(str(p.address), p.link) for p in snap.proxies}
    assert proxies == {("198.51.100.20", "up0"), ("2001:db8::20", "up0")}
    assert set(read_proxies(ns.name)) == set(snap.proxies)


def test_event_socket_buffer_and_tun_node(netns: Callable[..., Netns]) -> None:
    ns = netns("ev")
    sock = open_event_socket(ns.name)
    try:
        # the kernel reports twice the requested size (bookkeeping overhead)
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) >= 1 << 20
        ns.run(["ip", "tuntap", "add", "dev", "tapev", "mode", "tap"])
        sock.settimeout(2)
        assert sock.recv(65536)  # an RTM_NEWLINK from inside the namespace
    finally:
        sock.close()
    node = read_tun_node("/")
    assert node.exists and node.is_tun
