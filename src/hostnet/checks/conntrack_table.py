"""The conntrack table's size, limit and counters (codes CT101-CT107).

The headline problem: ``nf_conntrack: table full, dropping packet`` floods the kernel log and
new connections die. Judged from the observed namespace's :class:`ConntrackView`:
``nf_conntrack_count`` (this namespace's own count) against ``nf_conntrack_max`` (global; a
child namespace shows a read-only copy) and ``nf_conntrack_buckets``; the counters of
``/proc/net/stat/nf_conntrack`` (``conntrack -S`` without conntrack procfs), with rates from
interval sampling, the previous run's reading or watch's previous interval.

:func:`evaluate_table` is also what ``hostnet watch`` applies to its live readings.
"""

from __future__ import annotations

from typing import Any

from hostnet.checks.base import Subject
from hostnet.errors import SizingError
from hostnet.findings import Finding, Rule, Severity
from hostnet.model.conntrack import USAGE_CRITICAL, USAGE_WARNING, Composition
from hostnet.model.host import ConntrackView, KernelInfo

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


def place(netns: str | None) -> str:
    return f"namespace {netns}" if netns else "this host (initial namespace)"


def _sizing_fix(ct: ConntrackView, kernel: KernelInfo,
                netns: str | None) -> tuple[str | None, dict[str, Any]]:
    if not kernel.mem_total:
        return None, {}
    from hostnet.conntrack.sizing import SizingInput, recommend  # only when the table is busy

    try:
        sizing = recommend(SizingInput(
            mem_bytes=kernel.mem_total, cpus=max(kernel.cpus, 1), kernel=kernel.version,
            current_max=ct.max, current_buckets=ct.buckets, count=ct.count or 0,
            peak=ct.peak, entry_bytes=ct.entry_bytes,
        ))
    except SizingError as exc:
        # the load does not fit in memory: no size to propose, find what fills the table
        text = (f"# no larger table fits in this machine's memory: {exc.message}\n"
                "# find what fills it: hostnet conntrack top --by src")
        return text, {"sizing_error": exc.message}
    text = sizing.suggestion()
    if ct.child_namespace or netns is not None:
        text = ("# nf_conntrack_max and buckets are global: set them on the host "
                "(initial namespace)\n" + text)
    return text, {"recommended_max": sizing.max, "recommended_buckets": sizing.buckets,
                  "recommended_memory_mib": round(sizing.memory_bytes / (1 << 20), 1),
                  "sizing_steps": list(sizing.steps)}


def _rate_text(ct: ConntrackView, name: str) -> str:
    rate = ct.rate(name)
    if rate is None:
        return "rate unknown (no previous reading; run again, or use an interval)"
    return f"{rate:.1f}/s over the last {ct.rate_seconds or 0:.0f} s ({ct.rate_source})"


def composition_text(comp: Composition) -> str:
    total = comp.entries
    if not total:
        return ""
    states = ", ".join(f"{k} {v}" for k, v in list(comp.by_state.items())[:4])
    srcs = ", ".join(f"{a.address} {a.count}" for a in comp.top_src[:3])
    return (f" Composition: {states}; unreplied {comp.unreplied / total:.0%}, "
            f"assured {comp.assured / total:.0%}; top sources: {srcs}.")


