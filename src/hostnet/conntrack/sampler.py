"""Keep the last readings of a conntrack table and turn them into rates and sparklines (pure).

``hostnet watch`` reads the table size and the stat counters of each namespace once per
interval and feeds them here. Nothing in this module reads the host: a reading is the shared
:class:`hostnet.model.conntrack.Reading`, time is whatever monotonic clock the caller used, and
rates come from the one rate function (:func:`hostnet.model.conntrack.counter_rates`).

Which counter measures "new connections" depends on the kernel: on 6.18 the ``new`` column is
printed as a constant 0 and ``insert`` only counts entries inserted over ctnetlink
(``conntrack -I``/``-R``), not connections confirmed from traffic. The honest per-second
figure for growth is therefore the change of ``entries`` itself (:meth:`Sampler.growth`),
shown next to the event counters that do move (``drop``, ``early_drop``, ``insert_failed``).
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterable, Sequence

from hostnet.model.conntrack import Reading, canonical, reading_rates

__all__ = ["BLOCKS", "Reading", "Sampler", "canonical", "human_rate", "resample", "sparkline"]

#: Unicode block elements, lowest to highest (a space is used for "no data").
BLOCKS = "▁▂▃▄▅▆▇█"


class Sampler:
    """A ring buffer of the last ``capacity`` readings of one namespace."""

    def __init__(self, capacity: int = 300) -> None:
        if capacity < 2:
            raise ValueError("a sampler needs room for at least two readings")
        self.readings: deque[Reading] = deque(maxlen=capacity)

    def __len__(self) -> int:
        return len(self.readings)

    def add(self, reading: Reading) -> None:
        """Append a reading; one older than the last (clock went back) replaces history."""
        if self.readings and reading.time <= self.readings[-1].time:
            self.readings.clear()
        self.readings.append(reading)

    @property
    def latest(self) -> Reading | None:
        return self.readings[-1] if self.readings else None

    @property
    def peak(self) -> int:
        return max((r.count or 0 for r in self.readings), default=0)

    def rates(self) -> dict[str, float]:
        """Per-second rate of every counter over the last interval (empty with < 2 readings).

        A counter that went down (module reloaded, namespace recreated) was reset: its new
        value is the increase, as everywhere in hostnet (Prometheus semantics).
        """
        if len(self.readings) < 2:
            return {}
        return reading_rates(self.readings[-2], self.readings[-1])

    def rate(self, name: str) -> float | None:
        """One counter's rate over the last interval; None when unknown."""
        return self.rates().get(name)

    def growth(self) -> float | None:
        """Change of ``entries`` per second over the last interval (negative when shrinking)."""
        if len(self.readings) < 2:
            return None
        a, b = self.readings[-2], self.readings[-1]
        return ((b.count or 0) - (a.count or 0)) / (b.time - a.time)

    def series(self, name: str) -> list[float]:
        """Per-interval values for a sparkline, oldest first.

        ``entries`` gives the table size at each reading; a counter name gives its rate over
        each interval (one value fewer than there are readings).
        """
        readings = list(self.readings)
        if name == "entries":
            return [float(r.count or 0) for r in readings]
        out: list[float] = []
        for a, b in itertools.pairwise(readings):
            out.append(reading_rates(a, b).get(name, 0.0))
        return out


def resample(values: Sequence[float], width: int) -> list[float]:
    """Fit ``values`` into at most ``width`` columns, oldest first.

    With more values than columns, consecutive values are grouped into ``width`` buckets
    and each bucket shows its largest value (a short spike stays visible).
    """
    if width <= 0:
        return []
    n = len(values)
    if n <= width:
        return list(values)
    return [max(values[i * n // width:(i + 1) * n // width]) for i in range(width)]


def sparkline(
    values: Iterable[float], width: int, *, floor: float = 0.0, ceiling: float | None = None
) -> str:
    """Unicode block sparkline of the newest ``width`` values, right-aligned, space-padded.

    Values are scaled between ``floor`` and ``ceiling`` (default: the largest value shown).
    All-zero input gives the lowest block for each value, so "no activity" is visible.
    """
    shown = resample(list(values), width)
    if not shown:
        return " " * max(width, 0)
    top = max(shown) if ceiling is None else ceiling
    span = top - floor
    chars: list[str] = []
    for v in shown:
        if span <= 0:
            level = 0
        else:
            frac = min(max((v - floor) / span, 0.0), 1.0)
            level = min(int(frac * (len(BLOCKS) - 1) + 0.5), len(BLOCKS) - 1)
        chars.append(BLOCKS[level])
    return " " * (width - len(chars)) + "".join(chars)


def human_rate(value: float | None) -> str:
    """``12.3/s``, ``4.5k/s``; ``-`` when unknown."""
    if value is None:
        return "-"
    sign = "-" if value < 0 else ""
    v = abs(value)
    if v >= 1_000_000:
        return f"{sign}{v / 1_000_000:.1f}M/s"
    if v >= 1_000:
        return f"{sign}{v / 1_000:.1f}k/s"
    if v >= 10 or v == int(v):
        return f"{sign}{v:.0f}/s"
    return f"{sign}{v:.1f}/s"
