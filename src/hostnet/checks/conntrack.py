"""Conntrack diagnosis for ``hostnet doctor`` (codes CT1xx).

The headline problem: ``nf_conntrack: table full, dropping packet`` floods the kernel log and
new connections die. The checks judge, from the observed namespace (hostnet.observe):

* ``nf_conntrack_count`` (this namespace's own count) against ``nf_conntrack_max`` (global;
  a child namespace shows a read-only copy), and ``nf_conntrack_buckets``;
* the counters of ``/proc/net/stat/nf_conntrack`` (``conntrack -S`` when the kernel has no
  conntrack procfs), with rates from interval sampling or the previous run's reading;
* the kernel log summary, when the caller had it scanned;
* the table composition, when the table was busy enough for observe to walk it;
* the conntrack timeouts, against the role.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hostnet.checks.base import Subject
from hostnet.conntrack.sizing import SizingInput, recommend
from hostnet.findings import Finding, Rule, Severity
from hostnet.model.conntrack import USAGE_CRITICAL, USAGE_WARNING, ConntrackStats
from hostnet.model.kernlog import LogSummary

TABLE_FULL = Rule("CT101", "conntrack-table-full", Severity.ERROR,
                  "The conntrack table is (nearly) full: new connections are refused or evicted")
USAGE_HIGH = Rule("CT102", "conntrack-usage-high", Severity.WARNING,
                  "The conntrack table is more than 75% full")
DROPS = Rule("CT103", "conntrack-drops", Severity.ERROR,
             "Packets were dropped because the conntrack table was full")
EARLY_DROPS = Rule("CT104", "conntrack-early-drops", Severity.WARNING,
                   "The kernel evicted unassured entries to make room in a full table")
INSERT_FAILED = Rule("CT105", "conntrack-insert-failed", Severity.WARNING,
                     "Conntrack insertions failed (NAT/parallel-flow races, not a full table)")
CHAIN_TOO_LONG = Rule("CT106", "conntrack-chain-too-long", Severity.WARNING,
                      "Hash chains grew too long: too few buckets for the load")
HASH_UNDERSIZED = Rule("CT107", "conntrack-hash-undersized", Severity.INFO,
                       "nf_conntrack_max is far above the bucket count: long chains when full")
LOG_TABLE_FULL = Rule("CT108", "conntrack-log-table-full", Severity.WARNING,
                      "The kernel log reports 'table full, dropping packet'")
FLOOD_PATTERN = Rule("CT109", "conntrack-flood-pattern", Severity.WARNING,
                     "The table is filled by unreplied flows from few sources (flood or scan)")
NOTRACK_CANDIDATE = Rule("CT110", "conntrack-notrack-candidate", Severity.INFO,
                         "A high-volume stateless service fills the table: exempt it (notrack)")
EXPECT_FULL = Rule("CT111", "conntrack-expect-table-full", Severity.WARNING,
                   "The conntrack expectation table was full (helpers lost expectations)")
TIMEOUT_LONG = Rule("CT112", "conntrack-timeout-long", Severity.WARNING,
                    "A conntrack timeout keeps idle entries far longer than the role needs")

WARN_USAGE = USAGE_WARNING
ERROR_USAGE = USAGE_CRITICAL
SYSCTL_FILE = "/etc/sysctl.d/90-hostnet.conf"
MODPROBE_FILE = "/etc/modprobe.d/hostnet.conf"

#: What each counter means for the user (shown in evidence and messages).
COUNTER_MEANING = {
    "drop": "new flows refused: the table was full and nothing could be evicted",
    "early_drop": "unassured entries evicted to make room for new flows",
    "insert_failed": "entries that lost an insertion race (NAT or parallel flows), "
                     "not a full table",
    "clash_resolve": "insertion races the kernel resolved by merging the clashing entries",
    "chaintoolong": "insertions refused because a hash chain was too long: too few buckets",
    "invalid": "packets conntrack could not classify (out of window, malformed)",
    "search_restart": "lookups restarted because the table was resized or entries moved",
}


# -- the namespace's table, as the evaluations see it -------------------------------------------


def counter(stats: ConntrackStats | None, name: str) -> int | None:
    return None if stats is None else stats.get(name)


@dataclass
class Observation:
    """Everything read about one namespace's table (plain data for :func:`evaluate`)."""

    count: int | None
    max: int | None
    buckets: int | None
    stats: ConntrackStats | None = None
    stats_source: str = ""
    rates: dict[str, float] | None = None
    rate_seconds: float | None = None
    rate_source: str | None = None
    peak: int = 0
    netns: str | None = None
    child_namespace: bool = False
    mem_bytes: int = 0
    cpus: int = 1
    kernel: tuple[int, int, int] = (6, 0, 0)
    entry_bytes: int | None = None
    composition: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def usage(self) -> float | None:
        if self.count is None or not self.max:
            return None
        return self.count / self.max

    def rate(self, name: str) -> float | None:
        if self.rates is None:
            return None
        if name in self.rates:
            return self.rates[name]
        alias = {"chaintoolong": "chainlength", "clash_resolve": "clashres"}.get(name)
        return self.rates.get(alias) if alias else None