def evaluate_table(ct: ConntrackView, kernel: KernelInfo, netns: str | None = None,
                   comp: Composition | None = None) -> list[Finding]:
    """Findings about usage, counters and buckets (pure). ``netns`` None: the initial
    namespace; ``comp`` adds the composition to the messages when the table was walked."""
    out: list[Finding] = []
    where = place(netns)
    usage = ct.usage
    drop = ct.counter("drop") or 0
    early = ct.counter("early_drop") or 0
    drop_rate = ct.rate("drop")
    early_rate = ct.rate("early_drop")
    drops_rising = bool(drop_rate)
    early_rising = bool(early_rate)
    base: dict[str, Any] = {
        "namespace": netns or "initial", "nf_conntrack_count": ct.count,
        "nf_conntrack_max": ct.max, "nf_conntrack_buckets": ct.buckets,
        "usage": None if usage is None else round(usage, 4), "drop": drop, "early_drop": early,
        "counters_from": ct.stats_source or None,
    }
    if drop_rate is not None:
        base["drop_rate_per_s"] = round(drop_rate, 3)
    if early_rate is not None:
        base["early_drop_rate_per_s"] = round(early_rate, 3)
    if ct.previous_age_s is not None:
        base["previous_reading_age_s"] = ct.previous_age_s
    comp_text = composition_text(comp) if comp else ""
    if comp:
        base["composition"] = comp.to_dict()

    full = usage is not None and (usage >= USAGE_CRITICAL or
                                  (drops_rising and usage >= USAGE_WARNING))
    if usage is not None and full:
        fix, extra = _sizing_fix(ct, kernel, netns)
        if drops_rising or (drop and drop_rate is None):
            what = (f"the kernel dropped {drop} packets of new flows (counter "
                    f"`drop`, {_rate_text(ct, 'drop')}): new connections are refused")
        elif early_rising or (early and early_rate is None):
            what = (f"no packets dropped; the kernel is evicting unassured entries instead "
                    f"(`early_drop` {early}, {_rate_text(ct, 'early_drop')})")
        else:
            what = "the next burst of new flows will be refused"
        out.append(TABLE_FULL.finding(
            f"conntrack table in {where} is {usage:.0%} full ({ct.count}/{ct.max}): "
            f"{what}.{comp_text}",
            key="net.netfilter.nf_conntrack_max", evidence={**base, **extra}, suggestion=fix,
        ))
    elif usage is not None and usage >= USAGE_WARNING:
        fix, extra = _sizing_fix(ct, kernel, netns)
        out.append(USAGE_HIGH.finding(
            f"conntrack table in {where} is {usage:.0%} full ({ct.count}/{ct.max}); "
            f"at {USAGE_CRITICAL:.0%} it is one burst away from refusing new flows.{comp_text}",
            key="net.netfilter.nf_conntrack_max", evidence={**base, **extra}, suggestion=fix,
        ))
    if drop:
        out.append(_drops(ct, kernel, netns, base, drop, full))
    if early:
        out.append(_early_drops(ct, where, base, early))
    out.extend(_insert_and_chains(ct, kernel, netns, base))
    return out


def _drops(ct: ConntrackView, kernel: KernelInfo, netns: str | None, base: dict[str, Any],
           drop: int, full: bool) -> Finding:
    where = place(netns)
    usage = ct.usage
    drop_rate = ct.rate("drop")
    meaning = COUNTER_MEANING["drop"]
    if drop_rate and full:
        sev, msg = Severity.ERROR, (
            f"{drop} packets dropped in {where} ({meaning}), still rising: "
            f"{_rate_text(ct, 'drop')}")
    elif drop_rate:
        sev, msg = Severity.WARNING, (
            f"{drop} packets dropped in {where} ({meaning}), some since the previous "
            f"reading ({_rate_text(ct, 'drop')}) although the table is "
            f"{usage or 0:.0%} full now: it fills in bursts")
    elif drop_rate is None and usage is not None and usage >= USAGE_CRITICAL:
        sev, msg = Severity.ERROR, (
            f"{drop} packets dropped in {where} ({meaning}); the table is full now, "
            "so they are most likely still happening")
    else:
        since = ("none since the previous reading "
                 f"{ct.rate_seconds or 0:.0f} s ago" if drop_rate is not None else
                 "rate unknown; the table is not full now")
        sev, msg = Severity.INFO, (
            f"history: {drop} packets were dropped in {where} since the counters "
            f"started ({meaning}); {since}")
    fix, _ = _sizing_fix(ct, kernel, netns) if sev is not Severity.INFO else (None, {})
    return DROPS.finding(msg, key="drop", severity=sev, evidence=dict(base), suggestion=fix)


