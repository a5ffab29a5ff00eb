"""Read links, addresses, host routes, proxy neighbour entries and the forwarding sysctls of
one network namespace through rtnetlink (pyroute2), for the VM planner, ``vm list`` and the
VM checks. Every reader takes the namespace name (None: the one we run in).

A netlink socket belongs to the namespace it was created in, so :func:`route_socket` opens it
inside the namespace and the reads then need no further switching.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import stat
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from hostnet.errors import PermissionDenied
from hostnet.host.netns import entered
from hostnet.vm.model import (
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
RT_TABLE_MAIN = 254
AF_INET, AF_INET6 = 2, 10
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


def _tun_info(data: Any) -> TunInfo:
    def get(name: str) -> Any:
        return data.get_attr(name)

    owner, group = get("IFLA_TUN_OWNER"), get("IFLA_TUN_GROUP")
    return TunInfo(
        tap=get("IFLA_TUN_TYPE") == 2,
        owner=None if owner in (None, 0xFFFFFFFF) else int(owner),
        group=None if group in (None, 0xFFFFFFFF) else int(group),
        pi=bool(get("IFLA_TUN_PI")),
        vnet_hdr=bool(get("IFLA_TUN_VNET_HDR")),
        multi_queue=bool(get("IFLA_TUN_MULTI_QUEUE")),
        persist=bool(get("IFLA_TUN_PERSIST")),
        queues=int(get("IFLA_TUN_NUM_QUEUES") or 0),
    )


def _link(msg: Any, names: dict[int, str]) -> ObservedLink:
    kind, tun = "", None
    info = msg.get_attr("IFLA_LINKINFO")
    if info is not None:
        kind = info.get_attr("IFLA_INFO_KIND") or ""
        data = info.get_attr("IFLA_INFO_DATA")
        if kind == "tun" and data is not None and hasattr(data, "get_attr"):
            tun = _tun_info(data)
    conf4: dict[str, Any] = {}
    conf6: dict[str, Any] = {}
    spec = msg.get_attr("IFLA_AF_SPEC")
    if spec is not None:
        conf4 = spec.get_attr("AF_INET") or {}
        inet6 = spec.get_attr("AF_INET6")
        if inet6 is not None:
            conf6 = inet6.get_attr("IFLA_INET6_CONF") or {}
    master = msg.get_attr("IFLA_MASTER")
    flags = int(msg["flags"])
    return ObservedLink(
        name=msg.get_attr("IFLA_IFNAME"), index=int(msg["index"]), kind=kind,
        up=bool(flags & IFF_UP), carrier=bool(flags & IFF_LOWER_UP),
        mtu=int(msg.get_attr("IFLA_MTU") or 0), mac=msg.get_attr("IFLA_ADDRESS") or "",
        master=names.get(master) if master else None, tun=tun,
        proxy_arp=conf4.get("proxy_arp"), forwarding=conf4.get("forwarding"),
        proxy_ndp=conf6.get("proxy_ndp"), accept_ra=conf6.get("accept_ra"))


def read_proxies(ipr: Any, names: dict[int, str]) -> list[ProxyEntry]:
    """Proxy neighbour entries (``ip neigh show proxy``): a dump with NTF_PROXY set in the
    request, which the ordinary neighbour dump does not return."""
    from pyroute2.netlink import NLM_F_DUMP, NLM_F_REQUEST
    from pyroute2.netlink.rtnl import RTM_GETNEIGH
    from pyroute2.netlink.rtnl.ndmsg import ndmsg

    msg = ndmsg()
    msg["family"] = 0
    msg["flags"] = NTF_PROXY
    status = getattr(ipr, "status", None)
    if isinstance(status, dict):  # pyroute2 0.9's sync wrapper expects this key
        status.setdefault("nlm_generator", False)
    out: list[ProxyEntry] = []
    for m in ipr.nlm_request(msg, RTM_GETNEIGH, NLM_F_DUMP | NLM_F_REQUEST):
        dst = m.get_attr("NDA_DST")
        name = names.get(int(m["ifindex"]))
        if dst and name and int(m["flags"]) & NTF_PROXY:
            out.append(ProxyEntry(ipaddress.ip_address(dst), name))
    return out


def read_host_routes(ipr: Any, names: dict[int, str]) -> list[ObservedRoute]:
    """Host routes (/32, /128) of the main table: the only ones VM links add."""
    out: list[ObservedRoute] = []
    for family, host in ((AF_INET, 32), (AF_INET6, 128)):
        for r in ipr.get_routes(family=family, table=RT_TABLE_MAIN):
            if int(r["dst_len"]) != host:
                continue
            dst = r.get_attr("RTA_DST")
            if not dst:
                continue
            oif = r.get_attr("RTA_OIF")
            out.append(ObservedRoute(ipaddress.ip_address(dst), host,
                                     names.get(oif) if oif else None))
    return out


def _proc_int(key: str) -> int | None:
    try:
        with open("/proc/sys/" + key.replace(".", "/"), encoding="ascii") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def read_snapshot(netns: str | None) -> LinkSnapshot:
    """Links, addresses, host routes, proxy entries and forwarding of ``netns``."""
    with route_socket(netns) as ipr:
        raw = list(ipr.get_links())
        names = {int(m["index"]): m.get_attr("IFLA_IFNAME") for m in raw}
        links = {link.name: link for link in (_link(m, names) for m in raw)}
        addresses = []
        for a in ipr.get_addr():
            name = names.get(int(a["index"]))
            addr = a.get_attr("IFA_ADDRESS")
            if name and addr:
                addresses.append(ObservedAddress(name, ipaddress.ip_address(addr),
                                                 int(a["prefixlen"])))
        routes = read_host_routes(ipr, names)
        proxies = read_proxies(ipr, names)
    with entered(netns):
        ip_forward = _proc_int("net.ipv4.ip_forward")
        v6 = _proc_int("net.ipv6.conf.all.forwarding")
        all_proxy_arp = _proc_int("net.ipv4.conf.all.proxy_arp")
    return LinkSnapshot(netns, links, tuple(addresses), tuple(routes), tuple(proxies),
                        ip_forward, v6, all_proxy_arp)


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


# -- events ----------------------------------------------------------------------------

NETLINK_ROUTE = 0
SO_RCVBUFFORCE = 33
#: Legacy rtnetlink multicast groups: link, neighbour, IPv4/IPv6 addresses and routes.
RTMGRP_LINK, RTMGRP_NEIGH = 0x1, 0x4
RTMGRP_IPV4_IFADDR, RTMGRP_IPV4_ROUTE = 0x10, 0x40
RTMGRP_IPV6_IFADDR, RTMGRP_IPV6_ROUTE = 0x100, 0x400
VM_GROUPS = (RTMGRP_LINK | RTMGRP_NEIGH | RTMGRP_IPV4_IFADDR | RTMGRP_IPV4_ROUTE
             | RTMGRP_IPV6_IFADDR | RTMGRP_IPV6_ROUTE)
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
