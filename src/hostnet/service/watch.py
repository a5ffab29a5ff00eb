"""The ``hostnet watch`` engine: read every watched namespace once per interval, keep the
readings, and build the view to draw (the terminal loop and drawing are in cli/ and render/).

Each step reads every namespace's count, limit and stat counters (cheap: three small files,
never the table) into the shared :class:`~hostnet.model.conntrack.Reading`, keeps them in a
:class:`~hostnet.conntrack.sampler.Sampler`, and applies the doctor's table evaluation
(:func:`hostnet.checks.conntrack_table.evaluate_table`) to them, so drops show up the
interval they happen. The table itself is walked for the top sources at most every
``TOP_EVERY`` seconds and only while it holds at most ``top_max_entries`` entries;
``step(force_top=True)`` walks it now whatever its size.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from hostnet.checks.conntrack_table import evaluate_table
from hostnet.conntrack.sampler import Sampler
from hostnet.conntrack.top import Top
from hostnet.errors import HostnetError
from hostnet.findings import Finding
from hostnet.model.conntrack import ConntrackStats, Reading
from hostnet.model.host import ConntrackView, KernelInfo
from hostnet.render.watch import NamespaceView, TopView, WatchView
from hostnet.service.exporter import Targets, sample_namespace

TOP_EVERY = 10.0
TOP_LIMIT = 5
HISTORY = 300  # readings kept per namespace (5 minutes at the default interval)


@dataclass
class NamespaceWatch:
    """What the engine keeps about one namespace between steps."""

    sampler: Sampler
    top: Top | None = None
    top_time: float | None = None
    top_note: str = ""


@dataclass
class Watcher:
    """Reads the namespaces and builds views. Owns no terminal: testable with --once."""

    targets: Targets
    interval: float = 1.0
    top_max_entries: int = 50_000
    states: dict[str | None, NamespaceWatch] = field(default_factory=dict)
    kernel: KernelInfo | None = None

    def __post_init__(self) -> None:
        if self.kernel is None:
            from hostnet.host.root import Root
            from hostnet.observe.host import observe_kernel

            self.kernel = observe_kernel(Root("/"))

    def step(self, *, force_top: bool = False) -> WatchView:
        """Read once and return the WatchView to draw."""
        views: list[NamespaceView] = []
        findings: list[Finding] = []
        now = time.monotonic()
        for name in self.targets.resolve():
            label = name or "initial"
            sample = sample_namespace(name)
            if sample is None:
                self.states.pop(name, None)
                views.append(NamespaceView(label, None, None, gone=True))
                continue
            state = self.states.get(name)
            if state is None:
                state = self.states[name] = NamespaceWatch(Sampler(HISTORY))
            sampler = state.sampler
            sampler.add(sample)
            self._maybe_top(name, state, sample.count or 0, now, force_top)
            findings.extend(self.findings(sample, sampler))
            readings = sampler.readings
            views.append(NamespaceView(
                label=label, entries=sample.count, limit=sample.limit, peak=sampler.peak,
                growth=sampler.growth(), rates=sampler.rates(),
                history=tuple(sampler.series("entries")),
                history_seconds=readings[-1].time - readings[0].time,
                top=self._top_view(state, now), top_note=state.top_note,
            ))
        return WatchView(tuple(views), tuple(findings), self.interval,
                         time.strftime("%H:%M:%S"))

    # -- top sources ----------------------------------------------------------------------
    def _maybe_top(self, name: str | None, state: NamespaceWatch, entries: int, now: float,
                   force: bool) -> None:
        due = state.top_time is None or now - state.top_time >= TOP_EVERY
        if not force and not due:
            return
        if not force and entries > self.top_max_entries:
            state.top_note = (f"table has {entries:,} entries (> {self.top_max_entries:,}): "
                              "press t to read it")
            return
        try:
            state.top = read_top(name)
            state.top_note = ""
        except HostnetError as exc:
            state.top_note = f"cannot read the table: {exc.message}"
        state.top_time = time.monotonic()

    @staticmethod
    def _top_view(state: NamespaceWatch, now: float) -> TopView | None:
        if state.top is None or state.top_time is None:
            return None
        rows = tuple((str(g.key[0]), g.count) for g in state.top.groups)
        return TopView(rows, state.top.entries, max(now - state.top_time, 0.0))

    # -- findings -------------------------------------------------------------------------
    def findings(self, sample: Reading, sampler: Sampler) -> list[Finding]:
        """The doctor's table findings on the latest reading (rates over the last interval)."""
        if sample.count is None and not sample.counters:
            return []
        readings = sampler.readings
        seconds = readings[-1].time - readings[-2].time if len(readings) > 1 else None
        view = ConntrackView(
            count=sample.count, max=sample.limit, buckets=sample.buckets,
            stats=ConntrackStats(sample.count or 0, dict(sample.counters))
            if sample.counters else None,
            stats_source="/proc/net/stat/nf_conntrack",
            rates=sampler.rates() if seconds else None, rate_seconds=seconds,
            rate_source="watch" if seconds else None, peak=sampler.peak,
            child_namespace=sample.netns is not None)
        assert self.kernel is not None
        return evaluate_table(view, self.kernel, sample.netns)


def read_top(name: str | None) -> Top:
    """Walk ``name``'s table once and group it by source address."""
    from hostnet.conntrack.top import top
    from hostnet.host.conntrack_source import open_table
    from hostnet.host.netns import entered
    from hostnet.host.root import Root

    with entered(name), open_table(Root("/")) as table:
        return top(table.chunks, "src", limit=TOP_LIMIT)