def _early_drops(ct: ConntrackView, where: str, base: dict[str, Any], early: int) -> Finding:
    usage = ct.usage
    early_rate = ct.rate("early_drop")
    meaning = COUNTER_MEANING["early_drop"]
    flood = "; a table full of unreplied flows looks like a flood or scan"
    if early_rate:
        sev, msg = Severity.WARNING, (
            f"{early} unassured entries evicted in {where} ({meaning}), "
            f"{_rate_text(ct, 'early_drop')}{flood}")
    elif early_rate is None and usage is not None and usage >= USAGE_CRITICAL:
        sev, msg = Severity.WARNING, (
            f"{early} unassured entries evicted in {where} ({meaning}) with the table "
            f"full now{flood}")
    else:
        sev, msg = Severity.INFO, (
            f"history: {early} unassured entries were evicted in {where} "
            f"({meaning}); not rising now")
    return EARLY_DROPS.finding(
        msg, key="early_drop", severity=sev, evidence=dict(base),
        suggestion=("# find the sources: hostnet conntrack top --by src --unreplied\n"
                    "# a flood from few sources gets a per-source limit (CT109); long UDP "
                    "timeouts are CT112"
                    if sev is not Severity.INFO else None),
    )


def _insert_and_chains(ct: ConntrackView, kernel: KernelInfo, netns: str | None,
                       base: dict[str, Any]) -> list[Finding]:
    out: list[Finding] = []
    where = place(netns)
    failed = ct.counter("insert_failed") or 0
    clash = ct.counter("clash_resolve") or 0
    if failed:
        rising = bool(ct.rate("insert_failed"))
        out.append(INSERT_FAILED.finding(
            f"{failed} conntrack insertions failed in {where} "
            f"({COUNTER_MEANING['insert_failed']}); {clash} clashes were resolved. Typical "
            "cause: parallel UDP queries (DNS A and AAAA) from one socket through NAT",
            key="insert_failed", severity=Severity.WARNING if rising else Severity.INFO,
            evidence={**base, "insert_failed": failed, "clash_resolve": clash,
                      "insert_failed_rate": ct.rate("insert_failed")},
            suggestion="# /etc/resolv.conf (glibc resolvers)\noptions single-request-reopen",
        ))
    chain = ct.counter("chaintoolong") or 0
    if chain:
        fix, extra = _sizing_fix(ct, kernel, netns)
        out.append(CHAIN_TOO_LONG.finding(
            f"{chain} insertions refused in {where} because a hash chain grew too long "
            f"({ct.buckets} buckets for {ct.count} entries): too few buckets for the load",
            key="net.netfilter.nf_conntrack_buckets", evidence={**base, "chaintoolong": chain,
                                                               **extra},
            suggestion=fix,
        ))
    elif ct.max and ct.buckets and ct.max > 4 * ct.buckets:
        from hostnet.conntrack.sizing import MAX_BUCKETS

        want = min(ct.max, MAX_BUCKETS)
        out.append(HASH_UNDERSIZED.finding(
            f"nf_conntrack_max {ct.max} is {ct.max / ct.buckets:.0f}x the {ct.buckets} "
            "buckets: when the table fills, every lookup walks long chains",
            key="net.netfilter.nf_conntrack_buckets", evidence=dict(base),
            suggestion=(f"# {SYSCTL_FILE}\nnet.netfilter.nf_conntrack_buckets = {want}\n"
                        f"# {MODPROBE_FILE}\noptions nf_conntrack hashsize={want}"),
        ))
    return out


def check_table(s: Subject) -> list[Finding]:
    """Usage, counters, buckets and sizing for the namespace."""
    ct = s.ns.conntrack
    if ct is None:
        return []
    return evaluate_table(ct, s.host.kernel, s.ns.label if s.ns.is_child else None,
                          s.ns.composition)


CHECKS = (check_table,)
