"""nftables JSON and iptables-save text -> the typed Ruleset (pure)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from hostnet.model.firewall import NAT_KINDS, BaseChain, NatRule, Ruleset

_XT_TARGETS = {"MASQUERADE": "masquerade", "SNAT": "snat", "DNAT": "dnat", "REDIRECT": "redirect"}
_HOOK_CHAINS = ("PREROUTING", "POSTROUTING", "OUTPUT", "INPUT", "FORWARD")
_VERDICTS = ("accept", "drop", "reject", "jump", "goto", "return", "queue")
#: iptables built-in chains: (table, chain) -> (hook, priority) as iptables-nft registers them.
_IPT_PRIORITY = {"raw": -300, "mangle": -150, "nat": -100, "filter": 0, "security": 50}
_IPT_NAT_PRIORITY = {"POSTROUTING": 100, "INPUT": 100}


def _walk(node: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for k, v in node.items():
            yield k, v
            yield from _walk(v)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item)


Maps = dict[str, list[Any]]


def _addr_forms(addr: Any, maps: Maps | None = None) -> list[str] | None:
    """The addresses an nft JSON ``addr`` names: ``"192.0.2.1"``, ``{"range": [a, b]}`` ->
    ``"a-b"``, ``{"prefix": {"addr": a, "len": n}}`` -> ``"a/n"``, an anonymous map with
    literal data -> each address. None when the expression is not literal (a named map,
    a variable the JSON kept, a concatenation): the target is not known. ``maps``: the
    elements of the table's named maps, so ``dnat to tcp dport map @ports`` is read too."""
    if isinstance(addr, str):
        return None if addr.startswith(("@", "$")) else [addr]
    if not isinstance(addr, dict):
        return None
    if isinstance(addr.get("range"), list) and len(addr["range"]) == 2 and all(
            isinstance(x, str) for x in addr["range"]):
        return [f"{addr['range'][0]}-{addr['range'][1]}"]
    prefix = addr.get("prefix")
    if isinstance(prefix, dict) and isinstance(prefix.get("addr"), str):
        return [f"{prefix['addr']}/{prefix.get('len', 32)}"]
    mapping = addr.get("map")
    if isinstance(mapping, dict):
        data = mapping.get("data")
        elems = data.get("set") if isinstance(data, dict) else None
        if isinstance(data, str) and data.startswith("@") and maps is not None:
            elems = maps.get(data[1:])
        if not isinstance(elems, list) or not elems:
            return None
        out: list[str] = []
        for elem in elems:
            value = elem[1] if isinstance(elem, list) and len(elem) == 2 else None
            got = _addr_forms(value, maps)
            if got is None:
                return None
            out.extend(got)
        return out
    return None


def _targets(value: Any, maps: Maps | None = None) -> tuple[str, ...]:
    """DNAT/SNAT target addresses of an nft NAT statement; () when not named or not literal."""
    if isinstance(value, dict) and "addr" in value:
        return tuple(dict.fromkeys(_addr_forms(value["addr"], maps) or []))
    return ()


def _named_maps(items: list[Any]) -> dict[tuple[str, str], Maps]:
    """(family, table) -> map name -> elements ([key, data] pairs) of the named maps."""
    out: dict[tuple[str, str], Maps] = {}
    for item in items:
        m = item.get("map") if isinstance(item, dict) else None
        if isinstance(m, dict) and isinstance(m.get("elem"), list):
            out.setdefault((str(m.get("family")), str(m.get("table"))), {})[
                str(m.get("name"))] = m["elem"]
    return out


def iptables_to(spec: str) -> str | None:
    """The address part of ``--to-destination``/``--to-source``: ``192.0.2.10:80`` ->
    ``192.0.2.10``, ``192.0.2.10-192.0.2.20:80-90`` -> ``192.0.2.10-192.0.2.20``,
    ``[2001:db8::1]:80`` -> ``2001:db8::1``; None when only a port is given (``:8080``)."""
    if spec.startswith("["):
        end = spec.find("]")
        return spec[1:end] if end > 1 else None
    if spec.count(":") > 1:  # a bare IPv6 address (ip6tables without a port)
        return spec
    addr = spec.split(":", 1)[0]
    return addr or None


