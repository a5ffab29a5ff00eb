"""Checks of a ``[nat]`` configuration beyond single fields (pure).

:func:`validate` needs only the configuration; :func:`check_connected` also needs the
addresses of the router's interfaces (read from the live host or a namespace) and runs when
that state is read.
"""

from __future__ import annotations

import heapq
import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from hostnet.model import nat as m

IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface


@dataclass(frozen=True)
class Problem:
    severity: str  # "error" or "warning"
    origin: m.Origin
    message: str

    def render(self, path: str | None = None) -> str:
        where = f"{path or self.origin.file}:{self.origin.line}"
        return f"{where}: {self.origin.path}: {self.message}"


def _fam(family: m.Family) -> str:
    return "IPv4" if family is m.Family.V4 else "IPv6"


def _overlapping(forwards: tuple[m.Forward, ...]) -> dict[int, list[int]]:
    """index -> the earlier forwards (same protocol and family) whose ports overlap its own:
    a sweep over the port ranges, so 10,000 forwards cost a sort, not 50 million pairs."""
    groups: dict[tuple[m.Proto, m.Family], list[int]] = {}
    for i, f in enumerate(forwards):
        groups.setdefault((f.proto, f.family), []).append(i)
    out: dict[int, list[int]] = {}
    for members in groups.values():
        active: list[tuple[int, int]] = []  # (last port, index), a heap
        for i in sorted(members, key=lambda k: (forwards[k].ports.first, k)):
            first = forwards[i].ports.first
            while active and active[0][0] < first:
                heapq.heappop(active)
            for _, j in active:
                lo, hi = min(i, j), max(i, j)
                out.setdefault(hi, []).append(lo)
            heapq.heappush(active, (forwards[i].ports.last, i))
    return {i: sorted(js) for i, js in out.items()}


def _forward_checks(cfg: m.NatConfig) -> list[Problem]:
    out: list[Problem] = []
    earlier = _overlapping(cfg.forward)
    for i, f in enumerate(cfg.forward):
        o = f.origin
        if f.allow is not None and not f.allow:
            out.append(Problem("error", m.Origin(o.file, o.line, o.path + ".allow"),
                               "empty allowlist lets nobody in: list sources, or remove "
                               "'allow' to let anyone in"))
        elif f.allow is not None:
            other = [n for n in f.allow if n.version != f.to_addr.version]
            if len(other) == len(f.allow):
                out.append(Problem("error", m.Origin(o.file, o.line, o.path + ".allow"),
                                   f"can never match: 'to' is {_fam(f.family)} but no source "
                                   f"in 'allow' is; an {_fam(f.family)} forward needs "
                                   f"{_fam(f.family)} sources"))
            elif other:
                out.append(Problem("warning", o, "ignored in 'allow' (other address family "
                                   f"than 'to'): {', '.join(map(str, other))}"))
        if f.to_addr.is_unspecified or f.to_addr.is_multicast:
            out.append(Problem("error", m.Origin(o.file, o.line, o.path + ".to"),
                               f"can never match: {f.to_addr} is not a unicast host address"))
        if f.hairpin:
            lans = cfg.lan_networks(f.family)
            if not lans:
                out.append(Problem("warning", o, "hairpin needs a LAN: no nat.masquerade "
                                   f"source of {_fam(f.family)} names one"))
            elif not any(src.overlaps(lan) for src in f.sources for lan in lans):
                out.append(Problem("warning", o, "hairpin can never match: no LAN network "
                                   "is in the allowlist (the allowlist applies to "
                                   "hairpinned traffic too)"))
        for j in earlier.get(i, ()):
            g = cfg.forward[j]
            if g.in_iface == f.in_iface:
                out.append(Problem("error", m.Origin(o.file, o.line, o.path + ".port"),
                                   f"overlaps nat.forward[{j}] ({g.in_iface} {g.proto.value} "
                                   f"{g.ports}): a packet can be forwarded only once; give "
                                   "each forward its own ports"))
            elif (f.hairpin or g.hairpin) and (f.to_addr, f.to_port) != (g.to_addr, g.to_port):
                out.append(Problem("error", o, f"hairpin is ambiguous: nat.forward[{j}] uses "
                                   f"{g.proto.value} {g.ports} on {g.in_iface} with another "
                                   "target; a LAN host cannot say which one it means"))
    return out


