"""What explain needs to know about the router besides the table: interface addresses,
default routes, rp_filter and route_localnet (pure; state/nat_table.py reads them).

Route lookups use the connected networks and the default routes only; that is what a NAT
router without policy routing has, and explain says it assumed so.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from hostnet.config.nat_validate import IPInterface
from hostnet.errors import InputError
from hostnet.model import nat as m


@dataclass(frozen=True)
class Router:
    ifaces: Mapping[str, tuple[IPInterface, ...]]
    #: (IP version, interface) of each default route, in the kernel's order.
    defaults: tuple[tuple[int, str], ...] = ()
    rp_filter: Mapping[str, int] = field(default_factory=dict)
    route_localnet: Mapping[str, bool] = field(default_factory=dict)

    def local(self, addr: m.IPAddress) -> bool:
        if addr.is_loopback:
            return True
        return any(a.ip == addr for addrs in self.ifaces.values() for a in addrs)

    def on_iface(self, addr: m.IPAddress) -> str | None:
        """The interface that holds ``addr`` as its own address."""
        for name, addrs in self.ifaces.items():
            if any(a.ip == addr for a in addrs):
                return name
        return "lo" if addr.is_loopback else None

    def route(self, addr: m.IPAddress) -> str | None:
        """Output interface for ``addr``: longest connected prefix, else the default route."""
        best: tuple[int, str] | None = None
        for name, addrs in self.ifaces.items():
            for a in addrs:
                if a.version == addr.version and addr in a.network and a.network.prefixlen < \
                        a.max_prefixlen and (best is None or a.network.prefixlen > best[0]):
                    best = (a.network.prefixlen, name)
        if best is not None:
            return best[1]
        for version, name in self.defaults:
            if version == addr.version:
                return name
        return None

    def rp(self, iface: str) -> int:
        """Effective rp_filter of ``iface``: the larger of conf/all and conf/IFACE."""
        return max(self.rp_filter.get("all", 0), self.rp_filter.get(iface, 0))

    def address_on(self, iface: str, version: int) -> m.IPAddress | None:
        for a in self.ifaces.get(iface, ()):
            if a.version == version and not a.ip.is_link_local:
                return a.ip
        return None

    def iface_for_source(self, addr: m.IPAddress) -> str | None:
        """The interface a packet from ``addr`` most likely arrives on (route back to it)."""
        return self.route(addr)


def parse_spec(specs: list[str], default: str | None) -> Router:
    """``["wan0=203.0.113.1/24", "lan0=198.51.100.1/24"]`` (the ``--addr`` options)."""
    ifaces: dict[str, list[IPInterface]] = {}
    for spec in specs:
        name, _, cidr = spec.partition("=")
        try:
            iface = ipaddress.ip_interface(cidr.strip())
        except ValueError:
            raise InputError(f"--addr {spec!r}: expected IFACE=ADDRESS/PREFIX, e.g. "
                             "wan0=203.0.113.1/24") from None
        if not name.strip():
            raise InputError(f"--addr {spec!r}: expected IFACE=ADDRESS/PREFIX")
        ifaces.setdefault(name.strip(), []).append(iface)
    defaults: list[tuple[int, str]] = []
    if default:
        defaults = [(4, default), (6, default)]
    return Router({k: tuple(v) for k, v in ifaces.items()}, tuple(defaults))


def parse_addresses(text: str) -> dict[str, tuple[IPInterface, ...]]:
    """``ip -j addr show`` -> interface name -> addresses."""
    try:
        doc = json.loads(text or "[]")
    except json.JSONDecodeError as exc:
        raise InputError(f"ip -j addr: not JSON: {exc}") from None
    out: dict[str, tuple[IPInterface, ...]] = {}
    for link in doc:
        addrs: list[IPInterface] = []
        for info in link.get("addr_info", []):
            if info.get("family") in ("inet", "inet6") and "local" in info:
                addrs.append(ipaddress.ip_interface(f"{info['local']}/{info['prefixlen']}"))
        out[str(link.get("ifname"))] = tuple(addrs)
    return out


def parse_default_routes(v4: str, v6: str) -> tuple[tuple[int, str], ...]:
    out: list[tuple[int, str]] = []
    for version, text in ((4, v4), (6, v6)):
        try:
            doc = json.loads(text or "[]")
        except json.JSONDecodeError:
            continue
        out += [(version, str(r["dev"])) for r in doc if r.get("dev")]
    return tuple(out)


def assume(cfg: m.NatConfig, dst: m.IPAddress) -> tuple[Router, str]:
    """A router for explain from the config alone: the first outside interface holds ``dst``
    when that is no LAN or 1:1 address (the public address the packet is sent to), an
    interface ``lan`` holds the first address of each LAN network, and the default routes
    leave through the outside interface. Returns the router and a sentence saying so."""
    outs = cfg.outside_ifaces()
    out = outs[0] if outs else "wan0"
    nets = [*cfg.lan_networks(m.Family.V4), *cfg.lan_networks(m.Family.V6)]
    v4 = [n for n in nets if isinstance(n, ipaddress.IPv4Network)]
    v6 = [n for n in nets if isinstance(n, ipaddress.IPv6Network)]
    merged: list[m.IPNetwork] = [*ipaddress.collapse_addresses(v4),
                                 *ipaddress.collapse_addresses(v6)]
    lans = [n for n in merged if n.prefixlen < n.max_prefixlen]
    publics = {o.public for o in cfg.one_to_one}
    public = not dst.is_loopback and dst not in publics and not any(
        dst.version == n.version and dst in n for n in nets)
    ifaces: dict[str, tuple[IPInterface, ...]] = {
        out: (ipaddress.ip_interface(f"{dst}/{dst.max_prefixlen}"),) if public else ()}
    lan = tuple(ipaddress.ip_interface(f"{n[1]}/{n.prefixlen}") for n in lans)
    if lan:
        ifaces["lan"] = lan
    said = (f"assumed router: {out} holds {dst if public else 'no known address'}, "
            f"lan holds {', '.join(map(str, lan)) or 'nothing'}, default routes via {out} "
            "(use --addr or --live for the real ones)")
    return Router(ifaces, ((4, out), (6, out))), said
