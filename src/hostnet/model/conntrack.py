"""Conntrack readings: the stat counters, the doctor's table composition, the one reading
type (history, watch, exporter) and the one rate function everything uses (pure)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

#: Usage (count / max) at which the table counts as filling up and as full. The one place these
#: live: doctor, watch, the exporter's alert rules and the Nagios thresholds use them.
USAGE_WARNING = 0.75
USAGE_CRITICAL = 0.90

#: ``entries`` is a gauge repeated on every row; every other column is a per-CPU event
#: counter summed over rows. Current kernels print their ``chaintoolong`` counter under the
#: header ``chainlength``, and the ``clash_resolve`` counter under ``clashres``.
GAUGES = frozenset({"entries"})

#: Old header names mapped to the name current kernels use for the same counter.
ALIASES = {"clashres": "clash_resolve", "chainlength": "chaintoolong"}


@dataclass(frozen=True, slots=True)
class ConntrackStats:
    """One reading of the stat file.

    ``counters`` holds every column summed over CPUs except the gauges, keyed by the header
    name as the kernel printed it. ``entries`` is the table size the kernel reported.
    """

    entries: int
    counters: dict[str, int] = field(default_factory=dict)
    header: tuple[str, ...] = ()
    cpus: int = 0

    def get(self, name: str) -> int | None:
        """A counter by current or historic name (``clash_resolve`` also finds ``clashres``)."""
        if name in self.counters:
            return self.counters[name]
        for old, new in ALIASES.items():
            if new == name and old in self.counters:
                return self.counters[old]
        return None

    @property
    def drop(self) -> int:
        return self.counters.get("drop", 0)

    @property
    def early_drop(self) -> int:
        return self.counters.get("early_drop", 0)

    @property
    def insert_failed(self) -> int:
        return self.counters.get("insert_failed", 0)



@dataclass(frozen=True, slots=True)
class AddressCount:
    """Entries of one address (original source or destination) and how many of them never
    saw a reply or were ASSURED: a source whose entries are mostly neither looks like a
    flood or a scan, a source with ASSURED entries is a real client."""

    address: str
    count: int
    unreplied: int = 0
    assured: int = 0

    @property
    def flood_like(self) -> bool:
        """Most entries never saw a reply, or almost none became ASSURED."""
        if not self.count:
            return False
        return self.unreplied / self.count >= 0.5 or self.assured / self.count <= 0.1


@dataclass(frozen=True, slots=True)
class PortCount:
    """Entries to one destination port, split by where they go (see :class:`Composition`)."""

    proto: str
    port: int
    count: int
    #: Original destination is one of the namespace's own addresses and the reply tuple
    #: mirrors the original: traffic to the host itself, not NATed.
    local: int = 0
    #: The reply tuple differs from the original (SNAT, masquerade, DNAT, redirect).
    nated: int = 0


@dataclass(frozen=True, slots=True)
class Composition:
    """What the table is made of (see :func:`hostnet.conntrack.top.composition`).

    ``by_state`` keys are ``"tcp ESTABLISHED"``-style (protocol and state; protocols without
    states appear alone, e.g. ``"udp"``). ``assured`` counts entries flagged ASSURED;
    ``offloaded`` those flagged OFFLOAD/HW_OFFLOAD (the kernel then hides ASSURED);
    ``unreplied`` those that never saw a reply. Where entries go, against the namespace's own
    addresses (``own_known`` False: they were not given, and the three counts are 0):
    ``to_host`` original destination is an own address, ``from_host`` original source is,
    ``forwarded`` neither (routed through). ``nated`` counts entries whose reply tuple is not
    the mirror of the original.
    """

    entries: int
    skipped: int
    by_proto: dict[str, int] = field(default_factory=dict)
    by_state: dict[str, int] = field(default_factory=dict)
    assured: int = 0
    unreplied: int = 0
    offloaded: int = 0
    top_src: tuple[AddressCount, ...] = ()
    top_dst: tuple[AddressCount, ...] = ()
    top_dport: tuple[PortCount, ...] = ()
    to_host: int = 0
    from_host: int = 0
    forwarded: int = 0
    nated: int = 0
    own_known: bool = False

    def share(self, count: int) -> float:
        return count / self.entries if self.entries else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "entries": self.entries,
            "skipped": self.skipped,
            "by_proto": self.by_proto,
            "by_state": self.by_state,
            "assured": self.assured,
            "unreplied": self.unreplied,
            "offloaded": self.offloaded,
            "to_host": self.to_host,
            "from_host": self.from_host,
            "forwarded": self.forwarded,
            "nated": self.nated,
            "own_addresses_known": self.own_known,
            "top_src": [{"src": a.address, "count": a.count, "unreplied": a.unreplied,
                         "assured": a.assured} for a in self.top_src],
            "top_dst": [{"dst": a.address, "count": a.count} for a in self.top_dst],
            "top_dport": [{"proto": p.proto, "dport": p.port, "count": p.count,
                           "local": p.local, "nated": p.nated} for p in self.top_dport],
        }


@dataclass(frozen=True, slots=True)
class Reading:
    """One reading of a namespace's table: the one type doctor (history between runs),
    watch (its ring buffer), the exporter (one scrape) and ``conntrack size`` use.

    ``time`` is whatever clock the caller used (epoch seconds for history, monotonic for
    watch); only differences between readings of one clock mean anything. ``counters`` are
    the stat file's columns summed over CPUs.
    """

    time: float
    count: int | None
    counters: dict[str, int] = field(default_factory=dict)
    limit: int | None = None
    buckets: int | None = None
    #: Namespace name (None: the one the reader runs in).
    netns: str | None = None
    peak: int = 0
    peak_time: float = 0.0
    inode: int | None = None

    @property
    def label(self) -> str:
        return self.netns or "initial"

    @property
    def usage(self) -> float | None:
        if self.count is None or not self.limit:
            return None
        return self.count / self.limit

    def to_json(self) -> dict[str, Any]:
        return {"time": self.time, "count": self.count, "counters": dict(self.counters),
                "peak": self.peak, "peak_time": self.peak_time, "inode": self.inode}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Reading:
        return cls(
            time=float(data["time"]),
            count=int(data["count"]),
            counters={str(k): int(v) for k, v in dict(data.get("counters", {})).items()},
            peak=int(data.get("peak", 0)),
            peak_time=float(data.get("peak_time", 0.0)),
            inode=None if data.get("inode") is None else int(data["inode"]),
        )


def merge_peak(previous: Reading | None, now: Reading) -> Reading:
    """``now`` with the peak carried over from ``previous`` when that was higher."""
    count = now.count or 0
    if previous is not None and previous.peak > count:
        return replace(now, peak=previous.peak, peak_time=previous.peak_time)
    return replace(now, peak=count, peak_time=now.time)


def canonical(counters: dict[str, int]) -> dict[str, int]:
    """Counter names as current kernels call them (``clashres`` -> ``clash_resolve``)."""
    return {ALIASES.get(name, name): value for name, value in counters.items()}


def reading_rates(before: Reading, after: Reading) -> dict[str, float]:
    """:func:`counter_rates` between two readings of one clock."""
    return counter_rates(before.counters, after.counters, after.time - before.time)


def counter_rates(before: dict[str, int], after: dict[str, int],
                  seconds: float) -> dict[str, float]:
    """Per-second rate of every counter present in both readings.

    The one rate function of hostnet (doctor, watch, exporter, conntrack size). A counter that
    went down was reset (module reload, namespace recreated): as Prometheus's ``rate()`` does,
    its increase over the interval is taken to be its new value (the events counted since the
    reset), a lower bound, never negative. Counters present in only one reading are left out;
    ``seconds <= 0`` (clock went back) gives no rates.
    """
    if seconds <= 0:
        return {}
    out: dict[str, float] = {}
    for name, value in after.items():
        if name in GAUGES:
            continue
        prev = before.get(name)
        if prev is None:
            continue
        increase = value - prev if value >= prev else value
        out[name] = increase / seconds
    return out
