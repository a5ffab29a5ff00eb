"""Parse /proc/net/stat/nf_conntrack (pure).

The file is hexadecimal, one row per possible CPU, with a header row naming the columns. The
column set changed across kernels (``searched`` became ``clashres`` around 5.9, ``delete_list``
became ``chainlength`` around 5.15), so columns are read by header name. ``entries`` is the
table's total and repeats on every row: it is taken once, never summed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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


class StatsFormatError(ValueError):
    pass


def parse_stats(text: str) -> ConntrackStats:
    """Parse the whole file. Raises StatsFormatError when it is not a conntrack stat file."""
    rows = [line.split() for line in text.splitlines() if line.strip()]
    if not rows:
        raise StatsFormatError("empty conntrack stat file")
    header = tuple(rows[0])
    if "entries" not in header:
        raise StatsFormatError(f"no 'entries' column in header: {' '.join(header)}")
    width = len(header)
    sums = dict.fromkeys(header, 0)
    entries = 0
    cpus = 0
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != width:
            raise StatsFormatError(f"row {number} has {len(row)} columns, header has {width}")
        try:
            values = [int(v, 16) for v in row]
        except ValueError as exc:
            raise StatsFormatError(f"row {number}: {exc}") from None
        cpus += 1
        for name, value in zip(header, values, strict=True):
            if name == "entries":
                entries = value
            else:
                sums[name] += value
    counters = {k: v for k, v in sums.items() if k != "entries"}
    return ConntrackStats(entries=entries, counters=counters, header=header, cpus=cpus)


def rates(
    before: ConntrackStats, after: ConntrackStats, seconds: float
) -> dict[str, float]:
    """Per-second rate of every counter present in both readings (counter resets give 0)."""
    if seconds <= 0:
        return {}
    out: dict[str, float] = {}
    for name, value in after.counters.items():
        if name in GAUGES:
            continue
        prev = before.counters.get(name)
        if prev is None:
            continue
        delta = value - prev
        out[name] = max(delta, 0) / seconds
    return out
