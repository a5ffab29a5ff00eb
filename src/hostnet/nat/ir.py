"""Intermediate representation of the ``inet hostnet`` table (pure data).

The compiler builds it from the configuration, nftables.py renders it as text, and explain
evaluates the same records against a packet, so what explain says is what the table does.
Sets and maps hold the per-forward data; the rules are a fixed handful that look them up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from hostnet.model import nat as m

TABLE_FAMILY = "inet"
TABLE_NAME = "hostnet"


class Hook(Enum):
    PREROUTING = "prerouting"
    INPUT = "input"
    FORWARD = "forward"
    OUTPUT = "output"
    POSTROUTING = "postrouting"


class ChainType(Enum):
    FILTER = "filter"
    NAT = "nat"


#: Named priorities of the inet family (nft(8), "STANDARD PRIORITY NAMES").
PRIORITY_NAMES = {"raw": -300, "mangle": -150, "dstnat": -100, "filter": 0, "security": 50,
                  "srcnat": 100}
#: Where the kernel's own conntrack work sits (NF_IP_PRI_CONNTRACK, NF_IP_PRI_CONNTRACK_CONFIRM).
CONNTRACK_PRIORITY = -200
CONFIRM_PRIORITY = 2147483647


class Field(Enum):
    """A packet or conntrack field used as (part of) a set key; value: its nft expression."""

    IIFNAME = "iifname"
    OIFNAME = "oifname"
    L4PROTO = "meta l4proto"
    DPORT = "th dport"
    SPORT = "th sport"
    SADDR4 = "ip saddr"
    DADDR4 = "ip daddr"
    SADDR6 = "ip6 saddr"
    DADDR6 = "ip6 daddr"
    CT_ORIG_DPORT = "ct original proto-dst"
    CT_ORIG_SADDR4 = "ct original ip saddr"
    CT_ORIG_SADDR6 = "ct original ip6 saddr"

    @property
    def nft_type(self) -> str:
        return _TYPES[self]


_TYPES = {
    Field.IIFNAME: "ifname", Field.OIFNAME: "ifname", Field.L4PROTO: "inet_proto",
    Field.DPORT: "inet_service", Field.SPORT: "inet_service", Field.CT_ORIG_DPORT: "inet_service",
    Field.SADDR4: "ipv4_addr", Field.DADDR4: "ipv4_addr", Field.CT_ORIG_SADDR4: "ipv4_addr",
    Field.SADDR6: "ipv6_addr", Field.DADDR6: "ipv6_addr", Field.CT_ORIG_SADDR6: "ipv6_addr",
}


def saddr(family: m.Family) -> Field:
    return Field.SADDR4 if family is m.Family.V4 else Field.SADDR6


def daddr(family: m.Family) -> Field:
    return Field.DADDR4 if family is m.Family.V4 else Field.DADDR6


def ct_orig_saddr(family: m.Family) -> Field:
    return Field.CT_ORIG_SADDR4 if family is m.Family.V4 else Field.CT_ORIG_SADDR6


def addr_type(family: m.Family) -> str:
    return "ipv4_addr" if family is m.Family.V4 else "ipv6_addr"


@dataclass(frozen=True)
class Jump:
    """A verdict-map value: ``jump CHAIN``."""

    chain: str


#: One component of a set element: an interface name, a protocol, ports, addresses, a jump.
Value = str | m.Proto | m.PortRange | m.IPNetwork | m.IPAddress | int | Jump


@dataclass(frozen=True)
class Element:
    key: tuple[Value, ...]
    value: tuple[Value, ...] = ()  # empty for plain sets
    origin: m.Origin | None = None


@dataclass(frozen=True)
class NamedSet:
    name: str
    key: tuple[Field, ...]
    elements: tuple[Element, ...]
    value_types: tuple[str, ...] = ()  # a map when not empty
    interval: bool = False
    about: str = ""
    #: Write element comments (the big data maps leave them out: they double nft's work;
    #: the verdict map with the same keys names the config lines).
    comments: bool = True

    @property
    def is_map(self) -> bool:
        return bool(self.value_types)


# ---- matches -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Lookup:
    """``KEY @set`` (``!=`` when negated): the concatenated fields are in the set."""

    key: tuple[Field, ...]
    set_name: str
    negate: bool = False


@dataclass(frozen=True)
class FibLocal:
    """``fib daddr type local``; ``on_iif``: ``fib daddr . iif type local`` (on the ingress
    interface itself)."""

    negate: bool = False
    on_iif: bool = False


@dataclass(frozen=True)
class CtStateNew:
    """``ct state new``."""


@dataclass(frozen=True)
class CtDnat:
    """``ct status dnat`` (the bit; ``ct status ! dnat`` when negated)."""

    negate: bool = False


@dataclass(frozen=True)
class FamilyIs:
    """``meta nfproto ipv4|ipv6``."""

    family: m.Family


@dataclass(frozen=True)
class ProtoIn:
    """``meta l4proto { tcp, udp }``: gives ``ct original proto-dst`` its protocol context."""

    protos: tuple[m.Proto, ...] = (m.Proto.TCP, m.Proto.UDP)


@dataclass(frozen=True)
class NotLoopback:
    """``ip daddr != 127.0.0.0/8`` / ``ip6 daddr != ::1``."""

    family: m.Family


Match = Lookup | FibLocal | CtStateNew | CtDnat | FamilyIs | ProtoIn | NotLoopback

# ---- actions -------------------------------------------------------------------------------


class Verdict(Enum):
    ACCEPT = "accept"
    DROP = "drop"


@dataclass(frozen=True)
class Notrack:
    """``notrack``: the packet gets no conntrack entry (and so no NAT)."""


@dataclass(frozen=True)
class Dnat:
    """``dnat ip to KEY map @map``; the map value is an address, or address . port."""

    family: m.Family
    key: tuple[Field, ...]
    map_name: str


@dataclass(frozen=True)
class Snat:
    family: m.Family
    key: tuple[Field, ...]
    map_name: str


@dataclass(frozen=True)
class Masquerade:
    """``masquerade``: source becomes the output interface's address."""


