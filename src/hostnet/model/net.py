"""Interfaces, addresses, routes and listening sockets of one network namespace."""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass, field

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class Family(enum.Enum):
    IPV4 = "ipv4"
    IPV6 = "ipv6"


@dataclass(frozen=True, slots=True)
class Address:
    address: IPAddress
    prefixlen: int
    scope: str = "global"  # global, link, host

    @property
    def family(self) -> Family:
        return Family.IPV4 if self.address.version == 4 else Family.IPV6

    def __str__(self) -> str:
        return f"{self.address}/{self.prefixlen}"


#: Link kinds that carry a VM's or container's traffic on a host.
VM_KINDS = frozenset({"tap", "tun", "veth", "macvtap", "ipvlan", "macvlan"})


@dataclass(frozen=True, slots=True)
class Interface:
    name: str
    #: ether, loopback, bridge, veth, tap, tun, ifb, dummy, vlan, bond, wireguard ...
    kind: str
    #: The bridge or bond this interface is a port of (None: none).
    master: str | None = None
    #: up, down, unknown, lowerlayerdown ... (operstate, lower case)
    state: str = "unknown"
    #: IFF_UP set administratively.
    admin_up: bool = True
    addresses: tuple[Address, ...] = ()

    @property
    def loopback(self) -> bool:
        return self.kind == "loopback" or self.name == "lo"

    def has_family(self, family: Family) -> bool:
        return any(a.family is family and a.scope != "host" for a in self.addresses)

    @property
    def is_l3(self) -> bool:
        """Carries IP traffic of its own: has an address, or is up and not a bridge/bond port.

        rp_filter, send_redirects, log_martians and friends are judged on L3 interfaces
        only: a bridge port or a down device without addresses never routes a packet.
        """
        if self.loopback or self.master is not None:
            return False
        return any(a.scope != "link" or a.family is Family.IPV4 for a in self.addresses)


@dataclass(frozen=True, slots=True)
class Route:
    family: Family
    destination: IPNetwork
    device: str | None
    gateway: IPAddress | None = None
    table: str = "main"
    #: kernel, boot, static, ra, dhcp ... (ip route's protocol)
    protocol: str = "boot"
    #: unicast, local, broadcast, blackhole, unreachable, prohibit ...
    type: str = "unicast"
    metric: int = 0

    @property
    def default(self) -> bool:
        return self.destination.prefixlen == 0

    @property
    def from_ra(self) -> bool:
        return self.protocol == "ra"


@dataclass(frozen=True, slots=True)
class Listener:
    proto: str  # tcp, udp
    port: int
    address: str  # hex as in /proc/net
    loopback: bool


@dataclass(frozen=True, slots=True)
class Network:
    """Links, addresses and routes of one namespace, with the questions checks ask of them."""

    interfaces: tuple[Interface, ...] = ()
    routes: tuple[Route, ...] = ()
    #: Where the data came from (``ip -j -d addr show``, sysfs), for messages.
    source: str = ""
    routes_known: bool = False
    ipv6_routes_known: bool = False
    kinds: dict[str, str] = field(default_factory=dict)

    def interface(self, name: str) -> Interface | None:
        for i in self.interfaces:
            if i.name == name:
                return i
        return None

    def kind(self, name: str) -> str | None:
        i = self.interface(name)
        return i.kind if i else None

    def l3(self) -> list[Interface]:
        return [i for i in self.interfaces if i.is_l3]

    def default_routes(self, family: Family) -> list[Route]:
        return [r for r in self.routes if r.family is family and r.default
                and r.type == "unicast"]

    def uplinks(self, family: Family = Family.IPV4) -> list[str]:
        """Interfaces that carry a default route (in any routing table)."""
        return sorted({r.device for r in self.default_routes(family) if r.device})