def parse_nft_json(text: str) -> Ruleset:
    """``nft -j list ruleset`` output. ValueError when it is not JSON."""
    doc = json.loads(text)
    items = doc.get("nftables", []) if isinstance(doc, dict) else []
    chains: dict[tuple[str, str, str], dict[str, Any]] = {}
    for item in items:
        chain = item.get("chain") if isinstance(item, dict) else None
        if isinstance(chain, dict) and chain.get("hook"):
            ident = (str(chain.get("family")), str(chain.get("table")), str(chain.get("name")))
            chains[ident] = {"chain": chain, "rules": 0, "verdicts": set()}
    nat: list[NatRule] = []
    uses_ct = False
    maps = _named_maps(items)
    for item in items:
        rule = item.get("rule") if isinstance(item, dict) else None
        if not isinstance(rule, dict):
            continue
        fam, table, chain = str(rule.get("family")), str(rule.get("table")), str(rule.get("chain"))
        base = chains.get((fam, table, chain))
        if base is not None:
            base["rules"] += 1
        for key, value in _walk(rule.get("expr", [])):
            if key == "ct" or (key == "xt" and isinstance(value, dict)
                               and str(value.get("name", "")) in ("conntrack", "state")):
                uses_ct = True
            if base is not None and key in _VERDICTS:
                base["verdicts"].add(key)
            kind: str | None = None
            if key in NAT_KINDS:
                kind = key
            elif key == "xt" and isinstance(value, dict):
                kind = _XT_TARGETS.get(str(value.get("name", "")).upper())
            if kind:
                uses_ct = True
                hook = base["chain"].get("hook") if base is not None else None
                if hook is None and chain.upper() in _HOOK_CHAINS:
                    hook = chain.lower()
                nat.append(NatRule(kind, fam, table, chain, str(hook) if hook else None, "nft",
                                   _targets(value, maps.get((fam, table)))))
    base_chains = []
    for (fam, table, name), info in chains.items():
        c = info["chain"]
        prio = c.get("prio", 0)
        base_chains.append(BaseChain(
            family=fam, table=table, name=name, hook=str(c.get("hook")),
            priority=int(prio) if isinstance(prio, int) else 0, type=str(c.get("type", "filter")),
            policy=str(c.get("policy", "accept")), source="nft", rules=int(info["rules"]),
            verdicts=tuple(sorted(info["verdicts"]))))
    return Ruleset(nat=tuple(nat), chains=tuple(base_chains), uses_conntrack=uses_ct,
                   sources=("nft -j list ruleset",))


def parse_iptables_save(text: str, family: str = "ipv4",
                        source: str = "iptables-save") -> Ruleset:
    """``iptables-save`` output: NAT targets, built-in chains with policies and verdicts."""
    nat: list[NatRule] = []
    policies: dict[tuple[str, str], str] = {}
    rules: dict[tuple[str, str], int] = {}
    verdicts: dict[tuple[str, str], set[str]] = {}
    uses_ct = False
    table = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("*"):
            table = line[1:]
            continue
        if line.startswith(":"):
            parts = line[1:].split()
            if len(parts) >= 2 and parts[1] != "-":
                policies[(table, parts[0])] = parts[1].lower()
            continue
        if not line.startswith("-A "):
            continue
        parts = line.split()
        chain = parts[1]
        rules[(table, chain)] = rules.get((table, chain), 0) + 1
        if "conntrack" in parts or "state" in parts or table == "nat":
            uses_ct = True
        target = ""
        if "-j" in parts and parts.index("-j") + 1 < len(parts):
            target = parts[parts.index("-j") + 1]
        if target:
            verdicts.setdefault((table, chain), set()).add(
                target.lower() if target in ("ACCEPT", "DROP", "REJECT", "RETURN") else "jump")
        kind = _XT_TARGETS.get(target.upper()) if table == "nat" else None
        if kind:
            hook = chain.lower() if chain in _HOOK_CHAINS else None
            option = "--to-destination" if kind == "dnat" else "--to-source"
            specs = [parts[i + 1] for i, p in enumerate(parts[:-1]) if p == option]
            targets = [iptables_to(spec) for spec in specs]
            nat.append(NatRule(kind, family, "nat", chain, hook, "iptables-save",
                               tuple(t for t in targets if t) if all(targets) else ()))
    chains = []
    for (tbl, chain), policy in policies.items():
        prio = _IPT_NAT_PRIORITY.get(chain, -100) if tbl == "nat" else _IPT_PRIORITY.get(tbl, 0)
        chains.append(BaseChain(
            family=family, table=tbl, name=chain, hook=chain.lower(), priority=prio,
            type="nat" if tbl == "nat" else "filter", policy=policy, source=source,
            rules=rules.get((tbl, chain), 0),
            verdicts=tuple(sorted(verdicts.get((tbl, chain), set())))))
    return Ruleset(nat=tuple(nat), chains=tuple(chains), uses_conntrack=uses_ct,
                   sources=(source,))


def merge(a: Ruleset, b: Ruleset) -> Ruleset:
    return Ruleset(nat=a.nat + b.nat, chains=a.chains + b.chains,
                   uses_conntrack=a.uses_conntrack or b.uses_conntrack,
                   sources=a.sources + b.sources)
