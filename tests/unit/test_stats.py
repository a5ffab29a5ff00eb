"""/proc/net/stat/nf_conntrack parsing across the three header generations."""

from __future__ import annotations

import pytest

from hostnet.conntrack.stats import StatsFormatError, parse_stats
from hostnet.model.conntrack import counter_rates

CURRENT = """\
entries  clashres found new invalid ignore delete chainlength insert insert_failed drop early_drop icmp_error  expect_new expect_create expect_delete search_restart
0000a000  00000001 00000000 00000000 00000010 00000000 00000000 00000002 00000000 00000000 00000064 00000005 00000000  00000000 00000000 00000000 00000003
0000a000  00000002 00000000 00000000 00000020 00000000 00000000 00000001 00000000 00000000 00000036 00000005 00000000  00000000 00000000 00000000 00000000
"""
# 5.9-5.14: clashres replaced searched, delete_list still there
MIDDLE = """\
entries  clashres found new invalid ignore delete delete_list insert insert_failed drop early_drop icmp_error  expect_new expect_create expect_delete search_restart
00000010  00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000007 00000000 00000000  00000000 00000000 00000000 00000000
"""
# before 5.9
OLD = """\
entries  searched found new invalid ignore delete delete_list insert insert_failed drop early_drop icmp_error  expect_new expect_create expect_delete search_restart
00000400  00000100 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000002 00000001 00000000 00000000  00000000 00000000 00000000 00000000
00000400  00000100 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000003 00000001 00000000 00000000  00000000 00000000 00000000 00000000
"""


def test_current_header() -> None:
    s = parse_stats(CURRENT)
    assert s.entries == 0xA000  # taken once, not summed over CPUs
    assert s.cpus == 2
    assert s.drop == 0x64 + 0x36
    assert s.early_drop == 10
    assert s.get("clash_resolve") == 3
    assert s.get("chaintoolong") == 3
    assert s.counters["search_restart"] == 3


def test_middle_and_old_headers() -> None:
    assert parse_stats(MIDDLE).drop == 7
    old = parse_stats(OLD)
    assert old.entries == 0x400
    assert old.insert_failed == 5
    assert old.get("clash_resolve") is None
    assert old.counters["searched"] == 0x200


def test_rates() -> None:
    a = parse_stats(OLD)
    b = parse_stats(
        OLD.replace("00000001 00000000 00000000  0", "00000015 00000000 00000000  0", 1)
    )
    r = counter_rates(a.counters, b.counters, 2.0)
    assert r["drop"] == pytest.approx((0x15 - 1) / 2)
    assert counter_rates(a.counters, b.counters, 0) == {}
    # counter reset: the new value is the increase, never a negative rate
    assert counter_rates(b.counters, a.counters, 1.0)["drop"] == a.counters["drop"]


@pytest.mark.parametrize("text", ["", "garbage\n", "entries drop\n00000001\n", "entries\nzz\n"])
def test_bad_input(text: str) -> None:
    with pytest.raises(StatsFormatError):
        parse_stats(text)
