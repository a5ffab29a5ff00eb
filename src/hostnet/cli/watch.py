"""``hostnet watch`` (also ``hostnet conntrack watch``): a live view of conntrack usage.

Each interval reads every watched namespace's count, limit and stat counters (cheap: three
small files, never the table), keeps them in a :class:`~hostnet.conntrack.sampler.Sampler`,
and redraws. The table itself is walked for the top sources at most every
``TOP_EVERY`` seconds and only while it holds at most ``--top-max-entries`` entries; ``t``
walks it now whatever its size. Findings are the doctor's conntrack evaluation applied to
the live readings, so drops show up the interval they happen.

Keys: ``q`` quits, ``t`` refreshes the top sources, Ctrl-C quits. The terminal is put in
cbreak mode (keys arrive without Enter, Ctrl-C still works) and restored on every exit path.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field, replace
from typing import Any

import click

from hostnet.errors import HostnetError, UsageError

TOP_EVERY = 10.0
TOP_LIMIT = 5
HISTORY = 300  # readings kept per namespace (5 minutes at the default interval)


@dataclass
class _NsState:
    sampler: Any
    top: Any = None  # hostnet.conntrack.top.Top
    top_time: float | None = None
    top_note: str = ""


@dataclass
class Watcher:
    """Reads the namespaces and builds views. Owns no terminal: testable with --once."""

    targets: Any  # hostnet.service.exporter.Targets
    interval: float = 1.0
    top_max_entries: int = 50_000
    states: dict[str | None, _NsState] = field(default_factory=dict)
    host: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from hostnet.host.root import Root

        root = Root("/")
        self.host = {"mem_bytes": root.mem_total or 0, "cpus": root.cpu_count,
                     "kernel": root.kernel_version}

    def step(self, *, force_top: bool = False) -> Any:
        """Read once and return the WatchView to draw."""
        from hostnet.conntrack.sampler import Reading, Sampler
        from hostnet.render.watch import NamespaceView, WatchView
        from hostnet.service.exporter import sample_namespace

        views: list[NamespaceView] = []
        findings: list[Any] = []
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
                state = self.states[name] = _NsState(Sampler(HISTORY))
            sampler = state.sampler
            sampler.add(Reading(sample.time, sample.entries or 0, sample.limit,
                                dict(sample.counters)))
            self._maybe_top(name, state, sample.entries or 0, now, force_top)
            findings.extend(self._findings(sample, sampler))
            readings = sampler.readings
            views.append(NamespaceView(
                label=label, entries=sample.entries, limit=sample.limit, peak=sampler.peak,
                growth=sampler.growth(), rates=sampler.rates(),
                history=tuple(sampler.series("entries")),
                history_seconds=readings[-1].time - readings[0].time,
                top=self._top_view(state, now), top_note=state.top_note,
            ))
        return WatchView(tuple(views), tuple(findings), self.interval,
                         time.strftime("%H:%M:%S"))

    # -- top sources ----------------------------------------------------------------------
    def _maybe_top(self, name: str | None, state: _NsState, entries: int, now: float,
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

    def _top_view(self, state: _NsState, now: float) -> Any:
        from hostnet.render.watch import TopView

        if state.top is None or state.top_time is None:
            return None
        rows = tuple((str(g.key[0]), g.count) for g in state.top.groups)
        return TopView(rows, state.top.entries, max(now - state.top_time, 0.0))

    # -- findings -------------------------------------------------------------------------
    def _findings(self, sample: Any, sampler: Any) -> list[Any]:
        from hostnet.checks.conntrack import Observation, evaluate
        from hostnet.model.conntrack import ConntrackStats

        if sample.entries is None and not sample.counters:
            return []
        readings = sampler.readings
        seconds = readings[-1].time - readings[-2].time if len(readings) > 1 else None
        obs = Observation(
            count=sample.entries, max=sample.limit, buckets=sample.buckets,
            stats=ConntrackStats(sample.entries or 0, dict(sample.counters)) if sample.counters
            else None,
            stats_source="/proc/net/stat/nf_conntrack",
            rates=sampler.rates() if seconds else None, rate_seconds=seconds,
            rate_source="watch" if seconds else None, peak=sampler.peak, netns=sample.netns,
            child_namespace=sample.netns is not None, **self.host,
        )
        return list(evaluate(obs))


def read_top(name: str | None) -> Any:
    """Walk ``name``'s table once and group it by source address."""
    from hostnet.conntrack.top import top
    from hostnet.host.conntrack_source import open_table
    from hostnet.host.netns import entered
    from hostnet.host.root import Root

    with entered(name), open_table(Root("/")) as table:
        return top(table.chunks, "src", limit=TOP_LIMIT)


