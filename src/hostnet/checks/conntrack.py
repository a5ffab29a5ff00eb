"""Conntrack diagnosis for ``hostnet doctor`` (codes CT1xx).

The headline problem: ``nf_conntrack: table full, dropping packet`` floods the kernel log and
new connections die. The checks read, in the namespace the runner put us in:

* ``nf_conntrack_count`` (this namespace's own count) against ``nf_conntrack_max`` (global;
  a child namespace shows a read-only copy), and ``nf_conntrack_buckets``;
* the counters of ``/proc/net/stat/nf_conntrack`` (``conntrack -S`` when the kernel has no
  conntrack procfs); rates per second from ``ctx.interval`` sampling or the previous reading
  kept in ``ctx.state_dir`` (:mod:`hostnet.state.history`);
* the kernel log (ring buffer, journal, kern.log/syslog/messages and rotations), skipped on
  the cheap path (``ctx.composition`` False);
* the table composition (:func:`hostnet.conntrack.top.composition`) when usage is high and
  ``ctx.composition`` is True;
* the TCP established and generic timeouts, against the role.

Facts recorded with ``ctx.fact`` (for JSON output and ``--nagios`` perfdata):

``conntrack_count``       entries in this namespace's table
``conntrack_max``         the limit (global nf_conntrack_max)
``conntrack_buckets``     hash buckets
``conntrack_usage``       count / max, 0..1
``conntrack_drop``        packets dropped because the table was full (counter, since the
                          namespace or module came up)
``conntrack_early_drop``  unassured entries evicted to make room (counter)
``conntrack_insert_failed`` entries that lost an insertion race (counter)
``conntrack_drop_rate``, ``conntrack_early_drop_rate``  per second, when a previous reading or
                          an interval made them known
``conntrack_rate_source`` ``interval`` or ``previous run``
``conntrack_peak``        highest count seen (history)
``conntrack_log_events``  'table full' log lines for this namespace (lower bound)
``conntrack_log_events_all``  'table full' log lines for every namespace
``conntrack_composition`` the composition summary, when it was computed
``conntrack_recommended_max``, ``conntrack_recommended_buckets``  sizing when usage is high
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from hostnet.checks.context import Context
from hostnet.conntrack.logscan import LogSummary
from hostnet.conntrack.sizing import SizingInput, recommend, slab_entry_bytes
from hostnet.conntrack.stats import ConntrackStats, StatsFormatError, parse_stats
from hostnet.findings import Finding, Rule, Severity

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

WARN_USAGE = 0.75
ERROR_USAGE = 0.90
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


# -- reading -----------------------------------------------------------------------------------


def parse_conntrack_s(text: str) -> ConntrackStats:
    """``conntrack -S`` output (``cpu=N found=.. drop=.. ...`` per CPU) summed over CPUs."""
    sums: dict[str, int] = {}
    cpus = 0
    for line in text.splitlines():
        fields = dict(p.split("=", 1) for p in line.split() if "=" in p)
        if "cpu" not in fields:
            continue
        cpus += 1
        for name, value in fields.items():
            if name == "cpu":
                continue
            try:
                sums[name] = sums.get(name, 0) + int(value)
            except ValueError:
                continue
    if not cpus:
        raise StatsFormatError("no 'cpu=' lines in conntrack -S output")
    return ConntrackStats(entries=0, counters=sums, header=tuple(sums), cpus=cpus)


def read_stats(ctx: Context) -> tuple[ConntrackStats | None, str]:
    text = ctx.root.read_text("proc/net/stat/nf_conntrack")
    if text is not None:
        try:
            return parse_stats(text), "/proc/net/stat/nf_conntrack"
        except StatsFormatError as exc:
            ctx.unreadable.append(f"/proc/net/stat/nf_conntrack: {exc}")
    out = ctx.root.command_output("conntrack-S", ["conntrack", "-S"])
    if out is not None:
        try:
            return parse_conntrack_s(out), "conntrack -S"
        except StatsFormatError as exc:
            ctx.unreadable.append(f"conntrack -S: {exc}")
    return None, ""


def counter(stats: ConntrackStats | None, name: str) -> int | None:
    return None if stats is None else stats.get(name)


def _first_int(ctx: Context, *keys: str) -> int | None:
    for key in keys:
        value = ctx.sysctl_int(key)
        if value is not None:
            return value
    return None


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


def _namespace_inode() -> int | None:
    from hostnet.host.netns import netns_inode

    return netns_inode()


def observe(ctx: Context) -> Observation | None:
    """Read the table figures; None when conntrack is not loaded here."""
    count = _first_int(ctx, "net.netfilter.nf_conntrack_count",
                       "net.ipv4.netfilter.ip_conntrack_count")
    limit = _first_int(ctx, "net.netfilter.nf_conntrack_max", "net.nf_conntrack_max",
                       "net.ipv4.netfilter.ip_conntrack_max")
    buckets = _first_int(ctx, "net.netfilter.nf_conntrack_buckets",
                         "net.ipv4.netfilter.ip_conntrack_buckets")
    if buckets is None:
        param = ctx.root.module_params("nf_conntrack").get("hashsize")
        buckets = int(param) if param and param.isdigit() else None
    stats, source = read_stats(ctx)
    if count is None and limit is None and stats is None:
        return None
    if count is None and stats is not None and stats.entries:
        count = stats.entries
    writable = ctx.root.sysctl_writable("net.netfilter.nf_conntrack_max")
    obs = Observation(
        count=count, max=limit, buckets=buckets, stats=stats, stats_source=source,
        netns=ctx.netns, child_namespace=ctx.netns is not None or writable is False,
        mem_bytes=ctx.root.mem_total or 0, cpus=ctx.root.cpu_count,
        kernel=ctx.root.kernel_version if ctx.root.osrelease else (6, 0, 0),
    )
    try:
        slab = ctx.root.read_text("proc/slabinfo")
    except PermissionError:
        slab = None  # root only: the sizing then assumes a typical entry size
    if slab:
        obs.entry_bytes = slab_entry_bytes(slab)
    if stats is not None and ctx.interval:
        time.sleep(ctx.interval)
        again, _ = read_stats(ctx)
        if again is not None:
            from hostnet.conntrack.stats import rates

            obs.rates = rates(stats, again, ctx.interval)
            obs.rate_seconds = ctx.interval
            obs.rate_source = "interval"
            obs.stats = stats = again
            now_count = ctx.root.sysctl_int("net.netfilter.nf_conntrack_count")
            if now_count is not None:
                obs.count = count = now_count
    obs.peak = count or 0
    if ctx.state_dir is not None and stats is not None:
        _use_history(ctx, obs, stats)
    return obs


def _use_history(ctx: Context, obs: Observation, stats: ConntrackStats) -> None:
    from hostnet.state import history

    assert ctx.state_dir is not None
    inode = _namespace_inode() if ctx.root.is_live else None
    previous = history.load(ctx.state_dir, ctx.netns, inode)
    now = history.Reading(time=time.time(), count=obs.count or 0,
                          counters=dict(stats.counters), inode=inode)
    if previous is not None:
        obs.extra["previous_reading_age_s"] = round(now.time - previous.time, 1)
        if obs.rates is None:
            got = history.rates(previous, now)
            if got is not None:
                obs.rates = got
                obs.rate_seconds = now.time - previous.time
                obs.rate_source = "previous run"
    merged = history.merge(previous, now)
    obs.peak = merged.peak
    try:
        history.save(ctx.state_dir, ctx.netns, merged)
    except OSError as exc:
        ctx.unreadable.append(f"{ctx.state_dir}: cannot keep counter history ({exc.strerror})")


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


def _composition(ctx: Context) -> dict[str, Any] | None:
    try:
        from hostnet.conntrack.top import composition
        from hostnet.host.conntrack_source import open_table
    except ImportError:
        ctx.unreadable.append("conntrack table composition (module not available)")
        return None
    from hostnet.errors import HostnetError

    try:
        with open_table(ctx.root) as table:
            return composition(table.chunks, limit=5).to_dict()
    except HostnetError as exc:
        ctx.unreadable.append(f"conntrack table: {exc.message}")
        return None


def _record_facts(ctx: Context, obs: Observation) -> None:
    ctx.fact("conntrack_count", obs.count)
    ctx.fact("conntrack_max", obs.max)
    ctx.fact("conntrack_buckets", obs.buckets)
    usage = obs.usage
    ctx.fact("conntrack_usage", None if usage is None else round(usage, 6))
    ctx.fact("conntrack_drop", counter(obs.stats, "drop"))
    ctx.fact("conntrack_early_drop", counter(obs.stats, "early_drop"))
    ctx.fact("conntrack_insert_failed", counter(obs.stats, "insert_failed"))
    ctx.fact("conntrack_peak", obs.peak)
    if obs.rates is not None:
        ctx.fact("conntrack_drop_rate", obs.rate("drop"))
        ctx.fact("conntrack_early_drop_rate", obs.rate("early_drop"))
        ctx.fact("conntrack_rate_source", obs.rate_source)


def check_table(ctx: Context) -> Iterator[Finding]:
    """Usage, counters, buckets, composition and sizing for the current namespace."""
    obs = observe(ctx)
    if obs is None:
        return
    _record_facts(ctx, obs)
    usage = obs.usage
    if ctx.composition and usage is not None and usage >= WARN_USAGE:
        obs.composition = _composition(ctx)
        if obs.composition is not None:
            ctx.fact("conntrack_composition", obs.composition)
    findings = evaluate(obs)
    for f in findings:
        if f.code in (TABLE_FULL.code, USAGE_HIGH.code) and "recommended_max" in f.evidence:
            ctx.fact("conntrack_recommended_max", f.evidence["recommended_max"])
            ctx.fact("conntrack_recommended_buckets", f.evidence["recommended_buckets"])
    yield from findings


_LOG_CACHE: dict[str, tuple[float, LogSummary]] = {}
LOG_CACHE_SECONDS = 30.0


def kernel_log(ctx: Context) -> LogSummary:
    """Scan every log source once per root within LOG_CACHE_SECONDS (--all-netns reuses it)."""
    from hostnet.host.kernlog import scan_all

    key = str(ctx.root.path)
    hit = _LOG_CACHE.get(key)
    if hit is not None and time.monotonic() - hit[0] < LOG_CACHE_SECONDS:
        return hit[1]
    summary = scan_all(ctx.root)
    _LOG_CACHE[key] = (time.monotonic(), summary)
    return summary


def check_kernel_log(ctx: Context) -> Iterable[Finding]:
    """'table full' and 'expectation table full' in the kernel log (skipped on the cheap path)."""
    if not ctx.composition:
        return []
    summary = kernel_log(ctx)
    ctx.fact("conntrack_log_events_all", summary.table_full)
    inode: int | None = None
    names: dict[int, str] = {}
    if ctx.root.is_live:
        from hostnet.host.kernlog import namespace_inodes

        names = namespace_inodes()
        if ctx.netns is not None:
            inode = _namespace_inode()
    ctx.fact("conntrack_log_events", summary.for_netns(inode))
    usage = ctx.facts.get("conntrack_usage")
    full_now = isinstance(usage, float) and usage >= ERROR_USAGE
    drop = ctx.facts.get("conntrack_drop")
    return evaluate_log(summary, inode, ctx.netns, names,
                        drop if isinstance(drop, int) else None, full_now)


def check_timeouts(ctx: Context) -> Iterable[Finding]:
    established = ctx.sysctl_int("net.netfilter.nf_conntrack_tcp_timeout_established")
    generic = ctx.sysctl_int("net.netfilter.nf_conntrack_generic_timeout")
    usage = ctx.facts.get("conntrack_usage")
    return evaluate_timeouts(ctx.role, established, generic,
                             usage if isinstance(usage, float) else None, ctx.netns)


CHECKS = (check_table, check_kernel_log, check_timeouts)
