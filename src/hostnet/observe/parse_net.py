"""Interfaces, addresses, routes and sockets from ``ip -j`` and /proc/net text (pure)."""

from __future__ import annotations

import ipaddress
import json
from typing import Any

from hostnet.model.net import Address, Family, Interface, IPAddress, Listener, Route

RTF_REJECT = 0x0200
RTF_DEFAULT = 0x10000
RTF_ADDRCONF = 0x40000


def _hex_loopback(addr: str) -> bool:
    if len(addr) == 8:  # IPv4, little-endian words: 0100007F is 127.0.0.1
        return addr[6:8] == "7F"
    return addr.upper() in ("00000000000000000000000001000000",
                            "0000000000000000FFFF00000100007F")


def parse_proc_net_sockets(text: str, proto: str) -> list[Listener]:
    """Listening TCP sockets (state 0A) or bound, unconnected UDP sockets (state 07)."""
    out: list[Listener] = []
    for line in text.splitlines()[1:]:
        parts = line.split()
        if len(parts) < 4 or ":" not in parts[1]:
            continue
        local, remote, state = parts[1], parts[2], parts[3]
        addr, _, port_hex = local.rpartition(":")
        try:
            port = int(port_hex, 16)
        except ValueError:
            continue
        if proto == "tcp" and state != "0A":
            continue
        if proto == "udp" and (state != "07" or remote.rpartition(":")[2] != "0000"):
            continue
        if port:
            out.append(Listener(proto, port, addr, _hex_loopback(addr)))
    return out


def _kind(link: dict[str, Any]) -> str:
    info = link.get("linkinfo") or {}
    kind = info.get("info_kind")
    if kind == "tun":
        kind = str((info.get("info_data") or {}).get("type") or "tun")
    if not kind:
        kind = "loopback" if link.get("link_type") == "loopback" else "ether"
    return str(kind)


def _address(entry: dict[str, Any]) -> Address | None:
    try:
        addr = ipaddress.ip_address(str(entry.get("local")))
        return Address(addr, int(entry.get("prefixlen", 128 if addr.version == 6 else 32)),
                       str(entry.get("scope", "global")))
    except (ValueError, TypeError):
        return None


def parse_ip_addr_json(text: str) -> list[Interface]:
    """``ip -j -d addr show`` (or ``ip -j -d link show``, without addresses).

    ValueError when the text is not the JSON list ``ip`` prints.
    """
    doc = json.loads(text)
    if not isinstance(doc, list):
        raise ValueError("not a list of links")
    out: list[Interface] = []
    for link in doc:
        name = link.get("ifname") if isinstance(link, dict) else None
        if not name:
            continue
        addrs = tuple(a for a in (_address(e) for e in link.get("addr_info") or []
                                  if isinstance(e, dict)) if a is not None)
        flags = link.get("flags") or []
        info = link.get("linkinfo") if isinstance(link.get("linkinfo"), dict) else {}
        port = info.get("info_slave_kind") if info else None
        out.append(Interface(
            name=str(name), kind=_kind(link), master=link.get("master"),
            state=str(link.get("operstate", "unknown")).lower(),
            admin_up="UP" in flags, addresses=addrs,
            addresses_known="addr_info" in link,
            port_kind=str(port) if port else None))
    return out


def _network(text: str, family: Family) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    if text == "default":
        return ipaddress.ip_network("0.0.0.0/0" if family is Family.IPV4 else "::/0")
    return ipaddress.ip_network(text, strict=False)


def _route_family(r: dict[str, Any]) -> Family:
    gateways = [r.get("gateway"), *(h.get("gateway") for h in r.get("nexthops") or []
                                    if isinstance(h, dict))]
    if "pref" in r or ":" in str(r.get("dst")) or any(":" in str(g) for g in gateways if g):
        return Family.IPV6
    return Family.IPV4


def parse_ip_route_json(text: str, family: Family = Family.IPV4) -> list[Route]:
    """``ip -j route show table all``. ValueError when it is not JSON.

    Without ``-4`` that listing also holds the IPv6 routes (every table): they carry a
    ``pref`` key, an IPv6 destination or an IPv6 gateway, and only the routes of ``family``
    are kept (``default`` alone does not tell the family).
    """
    doc = json.loads(text)
    if not isinstance(doc, list):
        raise ValueError("not a list of routes")
    out: list[Route] = []
    for r in doc:
        if not isinstance(r, dict) or "dst" not in r:
            continue
        if _route_family(r) is not family:
            continue
        # a multipath route lists its next hops (``nexthops``): one Route per hop, so each
        # device that carries the destination is seen
        hops = [h for h in r.get("nexthops") or [] if isinstance(h, dict)] or [r]
        for hop in hops:
            try:
                dst = _network(str(r["dst"]), family)
                gw: IPAddress | None = (ipaddress.ip_address(str(hop["gateway"]))
                                        if hop.get("gateway") else None)
                metric = int(r.get("metric", 0))
            except (ValueError, TypeError):
                continue
            dev = hop.get("dev")
            out.append(Route(family=family, destination=dst,
                             device=str(dev) if dev else None, gateway=gw,
                             table=str(r.get("table", "main")),
                             protocol=str(r.get("protocol", "boot")),
                             type=str(r.get("type", "unicast")), metric=metric))
    return out


def parse_proc_route(text: str) -> list[Route]:
    """/proc/net/route (IPv4 main table; hex little-endian addresses)."""
    out: list[Route] = []
    for line in text.splitlines()[1:]:
        p = line.split()
        if len(p) < 8:
            continue
        try:
            dst = ipaddress.IPv4Address(bytes.fromhex(p[1])[::-1])
            gw = ipaddress.IPv4Address(bytes.fromhex(p[2])[::-1])
            mask = ipaddress.IPv4Address(bytes.fromhex(p[7])[::-1])
            flags = int(p[3], 16)
        except ValueError:
            continue
        net = ipaddress.IPv4Network(f"{dst}/{mask}", strict=False)
        out.append(Route(Family.IPV4, net, p[0], gw if int(gw) else None,
                         type="unreachable" if flags & RTF_REJECT else "unicast",
                         metric=int(p[6]) if p[6].isdigit() else 0))
    return out


def parse_ipv6_route(text: str) -> list[Route]:
    """/proc/net/ipv6_route (every table)."""
    out: list[Route] = []
    for line in text.splitlines():
        p = line.split()
        if len(p) < 10:
            continue
        try:
            dst = ipaddress.IPv6Network((int(p[0], 16), int(p[1], 16)))
            gw_int = int(p[4], 16)
            flags = int(p[8], 16)
        except ValueError:
            continue
        out.append(Route(Family.IPV6, dst, p[9],
                         ipaddress.IPv6Address(gw_int) if gw_int else None,
                         protocol="ra" if flags & (RTF_DEFAULT | RTF_ADDRCONF) else "boot",
                         type="unreachable" if flags & RTF_REJECT else "unicast",
                         metric=int(p[5], 16)))
    return out


def parse_snmp_forwarded(text: str) -> int | None:
    """``Ip: ForwDatagrams`` from /proc/net/snmp (a header line, then a value line)."""
    lines = [ln.split() for ln in text.splitlines() if ln.startswith("Ip:")]
    if len(lines) < 2:
        return None
    header, values = lines[0], lines[1]
    try:
        return int(values[header.index("ForwDatagrams")])
    except (ValueError, IndexError):
        return None
