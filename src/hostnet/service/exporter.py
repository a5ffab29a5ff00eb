"""Prometheus metrics for conntrack, read from the kernel at scrape time.

The collector never walks the conntrack table: per namespace it reads three small files
(``nf_conntrack_count``, ``nf_conntrack_max`` and ``/proc/net/stat/nf_conntrack``), so a
scrape costs the same with 10 or 1,000,000 entries (bench/results/exporter.md).

Metric families:

* node_exporter compatible, for the namespace the exporter runs in and without labels, so
  dashboards and alerts written for node_exporter work unchanged: ``node_nf_conntrack_entries``,
  ``node_nf_conntrack_entries_limit`` and ``node_nf_conntrack_stat_{found,invalid,ignore,
  insert,insert_failed,drop,early_drop,search_restart}``. node_exporter exposes the stat
  counters as *gauges* without a ``_total`` suffix; they are exposed the same way here.
  (Leave them out with ``--no-node-metrics`` when node_exporter runs on the same host.)
* hostnet's own, with a ``netns`` label (``initial`` is the namespace the exporter runs in):
  ``hostnet_conntrack_entries``, ``hostnet_conntrack_usage_ratio``,
  ``hostnet_conntrack_stat_total{counter=...}`` (every column of the stat file summed over
  CPUs, renamed columns under their current names: ``clashres`` -> ``clash_resolve``,
  ``chainlength`` -> ``chaintoolong``), ``hostnet_conntrack_limit`` (global),
  ``hostnet_findings{severity}`` (doctor's cheap checks), ``hostnet_kernel_log_table_full_
  events_total``, ``hostnet_namespaces_skipped`` (named namespaces this scrape could not
  enter: without CAP_SYS_ADMIN the exporter serves what it can read and counts the rest) and
  ``hostnet_scrape_duration_seconds``.

Threads: prometheus_client answers each scrape in a server thread. ``setns`` moves only the
calling thread, and ``/proc/net`` is a link to ``/proc/self/net``, which shows the namespace
of the process's *main* thread; a server thread must read ``/proc/thread-self/net`` instead
(checked in tests/kernel/test_exporter_kernel.py). The doctor's checks read ``/proc/net``, so
the slow families (findings, kernel log) are refreshed by the main thread (:func:`serve`) and
scrapes only read the cached result.
"""

from __future__ import annotations

import ipaddress
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from hostnet.conntrack.stats import StatsFormatError, parse_stats
from hostnet.errors import HostnetError, NamespaceError, UsageError
from hostnet.host.root import Root
from hostnet.model.conntrack import ALIASES, ConntrackStats, Reading

DEFAULT_LISTEN = "127.0.0.1:9469"
INITIAL = "initial"
#: node_exporter's stat gauges, in its order (collector/conntrack_linux.go).
NODE_STATS: tuple[str, ...] = (
    "found", "invalid", "ignore", "insert", "insert_failed", "drop", "early_drop",
    "search_restart",
)
NODE_STAT_HELP = {
    "found": "Number of searched entries which were successful.",
    "invalid": "Number of packets seen which can not be tracked.",
    "ignore": "Number of packets seen which are already connected to a conntrack entry.",
    "insert": "Number of entries inserted into the list.",
    "insert_failed": "Number of entries for which list insertion was attempted but failed.",
    "drop": "Number of packets dropped due to conntrack failure.",
    "early_drop": "Number of dropped conntrack entries to make room for new ones, if maximum "
    "table size was reached.",
    "search_restart": "Number of conntrack table lookups which had to be restarted due to "
    "hashtable resizes.",
}
SEVERITIES = ("error", "warning", "info")
STAT_FILES = ("proc/thread-self/net/stat/nf_conntrack", "proc/net/stat/nf_conntrack")


# -- reading (through a Root, in whatever namespace the calling thread is in) ----------------


#: One namespace's table figures at one moment: the shared reading type.
TableSample = Reading


