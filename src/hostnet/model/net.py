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


#: Kinds that never receive IP packets of their own: an IFB only re-injects the traffic
#: redirected to it (drivers/net/ifb.c), so per-interface IPv4 keys do nothing there.
NOT_L3_KINDS = frozenset({"ifb"})


@dataclass(frozen=True, slots=True)
class Interface:
    name: str
    #: ether, loopback, bridge, veth, tap, tun, ifb, dummy, vlan, bond, wireguard ...
    kind: str
    #: The bridge, bond or VRF this interface is a port of (None: none).
    master: str | None = None
    #: up, down, unknown, lowerlayerdown ... (operstate, lower case)
    state: str = "unknown"
    #: IFF_UP set administratively.
    admin_up: bool = True
    addresses: tuple[Address, ...] = ()
    #: The addresses were read (``ip addr``); False when only the link was seen (sysfs,
    #: ``ip link``), so "no addresses" means "not known".
    addresses_known: bool = False
    #: What kind of master this is a port of (``bridge``, ``bond``, ``vrf`` ...), when known.
    port_kind: str | None = None

    @property
    def loopback(self) -> bool:
        return self.kind == "loopback" or self.name == "lo"

    def has_family(self, family: Family) -> bool:
        return any(a.family is family and a.scope != "host" for a in self.addresses)

    @property
    def ipv4(self) -> tuple[Address, ...]:
        return tuple(a for a in self.addresses if a.family is Family.IPV4)

    @property
    def global_ipv4(self) -> tuple[Address, ...]:
        return tuple(a for a in self.ipv4 if a.scope == "global")

    @property
    def is_l3(self) -> bool:
        """Whether IPv4 packets can be received and routed on this interface, judged from
        the link alone (:meth:`Network.is_l3` adds what the routes show).

        rp_filter, send_redirects, log_martians, accept_redirects and source routing are
        judged on L3 interfaces only. Not L3: loopback, an IFB, a bridge or bond port without
        an IPv4 address of its own (the bridge or bond receives its packets: the port's
        rx_handler takes them before IP sees them), and a device that is administratively
        down without addresses. A VRF port stays L3 (the VRF only selects the table). When
        the addresses were not read, the interface counts as L3 (what was always judged).
        """
        if self.loopback or self.kind in NOT_L3_KINDS:
            return False
        if self.master is not None and self.port_kind != "vrf":
            return bool(self.ipv4)
        if not self.addresses_known:
            return True
        if self.ipv4:
            return True
        # no IPv4 address: an unnumbered link (routes via it) is L3 if it is up
        return self.admin_up


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

    @property
    def carries_traffic(self) -> bool:
        """A unicast route out of a real device (not the local, broadcast or reject kinds)."""
        return self.type == "unicast" and self.device not in (None, "lo")


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
    #: IPv4 datagrams this namespace has routed (/proc/net/snmp ``Ip: ForwDatagrams``: counted
    #: after the forward hook accepted them), None when unknown.
    forwarded: int | None = None

    def interface(self, name: str) -> Interface | None:
        for i in self.interfaces:
            if i.name == name:
                return i
        return None

    def kind(self, name: str) -> str | None:
        i = self.interface(name)
        return i.kind if i else None

    def is_l3(self, name: str) -> bool:
        """:attr:`Interface.is_l3`, and an up device without any address counts only when
        a route uses it (routes known). Interfaces not in the link list are judged (True)."""
        iface = self.interface(name)
        if iface is None:
            return True
        if not iface.is_l3:
            return False
        if iface.addresses_known and not iface.ipv4 and self.routes_known:
            return any(r.device == name and r.carries_traffic and r.family is Family.IPV4
                       for r in self.routes)
        return True

    def handles_ip(self, name: str) -> bool:
        """False for a bridge or bond port (its master receives the packets) and an IFB:
        they never take part in IP themselves, whatever their per-interface settings say."""
        iface = self.interface(name)
        if iface is None:
            return True
        if iface.kind in NOT_L3_KINDS:
            return False
        return iface.master is None or iface.port_kind == "vrf"

    def l3(self) -> list[Interface]:
        return [i for i in self.interfaces if self.is_l3(i.name)]

    @property
    def addresses_known(self) -> bool:
        return any(i.addresses_known for i in self.interfaces)

    def local_addresses(self) -> frozenset[IPAddress]:
        """This namespace's own addresses (every interface, loopback included, and the
        ``local`` routes of the local table)."""
        out: set[IPAddress] = {a.address for i in self.interfaces for a in i.addresses}
        out.update(r.destination.network_address for r in self.routes
                   if r.type == "local" and r.destination.prefixlen in (32, 128))
        return frozenset(out)

    def is_local(self, address: IPAddress) -> bool:
        return address in self.local_addresses() or (address.version == 4 and address.is_loopback)

    def default_routes(self, family: Family) -> list[Route]:
        return [r for r in self.routes if r.family is family and r.default
                and r.type == "unicast"]

    def uplinks(self, family: Family = Family.IPV4) -> list[str]:
        """Interfaces that carry a default route (in any routing table)."""
        return sorted({r.device for r in self.default_routes(family) if r.device})

    def return_paths(self) -> ReturnPaths:
        """Whether each IPv4 source has one way back (see :class:`ReturnPaths`)."""
        v4 = [r for r in self.routes if r.family is Family.IPV4 and r.carries_traffic]
        by_dest: dict[IPNetwork, set[str]] = {}
        for r in v4:
            by_dest.setdefault(r.destination, set()).add(str(r.device))
        overlapping = {str(d): sorted(devs) for d, devs in by_dest.items() if len(devs) > 1}
        l3 = [i for i in self.l3() if not i.loopback]
        addressed = sorted(i.name for i in l3 if i.global_ipv4)
        return ReturnPaths(routes_known=self.routes_known,
                           addresses_known=self.addresses_known,
                           uplinks=tuple(self.uplinks()), overlapping=overlapping,
                           addressed=tuple(addressed),
                           interfaces=tuple(sorted(i.name for i in l3)))


