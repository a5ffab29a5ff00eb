"""``hostnet watch`` (also ``hostnet conntrack watch``): a live view of conntrack usage.

This module parses the options, runs the terminal and draws; the engine (readings, rates,
top sources, findings) is :class:`hostnet.service.watch.Watcher`.

Keys: ``q`` quits, ``t`` refreshes the top sources, Ctrl-C quits. The terminal is put in
cbreak mode (keys arrive without Enter, Ctrl-C still works) and restored on every exit path.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import click

from hostnet.errors import UsageError

if TYPE_CHECKING:
    from hostnet.service.watch import Watcher

#: Seconds between walks of the table for the top sources (hostnet.service.watch.TOP_EVERY).
TOP_EVERY = 10.0

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
    from hostnet.observe.roots import check_namespaces
    from hostnet.service.exporter import Targets
    from hostnet.service.watch import Watcher

    if netns and all_netns:
        raise UsageError("--netns and --all-netns do not combine",
                         hint="--all-netns already includes every named namespace")
    check_namespaces(list(netns))  # fail now, with the list of known names, on a typo
    targets = Targets(tuple(netns), all_netns, include_own=not netns)
    watcher = Watcher(targets, interval, top_max_entries)
    if once:
        return _print_once(watcher)
    if not sys.stdout.isatty():
        raise UsageError("hostnet watch needs a terminal",
                         hint="use --once to print a single frame to a pipe or file")
    return _run_live(watcher)