def read_stats(root: Root) -> ConntrackStats | None:
    """The stat file of the calling thread's namespace (``conntrack -S`` without procfs)."""
    for rel in STAT_FILES if root.is_live else STAT_FILES[1:]:
        text = root.read_text(rel)
        if text is None:
            continue
        try:
            return parse_stats(text)
        except StatsFormatError:
            continue
    out = root.command_output("conntrack-S", ["conntrack", "-S"], timeout=5)
    if out is None:
        return None
    from hostnet.conntrack.stats import parse_conntrack_s

    try:
        return parse_conntrack_s(out)
    except StatsFormatError:
        return None


def read_sample(root: Root, netns: str | None = None) -> TableSample:
    """Read the current namespace's table figures (the caller entered ``netns``)."""
    entries = root.sysctl_int("net.netfilter.nf_conntrack_count")
    limit = root.sysctl_int("net.netfilter.nf_conntrack_max")
    buckets = root.sysctl_int("net.netfilter.nf_conntrack_buckets")
    stats = read_stats(root)
    counters: dict[str, int] = {}
    if stats is not None:
        counters = {ALIASES.get(k, k): v for k, v in stats.counters.items()}
        if entries is None:
            entries = stats.entries
    return Reading(time.monotonic(), entries, counters, limit=limit, buckets=buckets,
                   netns=netns)


def _sample(name: str | None) -> TableSample:
    from hostnet.host.netns import entered

    with entered(name):
        return read_sample(Root("/"), name)


def sample_namespace(name: str | None) -> TableSample | None:
    """Enter ``name`` (None: stay) and read it; None when the namespace is gone."""
    try:
        return _sample(name)
    except NamespaceError:
        return None


@dataclass(frozen=True, slots=True)
class Targets:
    """Which namespaces to read: the one we run in, plus named ones or all named ones."""

    names: tuple[str, ...] = ()
    all_named: bool = False
    include_own: bool = True

    def resolve(self) -> list[str | None]:
        from hostnet.host.netns import list_named

        out: list[str | None] = [None] if self.include_own else []
        named = list_named() if self.all_named else list(self.names)
        out.extend(n for n in named if n is not None)
        return out


@dataclass
class Scrape:
    """One reading of every target: the samples, and the namespaces that could not be read
    (not entered for lack of CAP_SYS_ADMIN, or failing otherwise; vanished ones are neither)."""

    samples: list[TableSample] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def read_targets(targets: Targets) -> Scrape:
    """Read every target namespace; never raises for one namespace's trouble."""
    from hostnet.host.netns import NETNS_RUN_DIR

    out = Scrape()
    for name in targets.resolve():
        try:
            out.samples.append(_sample(name))
        except NamespaceError:
            if name is not None and os.path.lexists(os.path.join(NETNS_RUN_DIR, name)):
                out.skipped.append(name)  # there, but not enterable
        except (HostnetError, OSError):  # PermissionDenied: no CAP_SYS_ADMIN for setns
            out.skipped.append(name or INITIAL)
    return out


def sample_all(targets: Targets) -> list[TableSample]:
    """Read every target namespace; namespaces that vanished or cannot be read are left out."""
    return read_targets(targets).samples


# -- adapters to the doctor and the kernel log (slow; refreshed off the scrape path) ----------


def doctor_summary(netns: Sequence[str | None]) -> dict[str, int]:
    """Findings per severity from doctor's cheap checks over ``netns`` (must run on the main
    thread: the checks read /proc/net)."""
    from hostnet.service.doctor import run

    report = run(netns=list(netns), composition=False, skip_denied=True)
    counts = dict.fromkeys(SEVERITIES, 0)
    counts.update(report.summary())
    return counts


def log_table_full_events() -> int:
    """'table full' lines the kernel ring buffer and journal hold (all namespaces)."""
    from hostnet.observe.kernlog import scan_all

    return scan_all(Root("/"), files=False).table_full


