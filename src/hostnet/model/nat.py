"""The typed ``[nat]`` configuration the compiler and explain work on (pure, no I/O).

config/nat.py turns TOML into these records after checking it; tests build them directly.
Every record carries the :class:`Origin` (file, line, dotted path) it came from, so rules,
set elements and explain steps can name the configuration line behind them.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from enum import Enum

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class Backend(Enum):
    NFTABLES = "nftables"
    IPTABLES = "iptables"


class Proto(Enum):
    TCP = "tcp"
    UDP = "udp"

    @property
    def number(self) -> int:
        return 6 if self is Proto.TCP else 17


class ArpMode(Enum):
    PROXY = "proxy"  # a proxy neighbour entry for the public address on the outside interface
    NONE = "none"  # the upstream routes the public address to the host; nothing to answer


class Family(Enum):
    V4 = 4
    V6 = 6


@dataclass(frozen=True, order=True)
class PortRange:
    first: int
    last: int

    def __str__(self) -> str:
        return str(self.first) if self.first == self.last else f"{self.first}-{self.last}"

    def __contains__(self, port: object) -> bool:
        return isinstance(port, int) and self.first <= port <= self.last

    def overlaps(self, other: PortRange) -> bool:
        return self.first <= other.last and other.first <= self.last

    @property
    def size(self) -> int:
        return self.last - self.first + 1


@dataclass(frozen=True, order=True)
class Origin:
    """Where a record came from: ``file`` (base name), ``line`` (1-based, 0 unknown), ``path``."""

    file: str
    line: int
    path: str

    @property
    def label(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where} {self.path}"


def family_of(value: IPAddress | IPNetwork) -> Family:
    return Family.V4 if value.version == 4 else Family.V6


@dataclass(frozen=True)
class Masquerade:
    sources: tuple[IPNetwork, ...]
    out: str
    snat_to: IPAddress | None
    origin: Origin


@dataclass(frozen=True)
class Forward:
    in_iface: str
    proto: Proto
    ports: PortRange
    to_addr: IPAddress
    to_port: int | None  # None: keep the destination port
    allow: tuple[IPNetwork, ...] | None  # None: anyone
    hairpin: bool
    origin: Origin

    @property
    def family(self) -> Family:
        return family_of(self.to_addr)

    def target_port(self, port: int) -> int:
        """The port a packet to public ``port`` is translated to."""
        return port if self.to_port is None else self.to_port

    @property
    def sources(self) -> tuple[IPNetwork, ...]:
        """The allowlist of this forward's family (anyone when absent)."""
        if self.allow is None:
            if self.family is Family.V4:
                return (ipaddress.IPv4Network("0.0.0.0/0"),)
            return (ipaddress.IPv6Network("::/0"),)
        return tuple(n for n in self.allow if n.version == self.to_addr.version)

    def allows(self, source: IPAddress) -> bool:
        return any(source.version == n.version and source in n for n in self.sources)


@dataclass(frozen=True)
class OneToOne:
    public: IPAddress
    private: IPAddress
    arp: ArpMode
    out: str | None  # outside interface; None: the masquerade ``out`` when there is one
    origin: Origin

    @property
    def family(self) -> Family:
        return family_of(self.public)


@dataclass(frozen=True)
class Notrack:
    proto: Proto
    ports: PortRange
    origin: Origin


@dataclass(frozen=True)
class NatConfig:
    backend: Backend = Backend.NFTABLES
    masquerade: tuple[Masquerade, ...] = ()
    forward: tuple[Forward, ...] = ()
    one_to_one: tuple[OneToOne, ...] = ()
    notrack: tuple[Notrack, ...] = ()
    origin: Origin = field(default_factory=lambda: Origin("hostnet.toml", 0, "nat"))

    def lan_networks(self, family: Family) -> tuple[IPNetwork, ...]:
        """Networks behind the router: masquerade sources and 1:1 private addresses."""
        nets: list[IPNetwork] = [
            s for m in self.masquerade for s in m.sources if family_of(s) is family
        ]
        for o in self.one_to_one:
            if o.family is family:
                nets.append(ipaddress.ip_network(o.private))
        return tuple(nets)

    def outside_ifaces(self) -> tuple[str, ...]:
        """Interfaces that face the outside: forward ``in`` and masquerade ``out``, sorted."""
        names = {f.in_iface for f in self.forward} | {m.out for m in self.masquerade}
        names |= {o.out for o in self.one_to_one if o.out}
        return tuple(sorted(names))

    def one_to_one_out(self, entry: OneToOne) -> str | None:
        if entry.out is not None:
            return entry.out
        outs = sorted({m.out for m in self.masquerade})
        return outs[0] if len(outs) == 1 else None