@dataclass(frozen=True)
class Vmap:
    """``KEY vmap @map``: jump to the chain the map names for the key (nothing on a miss)."""

    key: tuple[Field, ...]
    map_name: str


Action = Verdict | Notrack | Dnat | Snat | Masquerade | Vmap


@dataclass(frozen=True)
class Rule:
    matches: tuple[Match, ...]
    action: Action
    comment: str
    #: What explain says when this rule decides (a drop reason, or what the NAT does).
    reason: str = ""


@dataclass(frozen=True)
class Chain:
    """A base chain (hook set), or a regular chain reached by a verdict map (hook None)."""

    name: str
    type: ChainType
    hook: Hook | None
    priority: int
    rules: tuple[Rule, ...]
    policy: Verdict = Verdict.ACCEPT

    @property
    def priority_text(self) -> str:
        for name, value in PRIORITY_NAMES.items():
            hook_only = {"dstnat": Hook.PREROUTING, "srcnat": Hook.POSTROUTING}.get(name)
            if value == self.priority and hook_only in (None, self.hook):
                return name
        return str(self.priority)


@dataclass(frozen=True)
class Sysctl:
    key: str
    value: str
    reason: str


@dataclass(frozen=True)
class ProxyNeighbour:
    """``ip neigh add proxy ADDRESS dev IFACE``; the route makes the kernel answer (it answers
    only for addresses routed out of another interface than the one the request came in on)."""

    address: m.IPAddress
    iface: str
    route_towards: m.IPAddress  # the public /32 is routed towards this private address
    origin: m.Origin


@dataclass(frozen=True)
class Needs:
    """What the apply step must set besides the table."""

    sysctls: tuple[Sysctl, ...] = ()
    proxy_neighbours: tuple[ProxyNeighbour, ...] = ()


@dataclass(frozen=True)
class Table:
    sets: tuple[NamedSet, ...]
    chains: tuple[Chain, ...]
    needs: Needs = field(default_factory=Needs)
    source: str = "hostnet.toml"

    def chain(self, name: str) -> Chain:
        for c in self.chains:
            if c.name == name:
                return c
        raise KeyError(name)

    def set(self, name: str) -> NamedSet:
        for s in self.sets:
            if s.name == name:
                return s
        raise KeyError(name)
