"""Typed records for VM links: what a ``[[vm]]`` entry asks for (resolved to numbers) and what
the kernel shows (links, addresses, routes, proxy neighbour entries, the sysctls that matter).

No I/O here: the config loader builds :class:`VmLink`, ``hostnet.observe.links`` builds
:class:`LinkSnapshot`, and the planner and the VM checks are pure functions of both.
"""

from __future__ import annotations

import enum
import hashlib
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface

#: Link-local gateway the VMs use for IPv6 in routed mode (the usual choice of providers).
DEFAULT_GATEWAY6 = ipaddress.IPv6Interface("fe80::1/64")


class Mode(enum.Enum):
    ROUTED = "routed"
    NAT = "nat"
    BRIDGE = "bridge"


@dataclass(frozen=True, slots=True)
class VmLink:
    """One VM's host side, resolved: numeric owner, parsed addresses, the gateway to put on the
    tap. ``source``/``line`` say where it was configured (for messages and plan reasons)."""

    name: str
    tap: str
    uid: int
    gid: int | None
    mode: Mode
    uplink: str | None = None
    addresses: tuple[IPAddress, ...] = ()
    gateway: ipaddress.IPv4Interface | None = None  # None in routed mode: uplink's primary
    gateway6: ipaddress.IPv6Interface = DEFAULT_GATEWAY6
    multi_queue: bool = False
    queues: int = 1
    vnet_hdr: bool = True
    vhost: bool = True
    mtu: int | None = None
    bridge: str | None = None
    mac: str | None = None
    owner_name: str = ""
    group_name: str = ""
    owner_gids: tuple[int, ...] = ()  # the owner's primary and supplementary groups
    source: str = ""
    line: int | None = None

    @property
    def v4(self) -> tuple[ipaddress.IPv4Address, ...]:
        return tuple(a for a in self.addresses if isinstance(a, ipaddress.IPv4Address))

    @property
    def v6(self) -> tuple[ipaddress.IPv6Address, ...]:
        return tuple(a for a in self.addresses if isinstance(a, ipaddress.IPv6Address))

    @property
    def guest_mac(self) -> str:
        """The VM's MAC: the configured one, or a stable one derived from the VM name inside
        QEMU's locally administered 52:54:00 range."""
        if self.mac:
            return self.mac.lower()
        digest = hashlib.sha256(self.name.encode()).digest()
        return "52:54:00:" + ":".join(f"{b:02x}" for b in digest[:3])

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}" if self.source and self.line else self.source


@dataclass(frozen=True, slots=True)
class TunInfo:
    """What the kernel says about a tun/tap device (IFLA_INFO_DATA of kind ``tun``)."""

    tap: bool
    owner: int | None  # None: no owner set (only root, or CAP_NET_ADMIN, may attach)
    group: int | None
    pi: bool
    vnet_hdr: bool
    multi_queue: bool
    persist: bool
    queues: int = 0  # file descriptors attached now (0: nobody holds it)


@dataclass(frozen=True, slots=True)
class ObservedLink:
    name: str
    index: int
    kind: str  # "tun", "veth", "bridge", ... ("" for physical devices)
    up: bool  # administratively up (IFF_UP)
    carrier: bool  # IFF_LOWER_UP
    mtu: int
    mac: str = ""
    master: str | None = None
    tun: TunInfo | None = None
    proxy_arp: int | None = None
    forwarding: int | None = None
    proxy_ndp: int | None = None
    accept_ra: int | None = None


@dataclass(frozen=True, slots=True)
class ObservedAddress:
    link: str
    address: IPAddress
    prefixlen: int

    @property
    def interface(self) -> IPInterface:
        return ipaddress.ip_interface(f"{self.address}/{self.prefixlen}")


@dataclass(frozen=True, slots=True)
class ObservedRoute:
    dst: IPAddress
    prefixlen: int
    link: str | None  # output interface name (None: unknown index or no device)


@dataclass(frozen=True, slots=True)
class ProxyEntry:
    address: IPAddress
    link: str


@dataclass(frozen=True, slots=True)
class TunNode:
    """/dev/net/tun as stat(2) shows it (``exists`` False when missing)."""

    path: str
    exists: bool
    is_char: bool = False
    major: int = 0
    minor: int = 0
    mode: int = 0
    uid: int = 0
    gid: int = 0

    def openable_by(self, uid: int, gids: Iterable[int]) -> bool:
        """Read-write access for that user by the permission bits (root always may)."""
        if not self.exists or not self.is_char:
            return False
        if uid == 0:
            return True
        if uid == self.uid:
            return self.mode & 0o600 == 0o600
        if self.gid in set(gids):
            return self.mode & 0o060 == 0o060
        return self.mode & 0o006 == 0o006

    @property
    def is_tun(self) -> bool:
        return self.is_char and (self.major, self.minor) == (10, 200)


@dataclass(frozen=True)
class LinkSnapshot:
    """Everything the VM planner and checks need from one network namespace."""

    netns: str | None
    links: dict[str, ObservedLink] = field(default_factory=dict)
    addresses: tuple[ObservedAddress, ...] = ()
    routes: tuple[ObservedRoute, ...] = ()
    proxies: tuple[ProxyEntry, ...] = ()
    ip_forward: int | None = None
    ipv6_forwarding: int | None = None
    all_proxy_arp: int | None = None

    @cached_property
    def _by_link(self) -> dict[str, list[ObservedAddress]]:
        out: dict[str, list[ObservedAddress]] = {}
        for a in self.addresses:
            out.setdefault(a.link, []).append(a)
        return out

    @cached_property
    def _routes(self) -> dict[tuple[IPAddress, int], ObservedRoute]:
        out: dict[tuple[IPAddress, int], ObservedRoute] = {}
        for r in self.routes:
            out.setdefault((r.dst, r.prefixlen), r)
        return out

    @cached_property
    def proxy_set(self) -> frozenset[ProxyEntry]:
        return frozenset(self.proxies)

    def addresses_on(self, link: str) -> list[ObservedAddress]:
        return self._by_link.get(link, [])

    def primary_v4(self, link: str) -> ipaddress.IPv4Address | None:
        for a in self.addresses_on(link):
            if isinstance(a.address, ipaddress.IPv4Address):
                return a.address
        return None

    def route_to(self, address: IPAddress) -> ObservedRoute | None:
        """The host route (/32 or /128) to exactly that address, if any."""
        return self._routes.get((address, 32 if address.version == 4 else 128))

    def has_proxy(self, address: IPAddress, link: str) -> bool:
        return ProxyEntry(address, link) in self.proxy_set

    def host_addresses(self) -> dict[IPAddress, str]:
        return {a.address: a.link for a in self.addresses}


@dataclass(frozen=True, slots=True)
class VmCheckInput:
    """What the VM checks (VM1xx) read: the configured VMs, /dev/net/tun and one namespace's
    links. The doctor's HostState will carry one of these per namespace."""

    vms: tuple[VmLink, ...]
    tun: TunNode
    links: LinkSnapshot
