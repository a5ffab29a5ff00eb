"""nftables JSON and iptables-save text -> the typed Ruleset (pure)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from hostnet.model.firewall import NAT_KINDS, BaseChain, NatRule, Ruleset

_XT_TARGETS = {"MASQUERADE": "masquerade", "SNAT": "snat", "DNAT": "dnat", "REDIRECT": "redirect"}
_HOOK_CHAINS = ("PREROUTING", "POSTROUTING", "OUTPUT", "INPUT", "FORWARD")
_VERDICTS = ("accept", "drop", "reject", "jump", "goto", "return", "queue")
#: iptables targets that are verdicts (as nft JSON ``xt`` targets or ``-j`` in iptables-save).
_XT_VERDICTS = ("ACCEPT", "DROP", "REJECT", "RETURN")
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


class _Chains:
    """Every chain's own verdicts, NAT statements and jump targets, to follow a base chain
    into the regular chains it reaches (a drop in DOCKER-USER is a drop of FORWARD)."""

    def __init__(self) -> None:
        self.rules: dict[tuple[str, ...], int] = {}
        self.verdicts: dict[tuple[str, ...], set[str]] = {}
        self.nat: dict[tuple[str, ...], set[str]] = {}
        self.calls: dict[tuple[str, ...], set[str]] = {}

    def rule(self, key: tuple[str, ...]) -> None:
        self.rules[key] = self.rules.get(key, 0) + 1

    def verdict(self, key: tuple[str, ...], verdict: str) -> None:
        self.verdicts.setdefault(key, set()).add(verdict)

    def nat_kind(self, key: tuple[str, ...], kind: str) -> None:
        self.nat.setdefault(key, set()).add(kind)

    def call(self, key: tuple[str, ...], target: str) -> None:
        self.calls.setdefault(key, set()).add(target)

    def reach(self, key: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(verdicts of the chains ``key`` reaches, NAT kinds of ``key`` and those chains)."""
        seen: set[tuple[str, ...]] = set()
        todo = [(*key[:-1], t) for t in self.calls.get(key, ())]
        while todo:
            k = todo.pop()
            if k in seen or k == key:
                continue
            seen.add(k)
            todo += [(*k[:-1], t) for t in self.calls.get(k, ())]
        verdicts = {v for k in seen for v in self.verdicts.get(k, ())} - {"jump", "goto"}
        nat = {n for k in (key, *seen) for n in self.nat.get(k, ())}
        return tuple(sorted(verdicts)), tuple(sorted(nat))


def _target(value: Any) -> str | None:
    target = value.get("target") if isinstance(value, dict) else None
    return str(target) if target is not None else None


def parse_nft_json(text: str) -> Ruleset:
    """``nft -j list ruleset`` output. ValueError when it is not JSON."""
    doc = json.loads(text)
    items = doc.get("nftables", []) if isinstance(doc, dict) else []
    hooked: dict[tuple[str, str, str], dict[str, Any]] = {}
    for item in items:
        chain = item.get("chain") if isinstance(item, dict) else None
        if isinstance(chain, dict) and chain.get("hook"):
            ident = (str(chain.get("family")), str(chain.get("table")), str(chain.get("name")))
            hooked[ident] = chain
    seen = _Chains()
    nat: list[NatRule] = []
    uses_ct = False
    maps = _named_maps(items)
    for item in items:
        rule = item.get("rule") if isinstance(item, dict) else None
        if not isinstance(rule, dict):
            continue
        fam, table, chain = str(rule.get("family")), str(rule.get("table")), str(rule.get("chain"))
        key = (fam, table, chain)
        base = hooked.get(key)
        seen.rule(key)
        expr = rule.get("expr", [])
        # a named verdict map's elements are verdicts of the rule that looks it up
        vmaps = [maps.get((fam, table), {}).get(v["data"][1:], []) for k, v in _walk(expr)
                 if k == "vmap" and isinstance(v, dict) and isinstance(v.get("data"), str)
                 and v["data"].startswith("@")]
        for k, value in _walk([expr, vmaps]):
            if k == "ct" or (k == "xt" and isinstance(value, dict)
                             and str(value.get("name", "")) in ("conntrack", "state")):
                uses_ct = True
            if k in _VERDICTS:
                seen.verdict(key, k)
                if k in ("jump", "goto") and (target := _target(value)):
                    seen.call(key, target)
            kind: str | None = None
            if k in NAT_KINDS:
                kind = k
            elif k == "xt" and isinstance(value, dict):
                name = str(value.get("name", "")).upper()
                kind = _XT_TARGETS.get(name)
                if value.get("type") == "target" and name in _XT_VERDICTS:
                    seen.verdict(key, name.lower())
            if kind:
                uses_ct = True
                seen.nat_kind(key, kind)
                hook = base.get("hook") if base is not None else None
                if hook is None and chain.upper() in _HOOK_CHAINS:
                    hook = chain.lower()
                nat.append(NatRule(kind, fam, table, chain, str(hook) if hook else None, "nft",
                                   _targets(value, maps.get((fam, table)))))
    base_chains = []
    for (fam, table, name), c in hooked.items():
        prio = c.get("prio", 0)
        key = (fam, table, name)
        reached, nat_kinds = seen.reach(key)
        base_chains.append(BaseChain(
            family=fam, table=table, name=name, hook=str(c.get("hook")),
            priority=int(prio) if isinstance(prio, int) else 0, type=str(c.get("type", "filter")),
            policy=str(c.get("policy", "accept")), source="nft", rules=seen.rules.get(key, 0),
            verdicts=tuple(sorted(seen.verdicts.get(key, ()))), reached=reached,
            nat=nat_kinds))
    return Ruleset(nat=tuple(nat), chains=tuple(base_chains), uses_conntrack=uses_ct,
                   sources=("nft -j list ruleset",))


