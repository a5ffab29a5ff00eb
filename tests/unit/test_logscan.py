"""Recognition of conntrack lines in kernel logs, every historic form, and the fast scanner."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from hostnet.conntrack.logscan import (
    EventKind,
    SourceScan,
    iter_events,
    line_time,
    parse_line,
    scan_buffer,
    scan_chunks,
    summarise,
)
from hostnet.host.kernlog import log_files
from hostnet.host.root import Root
from hostnet.observe.kernlog import scan_all, scan_file

ROOTS = Path(__file__).resolve().parents[1] / "fixtures" / "roots"


@pytest.mark.parametrize(
    ("line", "kind", "netns", "tracker"),
    [
        ("[ 12.5] nf_conntrack: table full, dropping packet", EventKind.TABLE_FULL, None,
         "nf_conntrack"),
        ("[ 12.5] nf_conntrack: nf_conntrack: table full, dropping packet",
         EventKind.TABLE_FULL, None, "nf_conntrack"),
        ("[ 12.5] nf_conntrack: table full, dropping packet.", EventKind.TABLE_FULL, None,
         "nf_conntrack"),
        ("nf_conntrack: table full in netns 4026532513, dropping packet",
         EventKind.TABLE_FULL, 4026532513, "nf_conntrack"),
        ("nf_conntrack: nf_conntrack: table full in netns 7, dropping packet",
         EventKind.TABLE_FULL, 7, "nf_conntrack"),
        ("Jan 12 04:02:11 fw kernel: ip_conntrack: table full, dropping packet.",
         EventKind.TABLE_FULL, None, "ip_conntrack"),
        ("nf_conntrack: expectation table full", EventKind.EXPECT_FULL, None, "nf_conntrack"),
    ],
)
def test_table_full_forms(line: str, kind: EventKind, netns: int | None, tracker: str) -> None:
    event = parse_line(line)
    assert event is not None
    assert event.kind is kind
    assert event.netns == netns
    assert event.tracker == tracker


@pytest.mark.parametrize(
    ("line", "count"),
    [
        ("[ 5.1] net_ratelimit: 812 callbacks suppressed", 812),
        ("[ 5.1] __ratelimit: 40 callbacks suppressed", 40),
        ("[ 5.1] ___ratelimit: 41 callbacks suppressed", 41),
        ("Jan 12 04:02:16 fw kernel: printk: 37 messages suppressed.", 37),
    ],
)
def test_suppression_forms(line: str, count: int) -> None:
    event = parse_line(line)
    assert event is not None and event.kind is EventKind.SUPPRESSED
    assert event.suppressed == count


@pytest.mark.parametrize(
    "line",
    [
        "ext4: 3 callbacks suppressed",  # another subsystem's rate limit
        "sshd[1]: route table full, dropping packet",  # not a conntrack tracker prefix
        "nf_conntrack version 0.5.0 (65536 buckets, 262144 max)",
        "",
    ],
)
def test_other_lines_are_not_events(line: str) -> None:
    assert parse_line(line) is None


@pytest.mark.parametrize(
    ("line", "stamp"),
    [
        ("2024-05-02T09:30:00,000001+00:00 nf_conntrack: x", "2024-05-02T09:30:00,000001+00:00"),
        ("2024-05-02T09:30:00+0000 host kernel: x", "2024-05-02T09:30:00+0000"),
        ("Mar  3 10:15:22 gw kernel: [ 2121.4] x", "Mar  3 10:15:22"),
        ("[ 2121.400001] x", "[2121.400001]"),
        ("4,1234,5630519502,-;nf_conntrack: table full, dropping packet", "[5630.519502]"),
        ("no stamp here", None),
    ],
)
def test_line_time(line: str, stamp: str | None) -> None:
    assert line_time(line) == stamp


def test_scanner_finds_hits_at_buffer_edges_and_skips_rest() -> None:
    data = (b"nf_conntrack: table full, dropping packet\n"
            + b"[ 1.0] unrelated line\n" * 1000
            + b"[ 2.0] net_ratelimit: 9 callbacks suppressed\n"
            + b"[ 3.0] nf_conntrack: table full in netns 5, dropping packet")  # no final newline
    events = list(iter_events(data))
    assert [e.kind for e in events] == [EventKind.TABLE_FULL, EventKind.SUPPRESSED,
                                        EventKind.TABLE_FULL]
    assert events[2].netns == 5 and events[2].time == "[3.0]"
    scan = scan_buffer(data, "x")
    assert (scan.table_full, scan.suppressed, scan.by_netns) == (2, 9, {None: 1, 5: 1})


def test_chunked_scan_matches_whole_scan_at_any_split() -> None:
    text = (b"[ 1.0] nf_conntrack: table full, dropping packet\n"
            b"[ 1.5] filler\n"
            b"[ 2.0] net_ratelimit: 3 callbacks suppressed\n"
            b"[ 3.0] ip_conntrack: table full, dropping packet.\n")
    whole = scan_buffer(text, "w")
    for cut in range(1, len(text)):
        parts = scan_chunks([text[:cut], text[cut:]], "c")
        assert (parts.table_full, parts.suppressed, parts.first, parts.last) == (
            whole.table_full, whole.suppressed, whole.first, whole.last), cut


def test_summary_takes_largest_source_not_the_sum() -> None:
    a = SourceScan("dmesg")
    b = SourceScan("/var/log/kern.log")
    for e in iter_events(b"2024-05-02T09:30:00+00:00 nf_conntrack: table full, dropping packet\n"):
        a.add(e)
        b.add(e)
    for e in iter_events(b"2024-05-01T09:30:00+00:00 nf_conntrack: table full, dropping packet\n"):
        b.add(e)
    s = summarise([a, b])
    assert s.table_full == 2  # the same line in two sources is one event
    assert s.first == "2024-05-01T09:30:00+00:00" and s.last == "2024-05-02T09:30:00+00:00"


def test_debian9_logs_with_rotations_and_gzip() -> None:
    root = Root(ROOTS / "debian9-4.9")
    assert log_files(root) == ["var/log/kern.log", "var/log/kern.log.1", "var/log/kern.log.2.gz"]
    scans = {rel: scan_file(str(root.file(rel))) for rel in log_files(root)}
    assert scans["var/log/kern.log"].table_full == 3
    assert scans["var/log/kern.log"].expect_full == 1
    assert scans["var/log/kern.log"].suppressed == 812  # ext4's notice is not counted
    assert scans["var/log/kern.log.2.gz"].table_full == 3
    assert scans["var/log/kern.log.2.gz"].suppressed == 120
    summary = scan_all(root)
    assert summary.table_full == 3 and summary.expect_full == 1


def test_ip_conntrack_era_messages() -> None:
    summary = scan_all(Root(ROOTS / "centos5-2.6.18"))
    assert summary.table_full == 2
    assert summary.suppressed == 37
    assert summary.sources[0].trackers == {"ip_conntrack"}
    assert summary.first == "Jan 12 04:02:11" and summary.last == "Jan 12 04:02:16"


def test_snapshot_dmesg_and_journal_by_namespace() -> None:
    summary = scan_all(Root(ROOTS / "noprocfs-6.1"))
    assert summary.by_netns == {None: 1, 4026532513: 2}
    assert summary.for_netns(4026532513) == 2
    assert summary.suppressed == 77
    assert summary.first == "2024-05-02T09:30:00+0000"  # the journal has whole seconds
    assert summary.last == "2024-05-02T09:31:10,000000+00:00"


def test_gzip_chunks_split_lines(tmp_path: Path) -> None:
    import hostnet.host.kernlog as kernlog  # CHUNK lives with the gzip reader

    path = tmp_path / "kern.log.3.gz"
    with gzip.open(path, "wb") as fh:
        fh.write(b"[ 1.0] nf_conntrack: table full, dropping packet\n" * 500)
    old = kernlog.CHUNK
    kernlog.CHUNK = 37  # force lines to straddle blocks
    try:
        assert scan_file(str(path)).table_full == 500
    finally:
        kernlog.CHUNK = old


def test_notices_far_from_conntrack_lines_are_not_counted() -> None:
    far = b"[ 0.5] net_ratelimit: 500 callbacks suppressed\n" + b"[ 0.9] filler line\n" * 2000
    data = far + (b"[ 1.0] nf_conntrack: table full, dropping packet\n"
                  b"[ 1.1] net_ratelimit: 7 callbacks suppressed\n")
    assert scan_buffer(data, "x").suppressed == 7