def observation(s: Subject) -> Observation | None:
    """The evaluations' view of the namespace's table (None: conntrack not loaded there)."""
    ct = s.ns.conntrack
    if ct is None:
        return None
    k = s.host.kernel
    obs = Observation(
        count=ct.count, max=ct.max, buckets=ct.buckets, stats=ct.stats,
        stats_source=ct.stats_source, rates=ct.rates, rate_seconds=ct.rate_seconds,
        rate_source=ct.rate_source, peak=ct.peak, netns=s.ns.label if s.ns.is_child else None,
        child_namespace=ct.child_namespace, mem_bytes=k.mem_total or 0, cpus=k.cpus,
        kernel=k.version, entry_bytes=ct.entry_bytes,
        composition=s.ns.composition.to_dict() if s.ns.composition else None,
    )
    if ct.previous_age_s is not None:
        obs.extra["previous_reading_age_s"] = ct.previous_age_s
    return obs


# -- evaluation (pure) -------------------------------------------------------------------------


def where(obs: Observation) -> str:
    return f"namespace {obs.netns}" if obs.netns else "this host (initial namespace)"


def _sizing_fix(obs: Observation) -> tuple[str | None, dict[str, Any]]:
    if not obs.mem_bytes:
        return None, {}
    sizing = recommend(SizingInput(
        mem_bytes=obs.mem_bytes, cpus=obs.cpus, kernel=obs.kernel, current_max=obs.max,
        current_buckets=obs.buckets, count=obs.count or 0, peak=obs.peak,
        entry_bytes=obs.entry_bytes,
    ))
    text = sizing.suggestion()
    if obs.child_namespace or obs.netns is not None:
        text = ("# nf_conntrack_max and buckets are global: set them on the host "
                "(initial namespace)\n" + text)
    return text, {"recommended_max": sizing.max, "recommended_buckets": sizing.buckets,
                  "recommended_memory_mib": round(sizing.memory_bytes / (1 << 20), 1),
                  "sizing_steps": list(sizing.steps)}


def _rate_text(obs: Observation, name: str) -> str:
    rate = obs.rate(name)
    if rate is None:
        return "rate unknown (no previous reading; run again, or use an interval)"
    return f"{rate:.1f}/s over the last {obs.rate_seconds:.0f} s ({obs.rate_source})"


def _composition_text(comp: dict[str, Any]) -> str:
    total = comp.get("entries") or 0
    if not total:
        return ""
    states = ", ".join(f"{k} {v}" for k, v in list(comp.get("by_state", {}).items())[:4])
    srcs = ", ".join(f"{d['src']} {d['count']}" for d in comp.get("top_src", [])[:3])
    return (f" Composition: {states}; unreplied {comp.get('unreplied', 0) / total:.0%}, "
            f"assured {comp.get('assured', 0) / total:.0%}; top sources: {srcs}.")


