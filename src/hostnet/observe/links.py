"""Read links, addresses, host routes, proxy neighbour entries and the forwarding sysctls of
one network namespace over rtnetlink, for the VM planner, ``vm list`` and the VM checks;
the netlink event socket of ``vm watch``. Every reader takes the namespace name (None: the
one we run in). :func:`snapshot_from_root` builds the same LinkSnapshot from what a
``hostnet collect`` snapshot stores (``ip -j`` output and /proc/sys, see
hostnet.observe.parse_links), :func:`tun_node` reads /dev/net/tun from either.

A netlink socket belongs to the namespace it was created in, so sockets are opened inside
the namespace and then need no further switching. Dumps are decoded by hostnet.host.rtnl
(only the fields needed); :func:`route_socket` gives the pyroute2 socket the writer uses.
"""

from __future__ import annotations

import os
import socket
import stat
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from hostnet.errors import InputError, PermissionDenied
from hostnet.host import rtnl
from hostnet.host.netns import entered
from hostnet.host.root import STAT_FILE, Root
from hostnet.model.vm import (
    LinkSnapshot,
    ObservedAddress,
    ObservedLink,
    ObservedRoute,
    ProxyEntry,
    TunInfo,
    TunNode,
)

IFF_UP = 0x1
IFF_LOWER_UP = 0x10000
NTF_PROXY = 0x08
TUN_PATH = "dev/net/tun"


@contextmanager
def route_socket(netns: str | None) -> Iterator[Any]:
    """A pyroute2 IPRoute bound to ``netns``, closed on exit."""
    from pyroute2 import IPRoute

    with entered(netns):
        try:
            ipr = IPRoute()
        except PermissionError:
            raise PermissionDenied("cannot open a netlink socket",
                                   hint="run as root (CAP_NET_ADMIN)") from None
    try:
        yield ipr
    finally:
        ipr.close()


def _tun_info(data: dict[int, int]) -> TunInfo:
    return TunInfo(
        tap=data.get(rtnl.TUN_TYPE) == 2,
        owner=data.get(rtnl.TUN_OWNER), group=data.get(rtnl.TUN_GROUP),
        pi=bool(data.get(rtnl.TUN_PI)), vnet_hdr=bool(data.get(rtnl.TUN_VNET_HDR)),
        multi_queue=bool(data.get(rtnl.TUN_MULTI_QUEUE)),
        persist=bool(data.get(rtnl.TUN_PERSIST)), queues=data.get(rtnl.TUN_NUM_QUEUES, 0))


def _link(raw: rtnl.RawLink, names: dict[int, str]) -> ObservedLink:
    return ObservedLink(
        name=raw.name, index=raw.index, kind=raw.kind, up=bool(raw.flags & IFF_UP),
        carrier=bool(raw.flags & IFF_LOWER_UP), mtu=raw.mtu, mac=raw.mac,
        master=names.get(raw.master) if raw.master else None,
        tun=_tun_info(raw.tun) if raw.tun is not None else None,
        proxy_arp=raw.proxy_arp, forwarding=raw.v4_forwarding, proxy_ndp=raw.proxy_ndp,
        accept_ra=raw.accept_ra)


def read_proxies(netns: str | None) -> list[ProxyEntry]:
    """Proxy neighbour entries (``ip neigh show proxy``) of ``netns``."""
    with rtnl.Rtnl(netns) as sock:
        names = {link.index: link.name for link in sock.links()}
        return [ProxyEntry(addr, names[i]) for addr, i in sock.proxies() if i in names]


def _proc_int(key: str) -> int | None:
    try:
        with open("/proc/sys/" + key.replace(".", "/"), encoding="ascii") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def read_snapshot(netns: str | None) -> LinkSnapshot:
    """Links, addresses, host routes, proxy entries and forwarding of ``netns``."""
    try:
        with rtnl.Rtnl(netns) as sock:
            raw = sock.links()
            names = {link.index: link.name for link in raw}
            links = {link.name: _link(link, names) for link in raw}
            addresses = tuple(ObservedAddress(names[i], addr, plen)
                              for i, addr, plen in sock.addresses() if i in names)
            routes = tuple(ObservedRoute(dst, plen, names.get(oif))
                           for dst, plen, oif in sock.host_routes())
            proxies = tuple(ProxyEntry(addr, names[i]) for addr, i in sock.proxies()
                            if i in names)
    except PermissionError:
        raise PermissionDenied("cannot read netlink", hint="run as root") from None
    with entered(netns):
        ip_forward = _proc_int("net.ipv4.ip_forward")
        v6 = _proc_int("net.ipv6.conf.all.forwarding")
        all_proxy_arp = _proc_int("net.ipv4.conf.all.proxy_arp")
    return LinkSnapshot(netns, links, addresses, routes, proxies, ip_forward, v6,
                        all_proxy_arp)


def read_tun_node(root: str = "/") -> TunNode:
    """stat(2) of ``ROOT/dev/net/tun``."""
    path = os.path.join(root, TUN_PATH)
    try:
        st = os.stat(path)
    except OSError:
        return TunNode(path, False)
    is_char = stat.S_ISCHR(st.st_mode)
    return TunNode(path, True, is_char, os.major(st.st_rdev) if is_char else 0,
                   os.minor(st.st_rdev) if is_char else 0, stat.S_IMODE(st.st_mode),
                   st.st_uid, st.st_gid)


