"""What a loaded ``table inet hostnet`` translates, port by port (pure).

After an apply, conntrack entries made by a forward that changed keep their old translation
(conntrack NATs only the first packet of a flow), so they must be deleted, and only those:
flows of unchanged forwards go on. Which forwards changed is decided from the kernel's table
itself (``nft -j list table inet hostnet``), not from what an earlier config said, so it holds
after a rollback, a hand edit or a table loaded by another hostnet.

A :class:`Translation` is one public port of one forward: in interface, protocol and port,
the target address and port, and the allowlist (collapsed networks, ``0.0.0.0/0`` or ``::/0``
for anyone) checked for it.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from hostnet.errors import InputError
from hostnet.model import nat as m

Key = tuple[int, str, str, int]  # (family 4|6, in interface, proto, public port)


@dataclass(frozen=True, order=True)
class Translation:
    family: int
    in_iface: str
    proto: str
    port: int
    to_addr: str
    to_port: int
    sources: tuple[str, ...]  # collapsed networks, sorted

    @property
    def key(self) -> Key:
        return (self.family, self.in_iface, self.proto, self.port)

    def target(self) -> m.IPAddress:
        return ipaddress.ip_address(self.to_addr)

    def describe(self) -> str:
        to = self.to_addr if self.family == 4 else f"[{self.to_addr}]"
        return f"{self.in_iface} {self.proto}/{self.port} -> {to}:{self.to_port}"

    def to_json(self) -> dict[str, Any]:
        return {"family": self.family, "in": self.in_iface, "proto": self.proto,
                "port": self.port, "to_addr": self.to_addr, "to_port": self.to_port,
                "sources": list(self.sources)}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Translation:
        return cls(int(d["family"]), str(d["in"]), str(d["proto"]), int(d["port"]),
                   str(d["to_addr"]), int(d["to_port"]), tuple(str(s) for s in d["sources"]))


def _collapse(nets: Iterable[m.IPNetwork]) -> tuple[str, ...]:
    by_version: dict[int, list[Any]] = {}
    for n in nets:
        by_version.setdefault(n.version, []).append(n)
    out: list[str] = []
    for version in sorted(by_version):
        out += [str(n) for n in ipaddress.collapse_addresses(by_version[version])]
    return tuple(out)


def of_config(cfg: m.NatConfig) -> dict[Key, Translation]:
    """Every public port of ``cfg``'s forwards (the first forward of a port wins, as in the
    compiled map)."""
    out: dict[Key, Translation] = {}
    for f in cfg.forward:
        sources = _collapse(f.sources)
        for port in range(f.ports.first, f.ports.last + 1):
            t = Translation(f.to_addr.version, f.in_iface, f.proto.value, port,
                            str(f.to_addr), f.target_port(port), sources)
            out.setdefault(t.key, t)
    return out


def changed(old: Mapping[Key, Translation], new: Mapping[Key, Translation]) \
        -> list[Translation]:
    """Translations of ``old`` that ``new`` removes or changes (target or allowlist)."""
    return [t for k, t in sorted(old.items()) if new.get(k) != t]


# -- the loaded table -----------------------------------------------------------------------


def _networks(elems: list[Any]) -> list[m.IPNetwork]:
    nets: list[m.IPNetwork] = []
    for e in elems:
        if isinstance(e, dict) and "elem" in e:
            e = e["elem"].get("val")
        if isinstance(e, str):
            nets.append(ipaddress.ip_network(e))
        elif isinstance(e, dict) and "prefix" in e:
            p = e["prefix"]
            nets.append(ipaddress.ip_network(f"{p['addr']}/{p['len']}", strict=False))
        elif isinstance(e, dict) and "range" in e:
            first, last = (ipaddress.ip_address(x) for x in e["range"])
            nets += list(ipaddress.summarize_address_range(first, last))
    return nets


def _val(e: Any) -> Any:
    return e["elem"].get("val") if isinstance(e, dict) and "elem" in e else e


def _concat(v: Any) -> list[Any]:
    return list(v["concat"]) if isinstance(v, dict) and "concat" in v else [v]


def _saddr_set(expr: list[Any]) -> str | None:
    """The set a rule matches the packet's source address against (``ip saddr @a4_0``)."""
    for item in expr:
        match = item.get("match") if isinstance(item, dict) else None
        if not isinstance(match, dict) or match.get("op") not in ("==", "in"):
            continue
        left, right = match.get("left"), match.get("right")
        payload = left.get("payload") if isinstance(left, dict) else None
        if (isinstance(payload, dict) and payload.get("field") == "saddr"
                and isinstance(right, str) and right.startswith("@")):
            return right[1:]
    return None


def _dnat_map(expr: list[Any]) -> str | None:
    for item in expr:
        dnat = item.get("dnat") if isinstance(item, dict) else None
        addr = dnat.get("addr") if isinstance(dnat, dict) else None
        mp = addr.get("map") if isinstance(addr, dict) else None
        data = mp.get("data") if isinstance(mp, dict) else None
        if isinstance(data, str) and data.startswith("@"):
            return data[1:]
    return None


def of_table(text: str) -> dict[Key, Translation]:
    """The translations of a loaded table from ``nft -j list table inet hostnet`` output
    (empty when the text has no hostnet table)."""
    try:
        items = json.loads(text or '{"nftables": []}')["nftables"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise InputError(f"nft -j list table: not the expected JSON: {exc}") from None
    sets: dict[str, list[Any]] = {}
    rules: dict[str, list[list[Any]]] = {}
    for item in items:
        if not isinstance(item, dict):
            continue
        st = item.get("set") or item.get("map")
        if isinstance(st, dict):
            sets[str(st["name"])] = list(st.get("elem", []))
        elif isinstance(item.get("rule"), dict):
            r = item["rule"]
            rules.setdefault(str(r["chain"]), []).append(list(r.get("expr", [])))
    out: dict[Key, Translation] = {}
    for family, sfx in ((4, "4"), (6, "6")):
        # the allowlist of a port: its dispatch chain's set, or the one set the DNAT rule checks
        acl_of: dict[tuple[Any, ...], str] = {}
        for pair in sets.get(f"fwd{sfx}_acl", []):
            key, verdict = tuple(_concat(_val(pair[0]))), pair[1]
            chain = verdict.get("jump", {}).get("target") if isinstance(verdict, dict) else None
            for expr in rules.get(str(chain), []):
                name = _saddr_set(expr)
                if name:
                    acl_of[key] = name
        single = None if f"fwd{sfx}_acl" in sets else next(
            (name for exprs in rules.values() for expr in exprs
             if _dnat_map(expr) == f"fwd{sfx}" and (name := _saddr_set(expr))), None)
        for pair in sets.get(f"fwd{sfx}", []):
            key = tuple(_concat(_val(pair[0])))
            addr, port = _concat(pair[1])
            acl = acl_of.get(key, single)
            if acl is None:
                continue  # no rule translates this element
            iif, proto, dport = key
            t = Translation(family, str(iif), str(proto), int(dport), str(addr), int(port),
                            _collapse(_networks(sets.get(acl, []))))
            out[t.key] = t
    return out