def parse_iptables_save(text: str, family: str = "ipv4",
                        source: str = "iptables-save") -> Ruleset:
    """``iptables-save`` output: NAT targets, built-in chains with policies and verdicts
    (followed into the user chains they jump or go to)."""
    nat: list[NatRule] = []
    policies: dict[tuple[str, str], str] = {}
    declared: set[tuple[str, str]] = set()
    seen = _Chains()
    uses_ct = False
    table = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("*"):
            table = line[1:]
            continue
        if line.startswith(":"):
            parts = line[1:].split()
            if parts:
                declared.add((table, parts[0]))
            if len(parts) >= 2 and parts[1] != "-":
                policies[(table, parts[0])] = parts[1].lower()
            continue
        if not line.startswith("-A "):
            continue
        parts = line.split()
        chain = parts[1]
        key = (table, chain)
        seen.rule(key)
        if "conntrack" in parts or "state" in parts or table == "nat":
            uses_ct = True
        target, how = "", ""
        for flag in ("-j", "-g"):
            if flag in parts and parts.index(flag) + 1 < len(parts):
                target, how = parts[parts.index(flag) + 1], flag
        if target in _XT_VERDICTS:
            seen.verdict(key, target.lower())
        elif (table, target) in declared:
            seen.verdict(key, "jump" if how == "-j" else "goto")
            seen.call(key, target)
        kind = _XT_TARGETS.get(target.upper()) if table == "nat" else None
        if kind:
            seen.nat_kind(key, kind)
            hook = chain.lower() if chain in _HOOK_CHAINS else None
            option = "--to-destination" if kind == "dnat" else "--to-source"
            specs = [parts[i + 1] for i, p in enumerate(parts[:-1]) if p == option]
            targets = [iptables_to(spec) for spec in specs]
            nat.append(NatRule(kind, family, "nat", chain, hook, source,
                               tuple(t for t in targets if t) if all(targets) else ()))
    chains = []
    for (tbl, chain), policy in policies.items():
        prio = _IPT_NAT_PRIORITY.get(chain, -100) if tbl == "nat" else _IPT_PRIORITY.get(tbl, 0)
        reached, nat_kinds = seen.reach((tbl, chain))
        chains.append(BaseChain(
            family=family, table=tbl, name=chain, hook=chain.lower(), priority=prio,
            type="nat" if tbl == "nat" else "filter", policy=policy, source=source,
            rules=seen.rules.get((tbl, chain), 0),
            verdicts=tuple(sorted(seen.verdicts.get((tbl, chain), ()))), reached=reached,
            nat=nat_kinds))
    return Ruleset(nat=tuple(nat), chains=tuple(chains), uses_conntrack=uses_ct,
                   sources=(source,))


def made_by_nft(text: str) -> bool:
    """iptables-save output written by iptables-nft (its tables are nftables tables, which
    ``nft -j list ruleset`` already shows) rather than by iptables-legacy."""
    return any("(nf_tables)" in line for line in text.splitlines()[:3])


def merge(a: Ruleset, b: Ruleset) -> Ruleset:
    return Ruleset(nat=a.nat + b.nat, chains=a.chains + b.chains,
                   uses_conntrack=a.uses_conntrack or b.uses_conntrack,
                   sources=a.sources + b.sources)
