"""The sampler's ring buffer, rates and sparklines (pure)."""

from __future__ import annotations

import pytest

from hostnet.conntrack.sampler import (
    BLOCKS,
    Reading,
    Sampler,
    canonical,
    human_rate,
    resample,
    sparkline,
)


def r(t: float, entries: int, **counters: int) -> Reading:
    return Reading(t, entries, dict(counters), limit=1000)


def test_rates_need_two_readings_and_use_the_last_interval() -> None:
    s = Sampler(10)
    s.add(r(0, 10, drop=5, early_drop=0))
    assert s.rates() == {} and s.growth() is None and s.rate("drop") is None
    s.add(r(2, 30, drop=9, early_drop=4))
    assert s.rates() == {"drop": 2.0, "early_drop": 2.0}
    assert s.growth() == 10.0
    s.add(r(3, 20, drop=9, early_drop=4))
    assert s.rate("drop") == 0.0
    assert s.growth() == -10.0


def test_counter_reset_counts_its_new_value_never_negative() -> None:
    """The one rate function's reset rule (Prometheus): after a reset the increase is the
    new value, the same in watch as in doctor and the exporter's rate()."""
    s = Sampler(5)
    s.add(r(0, 1, drop=100))
    s.add(r(1, 1, drop=3))
    assert s.rate("drop") == 3.0


def test_counter_missing_before_is_left_out() -> None:
    s = Sampler(5)
    s.add(r(0, 1))
    s.add(r(1, 1, drop=3))
    assert s.rates() == {}


def test_ring_buffer_keeps_the_newest_and_peak() -> None:
    s = Sampler(3)
    for t, n in enumerate([50, 10, 20, 30]):
        s.add(r(t, n))
    assert len(s) == 3
    assert [x.count for x in s.readings] == [10, 20, 30]
    assert s.peak == 30  # the 50 fell out of the window
    assert s.latest is not None and s.latest.count == 30


def test_clock_going_back_restarts_history() -> None:
    s = Sampler(5)
    s.add(r(10, 1, drop=1))
    s.add(r(11, 2, drop=2))
    s.add(r(5, 3, drop=3))
    assert len(s) == 1 and s.rates() == {}


def test_series_of_entries_and_of_a_counter_rate() -> None:
    s = Sampler(10)
    s.add(r(0, 5, drop=0))
    s.add(r(1, 6, drop=4))
    s.add(r(3, 7, drop=8))
    assert s.series("entries") == [5.0, 6.0, 7.0]
    assert s.series("drop") == [4.0, 2.0]
    assert s.series("early_drop") == [0.0, 0.0]


def test_usage_and_capacity_guard() -> None:
    assert Reading(0, 250, limit=1000).usage == 0.25
    assert Reading(0, 250).usage is None
    with pytest.raises(ValueError):
        Sampler(1)


def test_canonical_names_follow_current_kernels() -> None:
    assert canonical({"clashres": 1, "chainlength": 2, "drop": 3}) == {
        "clash_resolve": 1, "chaintoolong": 2, "drop": 3}


def test_sparkline_scales_pads_and_shows_flat_activity() -> None:
    assert sparkline([0, 7], 4) == "  " + BLOCKS[0] + BLOCKS[-1]
    assert sparkline([0, 0, 0], 3) == BLOCKS[0] * 3
    assert sparkline([], 3) == "   "
    assert sparkline([5, 10], 2, ceiling=20) == BLOCKS[2] + BLOCKS[4]
    assert sparkline([50], 1, ceiling=20) == BLOCKS[-1]  # clipped, never out of range
    assert sparkline([1, 2, 3], 0) == ""


def test_resample_keeps_spikes_when_squeezing() -> None:
    values = [0.0] * 100
    values[37] = 9.0
    out = resample(values, 10)
    assert len(out) == 10 and max(out) == 9.0 and out[3] == 9.0
    assert resample([1.0, 2.0], 10) == [1.0, 2.0]
    assert resample([1.0], 0) == []


def test_sparkline_width_is_exact_for_long_histories() -> None:
    line = sparkline([float(i % 7) for i in range(1000)], 37)
    assert len(line) == 37 and set(line) <= set(BLOCKS)


@pytest.mark.parametrize(("value", "text"), [
    (None, "-"), (0.0, "0/s"), (2.5, "2.5/s"), (12.4, "12/s"), (1500.0, "1.5k/s"),
    (2_500_000.0, "2.5M/s"), (-3.0, "-3/s"),
])
def test_human_rate(value: float | None, text: str) -> None:
    assert human_rate(value) == text
