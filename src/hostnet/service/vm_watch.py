"""``hostnet vm watch``: keep every VM's addresses, routes, proxy entries and per-interface
sysctls in place, repairing the moment netlink reports a change.

* One rtnetlink socket (link, address, route, neighbour and netconf groups, the last for
  forwarding and proxy_ndp changes; 1 MiB receive buffer) in
  the VMs' namespace. A burst of events is drained and coalesced into one reconcile: read
  the namespace, plan, and apply only what is missing (no write when all is in place).
* At start, on ENOBUFS (events were lost) and every ``full_every`` seconds: the same full
  dump-and-reconcile.
* The kernel sends no notification when a proxy neighbour entry is added or deleted (seen
  on 6.18), so the proxy entries are also compared every ``poll`` seconds (one small dump).
* Each repair is logged with what was missing; SIGTERM and SIGINT stop the loop cleanly.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import select
import signal
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Any

from hostnet.errors import HostnetError
from hostnet.model.vm import LinkSnapshot, Mode, ProxyEntry, VmLink
from hostnet.observe.links import open_event_socket, read_proxies, read_snapshot, relevant_events
from hostnet.observe.links import route_socket as open_route_socket
from hostnet.state.links import DEFAULT_STATE_DIR, vm_up
from hostnet.vm.planner import missing_by_vm, plan

LOG = logging.getLogger("hostnet.vm.watch")
COALESCE_QUIET = 0.002  # a burst is over after 2 ms without a message ...
COALESCE_MAX = 0.020  # ... or after 20 ms in any case


@dataclass(frozen=True)
class WatchOptions:
    netns: str | None = None
    state_dir: str = DEFAULT_STATE_DIR
    create_taps: bool = False
    poll: float = 1.0
    full_every: float = 60.0


@dataclass
class WatchStats:
    reconciles: int = 0
    repairs: int = 0
    writes: int = 0
    overflows: int = 0
    errors: int = 0


def wanted_proxies(vms: Sequence[VmLink]) -> frozenset[ProxyEntry]:
    return frozenset(ProxyEntry(a, vm.uplink) for vm in vms
                     if vm.mode is Mode.ROUTED and vm.uplink for a in vm.addresses)


class Watcher:
    def __init__(self, vms: Sequence[VmLink], options: WatchOptions,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.vms = list(vms)
        self.options = options
        self.clock = clock
        self.stats = WatchStats()
        self.proxies = wanted_proxies(self.vms)
        self._stop_r, self._stop_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.ipr: Any = None
        self._waiting: tuple[str, ...] = ()

    def stop(self, *_: object) -> None:
        with contextlib.suppress(OSError):
            os.write(self._stop_w, b"x")

    def reconcile(self, why: str, snap: LinkSnapshot | None = None) -> int:
        """Read, plan, repair; returns the number of kernel writes."""
        self.stats.reconciles += 1
        started = self.clock()
        try:
            snap = read_snapshot(self.options.netns) if snap is None else snap
            plan_ = plan(self.vms, snap, create_taps=self.options.create_taps)
            if plan_.waiting != self._waiting:
                gone = sorted(set(plan_.waiting) - set(self._waiting))
                if gone:
                    LOG.info("waiting for the tap of %s (not created: no --create-taps)",
                             ", ".join(gone))
                self._waiting = plan_.waiting
            if plan_.empty:
                return 0
            for vm, missing in missing_by_vm(plan_).items():
                LOG.warning("repair %s (%s): missing %s", vm or "host settings", why,
                            "; ".join(missing))
            result = vm_up(self.vms, self.options.netns, self.options.state_dir,
                           create_taps=self.options.create_taps, snap=snap, ipr=self.ipr)
        except HostnetError as exc:  # e.g. the tap vanished again mid-repair: retry later
            self.stats.errors += 1
            LOG.error("repair failed (%s): %s", why, exc.message)
            return 0
        self.stats.repairs += 1
        self.stats.writes += result.writes
        LOG.warning("repaired %d item(s) in %.1f ms", len(result.done),
                    (self.clock() - started) * 1000)
        return result.writes

    def proxies_missing(self) -> bool:
        if not self.proxies:
            return False
        return not self.proxies <= set(read_proxies(self.options.netns))

    def _drain(self, sock: socket.socket) -> tuple[int, bool]:
        """Read everything queued; (relevant messages, overflowed)."""
        count, overflow = 0, False
        while True:
            try:
                data = sock.recv(1 << 16)
            except BlockingIOError:
                return count, overflow
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:
                    overflow = True
                    continue
                raise
            count += relevant_events(data)

    def run(self) -> WatchStats:
        opts = self.options
        with contextlib.ExitStack() as stack:
            sock = open_event_socket(opts.netns)
            stack.callback(sock.close)
            # the writer's socket is opened once, so the first repair is as fast as the rest
            self.ipr = stack.enter_context(open_route_socket(opts.netns))
            return self._loop(sock)

    def _loop(self, sock: socket.socket) -> WatchStats:
        opts = self.options
        LOG.info("watching %d VM(s) in %s", len(self.vms), opts.netns or "this namespace")
        try:
            self.reconcile("start")
            LOG.info("start-up reconcile done; waiting for events")
            next_poll = self.clock() + opts.poll
            next_full = self.clock() + opts.full_every
            while True:
                timeout = max(0.0, min(next_poll, next_full) - self.clock())
                ready, _, _ = select.select([sock.fileno(), self._stop_r], [], [], timeout)
                if self._stop_r in ready:
                    LOG.info("stopping")
                    return self.stats
                if sock.fileno() in ready:
                    count, overflow = self._drain(sock)
                    deadline = self.clock() + COALESCE_MAX
                    while self.clock() < deadline:
                        more, _, _ = select.select([sock], [], [], COALESCE_QUIET)
                        if not more:
                            break
                        extra, lost = self._drain(sock)
                        count, overflow = count + extra, overflow or lost
                    if overflow:
                        self.stats.overflows += 1
                        LOG.warning("netlink receive buffer overflowed: full reconcile")
                        self.reconcile("events lost")
                        next_full = self.clock() + opts.full_every
                    elif count:
                        self.reconcile("netlink event")
                now = self.clock()
                if now >= next_full:
                    self.reconcile("periodic")
                    next_full = now + opts.full_every
                    next_poll = now + opts.poll
                elif now >= next_poll:
                    try:
                        if self.proxies_missing():
                            self.reconcile("proxy entry gone")
                    except HostnetError as exc:
                        LOG.error("proxy check failed: %s", exc.message)
                    next_poll = self.clock() + opts.poll
        finally:
            self.ipr = None

    def close(self) -> None:
        for fd in (self._stop_r, self._stop_w):
            with contextlib.suppress(OSError):
                os.close(fd)


def run(vms: Sequence[VmLink], options: WatchOptions) -> WatchStats:
    """Run until SIGTERM/SIGINT (the CLI entry point)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    watcher = Watcher(vms, options)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        watcher.stop()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        stats = watcher.run()
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
        watcher.close()
    LOG.info("stopped after %d reconcile(s), %d repair(s), %d write(s)", stats.reconciles,
             stats.repairs, stats.writes)
    return stats
