"""Typed view of ``nft -j list ruleset``: tables, base chains (hook, priority, policy) and what
their rules can do, and where other tables' verdicts override ours (pure; doctor uses it too).

Facts encoded (nft(8), netfilter hook semantics): every base chain on a hook runs in priority
order; ``accept`` ends only the base chain it is in, the packet then meets the next base chain
of the same hook; ``drop`` ends the packet everywhere, so a drop in any table wins. NAT chains
see only the first packet of a flow, and once one NAT chain of a hook has translated it the
later NAT chains on that hook are not consulted for it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from hostnet.errors import InputError
from hostnet.nat import ir

VERDICT_KEYS = ("accept", "drop", "reject", "jump", "goto", "return", "queue")
NAT_KEYS = ("dnat", "snat", "masquerade", "redirect")


@dataclass(frozen=True)
class RuleInfo:
    handle: int
    actions: tuple[str, ...]  # verdicts and NAT statements the rule contains
    comment: str | None


@dataclass(frozen=True)
class BaseChain:
    family: str
    table: str
    name: str
    type: str
    hook: str
    priority: int
    policy: str
    rules: tuple[RuleInfo, ...]

    @property
    def where(self) -> str:
        return f"{self.family} {self.table} {self.name}"

    def can(self, action: str) -> int:
        return sum(1 for r in self.rules if action in r.actions)


@dataclass(frozen=True)
class Ruleset:
    tables: tuple[tuple[str, str], ...]  # (family, name)
    base_chains: tuple[BaseChain, ...]
    chain_count: int
    rule_count: int
    #: (family, table, set or map name) -> number of elements
    set_sizes: tuple[tuple[tuple[str, str, str], int], ...] = ()

    def table_exists(self, family: str, name: str) -> bool:
        return (family, name) in self.tables

    def on_hook(self, hook: str, families: tuple[str, ...] = ("inet", "ip", "ip6")) \
            -> list[BaseChain]:
        chains = [c for c in self.base_chains if c.hook == hook and c.family in families]
        return sorted(chains, key=lambda c: (c.priority, c.family, c.table, c.name))


def _actions(expr: list[Any]) -> tuple[str, ...]:
    found: list[str] = []
    for item in expr:
        if not isinstance(item, dict):
            continue
        names = [k for k in (*VERDICT_KEYS, *NAT_KEYS) if k in item]
        xt = item.get("xt")
        if isinstance(xt, dict) and xt.get("type") == "target":  # iptables-nft targets
            names.append(str(xt.get("name", "")).lower())
        found += [k for k in names if k not in found]
    return tuple(found)


def parse_ruleset(text: str) -> Ruleset:
    """Parse ``nft -j list ruleset`` output."""
    try:
        doc = json.loads(text or '{"nftables": []}')
        items = doc["nftables"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise InputError(f"nft -j list ruleset: not the expected JSON: {exc}") from None
    tables: list[tuple[str, str]] = []
    sizes: list[tuple[tuple[str, str, str], int]] = []
    chains: dict[tuple[str, str, str], dict[str, Any]] = {}
    rules: dict[tuple[str, str, str], list[RuleInfo]] = {}
    n_rules = 0
    for item in items:
        if not isinstance(item, dict):
            continue
        if "table" in item:
            t = item["table"]
            tables.append((str(t["family"]), str(t["name"])))
        elif "chain" in item:
            c = item["chain"]
            chains[(str(c["family"]), str(c["table"]), str(c["name"]))] = c
        elif "set" in item or "map" in item:
            st = item.get("set") or item["map"]
            sizes.append(((str(st["family"]), str(st["table"]), str(st["name"])),
                          len(st.get("elem", []))))
        elif "rule" in item:
            r = item["rule"]
            n_rules += 1
            key = (str(r["family"]), str(r["table"]), str(r["chain"]))
            rules.setdefault(key, []).append(
                RuleInfo(int(r.get("handle", 0)), _actions(r.get("expr", [])), r.get("comment")))
    base: list[BaseChain] = []
    for key, c in chains.items():
        if "hook" not in c:
            continue
        prio = c.get("prio", 0)
        base.append(BaseChain(key[0], key[1], key[2], str(c.get("type", "filter")),
                              str(c["hook"]), int(prio) if isinstance(prio, int) else 0,
                              str(c.get("policy", "accept")), tuple(rules.get(key, []))))
    return Ruleset(tuple(tables), tuple(base), len(chains), n_rules, tuple(sizes))


def differences(rs: Ruleset, ours: ir.Table) -> list[str]:
    """How the loaded ``inet hostnet`` differs from ``ours`` in sets, maps and chains
    (element counts; an interval set may merge adjacent elements, so only missing or
    surplus names and empty/non-empty changes of interval sets count)."""
    if not rs.table_exists(ir.TABLE_FAMILY, ir.TABLE_NAME):
        return ["table inet hostnet is not loaded"]
    live = {name: n for (fam, table, name), n in rs.set_sizes
            if (fam, table) == (ir.TABLE_FAMILY, ir.TABLE_NAME)}
    out: list[str] = []
    for s in ours.sets:
        got = live.pop(s.name, None)
        if got is None:
            out.append(f"set {s.name} is missing")
        elif not s.interval and got != len(s.elements):
            out.append(f"set {s.name} has {got} elements, the config {len(s.elements)}")
    out += [f"set {name} is not in the config" for name in sorted(live)]
    chains = {c.name for c in rs.base_chains if (c.family, c.table) == (ir.TABLE_FAMILY,
                                                                        ir.TABLE_NAME)}
    want = {c.name for c in ours.chains if c.hook is not None}
    out += [f"base chain {name} is missing" for name in sorted(want - chains)]
    out += [f"base chain {name} is not in the config" for name in sorted(chains - want)]
    return out


@dataclass(frozen=True)
class Overlap:
    chain: BaseChain
    before_ours: bool  # runs before our chain of the same hook
    notes: tuple[str, ...]


def overlaps(rs: Ruleset, ours: ir.Table) -> list[Overlap]:
    """Every other table's base chain on a hook our table uses, with how it interacts."""
    out: list[Overlap] = []
    for ch in ours.chains:
        if ch.hook is None:
            continue
        for other in rs.on_hook(ch.hook.value):
            if (other.family, other.table) == (ir.TABLE_FAMILY, ir.TABLE_NAME):
                continue
            if other.type != ch.type.value:
                continue
            out.append(Overlap(other, other.priority < ch.priority, tuple(notes(other, ch))))
    return out


