"""What fills the conntrack table (codes CT109, CT110), from the composition observe walked.

* CT109: most entries never saw a reply or never became ASSURED, and a few sources whose own
  entries look that way hold most of the table: a flood or a scan. The fix limits NEW
  connections per flooding source (an nftables dynamic set keyed by source address, at
  filter priority, after conntrack): established clients are never touched, and a source
  that is not flooding is never named.
* CT110: a stateless UDP service (DNS, NTP) answered by the host itself fills the table. The
  fix exempts it from conntrack with notrack, but only for packets to or from the host's own
  addresses and only when none of those flows is NATed: untracked packets are never NATed,
  so notrack on a NAT router's forwarded DNS would stop every client's resolution.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from hostnet.checks.base import Subject
from hostnet.findings import Finding, Rule, Severity
from hostnet.model.conntrack import AddressCount, Composition
from hostnet.model.firewall import Ruleset

FLOOD_PATTERN = Rule("CT109", "conntrack-flood-pattern", Severity.WARNING,
                     "The table is filled by unreplied flows from few sources (flood or scan)")
NOTRACK_CANDIDATE = Rule("CT110", "conntrack-notrack-candidate", Severity.INFO,
                         "A high-volume stateless service fills the table: exempt it (notrack)")

#: Below this many entries the table is too small to judge.
MIN_ENTRIES = 100
#: New connections per second one flooding source may still open.
FLOOD_RATE = 100
#: Stateless UDP services notrack suits, and the share of the table that makes it worth it.
STATELESS_UDP = (53, 123)
NOTRACK_SHARE = 0.3
#: Share of a port's entries that must be the host's own, un-NATed traffic.
LOCAL_SHARE = 0.9


def _family(address: str) -> str:
    try:
        return "ip6" if ipaddress.ip_address(address).version == 6 else "ip"
    except ValueError:
        return "ip"


def flood_snippet(sources: list[str], rate: int = FLOOD_RATE) -> str:
    """nftables: per-source limit on NEW connections of the named sources (nft 1.x)."""
    sets: list[str] = []
    rules: list[str] = []
    for fam, addr_type in (("ip", "ipv4_addr"), ("ip6", "ipv6_addr")):
        mine = [a for a in sources if _family(a) == fam]
        if not mine:
            continue
        name = f"flood_{'v4' if fam == 'ip' else 'v6'}"
        sets.append(f"  set {name} {{ type {addr_type}; flags dynamic, timeout; "
                    "timeout 1m; }")
        rules.append(f"    {fam} saddr {{ {', '.join(mine)} }} ct state new "
                     f"add @{name} {{ {fam} saddr limit rate over {rate}/second }} drop")
    return "\n".join([
        "table inet hostnet {", *sets,
        "  chain flood_guard {",
        "    type filter hook prerouting priority filter; policy accept;",
        *rules, "  }", "}"])


def notrack_snippet(port: int) -> str:
    """nftables: exempt UDP ``port`` to and from the host's own addresses from conntrack."""
    return "\n".join([
        "table inet hostnet {",
        "  chain notrack_pre {",
        "    type filter hook prerouting priority raw; policy accept;",
        f"    fib daddr type local udp dport {port} notrack",
        "  }",
        "  chain notrack_out {",
        "    type filter hook output priority raw; policy accept;",
        f"    udp sport {port} notrack",
        "  }",
        "}"])


def _evidence(comp: Composition, netns: str | None) -> dict[str, Any]:
    return {"namespace": netns or "initial", "entries": comp.entries,
            "unreplied": comp.unreplied, "assured": comp.assured,
            "top_src": [{"src": a.address, "count": a.count, "unreplied": a.unreplied,
                         "assured": a.assured} for a in comp.top_src[:5]],
            "by_proto": comp.by_proto}


def evaluate_flood(comp: Composition, netns: str | None) -> list[Finding]:
    total = comp.entries
    if total < MIN_ENTRIES:
        return []
    not_assured = total - comp.assured - comp.offloaded
    floods: list[AddressCount] = [a for a in comp.top_src if a.flood_like
                                  and a.count / total >= 0.05]
    held = sum(a.count for a in floods)
    if not (comp.unreplied / total >= 0.5 or not_assured / total >= 0.8) or held / total < 0.5:
        return []
    names = [a.address for a in floods]
    where = f"namespace {netns}" if netns else "this host (initial namespace)"
    clients = [a.address for a in comp.top_src if a not in floods]
    spared = (f"; {', '.join(clients[:3])} have ASSURED entries (real clients) and are left "
              "alone" if clients else "")
    return [FLOOD_PATTERN.finding(
        f"of the {total} entries in {where}, {comp.unreplied / total:.0%} never saw a reply "
        f"and {not_assured / total:.0%} are not ASSURED; {held / total:.0%} come from "
        f"{len(names)} source(s) whose own entries look that way ({', '.join(names)}): this "
        f"looks like a flood or a scan, not real load; raising the limit only feeds "
        f"it{spared}",
        key="composition", evidence={**_evidence(comp, netns), "flooding": names},
        suggestion=(f"# limit NEW connections per flooding source to {FLOOD_RATE}/s "
                    "(after conntrack: established traffic is never touched)\n"
                    + flood_snippet(names)),
    )]


def evaluate_notrack(comp: Composition, ruleset: Ruleset, netns: str | None) -> list[Finding]:
    total = comp.entries
    if total < MIN_ENTRIES or not comp.own_known:
        return []
    where = f"namespace {netns}" if netns else "this host (initial namespace)"
    out: list[Finding] = []
    for p in comp.top_dport:
        if p.proto != "udp" or p.port not in STATELESS_UDP or p.count / total < NOTRACK_SHARE:
            continue
        if p.nated or p.local / p.count < LOCAL_SHARE:
            continue  # forwarded or NATed flows: untracked packets would not be NATed
        dnat = [r.describe() for r in ruleset.nat if r.kind in ("dnat", "redirect")]
        caveat = (f" DNAT rules exist ({'; '.join(dnat)}): none of today's port {p.port} "
                  "entries is translated, but a DNAT for that port added later would not "
                  "apply to untracked packets." if dnat else "")
        fix = notrack_snippet(p.port)
        if any(c.policy == "drop" or {"drop", "reject"} & set(c.verdicts)
               for c in ruleset.hook("input")):
            fix = (f"# the input hook drops: untracked packets match neither 'ct state new' nor "
                   f"'established', so accept them there first:\n#   ct state untracked udp "
                   f"dport {p.port} accept\n" + fix)
        out.append(NOTRACK_CANDIDATE.finding(
            f"{p.count / total:.0%} of the table in {where} is UDP port {p.port} to the "
            f"host's own addresses ({p.local} entries, none NATed): a stateless service "
            f"tracked for nothing; exempt it from conntrack with notrack.{caveat}",
            key="composition",
            evidence={**_evidence(comp, netns), "port": p.port, "entries_on_port": p.count,
                      "to_host_not_nated": p.local, "nated_on_port": p.nated},
            suggestion=fix,
        ))
    return out


def check_composition(s: Subject) -> list[Finding]:
    comp = s.ns.composition
    if comp is None:
        return []
    netns = s.ns.label if s.ns.is_child else None
    return [*evaluate_flood(comp, netns), *evaluate_notrack(comp, s.ns.ruleset, netns)]


CHECKS = (check_composition,)