def evaluate(obs: Observation) -> list[Finding]:
    """Findings about usage, counters, buckets and composition (pure)."""
    out: list[Finding] = []
    usage = obs.usage
    drop = counter(obs.stats, "drop") or 0
    early = counter(obs.stats, "early_drop") or 0
    drop_rate = obs.rate("drop")
    early_rate = obs.rate("early_drop")
    drops_rising = bool(drop_rate)
    early_rising = bool(early_rate)
    base: dict[str, Any] = {
        "namespace": obs.netns or "initial", "nf_conntrack_count": obs.count,
        "nf_conntrack_max": obs.max, "nf_conntrack_buckets": obs.buckets,
        "usage": None if usage is None else round(usage, 4), "drop": drop, "early_drop": early,
        "counters_from": obs.stats_source or None,
    }
    if drop_rate is not None:
        base["drop_rate_per_s"] = round(drop_rate, 3)
    if early_rate is not None:
        base["early_drop_rate_per_s"] = round(early_rate, 3)
    comp_text = _composition_text(obs.composition) if obs.composition else ""
    if obs.composition:
        base["composition"] = obs.composition

    full = usage is not None and (usage >= ERROR_USAGE or (drops_rising and usage >= WARN_USAGE))
    if usage is not None and full:
        fix, extra = _sizing_fix(obs)
        if drops_rising or (drop and drop_rate is None):
            what = (f"the kernel dropped {drop} packets of new flows (counter "
                    f"`drop`, {_rate_text(obs, 'drop')}): new connections are refused")
        elif early_rising or (early and early_rate is None):
            what = (f"no packets dropped; the kernel is evicting unassured entries instead "
                    f"(`early_drop` {early}, {_rate_text(obs, 'early_drop')})")
        else:
            what = "the next burst of new flows will be refused"
        out.append(TABLE_FULL.finding(
            f"conntrack table in {where(obs)} is {usage:.0%} full ({obs.count}/{obs.max}): "
            f"{what}.{comp_text}",
            key="net.netfilter.nf_conntrack_max", evidence={**base, **extra}, suggestion=fix,
        ))
    elif usage is not None and usage >= WARN_USAGE:
        fix, extra = _sizing_fix(obs)
        out.append(USAGE_HIGH.finding(
            f"conntrack table in {where(obs)} is {usage:.0%} full ({obs.count}/{obs.max}); "
            f"at {ERROR_USAGE:.0%} it is one burst away from refusing new flows.{comp_text}",
            key="net.netfilter.nf_conntrack_max", evidence={**base, **extra}, suggestion=fix,
        ))

    if drop:
        meaning = COUNTER_MEANING["drop"]
        if drops_rising and full:
            sev, msg = Severity.ERROR, (
                f"{drop} packets dropped in {where(obs)} ({meaning}), still rising: "
                f"{_rate_text(obs, 'drop')}")
        elif drops_rising:
            sev, msg = Severity.WARNING, (
                f"{drop} packets dropped in {where(obs)} ({meaning}), some since the previous "
                f"reading ({_rate_text(obs, 'drop')}) although the table is "
                f"{usage or 0:.0%} full now: it fills in bursts")
        elif drop_rate is None and usage is not None and usage >= ERROR_USAGE:
            sev, msg = Severity.ERROR, (
                f"{drop} packets dropped in {where(obs)} ({meaning}); the table is full now, "
                "so they are most likely still happening")
        else:
            since = ("none since the previous reading "
                     f"{obs.rate_seconds:.0f} s ago" if drop_rate is not None else
                     "rate unknown; the table is not full now")
            sev, msg = Severity.INFO, (
                f"history: {drop} packets were dropped in {where(obs)} since the counters "
                f"started ({meaning}); {since}")
        fix, _ = _sizing_fix(obs) if sev is not Severity.INFO else (None, {})
        out.append(DROPS.finding(msg, key="drop", severity=sev, evidence=dict(base),
                                 suggestion=fix))

    if early:
        meaning = COUNTER_MEANING["early_drop"]
        flood = "; a table full of unreplied flows looks like a flood or scan"
        if early_rising:
            sev, msg = Severity.WARNING, (
                f"{early} unassured entries evicted in {where(obs)} ({meaning}), "
                f"{_rate_text(obs, 'early_drop')}{flood}")
        elif early_rate is None and usage is not None and usage >= ERROR_USAGE:
            sev, msg = Severity.WARNING, (
                f"{early} unassured entries evicted in {where(obs)} ({meaning}) with the table "
                f"full now{flood}")
        else:
            sev, msg = Severity.INFO, (
                f"history: {early} unassured entries were evicted in {where(obs)} "
                f"({meaning}); not rising now")
        out.append(EARLY_DROPS.finding(
            msg, key="early_drop", severity=sev, evidence=dict(base),
            suggestion=("net.netfilter.nf_conntrack_udp_timeout = 10\n"
                        "# and find the sources: hostnet conntrack top --by src"
                        if sev is not Severity.INFO else None),
        ))

    failed = counter(obs.stats, "insert_failed") or 0
    clash = counter(obs.stats, "clash_resolve") or 0
    if failed:
        rising = bool(obs.rate("insert_failed"))
        out.append(INSERT_FAILED.finding(
            f"{failed} conntrack insertions failed in {where(obs)} "
            f"({COUNTER_MEANING['insert_failed']}); {clash} clashes were resolved. Typical "
            "cause: parallel UDP queries (DNS A and AAAA) from one socket through NAT",
            key="insert_failed", severity=Severity.WARNING if rising else Severity.INFO,
            evidence={**base, "insert_failed": failed, "clash_resolve": clash,
                      "insert_failed_rate": obs.rate("insert_failed")},
            suggestion="# /etc/resolv.conf (glibc resolvers)\noptions single-request-reopen",
        ))

    chain = counter(obs.stats, "chaintoolong") or 0
    if chain:
        fix, extra = _sizing_fix(obs)
        out.append(CHAIN_TOO_LONG.finding(
            f"{chain} insertions refused in {where(obs)} because a hash chain grew too long "
            f"({obs.buckets} buckets for {obs.count} entries): too few buckets for the load",
            key="net.netfilter.nf_conntrack_buckets", evidence={**base, "chaintoolong": chain,
                                                               **extra},
            suggestion=fix,
        ))
    elif obs.max and obs.buckets and obs.max > 4 * obs.buckets:
        out.append(HASH_UNDERSIZED.finding(
            f"nf_conntrack_max {obs.max} is {obs.max / obs.buckets:.0f}x the {obs.buckets} "
            "buckets: when the table fills, every lookup walks long chains",
            key="net.netfilter.nf_conntrack_buckets", evidence=dict(base),
            suggestion=(f"# {SYSCTL_FILE}\nnet.netfilter.nf_conntrack_buckets = {obs.max}\n"
                        f"# {MODPROBE_FILE}\noptions nf_conntrack hashsize={obs.max}"),
        ))

    if obs.composition:
        out.extend(evaluate_composition(obs))
    return out


