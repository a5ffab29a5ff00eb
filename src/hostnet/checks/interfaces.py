"""How conf/all and conf/IFACE combine into the value an IPv4 interface actually uses (pure).

The kernel keeps one value per interface plus one in ``conf/all``; for most keys the packet
path asks a macro in include/linux/inetdevice.h that combines the two:

* ``max``  rp_filter, arp_ignore, arp_announce, arp_notify (IN_DEV_MAXCONF)
* ``or``   log_martians, proxy_arp, send_redirects, secure_redirects, accept_local,
           shared_media, arp_filter, arp_accept, route_localnet, promote_secondaries
* ``and``  accept_source_route, bootp_relay, mc_forwarding (IN_DEV_ANDCONF)
* ``and-if-forwarding``  accept_redirects: AND when the interface itself forwards, OR when it
           does not (IN_DEV_RX_REDIRECTS)
* ``iface`` forwarding and the rest: the interface's own value

``conf/default`` is not consulted by the packet path: it is the value a new interface starts
with, and writing it also rewrites existing interfaces that were never set on their own
(devinet_copy_dflt_conf). IPv6 has no such combination: each interface's own value counts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

COMBINE: dict[str, str] = {
    "rp_filter": "max",
    "arp_ignore": "max",
    "arp_announce": "max",
    "arp_notify": "max",
    "log_martians": "or",
    "proxy_arp": "or",
    "send_redirects": "or",
    "secure_redirects": "or",
    "accept_local": "or",
    "shared_media": "or",
    "arp_filter": "or",
    "arp_accept": "or",
    "route_localnet": "or",
    "promote_secondaries": "or",
    "accept_source_route": "and",
    "bootp_relay": "and",
    "mc_forwarding": "and",
    "accept_redirects": "and-if-forwarding",
}

#: Pseudo-interfaces under /proc/sys/net/ipv{4,6}/conf that are not devices.
NOT_DEVICES = frozenset({"all", "default"})


def rule_for(leaf: str) -> str:
    """The combination rule of a conf key (``iface`` when the interface value alone counts)."""
    return COMBINE.get(leaf, "iface")


def combine(leaf: str, all_value: int, iface_value: int, iface_forwarding: int = 0) -> int:
    """The value the kernel uses for ``leaf`` on one interface."""
    rule = rule_for(leaf)
    if rule == "max":
        return max(all_value, iface_value)
    if rule == "or":
        return int(bool(all_value) or bool(iface_value))
    if rule == "and":
        return int(bool(all_value) and bool(iface_value))
    if rule == "and-if-forwarding":
        if iface_forwarding:
            return int(bool(all_value) and bool(iface_value))
        return int(bool(all_value) or bool(iface_value))
    return iface_value


def rule_text(leaf: str, forwarding: int = 0) -> str:
    """Human words for the combination, for messages and evidence."""
    rule = rule_for(leaf)
    if rule == "and-if-forwarding":
        return ("all AND interface (the interface forwards)" if forwarding
                else "all OR interface (the interface does not forward)")
    return {"max": "max(all, interface)", "or": "all OR interface",
            "and": "all AND interface", "iface": "the interface's own value"}[rule]


@dataclass(frozen=True, slots=True)
class Effective:
    """One key on one interface: what was read and what the kernel makes of it."""

    family: str  # "ipv4" or "ipv6"
    iface: str
    leaf: str
    all: int | None
    default: int | None
    own: int | None
    forwarding: int
    value: int | None

    @property
    def rule(self) -> str:
        return rule_text(self.leaf, self.forwarding) if self.family == "ipv4" else (
            "the interface's own value (IPv6 does not combine with all)")

    def evidence(self) -> dict[str, object]:
        out: dict[str, object] = {
            "interface": self.iface,
            f"net.{self.family}.conf.all.{self.leaf}": self.all,
            f"net.{self.family}.conf.{conf_name(self.iface)}.{self.leaf}": self.own,
            f"net.{self.family}.conf.default.{self.leaf}": self.default,
            "effective": self.value,
            "combined_as": self.rule,
        }
        if self.leaf == "accept_redirects":
            out["interface_forwarding"] = self.forwarding
        return out


def conf_name(iface: str) -> str:
    """Interface name as it appears in a dotted sysctl key (``eth0.100`` -> ``eth0/100``)."""
    return iface.replace(".", "/")


def conf_key(family: str, iface: str, leaf: str) -> str:
    return f"net.{family}.conf.{conf_name(iface)}.{leaf}"


@dataclass
class ConfTable:
    """conf values of one family as read: ``values[iface][leaf]`` (iface includes all/default)."""

    family: str
    values: dict[str, dict[str, int | None]] = field(default_factory=dict)

    @property
    def interfaces(self) -> list[str]:
        return sorted(i for i in self.values if i not in NOT_DEVICES)

    def get(self, iface: str, leaf: str) -> int | None:
        return self.values.get(iface, {}).get(leaf)

    def effective(self, iface: str, leaf: str) -> Effective:
        all_v = self.get("all", leaf)
        own = self.get(iface, leaf)
        fwd = self.get(iface, "forwarding") or 0
        value: int | None
        if self.family == "ipv6":
            value = own
        elif own is None or all_v is None:
            value = own if all_v is None else (all_v if rule_for(leaf) != "iface" else None)
        else:
            value = combine(leaf, all_v, own, fwd)
        return Effective(self.family, iface, leaf, all_v, self.get("default", leaf), own, fwd,
                         value)

    def each(self, leaf: str, *, skip_loopback: bool = True) -> list[Effective]:
        return [self.effective(i, leaf) for i in self.interfaces
                if not (skip_loopback and i == "lo")]


def read_table(family: str, interfaces: list[str], leaves: list[str],
               read: Callable[[str], int | None]) -> ConfTable:
    """Build a ConfTable with ``read(key) -> int | None`` (the I/O stays with the caller)."""
    table = ConfTable(family)
    for iface in ["all", "default", *interfaces]:
        table.values[iface] = {leaf: read(conf_key(family, iface, leaf)) for leaf in leaves}
    return table


def table_from_mapping(family: str, data: Mapping[str, Mapping[str, int | None]]) -> ConfTable:
    return ConfTable(family, {k: dict(v) for k, v in data.items()})
