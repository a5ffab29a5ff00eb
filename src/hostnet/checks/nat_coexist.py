"""Other tables on hostnet's hooks (NT106): which base chains share a hook with
``table inet hostnet`` and where their verdicts override hostnet's.

Every base chain registered on a hook runs, in priority order, for every packet that reaches
the hook (nf_hook_slow in net/netfilter/core.c walks them one after the other). An ``accept``
ends only the base chain it is in: the packet goes on to the next chain on the hook. A
``drop`` (a drop or reject rule, or a drop policy) ends the packet there, so a drop in any
table wins over an accept in ours. NAT chains see only the first packet of a flow and the
first NAT chain of a hook to translate it is the only one that does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hostnet.checks.base import Subject
from hostnet.findings import Finding, Rule, Severity
from hostnet.model.firewall import BaseChain, Ruleset

COEXIST = Rule("NT106", "other-chains-on-hostnet-hooks", Severity.WARNING,
               "Other tables' base chains run on the hooks of table inet hostnet and can "
               "override its verdicts")
#: warning when a chain can drop what hostnet routes; info when the chains only coexist.
EMITS = {"NT106": (Severity.WARNING, Severity.INFO)}

OURS = ("inet", "hostnet")
#: nftables families whose hooks are the IP stack's (bridge, arp and netdev hooks are others).
_IP_FAMILIES = ("ip", "ip6", "inet", "ipv4", "ipv6")
#: Hooks where a drop stops traffic hostnet routes (DNAT, forward filter, masquerade).
_ROUTED = ("prerouting", "forward", "postrouting")
#: Tables iptables-nft makes (its built-in chains keep their upper-case names).
_IPT_TABLES = ("filter", "nat", "mangle", "raw", "security")
_NAT_OF_HOOK = {"prerouting": "DNAT", "output": "DNAT", "postrouting": "SNAT/masquerade",
                "input": "SNAT"}
_ADVICE = ("Accept what hostnet forwards in those chains too (docker: rules in DOCKER-USER; "
           "firewalld: a policy or zone that allows the forward), or let one table do the "
           "filtering; 'hostnet nat explain --live' walks a packet through all of them")


def label(c: BaseChain) -> str:
    """How a sysadmin finds the chain: ``ip filter FORWARD (iptables-nft)``."""
    if c.source != "nft":
        tool = "ip6tables" if c.family == "ipv6" else "iptables"
        return f"{tool}{'-legacy' if 'legacy' in c.source else ''} -t {c.table} {c.name}"
    via = (" (iptables-nft)" if c.family in ("ip", "ip6") and c.table in _IPT_TABLES
           and c.name.isupper() else "")
    return f"{c.family} {c.table} {c.name}{via}"


@dataclass(frozen=True, slots=True)
class Overlap:
    other: BaseChain
    ours: BaseChain  # our chain of the same hook it is compared with
    order: str  # before, after, same
    overrides: tuple[str, ...]
    serious: bool

    def text(self) -> str:
        where = (f"same priority as hostnet {self.ours.name}, load order decides which runs "
                 "first" if self.order == "same" else
                 f"{self.order} hostnet {self.ours.name} ({self.ours.priority})")
        return (f"{label(self.other)} [{self.other.hook}, priority {self.other.priority}, "
                f"policy {self.other.policy}, {where}]: " + ", ".join(self.overrides))

    def evidence(self) -> dict[str, Any]:
        return {"chain": label(self.other), "family": self.other.family,
                "table": self.other.table, "name": self.other.name, "hook": self.other.hook,
                "priority": self.other.priority, "policy": self.other.policy,
                "type": self.other.type, "source": self.other.source, "order": self.order,
                "hostnet_chain": self.ours.name, "overrides": list(self.overrides)}


def _reference(other: BaseChain, ours: Sequence[BaseChain]) -> BaseChain:
    same = [c for c in ours if c.type == other.type] or list(ours)
    return min(same, key=lambda c: abs(c.priority - other.priority))


def overlap(other: BaseChain, ours: Sequence[BaseChain]) -> Overlap:
    """How one other base chain on a hook hostnet uses interacts with ours there."""
    ref = _reference(other, ours)
    order = ("same" if other.priority == ref.priority else
             "before" if other.priority < ref.priority else "after")
    said: list[str] = []
    if other.policy == "drop":
        said.append("policy drop: what it does not accept is dropped, even what hostnet "
                    "accepts")
    if other.drops:
        which = "/".join(v for v in ("drop", "reject") if v in {*other.verdicts, *other.reached})
        said.append(f"its {which} rules win over hostnet's accept")
    if other.accepts:
        said.append("its accept ends only its own chain: hostnet's drops still apply")
    nat_ours = [c for c in ours if c.type == "nat"]
    if other.type == "nat" and other.nat and nat_ours:
        what = _NAT_OF_HOOK.get(other.hook, "NAT")
        if order == "before":
            said.append(f"translates first: a new flow it NATs never meets hostnet's {what}")
        elif order == "after":
            said.append("sees only new flows hostnet did not translate")
        else:
            said.append("whichever NAT chain runs first translates a new flow, the other "
                        "never sees it")
    if not said:
        said.append("nothing in it overrides hostnet" if other.rules else
                    "no rules, so it passes everything")
    serious = (other.hook in _ROUTED and other.can_drop) or (
        other.hook in ("forward", "input") and other.policy == "drop")
    return Overlap(other, ref, order, tuple(said), serious)


def overlaps(rules: Ruleset) -> list[Overlap]:
    """Every base chain of another table (nftables of an IP family, iptables-nft,
    iptables-legacy) on a hook that a base chain of ``inet hostnet`` uses."""
    ours = [c for c in rules.chains if c.source == "nft" and (c.family, c.table) == OURS]
    hooks = {c.hook for c in ours}
    others = [c for c in rules.chains if c.hook in hooks and c.family in _IP_FAMILIES
              and not (c.source == "nft" and (c.family, c.table) == OURS)]
    order = ("prerouting", "input", "forward", "output", "postrouting")
    others.sort(key=lambda c: (order.index(c.hook) if c.hook in order else 9, c.priority,
                               label(c)))
    return [overlap(c, [o for o in ours if o.hook == c.hook]) for c in others]


def evaluate_coexistence(rules: Ruleset) -> list[Finding]:
    found = overlaps(rules)
    if not found:
        return []
    serious = [o for o in found if o.serious]
    rest = [o for o in found if not o.serious]
    parts = [f"table inet hostnet shares its hooks with {len(found)} base chain(s) of other "
             "tables and all of them run (an accept ends only its own chain, a drop anywhere "
             "is final)"]
    if serious:
        parts.append("Can drop what hostnet forwards or accepts: " +
                     "; ".join(o.text() for o in serious))
    if rest:
        parts.append(("Also on its hooks: " if serious else "") +
                     "; ".join(o.text() for o in rest))
    if serious:
        parts.append(_ADVICE)
    return [COEXIST.finding(
        ". ".join(parts),
        key="inet hostnet",
        severity=Severity.WARNING if serious else Severity.INFO,
        evidence={"chains": [o.evidence() for o in found],
                  "overriding": [label(o.other) for o in serious]})]


def check_coexistence(s: Subject) -> list[Finding]:
    return evaluate_coexistence(s.ns.ruleset)


CHECKS = (check_coexistence,)
