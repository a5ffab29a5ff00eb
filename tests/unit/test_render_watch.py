"""The watch screen fits its terminal and shows what the readings say (pure)."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from hostnet.findings import Rule, Severity
from hostnet.render.watch import NamespaceView, TopView, WatchView, render, screen_lines

FULL = Rule("CT101", "conntrack-table-full", Severity.ERROR, "full")
HIGH = Rule("CT102", "conntrack-usage-high", Severity.WARNING, "high")
INFO = Rule("CT107", "conntrack-hash-undersized", Severity.INFO, "info")


def ns(label: str = "blue", entries: int = 131072, limit: int = 262144, **kw: object) -> NamespaceView:
    base: dict[str, object] = {
        "growth": 12.0, "rates": {"drop": 0.0, "early_drop": 0.0, "insert_failed": 0.0},
        "history": tuple(float(i) for i in range(300)), "history_seconds": 299.0,
    }
    base.update(kw)
    return NamespaceView(label, entries, limit, **base)  # type: ignore[arg-type]


def draw(view: WatchView, width: int = 80, height: int = 24) -> list[str]:
    console = Console(file=io.StringIO(), width=width, height=height, color_system=None,
                      legacy_windows=False)
    console.print(render(view, width, height))
    text = console.file.getvalue()  # type: ignore[attr-defined]
    return text.rstrip("\n").split("\n")


def test_basic_screen_shows_usage_count_and_rates() -> None:
    lines = draw(WatchView((ns(),), clock="12:00:00"))
    text = "\n".join(lines)
    assert len(lines) == 24
    assert lines[0].startswith("hostnet watch") and "12:00:00" in lines[0]
    assert "blue" in lines[1] and "131,072/262,144" in lines[1] and "50.0%" in lines[1]
    assert "█" in lines[1] and "░" in lines[1]
    assert "+12/s" in lines[2] and "drop 0/s" in lines[2] and "5m" in lines[2]
    assert "No conntrack findings." in text
    assert lines[-1].startswith("q quit")


@pytest.mark.parametrize(("width", "height"), [(80, 24), (60, 15), (132, 43), (40, 10)])
def test_never_overflows_whatever_the_data(width: int, height: int) -> None:
    many = tuple(ns(f"hn-test-a-very-long-namespace-name-{i}", entries=i * 1000,
                    top=TopView(tuple((f"2001:db8::{j:x}", 1000 - j) for j in range(5)), 5000,
                                3.0))
                 for i in range(12))
    findings = tuple(FULL.finding("x" * 300 + "\nsecond line") for _ in range(30))
    lines = screen_lines(WatchView(many, findings), width, height)
    assert len(lines) == height
    assert all(len(line.plain) <= width for line in lines)
    assert all("\n" not in line.plain for line in lines)
    drawn = draw(WatchView(many, findings), width, height)
    assert len(drawn) == height and all(len(d) <= width for d in drawn)
    text = "\n".join(line.plain for line in lines)
    if height <= 24:  # twelve namespaces (24 lines) do not fit: the rest is counted
        assert "more namespaces" in text
    else:
        assert "more namespaces" not in text
    assert "more (hostnet doctor)" in text


def test_findings_worst_first_and_counted_when_cut() -> None:
    findings = (INFO.finding("buckets"), FULL.finding("table full"), HIGH.finding("high"))
    lines = [line.plain for line in screen_lines(WatchView((ns(),), findings), 80, 24)]
    start = lines.index("Findings")
    assert lines[start + 1].startswith("ERROR   CT101 table full")
    assert lines[start + 2].startswith("WARNING CT102")
    assert lines[start + 3].startswith("INFO    CT107")


def test_bar_length_follows_usage() -> None:
    empty = screen_lines(WatchView((ns(entries=0),)), 80, 24)[1].plain
    full = screen_lines(WatchView((ns(entries=262144),)), 80, 24)[1].plain
    half = screen_lines(WatchView((ns(entries=131072),)), 80, 24)[1].plain
    assert "█" not in empty and "░" not in full
    bar = half.count("█") + half.count("░")
    assert abs(half.count("█") - bar / 2) <= 1
    assert "100.0%" in full


def test_gone_namespace_and_missing_top_explained() -> None:
    view = WatchView((ns("red", gone=True), ns("blue", top_note="table has 900,000 entries "
                                                "(> 50,000): press t to read it")))
    text = "\n".join(line.plain for line in screen_lines(view, 80, 24))
    assert "red" in text and "namespace gone" in text
    assert "press t to read it" in text


def test_top_rows_show_source_count_and_share() -> None:
    top = TopView((("198.51.100.1", 750), ("198.51.100.2", 250)), 1000, 4.0)
    text = "\n".join(line.plain for line in screen_lines(WatchView((ns(top=top),)), 80, 24))
    assert "1,000 entries read 4s ago" in text
    assert "198.51.100.1" in text and "75.0%" in text and "25.0%" in text


def test_drops_are_shown_as_a_rate() -> None:
    lines = screen_lines(WatchView((ns(rates={"drop": 1500.0}),)), 80, 24)
    assert "drop 1.5k/s" in lines[2].plain


def test_unknown_limit_does_not_crash() -> None:
    line = screen_lines(WatchView((ns(entries=5, limit=0),)), 80, 24)[1].plain
    assert "5/0" in line and "?" in line


def test_status_replaces_key_help() -> None:
    lines = screen_lines(WatchView((ns(),), status="reading the conntrack table ..."), 80, 24)
    assert lines[-1].plain.startswith("reading the conntrack table")