@dataclass
class SlowCache:
    """Results of the slow adapters, written by one thread and read by the scrapes."""

    findings: dict[str, int] | None = None
    log_events: int | None = None
    refreshed: float | None = None  # time.monotonic()
    errors: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def refresh(
        self,
        netns: Sequence[str | None],
        findings: Callable[[Sequence[str | None]], dict[str, int]] = doctor_summary,
        log_events: Callable[[], int] = log_table_full_events,
    ) -> None:
        got_findings: dict[str, int] | None = None
        got_log: int | None = None
        errors: dict[str, str] = {}
        try:
            got_findings = findings(netns)
        except (HostnetError, OSError, ImportError) as exc:
            errors["findings"] = getattr(exc, "message", None) or str(exc)
        try:
            got_log = log_events()
        except (HostnetError, OSError, ImportError) as exc:
            errors["kernel_log"] = getattr(exc, "message", None) or str(exc)
        with self.lock:
            if got_findings is not None or "findings" in errors:
                self.findings = got_findings
            if got_log is not None or "kernel_log" in errors:
                self.log_events = got_log
            self.errors = errors
            self.refreshed = time.monotonic()

    def snapshot(self) -> tuple[dict[str, int] | None, int | None]:
        with self.lock:
            return (dict(self.findings) if self.findings is not None else None,
                    self.log_events)


# -- metric families (pure: plain data in, prometheus_client families out) -------------------


def families(
    samples: Sequence[TableSample],
    *,
    node_metrics: bool = True,
    findings: dict[str, int] | None = None,
    log_events: int | None = None,
    duration: float | None = None,
    skipped: int | None = None,
) -> list[Any]:
    """The metric families of one scrape."""
    from prometheus_client.core import (
        CounterMetricFamily,
        GaugeMetricFamily,
    )

    out: list[Any] = []
    own = next((s for s in samples if s.netns is None), None)
    if node_metrics and own is not None:
        if own.count is not None:
            out.append(GaugeMetricFamily(
                "node_nf_conntrack_entries",
                "Number of currently allocated flow entries for connection tracking.",
                value=own.count))
        if own.limit is not None:
            out.append(GaugeMetricFamily(
                "node_nf_conntrack_entries_limit",
                "Maximum size of connection tracking table.", value=own.limit))
        if own.counters:
            for name in NODE_STATS:
                out.append(GaugeMetricFamily(
                    f"node_nf_conntrack_stat_{name}", NODE_STAT_HELP[name],
                    value=own.counters.get(name, 0)))

    entries = GaugeMetricFamily(
        "hostnet_conntrack_entries",
        "Entries in the namespace's conntrack table (nf_conntrack_count).", labels=["netns"])
    usage = GaugeMetricFamily(
        "hostnet_conntrack_usage_ratio",
        "Entries divided by nf_conntrack_max (each namespace fills up to the global limit).",
        labels=["netns"])
    stats = CounterMetricFamily(
        "hostnet_conntrack_stat",
        "Conntrack event counters of /proc/net/stat/nf_conntrack summed over CPUs.",
        labels=["netns", "counter"])
    for s in samples:
        if s.count is not None:
            entries.add_metric([s.label], s.count)
        ratio = s.usage
        if ratio is not None:
            usage.add_metric([s.label], ratio)
        for name in sorted(s.counters):
            stats.add_metric([s.label, name], s.counters[name])
    out.extend([entries, usage, stats])
    limit = next((s.limit for s in samples if s.limit is not None), None)
    if limit is not None:
        out.append(GaugeMetricFamily(
            "hostnet_conntrack_limit", "nf_conntrack_max (global, shared by every namespace).",
            value=limit))
    if findings is not None:
        fam = GaugeMetricFamily(
            "hostnet_findings", "Findings of hostnet doctor's cheap checks, by severity.",
            labels=["severity"])
        for sev in SEVERITIES:
            fam.add_metric([sev], findings.get(sev, 0))
        out.append(fam)
    if log_events is not None:
        out.append(CounterMetricFamily(
            "hostnet_kernel_log_table_full_events",
            "'nf_conntrack: table full' lines in the kernel ring buffer and journal (a lower "
            "bound: the kernel rate-limits them; count drops with the drop counter).",
            value=log_events))
    if skipped is not None:
        out.append(GaugeMetricFamily(
            "hostnet_namespaces_skipped",
            "Namespaces this scrape could not read (entering a named one needs CAP_SYS_ADMIN); "
            "their hostnet_conntrack_* series are missing.", value=skipped))
    if duration is not None:
        out.append(GaugeMetricFamily(
            "hostnet_scrape_duration_seconds",
            "Seconds the hostnet collector spent reading the kernel for this scrape.",
            value=duration))
    return out


