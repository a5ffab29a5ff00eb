"""The VM part of a namespace from ``ip -j`` text (pure): what hostnet.observe.links reads
over rtnetlink on the live host, parsed from the output a snapshot stores, into the same
:class:`hostnet.model.vm.LinkSnapshot`.

* links and addresses: ``ip -j -d addr show`` (every link, its flags, kind, master and, for
  tun/tap devices, ``info_data``: type, pi, vnet_hdr, multi_queue, numqueues, persist and the
  owner as ``user``/``group``);
* host routes: ``ip -j route show table all`` (both families; the main table's routes carry
  no ``table`` key, unicast ones no ``type``, and a /32 or /128 destination no prefix);
* proxy neighbour entries: ``ip -j neigh show proxy`` (both families).

``ip`` prints a tap's owner by name when getpwuid(3) knows the uid (iproute2
ip/iptuntap.c, ``print_owner``; ``-N`` does not change that), else by number: names are
resolved back with the snapshot's accounts. Per-link sysctls (proxy_arp, forwarding,
accept_ra, proxy_ndp), which netlink reports with the link, come from /proc/sys through the
``conf`` callable. ``ip`` shows ``numqueues`` for multi-queue taps only: a single-queue
tap's attached queue count is 0 here.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable, Mapping
from typing import Any

from hostnet.model.vm import (
    IPAddress,
    ObservedAddress,
    ObservedLink,
    ObservedRoute,
    ProxyEntry,
    TunInfo,
)

#: (family "ipv4"/"ipv6", interface, leaf) -> the /proc/sys/net/FAMILY/conf/IFACE/LEAF value.
ConfReader = Callable[[str, str, str], int | None]
MAIN_TABLES = (None, "main", 254, "254")


def _list(text: str, what: str) -> list[dict[str, Any]]:
    doc = json.loads(text) if text.strip() else []
    if not isinstance(doc, list):
        raise ValueError(f"{what}: not the JSON list 'ip -j' prints")
    return [entry for entry in doc if isinstance(entry, dict)]


def _owner(value: object, names: Mapping[str, int], what: str, link: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        if value.isdigit():
            return int(value)
        if value in names:
            return names[value]
    raise ValueError(f"tap {link}: {what} {value!r} is not in the snapshot's accounts "
                     "(getent passwd/group)")


def _tun(data: dict[str, Any], users: Mapping[str, int], groups: Mapping[str, int],
         link: str) -> TunInfo:
    return TunInfo(
        tap=data.get("type") == "tap",
        owner=_owner(data.get("user"), users, "owner", link),
        group=_owner(data.get("group"), groups, "group", link),
        pi=bool(data.get("pi")), vnet_hdr=bool(data.get("vnet_hdr")),
        multi_queue=bool(data.get("multi_queue")), persist=bool(data.get("persist")),
        queues=int(data.get("numqueues") or 0))


def _mac(text: object) -> str:
    """The link-layer address as netlink's bytes in hex (``ip`` prints tunnels' addresses
    as IP addresses)."""
    if not isinstance(text, str):
        return ""
    try:
        return ipaddress.ip_address(text).packed.hex(":")
    except ValueError:
        return text.lower()


def parse_links(text: str, conf: ConfReader, users: Mapping[str, int],
                groups: Mapping[str, int]) -> tuple[dict[str, ObservedLink],
                                                    tuple[ObservedAddress, ...]]:
    """Links by name and addresses (IPv4 first, then IPv6, as the netlink dump gives them)
    from ``ip -j -d addr show``. ValueError when the text is not what ``ip`` prints or a
    tap's owner cannot be resolved."""
    links: dict[str, ObservedLink] = {}
    v4: list[ObservedAddress] = []
    v6: list[ObservedAddress] = []
    for entry in _list(text, "ip -j -d addr show"):
        name = entry.get("ifname")
        if not isinstance(name, str) or not name:
            continue
        flags = entry.get("flags") or []
        raw_info = entry.get("linkinfo")
        info: dict[str, Any] = raw_info if isinstance(raw_info, dict) else {}
        kind = str(info.get("info_kind") or "")
        data = info.get("info_data")
        tun = _tun(data, users, groups, name) if kind == "tun" and isinstance(data, dict) \
            else None
        master = entry.get("master")
        links[name] = ObservedLink(
            name=name, index=int(entry.get("ifindex") or 0), kind=kind, up="UP" in flags,
            carrier="LOWER_UP" in flags, mtu=int(entry.get("mtu") or 0),
            mac=_mac(entry.get("address")), master=master if isinstance(master, str) else None,
            tun=tun, proxy_arp=conf("ipv4", name, "proxy_arp"),
            forwarding=conf("ipv4", name, "forwarding"),
            proxy_ndp=conf("ipv6", name, "proxy_ndp"), accept_ra=conf("ipv6", name, "accept_ra"))
        for a in entry.get("addr_info") or []:
            if not isinstance(a, dict) or "local" not in a:
                continue
            addr = ipaddress.ip_address(str(a["local"]))
            (v4 if addr.version == 4 else v6).append(
                ObservedAddress(name, addr, int(a.get("prefixlen", addr.max_prefixlen))))
    return links, tuple(v4 + v6)


def _host_dst(dst: object) -> IPAddress | None:
    if not isinstance(dst, str) or dst == "default":
        return None
    if "/" in dst:
        net = ipaddress.ip_network(dst, strict=False)
        return net.network_address if net.prefixlen == net.max_prefixlen else None
    return ipaddress.ip_address(dst)


def parse_host_routes(text: str) -> tuple[ObservedRoute, ...]:
    """Unicast /32 and /128 routes of the main table from ``ip -j route show table all``
    (the output device's name; None for a route without one, e.g. multipath)."""
    out: list[ObservedRoute] = []
    for r in _list(text, "ip -j route show table all"):
        if r.get("table") not in MAIN_TABLES or r.get("type", "unicast") != "unicast":
            continue
        dst = _host_dst(r.get("dst"))
        if dst is None:
            continue
        dev = r.get("dev")
        out.append(ObservedRoute(dst, dst.max_prefixlen, dev if isinstance(dev, str) else None))
    out.sort(key=lambda route: route.dst.version)  # the netlink reader dumps IPv4 first
    return tuple(out)


def parse_proxies(text: str) -> tuple[ProxyEntry, ...]:
    """Proxy neighbour entries from ``ip -j neigh show proxy``."""
    out: list[ProxyEntry] = []
    for n in _list(text, "ip -j neigh show proxy"):
        dst, dev = n.get("dst"), n.get("dev")
        if isinstance(dst, str) and isinstance(dev, str):
            out.append(ProxyEntry(ipaddress.ip_address(dst), dev))
    return tuple(out)
