"""What the kernel log said about conntrack: events, per-source scans and their summary."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


def whole_seconds(stamp: str | None) -> str:
    """A log timestamp without its fraction of a second (``""`` for None)."""
    if not stamp:
        return ""
    if stamp.startswith("["):
        return stamp.split(".", 1)[0].rstrip("]") + "]"
    head, sep, rest = stamp.partition(",") if "," in stamp else stamp.partition(".")
    if not sep:
        return stamp
    tail = rest.lstrip("0123456789")
    return head + tail


class EventKind(enum.Enum):
    TABLE_FULL = "table_full"
    EXPECT_FULL = "expectation_table_full"
    SUPPRESSED = "suppressed"


@dataclass(frozen=True, slots=True)
class LogEvent:
    kind: EventKind
    #: The timestamp as written at the start of the line (ISO, syslog, or ``[secs]``).
    time: str | None
    #: Namespace inode for ``table full in netns N``; None: initial namespace or unknown.
    netns: int | None = None
    #: For SUPPRESSED: how many messages the rate limiter swallowed.
    suppressed: int = 0
    #: ``nf_conntrack`` or ``ip_conntrack`` (which tracker printed it).
    tracker: str = "nf_conntrack"
    line: str = ""


@dataclass(slots=True)
class SourceScan:
    """What one log source (a file, dmesg, the journal) contained."""

    source: str
    table_full: int = 0
    expect_full: int = 0
    #: Sum of the N in rate-limit notices (shared by every net_* warning, so an upper bound
    #: on how many conntrack lines were swallowed).
    suppressed: int = 0
    first: str | None = None
    last: str | None = None
    #: table-full lines per namespace inode (None: the initial namespace / no inode printed).
    by_netns: dict[int | None, int] = field(default_factory=dict)
    trackers: set[str] = field(default_factory=set)
    examples: list[str] = field(default_factory=list)
    #: For lines naming a namespace inode: how many lines carry each timestamp (cut to whole
    #: seconds, ``""`` for lines without one), so a check can drop lines older than the
    #: namespace that now has that inode.
    netns_times: dict[int, dict[str, int]] = field(default_factory=dict)

    def add(self, event: LogEvent) -> None:
        if event.kind is EventKind.SUPPRESSED:
            self.suppressed += event.suppressed
            return
        if event.kind is EventKind.TABLE_FULL:
            self.table_full += 1
            self.by_netns[event.netns] = self.by_netns.get(event.netns, 0) + 1
            if event.netns is not None:
                times = self.netns_times.setdefault(event.netns, {})
                stamp = whole_seconds(event.time)
                times[stamp] = times.get(stamp, 0) + 1
        else:
            self.expect_full += 1
        self.trackers.add(event.tracker)
        if event.time is not None:
            if self.first is None:
                self.first = event.time
            self.last = event.time
        if len(self.examples) < 3:
            self.examples.append(event.line)

    @property
    def events(self) -> int:
        return self.table_full + self.expect_full




@dataclass(frozen=True, slots=True)
class LogSummary:
    """All sources together. The same line often sits in dmesg, the journal and kern.log, so
    ``table_full`` is the largest count any single source holds (a lower bound), not a sum."""

    table_full: int
    expect_full: int
    suppressed: int
    first: str | None
    last: str | None
    by_netns: dict[int | None, int]
    sources: tuple[SourceScan, ...]
    #: Per namespace inode, the timestamps of its lines (from the source with the most).
    netns_times: dict[int, dict[str, int]] = field(default_factory=dict)

    @property
    def events(self) -> int:
        return self.table_full + self.expect_full

    def for_netns(self, inode: int | None) -> int:
        """table-full lines naming this namespace (None: the initial one)."""
        return self.by_netns.get(inode, 0)