@dataclass(frozen=True, slots=True)
class ReturnPaths:
    """How many ways the routing table has back to a packet's source (for rp_filter).

    Strict reverse-path filtering (1) drops a packet unless the route back to its source
    leaves by the interface it came in on (fib_validate_source). That is safe where every
    destination has one route out of one device: one uplink carrying the default route, and
    no destination (the default included, in any table) routed out of two devices. With two
    uplinks (a default route on each, ECMP, a second table for policy routing) requests can
    arrive on one and the route back leave by the other, and strict mode drops them.
    """

    routes_known: bool
    addresses_known: bool
    #: Interfaces with an IPv4 default route in any table.
    uplinks: tuple[str, ...]
    #: Destinations routed out of more than one device (prefix -> devices).
    overlapping: dict[str, list[str]]
    #: L3 interfaces with a global IPv4 address.
    addressed: tuple[str, ...]
    #: Every L3 interface but loopback (None: not counted).
    interfaces: tuple[str, ...] | None = None

    @property
    def known(self) -> bool:
        return self.routes_known or self.single

    @property
    def single(self) -> bool:
        """One way back for every source (False also when it cannot be told). One
        interface is one way, whatever the routes say."""
        if self.interfaces is not None and len(self.interfaces) <= 1:
            return True
        if self.routes_known:
            return len(self.uplinks) <= 1 and not self.overlapping
        return self.addresses_known and len(self.addressed) <= 1

    @property
    def multiple(self) -> bool:
        """Several ways back are certain (routes read and showing them)."""
        return self.routes_known and (len(self.uplinks) > 1 or bool(self.overlapping))

    def describe(self) -> str:
        if self.multiple:
            parts = []
            if len(self.uplinks) > 1:
                parts.append(f"default routes on {', '.join(self.uplinks)}")
            for dest, devs in list(self.overlapping.items())[:3]:
                if dest not in ("0.0.0.0/0",) or len(self.uplinks) <= 1:
                    parts.append(f"{dest} via {', '.join(devs)}")
            return "several paths back: " + "; ".join(parts)
        if self.single:
            if self.interfaces is not None and len(self.interfaces) <= 1:
                return (f"one path back ({self.interfaces[0]} is the only interface)"
                        if self.interfaces else "one path back (no interface but loopback)")
            if self.routes_known:
                up = self.uplinks[0] if self.uplinks else None
                return (f"one path back (the only default route is on {up})" if up else
                        "one path back (no default route; each network on one interface)")
            return f"one path back (the only addressed interface is {self.addressed[0]})" \
                if self.addressed else "one path back (no addressed interface)"
        return "paths back not known (the routes were not read)"
