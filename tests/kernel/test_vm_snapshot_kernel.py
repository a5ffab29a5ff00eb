"""A snapshot's VM part is the live one: in a throwaway namespace with taps (owned by a name
and by a bare uid, multi-queue and not), a bridge, addresses and host routes of both
families, proxy entries and per-link sysctls, the LinkSnapshot built from ``hostnet
collect``'s stored ``ip -j`` output and /proc/sys equals the one read over netlink, and
/dev/net/tun's record equals its stat(2)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from hostnet.config.vm import Accounts
from hostnet.host.root import Root
from hostnet.host.snapshot import opened
from hostnet.observe.collect import collect
from hostnet.observe.links import read_snapshot, snapshot_from_root, tun_node
from tests.helpers.netns import Netns, link


def test_snapshot_link_model_equals_netlink(netns: Callable[..., Netns],
                                            tmp_path: Path) -> None:
    ns = netns("vmsnap")
    link(ns, netns("vmsnu"), "192.0.2.1/24", "192.0.2.2/24", name_a="up0")
    for argv in (
        ["ip", "tuntap", "add", "dev", "tapa", "mode", "tap", "user", "nobody", "group",
         "nogroup", "multi_queue"],
        ["ip", "tuntap", "add", "dev", "tapb", "mode", "tap", "user", "4242", "vnet_hdr"],
        ["ip", "tuntap", "add", "dev", "tunc", "mode", "tun"],
        ["ip", "link", "add", "br0", "type", "bridge"],
        ["ip", "link", "set", "tapb", "master", "br0"],
        ["ip", "link", "set", "tapa", "up"],
        ["ip", "link", "set", "tapa", "mtu", "1400"],
        ["ip", "addr", "add", "198.51.100.1/32", "dev", "tapa"],
        ["ip", "-6", "addr", "add", "2001:db8:7::1/64", "dev", "up0", "nodad"],
        ["ip", "route", "add", "198.51.100.10/32", "dev", "tapa"],
        ["ip", "route", "add", "198.51.100.11/32", "via", "192.0.2.2", "dev", "up0"],
        ["ip", "route", "add", "198.51.100.12/32", "dev", "up0", "table", "100"],
        ["ip", "-6", "route", "add", "2001:db8:7::10/128", "dev", "tapa"],
        ["ip", "neigh", "add", "proxy", "198.51.100.10", "dev", "up0"],
        ["ip", "-6", "neigh", "add", "proxy", "2001:db8:7::10", "dev", "up0"],
    ):
        ns.run(argv)
    ns.sysctl("net.ipv4.conf.up0.proxy_arp", "1")
    ns.sysctl("net.ipv4.ip_forward", "1")
    ns.sysctl("net.ipv6.conf.up0.proxy_ndp", "1")
    ns.sysctl("net.ipv6.conf.up0.accept_ra", "2")

    live = read_snapshot(ns.name)
    out = tmp_path / "snap.tar.gz"
    collect(str(out), netns=ns.name, table=False)
    with opened(str(out)) as root:
        accounts = Accounts.from_root("/")
        users = {name: uid for name, (uid, _gid) in accounts.users.items()}
        offline = snapshot_from_root(root, users, accounts.groups)
        tun = tun_node(root)
    assert live.links["tapa"].tun is not None and live.links["tapa"].tun.owner == 65534
    assert live.links["tapb"].master == "br0" and live.links["up0"].proxy_arp == 1
    assert offline.links == live.links
    assert sorted(map(str, offline.addresses)) == sorted(map(str, live.addresses))
    assert offline.addresses == live.addresses  # same order too: IPv4, then IPv6
    assert offline.routes == live.routes and len(live.routes) == 3
    assert offline.proxies == live.proxies and len(live.proxies) == 2
    assert (offline.ip_forward, offline.ipv6_forwarding, offline.all_proxy_arp) == (
        live.ip_forward, live.ipv6_forwarding, live.all_proxy_arp) == (1, 0, 0)
    assert tun == tun_node(Root("/"))