def _notrack_checks(cfg: m.NatConfig) -> list[Problem]:
    out: list[Problem] = []
    for n in cfg.notrack:
        for i, f in enumerate(cfg.forward):
            if f.proto is not n.proto:
                continue
            if f.ports.overlaps(n.ports):
                out.append(Problem("error", n.origin, f"untracks {n.proto.value} {n.ports}, "
                                   f"which nat.forward[{i}] translates: untracked packets are "
                                   "never NATed; pick other ports"))
            targets = f.ports if f.to_port is None else m.PortRange(f.to_port, f.to_port)
            if f.to_addr.is_loopback and n.ports.overlaps(targets):
                out.append(Problem("error", n.origin, f"untracks the replies of "
                                   f"nat.forward[{i}] (to {f.to_addr}): untracked replies are "
                                   "never translated back"))
    return out


def _one_to_one_checks(cfg: m.NatConfig) -> list[Problem]:
    out: list[Problem] = []
    seen_pub: dict[m.IPAddress, int] = {}
    seen_priv: dict[m.IPAddress, int] = {}
    for i, o in enumerate(cfg.one_to_one):
        if o.public.version != o.private.version:
            out.append(Problem("error", o.origin, "public and private must be of one address "
                               "family"))
        if o.public in seen_pub:
            out.append(Problem("error", o.origin, f"public {o.public} is already used by "
                               f"nat.one_to_one[{seen_pub[o.public]}]"))
        if o.private in seen_priv:
            out.append(Problem("error", o.origin, f"private {o.private} is already used by "
                               f"nat.one_to_one[{seen_priv[o.private]}]"))
        seen_pub.setdefault(o.public, i)
        seen_priv.setdefault(o.private, i)
        if cfg.one_to_one_out(o) is None:
            out.append(Problem("error", o.origin, "which interface faces the outside? set "
                               "out = \"IFACE\" (needed when there is not exactly one "
                               "nat.masquerade out)"))
    return out


def validate(cfg: m.NatConfig) -> list[Problem]:
    """Every problem the configuration shows without looking at the host."""
    out = _forward_checks(cfg) + _notrack_checks(cfg) + _one_to_one_checks(cfg)
    for msq in cfg.masquerade:
        fams = {n.version for n in msq.sources}
        if msq.snat_to is not None and fams != {msq.snat_to.version}:
            out.append(Problem("error", msq.origin, "snat_to and every source must be of one "
                               "address family"))
        if 6 in fams and msq.snat_to is None:
            out.append(Problem("warning", msq.origin, "masquerades IPv6 sources: IPv6 usually "
                               "routes the LAN prefix instead (this is done only because "
                               "you listed an IPv6 source)"))
    return out


def check_connected(cfg: m.NatConfig, ifaces: Mapping[str, Sequence[IPInterface]]) -> list[Problem]:
    """Forwards and 1:1 entries whose private address is on no connected network, and
    interfaces the configuration names that do not exist. ``ifaces``: name -> addresses."""
    out: list[Problem] = []
    nets = [a.network for addrs in ifaces.values() for a in addrs]
    local = {a.ip for addrs in ifaces.values() for a in addrs}

    def reachable(addr: m.IPAddress) -> bool:
        return addr.is_loopback or addr in local or any(
            addr.version == n.version and addr in n for n in nets)

    for f in cfg.forward:
        if not reachable(f.to_addr):
            out.append(Problem("error", f.origin, f"{f.to_addr} is on no connected network "
                               f"(networks: {', '.join(sorted(map(str, set(nets)))) or 'none'});"
                               " the forward could never be delivered"))
        if f.in_iface not in ifaces:
            out.append(Problem("warning", f.origin, f"interface {f.in_iface} does not exist "
                               "(yet): nothing arrives on it"))
    for o in cfg.one_to_one:
        if not reachable(o.private):
            out.append(Problem("error", o.origin, f"{o.private} is on no connected network"))
    for msq in cfg.masquerade:
        if msq.out not in ifaces:
            out.append(Problem("warning", msq.origin, f"interface {msq.out} does not exist "
                               "(yet)"))
    return out