class HostnetCollector:
    """prometheus_client custom collector: reads the kernel on every ``collect``."""

    def __init__(
        self, targets: Targets, cache: SlowCache | None = None, *, node_metrics: bool = True
    ) -> None:
        self.targets = targets
        self.cache = cache
        self.node_metrics = node_metrics

    def describe(self) -> list[Any]:
        return []  # names depend on the host; no collect() at registration

    def collect(self) -> Iterator[Any]:
        start = time.perf_counter()
        scrape = read_targets(self.targets)
        found, log_events = self.cache.snapshot() if self.cache else (None, None)
        yield from families(
            scrape.samples, node_metrics=self.node_metrics, findings=found,
            log_events=log_events, duration=time.perf_counter() - start,
            skipped=len(scrape.skipped),
        )


def registry(collector: HostnetCollector) -> Any:
    from prometheus_client import CollectorRegistry

    reg = CollectorRegistry(auto_describe=False)
    reg.register(collector)
    return reg


# -- serving ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Listen:
    host: str
    port: int

    @property
    def loopback(self) -> bool:
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return self.host == "localhost"

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_listen(text: str) -> Listen:
    """``HOST:PORT``, ``[V6]:PORT`` or ``:PORT`` (every address)."""
    hint = "use HOST:PORT, e.g. 127.0.0.1:9469 or [::1]:9469"
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
        if not sep:
            raise UsageError(f"--listen {text!r}: missing ']:PORT'", hint=hint)
    else:
        host, sep, port = text.rpartition(":")
        if not sep:
            raise UsageError(f"--listen {text!r}: no port", hint=hint)
        if ":" in host:
            raise UsageError(f"--listen {text!r}: put an IPv6 address in brackets", hint=hint)
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--listen {text!r}: port must be 1-65535", hint=hint)
    host = host or "0.0.0.0"
    if host != "localhost":
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise UsageError(f"--listen {text!r}: {host!r} is not an IP address",
                             hint=hint) from None
    return Listen(host, int(port))


@dataclass
class ExporterConfig:
    listen: Listen
    targets: Targets
    node_metrics: bool = True
    #: Seconds between refreshes of findings and the kernel log count (0: never compute).
    slow_interval: float = 60.0


def serve(
    config: ExporterConfig,
    stop: threading.Event,
    ready: Callable[[Listen], None] | None = None,
) -> None:
    """Serve /metrics until ``stop`` is set. Call on the main thread (see module docs)."""
    from prometheus_client import start_http_server

    cache = SlowCache() if config.slow_interval > 0 else None
    collector = HostnetCollector(config.targets, cache, node_metrics=config.node_metrics)
    try:
        server, thread = start_http_server(
            config.listen.port, addr=config.listen.host, registry=registry(collector))
    except OSError as exc:
        raise UsageError(
            f"cannot listen on {config.listen}: {exc.strerror or exc}",
            hint="pick a free port with --listen HOST:PORT",
        ) from None
    try:
        if ready is not None:
            ready(config.listen)
        while not stop.is_set():
            if cache is not None:
                cache.refresh(config.targets.resolve())
                stop.wait(config.slow_interval)
            else:
                stop.wait(3600)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
