"""Conntrack readings: the stat counters, the doctor's table composition, the previous
reading kept between runs, and the one rate function everything uses (pure data + maths)."""

from __future__ import annotations

from dataclasses import dataclass, field
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
class Composition:
    """What the table is made of (see :func:`composition`).

    ``by_state`` keys are ``"tcp ESTABLISHED"``-style (protocol and state; protocols without
    states appear alone, e.g. ``"udp"``). ``assured`` counts entries flagged ASSURED;
    ``offloaded`` those flagged OFFLOAD/HW_OFFLOAD (the kernel then hides ASSURED);
    ``unreplied`` those that never saw a reply. ``top_dport`` keys are ``(proto, port)``.
    """

    entries: int
    skipped: int
    by_proto: dict[str, int] = field(default_factory=dict)
    by_state: dict[str, int] = field(default_factory=dict)
    assured: int = 0
    unreplied: int = 0
    offloaded: int = 0
    top_src: list[tuple[str, int]] = field(default_factory=list)
    top_dst: list[tuple[str, int]] = field(default_factory=list)
    top_dport: list[tuple[tuple[str, int], int]] = field(default_factory=list)

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
            "top_src": [{"src": k, "count": n} for k, n in self.top_src],
            "top_dst": [{"dst": k, "count": n} for k, n in self.top_dst],
            "top_dport": [{"proto": k[0], "dport": k[1], "count": n} for k, n in self.top_dport],
        }




@dataclass(frozen=True, slots=True)
class Reading:
    """A reading kept between runs (see hostnet.state.history) for rates and the peak."""

    time: float
    count: int
    counters: dict[str, int] = field(default_factory=dict)
    peak: int = 0
    peak_time: float = 0.0
    inode: int | None = None

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
    if previous is not None and previous.peak > now.count:
        return Reading(now.time, now.count, now.counters, previous.peak, previous.peak_time,
                       now.inode)
    return Reading(now.time, now.count, now.counters, now.count, now.time, now.inode)


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
