"""How conf/all and conf/IFACE combine into the value an IPv4 interface actually uses (pure).

The kernel keeps one value per interface plus one in ``conf/all``; for most keys the packet
path asks a macro in include/linux/inetdevice.h that combines the two (max, or, and, or
and-if-forwarding for accept_redirects). Which key combines how is data: the ``combine``
field of the catalogue (knowledge/sysctl.toml) is the one authority; a key without it counts
the interface's own value.

``conf/default`` is not consulted by the packet path: it is the value a new interface starts
with, and writing it also rewrites existing interfaces that were never set on their own
(devinet_copy_dflt_conf). IPv6 has no such combination: each interface's own value counts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from hostnet.knowledge.catalogue import Catalogue
from hostnet.knowledge.catalogue import load as load_catalogue
from hostnet.model.host import NetnsState

#: Pseudo-interfaces under /proc/sys/net/ipv{4,6}/conf that are not devices.
NOT_DEVICES = frozenset({"all", "default"})


def rule_for(leaf: str, catalogue: Catalogue | None = None) -> str:
    """The combination rule of an IPv4 conf key from the catalogue (``iface`` when the
    interface value alone counts)."""
    spec = (catalogue or load_catalogue()).get(f"net.ipv4.conf.all.{leaf}")
    return (spec.combine if spec is not None else None) or "iface"


def combine(rule: str, all_value: int, iface_value: int, iface_forwarding: int = 0) -> int:
    """The value the kernel uses on one interface, for a key combined by ``rule``."""
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


def rule_text(rule: str, forwarding: int = 0) -> str:
    """Human words for the combination, for messages and evidence."""
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
    combine: str = "iface"

    @property
    def rule(self) -> str:
        return rule_text(self.combine, self.forwarding) if self.family == "ipv4" else (
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


def conf_table(ns: NetnsState, family: str, leaves: Sequence[str],
               catalogue: Catalogue | None = None, *, l3_only: bool = False) -> ConfTable:
    """The conf values of ``family`` for all, default and every interface, as observed.

    ``l3_only`` leaves out the interfaces that never handle IPv4 packets of their own
    (:meth:`hostnet.model.net.Network.is_l3`: bridge and bond ports, IFBs, down devices
    without addresses); interfaces the link list does not show are kept.
    """
    names = ns.conf_interfaces.get(family, ())
    if l3_only:
        names = tuple(n for n in names if ns.network.is_l3(n))
    return read_table(family, names, leaves, ns.integer, catalogue)


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
    #: leaf -> combination rule (from the catalogue; IPv6 keys do not combine)
    rules: dict[str, str] = field(default_factory=dict)

    @property
    def interfaces(self) -> list[str]:
        return sorted(i for i in self.values if i not in NOT_DEVICES)

    def get(self, iface: str, leaf: str) -> int | None:
        return self.values.get(iface, {}).get(leaf)

    def effective(self, iface: str, leaf: str) -> Effective:
        all_v = self.get("all", leaf)
        own = self.get(iface, leaf)
        fwd = self.get(iface, "forwarding") or 0
        rule = self.rules.get(leaf, "iface")
        value: int | None
        if self.family == "ipv6":
            value = own
        elif own is None or all_v is None:
            value = own if all_v is None else (all_v if rule != "iface" else None)
        else:
            value = combine(rule, all_v, own, fwd)
        return Effective(self.family, iface, leaf, all_v, self.get("default", leaf), own, fwd,
                         value, rule)

    def each(self, leaf: str, *, skip_loopback: bool = True) -> list[Effective]:
        return [self.effective(i, leaf) for i in self.interfaces
                if not (skip_loopback and i == "lo")]


def read_table(family: str, interfaces: Sequence[str], leaves: Sequence[str],
               read: Callable[[str], int | None],
               catalogue: Catalogue | None = None) -> ConfTable:
    """Build a ConfTable with ``read(key) -> int | None`` (the I/O stays with the caller)."""
    table = ConfTable(family)
    for iface in ["all", "default", *interfaces]:
        table.values[iface] = {leaf: read(conf_key(family, iface, leaf)) for leaf in leaves}
    if family == "ipv4":
        table.rules = {leaf: rule_for(leaf, catalogue) for leaf in leaves}
    return table


def table_from_mapping(family: str, data: Mapping[str, Mapping[str, int | None]],
                       catalogue: Catalogue | None = None) -> ConfTable:
    leaves = sorted({leaf for v in data.values() for leaf in v})
    rules = {leaf: rule_for(leaf, catalogue) for leaf in leaves} if family == "ipv4" else {}
    return ConfTable(family, {k: dict(v) for k, v in data.items()}, rules)