def tun_node(root: Root) -> TunNode:
    """/dev/net/tun of the live host, or as a snapshot recorded it (its stat record: an
    archive holds no device nodes). A tree without that record (an older snapshot, a mounted
    disk whose /dev is not populated) cannot say: InputError."""
    path = "/" + TUN_PATH
    if not root.is_live and not root.exists(STAT_FILE):
        raise InputError(f"no record of {path} ({STAT_FILE}, written by 'hostnet collect' "
                         "since the VM checks run on snapshots)")
    try:
        st = root.stat(TUN_PATH)
    except OSError:
        st = None
    if st is None:
        return TunNode(path, False)
    is_char = stat.S_ISCHR(st.mode)
    return TunNode(path, True, is_char, st.major if is_char else 0, st.minor if is_char else 0,
                   stat.S_IMODE(st.mode), st.uid, st.gid)


def snapshot_from_root(root: Root, users: dict[str, int],
                       groups: dict[str, int]) -> LinkSnapshot:
    """The LinkSnapshot :func:`read_snapshot` gives, from a snapshot's stored ``ip -j``
    output and /proc/sys (``users``/``groups``: names to ids, for taps' owners).
    InputError when the snapshot lacks one of the outputs or holds something else."""
    from hostnet.observe import registry as reg
    from hostnet.observe.parse_links import parse_host_routes, parse_links, parse_proxies

    texts: list[str] = []
    for cmd in (reg.IP_ADDR, reg.IP_ROUTE, reg.IP_NEIGH_PROXY):
        text = root.command_output(cmd.name, list(cmd.argv))
        if text is None:
            raise InputError(f"the snapshot has no '{' '.join(cmd.argv)}' output (collected "
                             "by an older hostnet, or the command failed there)")
        texts.append(text)

    def conf(family: str, link: str, leaf: str) -> int | None:
        from hostnet.model.sysctl import first_int

        try:
            return first_int(root.read_text(f"proc/sys/net/{family}/conf/{link}/{leaf}"))
        except OSError:
            return None

    try:
        links, addresses = parse_links(texts[0], conf, users, groups)
        routes, proxies = parse_host_routes(texts[1]), parse_proxies(texts[2])
    except ValueError as exc:
        raise InputError(f"snapshot VM links: {exc}") from None
    return LinkSnapshot(None, links, addresses, routes, proxies,
                        root.sysctl_int("net.ipv4.ip_forward"),
                        root.sysctl_int("net.ipv6.conf.all.forwarding"),
                        root.sysctl_int("net.ipv4.conf.all.proxy_arp"))


# -- events ----------------------------------------------------------------------------

NETLINK_ROUTE = 0
SO_RCVBUFFORCE = 33
#: Legacy rtnetlink multicast groups: link, neighbour, IPv4/IPv6 addresses and routes.
RTMGRP_LINK, RTMGRP_NEIGH = 0x1, 0x4
RTMGRP_IPV4_IFADDR, RTMGRP_IPV4_ROUTE = 0x10, 0x40
RTMGRP_IPV6_IFADDR, RTMGRP_IPV6_ROUTE = 0x100, 0x400
#: netconf groups (RTNLGRP_IPV4_NETCONF = 24, RTNLGRP_IPV6_NETCONF = 25, as bitmask bits
#: 1 << (group - 1)): the kernel reports forwarding and proxy_arp/proxy_ndp changes there
RTMGRP_IPV4_NETCONF, RTMGRP_IPV6_NETCONF = 1 << 23, 1 << 24
VM_GROUPS = (RTMGRP_LINK | RTMGRP_NEIGH | RTMGRP_IPV4_IFADDR | RTMGRP_IPV4_ROUTE
             | RTMGRP_IPV6_IFADDR | RTMGRP_IPV6_ROUTE | RTMGRP_IPV4_NETCONF
             | RTMGRP_IPV6_NETCONF)
RTM_NEWNEIGH, RTM_DELNEIGH = 28, 29
_NLMSG_HDR = struct.Struct("=IHHII")
_NDMSG = struct.Struct("=BxxxiHBB")


def open_event_socket(netns: str | None, groups: int = VM_GROUPS,
                      rcvbuf: int = 1 << 20) -> socket.socket:
    """A non-blocking rtnetlink socket in ``netns`` subscribed to ``groups``, with a receive
    buffer of at least ``rcvbuf`` bytes (SO_RCVBUFFORCE as root, else capped by rmem_max)."""
    with entered(netns):
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_NONBLOCK
                             | socket.SOCK_CLOEXEC, NETLINK_ROUTE)
    try:
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, rcvbuf)
        except PermissionError:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.bind((0, groups))
    except BaseException:
        sock.close()
        raise
    return sock


def relevant_events(data: bytes) -> int:
    """How many messages in one netlink datagram may concern VM links: every link, address
    and route message, and neighbour messages only for proxy entries (the ARP cache churns)."""
    count, offset = 0, 0
    while offset + _NLMSG_HDR.size <= len(data):
        length, kind, _flags, _seq, _pid = _NLMSG_HDR.unpack_from(data, offset)
        if length < _NLMSG_HDR.size:
            break
        if kind in (RTM_NEWNEIGH, RTM_DELNEIGH):
            body = offset + _NLMSG_HDR.size
            if body + _NDMSG.size <= len(data):
                ndm_flags = _NDMSG.unpack_from(data, body)[3]
                count += bool(ndm_flags & NTF_PROXY)
        elif kind >= 16:  # RTM_* (below are NLMSG_NOOP/ERROR/DONE/OVERRUN)
            count += 1
        offset += (length + 3) & ~3
    return count
