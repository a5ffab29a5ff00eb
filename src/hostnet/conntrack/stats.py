"""Parse /proc/net/stat/nf_conntrack (pure).

The file is hexadecimal, one row per possible CPU, with a header row naming the columns. The
column set changed across kernels (``searched`` became ``clashres`` around 5.9, ``delete_list``
became ``chainlength`` around 5.15), so columns are read by header name. ``entries`` is the
table's total and repeats on every row: it is taken once, never summed.
"""

from __future__ import annotations

from hostnet.model.conntrack import ConntrackStats


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


def slab_entry_bytes(slabinfo: str, cache: str = "nf_conntrack") -> int | None:
    """Object size of a slab cache from /proc/slabinfo text (None when absent)."""
    for line in slabinfo.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[0] == cache:
            try:
                return int(parts[3])
            except ValueError:
                return None
    return None