def evaluate_composition(obs: Observation) -> list[Finding]:
    comp = obs.composition or {}
    total = comp.get("entries") or 0
    if total < 100:
        return []
    out: list[Finding] = []
    unreplied = comp.get("unreplied", 0)
    top_src = comp.get("top_src", [])
    few = sum(d["count"] for d in top_src[:3])
    by_proto = comp.get("by_proto", {})
    ev = {"namespace": obs.netns or "initial", "entries": total, "unreplied": unreplied,
          "top_src": top_src[:5], "by_proto": by_proto}
    if unreplied / total >= 0.5 and few / total >= 0.5:
        names = ", ".join(d["src"] for d in top_src[:3])
        out.append(FLOOD_PATTERN.finding(
            f"{unreplied / total:.0%} of the {total} entries in {where(obs)} never saw a reply "
            f"and {few / total:.0%} come from {min(3, len(top_src))} sources ({names}): this "
            "looks like a flood or a scan, not real load; raising the limit only feeds it",
            key="composition", evidence=ev,
            suggestion=("# drop or rate-limit the sources before conntrack sees them "
                        "(nftables, raw priority)\n"
                        "table inet hostnet { chain pre { type filter hook prerouting priority "
                        f"raw; ip saddr {{ {names} }} limit rate over 100/second drop; }} }}\n"
                        "net.netfilter.nf_conntrack_udp_timeout = 10"),
        ))
    for (proto, port), n in [((d["proto"], d["dport"]), d["count"])
                             for d in comp.get("top_dport", [])]:
        if proto == "udp" and port in (53, 123) and n / total >= 0.3:
            out.append(NOTRACK_CANDIDATE.finding(
                f"{n / total:.0%} of the table in {where(obs)} is UDP port {port}: a stateless "
                "service tracked for nothing; exempt it from conntrack with notrack",
                key="composition", evidence={**ev, "port": port, "entries_on_port": n},
                suggestion=(
                    "table inet hostnet {\n"
                    f"  chain raw_pre {{ type filter hook prerouting priority raw; udp dport "
                    f"{port} notrack; }}\n"
                    f"  chain raw_out {{ type filter hook output priority raw; udp sport "
                    f"{port} notrack; }}\n}}"),
            ))
    return out


#: Recommended values per role: (tcp established, generic). None: no advice for that role.
ROLE_TIMEOUTS: dict[str, tuple[int, int] | None] = {
    "nat-router": (7440, 120),
    "vm-host": (86400, 600),
    "server": (86400, 600),
    "desktop": None,
}