# -- terminal ---------------------------------------------------------------------------------


def _read_key(fd: int | None, timeout: float) -> str:
    """A key pressed within ``timeout`` seconds ('' when none); sleeps without a terminal."""
    if fd is None:
        time.sleep(timeout)
        return ""
    import select

    ready, _, _ = select.select([fd], [], [], timeout)
    if not ready:
        return ""
    data = os.read(fd, 64)
    if not data:  # stdin closed: nothing more will come, just wait
        time.sleep(timeout)
        return ""
    for key in (b"q", b"Q", b"t", b"T"):
        if key in data:
            return key.decode().lower()
    return ""


def _run_live(watcher: Watcher) -> int:
    from rich.console import Console
    from rich.live import Live

    from hostnet.render.watch import render

    console = Console()
    fd: int | None = sys.stdin.fileno() if sys.stdin.isatty() else None
    saved: Any = None
    if fd is not None:
        import termios
        import tty

        saved = termios.tcgetattr(fd)
        tty.setcbreak(fd)
    try:
        with Live(console=console, screen=True, auto_refresh=False) as live:
            force = False
            while True:
                view = watcher.step(force_top=force)
                force = False
                live.update(render(view, console.width, console.height), refresh=True)
                deadline = time.monotonic() + watcher.interval
                while (remaining := deadline - time.monotonic()) > 0:
                    key = _read_key(fd, remaining)
                    if key == "q":
                        return 0
                    if key == "t":
                        force = True
                        busy = replace(view, status="reading the conntrack table ...")
                        live.update(render(busy, console.width, console.height), refresh=True)
                        break
    except KeyboardInterrupt:
        return 0
    finally:
        if saved is not None and fd is not None:
            import termios

            termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _print_once(watcher: Watcher) -> int:
    from rich.console import Console

    from hostnet.render.watch import screen_lines

    watcher.step()
    time.sleep(watcher.interval)
    view = watcher.step()
    console = Console(highlight=False)
    height = console.height if console.is_terminal else 24
    lines = screen_lines(view, console.width, height)[:-1]  # no key help in a one-shot
    while lines and not lines[-1].plain:
        lines.pop()
    for line in lines:
        console.print(line, soft_wrap=False, overflow="ellipsis", no_wrap=True)
    return 0


@click.command("watch")
@click.option("--netns", "netns", multiple=True, metavar="NAME",
              help="Watch this named network namespace (repeatable; needs root). Default: "
              "the namespace hostnet runs in.")
@click.option("--all-netns", is_flag=True,
              help="Watch the namespace hostnet runs in and every one in /run/netns.")
@click.option("--interval", type=click.FloatRange(min=0.1), default=1.0, show_default=True,
              metavar="SECONDS", help="Seconds between readings.")
@click.option("--top-max-entries", type=click.IntRange(min=0), default=50_000,
              show_default=True, metavar="N",
              help=f"Walk the table for top sources (every {TOP_EVERY:g} s) only while it "
              "holds at most N entries; press t to walk it anyway.")
@click.option("--once", is_flag=True,
              help="Print one frame (two readings an interval apart) to stdout and exit.")
def watch(netns: tuple[str, ...], all_netns: bool, interval: float, top_max_entries: int,
          once: bool) -> int:
    """Live view of conntrack usage, growth, drops, top sources and findings.

    Per namespace: a usage bar against nf_conntrack_max, the table size over the last
    minutes, growth and drops per second. Keys: q quit, t read the top sources now.
    """
    from hostnet.host.netns import entered
    from hostnet.service.exporter import Targets

    if netns and all_netns:
        raise UsageError("--netns and --all-netns do not combine",
                         hint="--all-netns already includes every named namespace")
    for name in netns:  # fail now, with the list of known names, on a typo
        with entered(name):
            pass
    targets = Targets(tuple(netns), all_netns, include_own=not netns)
    watcher = Watcher(targets, interval, top_max_entries)
    if once:
        return _print_once(watcher)
    if not sys.stdout.isatty():
        raise UsageError("hostnet watch needs a terminal",
                         hint="use --once to print a single frame to a pipe or file")
    return _run_live(watcher)