def notes(other: BaseChain, ours: ir.Chain) -> list[str]:
    said: list[str] = []
    ref = f"{ir.TABLE_FAMILY} {ir.TABLE_NAME} {ours.name} (priority {ours.priority})"
    if other.priority == ours.priority:
        order = "same"
        said.append(f"priority {other.priority} is the same as {ref}: which runs first is "
                    "not defined")
    else:
        order = "before" if other.priority < ours.priority else "after"
        said.append(f"priority {other.priority} runs {order} {ref}")
    if other.policy == "drop":
        said.append("policy drop: whatever it does not accept is dropped, even what hostnet "
                    "lets through (a drop anywhere wins)")
    drops = other.can("drop") + other.can("reject")
    if drops:
        said.append(f"{drops} rule(s) drop or reject: a drop here wins over hostnet")
    if other.can("accept"):
        said.append("its accept ends only this base chain; the packet still meets hostnet's")
    if other.type == "nat" and any(other.can(k) for k in NAT_KEYS):
        if order == "before":
            said.append("translates first: a flow it NATs is not seen by hostnet's NAT chain "
                        "on this hook")
        elif order == "after":
            said.append("sees only flows hostnet's NAT chain did not translate")
        else:
            said.append("the first of the two NAT chains to translate a flow wins")
    return said
