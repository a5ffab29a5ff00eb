"""Recognise conntrack trouble in kernel log text (pure: bytes in, events out).

Forms recognised, old and new (the kernel has printed all of these at some point):

* ``nf_conntrack: table full, dropping packet`` (current, initial namespace), also with a
  trailing period (older kernels) and with the prefix printed twice
  (``nf_conntrack: nf_conntrack: table full, ...``, when the file's pr_fmt adds it again);
* ``nf_conntrack: table full in netns N, dropping packet`` (recent kernels, any namespace but
  the initial one; N is the namespace's inode number as ``/proc/PID/ns/net`` shows it);
* ``ip_conntrack: table full, dropping packet.`` (the 2.6-era IPv4-only tracker);
* ``nf_conntrack: expectation table full`` (helpers such as FTP/SIP ran out of expectations);
* rate-limit notices: ``net_ratelimit: N callbacks suppressed``, older
  ``__ratelimit: N callbacks suppressed`` and ``printk: N messages suppressed``. The kernel
  prints at most a burst of net warnings per interval and folds the rest into these notices,
  so log lines always undercount: the ``drop`` counter is the number of packets dropped.
  Only notices near conntrack lines are counted (the limiter is shared by every net_*
  warning, so notices far from any conntrack line are about something else).

Scanning is built for big files: the buffer (bytes, or an mmap of the file) is searched for
cheap markers with ``find`` and only the lines around a hit are decoded and matched.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Protocol

from hostnet.model.kernlog import EventKind, LogEvent, LogSummary, SourceScan

#: Cheap markers searched with bytes.find before any per-line work: the conntrack lines,
#: then the rate-limit notices near them.
MARKERS: tuple[bytes, ...] = (b"table full", b" suppressed")
#: How far (bytes) around a conntrack line rate-limit notices are looked for.
NEAR = 2048

_FULL = re.compile(
    r"(?P<tracker>nf_conntrack|ip_conntrack): (?:(?:nf_conntrack|ip_conntrack): )*"
    r"(?:table full(?: in netns (?P<ns>\d+))?, dropping packet\.?"
    r"|(?P<expect>expectation table full))"
)
_SUPPRESSED = re.compile(
    r"(?:(?:net_ratelimit|_{2,3}ratelimit): (?P<cb>\d+) callbacks suppressed"
    r"|printk: (?P<msg>\d+) messages suppressed)"
)
_TIME = re.compile(
    r"^(?:"
    r"(?P<kmsg>\d+,\d+,(?P<usec>\d+),[^;]*;)"  # /dev/kmsg record header
    r"|(?P<iso>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:[.,]\d+)?(?:Z|[+-]\d\d:?\d\d)?)"
    r"|(?P<bsd>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d)"
    r"|\[\s*(?P<mono>\d+\.\d+)\]"
    r")"
)


def line_time(line: str) -> str | None:
    """The timestamp a log line starts with, as text (None when it has none)."""
    m = _TIME.match(line)
    if m is None:
        return None
    if m.group("usec") is not None:
        return f"[{int(m.group('usec')) / 1e6:.6f}]"
    if m.group("mono") is not None:
        return f"[{m.group('mono')}]"
    return m.group("iso") or m.group("bsd")


def parse_line(line: str) -> LogEvent | None:
    """The conntrack event a single log line reports, or None."""
    m = _FULL.search(line)
    if m is not None:
        ns = m.group("ns")
        kind = EventKind.EXPECT_FULL if m.group("expect") else EventKind.TABLE_FULL
        return LogEvent(
            kind, line_time(line), netns=int(ns) if ns else None, tracker=m.group("tracker"),
            line=line.strip(),
        )
    s = _SUPPRESSED.search(line)
    if s is not None:
        n = int(s.group("cb") or s.group("msg"))
        return LogEvent(EventKind.SUPPRESSED, line_time(line), suppressed=n, line=line.strip())
    return None


class Buffer(Protocol):
    """What the scanner needs from its input: bytes, bytearray and mmap all qualify."""

    def find(self, sub: bytes, start: int = ..., end: int = ..., /) -> int: ...
    def rfind(self, sub: bytes, start: int = ..., end: int = ..., /) -> int: ...
    def __len__(self) -> int: ...
    def __getitem__(self, index: slice, /) -> bytes: ...


def _find_all(data: Buffer, marker: bytes, start: int, stop: int, out: list[int]) -> None:
    pos = data.find(marker, start, stop)
    while pos >= 0:
        out.append(pos)
        nl = data.find(b"\n", pos, stop)
        if nl < 0:
            return
        pos = data.find(marker, nl + 1, stop)


def iter_events(data: Buffer, start: int = 0, end: int | None = None) -> Iterator[LogEvent]:
    """Events in ``data[start:end]`` in file order, decoding only lines that hold a marker.

    One pass looks for ``table full``; rate-limit notices are then looked for only within
    NEAR bytes of those hits (the notices a burst of conntrack warnings leaves behind sit
    between and right after its lines), so a big log is read about once.
    """
    stop = len(data) if end is None else end
    hits: list[int] = []
    _find_all(data, MARKERS[0], start, stop, hits)
    if not hits:
        return
    lo = hi = -1
    near: list[int] = []
    for pos in hits:
        a, b = max(start, pos - NEAR), min(stop, pos + NEAR)
        if a > hi:
            if hi > lo:
                _find_all(data, MARKERS[1], lo, hi, near)
            lo = a
        hi = b
    _find_all(data, MARKERS[1], lo, hi, near)
    hits.extend(near)
    hits.sort()
    last_line_start = -1
    for pos in hits:
        line_start = data.rfind(b"\n", start, pos) + 1
        if line_start == 0 and start > 0:
            line_start = start
        if line_start == last_line_start:
            continue  # both markers on one line, or a notice found twice
        last_line_start = line_start
        line_end = data.find(b"\n", pos, stop)
        if line_end < 0:
            line_end = stop
        event = parse_line(data[line_start:line_end].decode("utf-8", "replace"))
        if event is not None:
            yield event


def scan_buffer(data: Buffer, source: str) -> SourceScan:
    out = SourceScan(source)
    for event in iter_events(data):
        out.add(event)
    return out


def scan_chunks(chunks: Iterable[bytes], source: str) -> SourceScan:
    """Scan a stream of byte chunks (e.g. a gzip file read in blocks) split at any byte."""
    out = SourceScan(source)
    tail = b""
    for chunk in chunks:
        if not chunk:
            continue
        data = tail + chunk
        cut = data.rfind(b"\n") + 1
        if cut == 0:
            tail = data
            continue
        for event in iter_events(data, 0, cut):
            out.add(event)
        tail = data[cut:]
    if tail:
        for event in iter_events(tail):
            out.add(event)
    return out


def scan_text(text: str, source: str) -> SourceScan:
    return scan_buffer(text.encode("utf-8", "replace"), source)


# -- combining sources ------------------------------------------------------------------------


def _sort_key(stamp: str) -> datetime | None:
    """ISO stamps as naive UTC (syslog and monotonic stamps cannot be ordered: None)."""
    try:
        when = datetime.fromisoformat(stamp.replace(",", "."))
    except ValueError:
        return None
    if when.tzinfo is not None:
        when = when.astimezone(UTC).replace(tzinfo=None)
    return when


def summarise(scans: Iterable[SourceScan]) -> LogSummary:
    found = [s for s in scans if s.events or s.suppressed]
    if not found:
        return LogSummary(0, 0, 0, None, None, {}, ())
    best = max(found, key=lambda s: (s.table_full, s.expect_full))
    by_netns: dict[int | None, int] = {}
    for s in found:
        for ns, n in s.by_netns.items():
            by_netns[ns] = max(by_netns.get(ns, 0), n)
    stamps = [t for s in found for t in (s.first, s.last) if t is not None]
    dated = sorted((d, t) for t in stamps if (d := _sort_key(t)) is not None)
    first: str | None
    last: str | None
    if dated:
        first, last = dated[0][1], dated[-1][1]
    else:
        first = best.first
        last = best.last
    netns_times: dict[int, dict[str, int]] = {}
    for inode in {ns for s in found for ns in s.netns_times}:
        richest = max(found, key=lambda s: s.by_netns.get(inode, 0))
        netns_times[inode] = dict(richest.netns_times.get(inode, {}))
    return LogSummary(
        table_full=best.table_full,
        expect_full=max(s.expect_full for s in found),
        suppressed=max(s.suppressed for s in found),
        first=first,
        last=last,
        by_netns=by_netns,
        sources=tuple(found),
        netns_times=netns_times,
    )


# -- when a line was written ------------------------------------------------------------------

_MONTHS = {m: i for i, m in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)}
#: Local time of a syslog stamp or an ISO stamp without offset is unknown: up to 14 h off.
TZ_SLACK = 14 * 3600.0
#: Ring-buffer times (``[secs]``, and the ISO times dmesg derives from them) come from the
#: kernel's printk clock, which is not NTP-disciplined and drifts from wall time: allow this
#: much, plus CLOCK_DRIFT of the time since boot.
CLOCK_SLACK = 30.0
CLOCK_DRIFT = 0.001


def stamp_epoch(stamp: str, *, boot_time: float | None, near: float,
                now: float | None = None) -> tuple[float, float] | None:
    """When a log line was written, as (epoch seconds, uncertainty in seconds); None when it
    cannot be told.

    * ISO with an offset: to the second, but dmesg computes it from the printk clock, so
      CLOCK_SLACK plus CLOCK_DRIFT of the uptime.
    * ISO without offset, and syslog ``Mon DD HH:MM:SS`` (no year): local time of an unknown
      zone, so +-14 h; the syslog year is the latest that does not put the stamp after
      ``now`` (when the host was observed), else the one closest to ``near``.
    * ``[secs]``: seconds since boot on the kernel's monotonic clock: ``boot_time`` (btime of
      /proc/stat) plus secs. The clock stops while the machine is suspended, so the real time
      may be later; None without a boot time.
    """
    text = stamp.strip()
    if not text:
        return None
    if text.startswith("["):
        if boot_time is None:
            return None
        try:
            since_boot = float(text.strip("[] "))
        except ValueError:
            return None
        return boot_time + since_boot, CLOCK_SLACK + CLOCK_DRIFT * since_boot
    m = re.match(r"([A-Z][a-z]{2}) +(\d+) (\d\d):(\d\d):(\d\d)$", text)
    if m is not None:
        month = _MONTHS.get(m.group(1))
        if month is None:
            return None
        year = datetime.fromtimestamp(now if now is not None else near, UTC).year
        best: float | None = None
        for y in (year + 1, year, year - 1):
            try:
                when = datetime(y, month, int(m.group(2)), int(m.group(3)), int(m.group(4)),
                                int(m.group(5)), tzinfo=UTC).timestamp()
            except ValueError:
                continue
            if now is not None:
                if when <= now + TZ_SLACK:
                    return when, TZ_SLACK
            elif best is None or abs(when - near) < abs(best - near):
                best = when
        return None if best is None else (best, TZ_SLACK)
    try:
        parsed = datetime.fromisoformat(text.replace(",", "."))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC).timestamp(), TZ_SLACK
    when = parsed.timestamp()
    uptime = max(when - boot_time, 0.0) if boot_time is not None else 0.0
    return when, CLOCK_SLACK + CLOCK_DRIFT * uptime