def evaluate_timeouts(role: str, established: int | None, generic: int | None,
                      usage: float | None, netns: str | None) -> list[Finding]:
    advice = ROLE_TIMEOUTS.get(role, ROLE_TIMEOUTS["server"])
    if advice is None:
        return []
    want_est, want_gen = advice
    out: list[Finding] = []
    busy = usage is not None and usage >= WARN_USAGE
    place = f"namespace {netns}" if netns else "the initial namespace"
    if established is not None and established > want_est:
        sev = Severity.WARNING if role == "nat-router" or busy else Severity.INFO
        out.append(TIMEOUT_LONG.finding(
            f"nf_conntrack_tcp_timeout_established is {established} s ({established / 86400:.1f} "
            f"days) in {place}: a TCP flow that vanishes without FIN/RST holds its entry that "
            f"long. For a {role}, {want_est} s is enough; trade-off: idle connections without "
            f"keepalives shorter than {want_est} s lose their entry (and through NAT, their "
            "mapping) sooner",
            key="net.netfilter.nf_conntrack_tcp_timeout_established", severity=sev,
            evidence={"value": established, "recommended": want_est, "role": role,
                      "namespace": netns or "initial"},
            suggestion=f"# {SYSCTL_FILE}\nnet.netfilter.nf_conntrack_tcp_timeout_established "
                       f"= {want_est}",
        ))
    if generic is not None and generic > want_gen:
        out.append(TIMEOUT_LONG.finding(
            f"nf_conntrack_generic_timeout is {generic} s in {place}: flows of protocols "
            f"conntrack does not know (GRE without helper, ESP ...) stay that long. For a {role}, "
            f"{want_gen} s; trade-off: tunnels idle longer than that need keepalives",
            key="net.netfilter.nf_conntrack_generic_timeout",
            severity=Severity.WARNING if busy else Severity.INFO,
            evidence={"value": generic, "recommended": want_gen, "role": role},
            suggestion=f"# {SYSCTL_FILE}\nnet.netfilter.nf_conntrack_generic_timeout = {want_gen}",
        ))
    return out


def evaluate_log(summary: LogSummary, inode: int | None, own_netns: str | None,
                 names: dict[int, str], drop: int | None, full_now: bool) -> list[Finding]:
    """Findings from the kernel log. ``inode`` None means the initial namespace."""
    out: list[Finding] = []
    mine = summary.for_netns(inode)
    others = {(names.get(ns, str(ns)) if ns is not None else "initial"): n
              for ns, n in summary.by_netns.items() if ns != inode}
    sources = [f"{s.source} ({s.table_full})" for s in summary.sources if s.table_full]
    if mine:
        place = f"namespace {own_netns}" if own_netns else "the initial namespace"
        drop_txt = (f"; the `drop` counter says {drop} packets" if drop is not None else "")
        out.append(LOG_TABLE_FULL.finding(
            f"kernel log: {mine} 'table full, dropping packet' lines for {place}, first "
            f"{summary.first or '?'}, last {summary.last or '?'}. The log undercounts: the "
            f"kernel rate-limits these warnings (it folded {summary.suppressed} messages into "
            f"'callbacks suppressed' notices){drop_txt}",
            key="kernel-log",
            severity=Severity.WARNING if full_now else Severity.INFO,
            evidence={"lines": mine, "first": summary.first, "last": summary.last,
                      "suppressed": summary.suppressed, "sources": sources,
                      "other_namespaces": others,
                      "examples": [e for s in summary.sources for e in s.examples][:3]},
            suggestion=None if not full_now else
            "# size the table: hostnet conntrack size\nnet.netfilter.nf_conntrack_max = "
            "(see CT101)",
        ))
    if summary.expect_full:
        out.append(EXPECT_FULL.finding(
            f"kernel log: {summary.expect_full} 'expectation table full' lines: connection "
            "helpers (FTP, SIP, ...) could not register related flows, so those data "
            "connections fail",
            key="net.netfilter.nf_conntrack_expect_max",
            evidence={"lines": summary.expect_full, "sources": sources},
            suggestion=f"# {SYSCTL_FILE} (initial namespace)\n"
                       "net.netfilter.nf_conntrack_expect_max = 4096",
        ))
    return out


# -- checks (what the doctor runner calls) -----------------------------------------------------


def check_table(s: Subject) -> list[Finding]:
    """Usage, counters, buckets, composition and sizing for the namespace."""
    obs = observation(s)
    return [] if obs is None else evaluate(obs)


def check_kernel_log(s: Subject) -> list[Finding]:
    """'table full' and 'expectation table full' in the kernel log (when it was scanned)."""
    summary = s.host.log
    if summary is None:
        return []
    inode = s.ns.inode if s.ns.is_child else None
    ct = s.ns.conntrack
    usage = ct.usage if ct is not None else None
    drop = ct.counter("drop") if ct is not None else None
    return evaluate_log(summary, inode, s.ns.netns, s.host.namespace_names, drop,
                        usage is not None and usage >= ERROR_USAGE)


def check_timeouts(s: Subject) -> list[Finding]:
    ct = s.ns.conntrack
    return evaluate_timeouts(
        s.role_name, s.ns.integer("net.netfilter.nf_conntrack_tcp_timeout_established"),
        s.ns.integer("net.netfilter.nf_conntrack_generic_timeout"),
        ct.usage if ct is not None else None, s.ns.netns)


CHECKS = (check_table, check_kernel_log, check_timeouts)
