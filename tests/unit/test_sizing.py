"""Sizing maths against the kernel's own default formula, and the recommendation rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from hostnet.conntrack.sizing import (
    GIB,
    SizingInput,
    kernel_default,
    parse_duration,
    parse_rate,
    parse_size,
    recommend,
    tcp_profile,
)
from hostnet.conntrack.stats import slab_entry_bytes

MIB = 1 << 20


@pytest.mark.parametrize(
    ("mem", "kernel", "buckets", "limit"),
    [
        # >= 5.15: RAM/16384/8, 65536 above 1 GiB, 262144 above 4 GiB (64-bit), factor 1
        (24 * GIB, (6, 18, 0), 262144, 262144),
        (4 * GIB, (6, 1, 0), 65536, 65536),  # exactly 4 GiB is not "more than"
        (2 * GIB, (5, 15, 0), 65536, 65536),
        (GIB, (6, 1, 0), 8192, 8192),  # exactly 1 GiB: the RAM share
        (512 * MIB, (6, 1, 0), 4096, 4096),
        (64 * MIB, (6, 1, 0), 1024, 1024),  # floor 1024
        (700 * MIB, (6, 1, 0), 5632, 5632),  # 5600 rounded up to a page of heads (512)
        # < 5.15: 16384 above 1 GiB, 65536 above 4 GiB, floor 32, factor 4
        (8 * GIB, (4, 9, 0), 65536, 262144),
        (2 * GIB, (5, 10, 0), 16384, 65536),
        (512 * MIB, (4, 19, 0), 4096, 16384),
    ],
)
def test_kernel_default(mem: int, kernel: tuple[int, int, int], buckets: int, limit: int) -> None:
    got = kernel_default(mem, kernel)
    assert (got.buckets, got.max) == (buckets, limit)


def test_explicit_hashsize_uses_factor_8() -> None:
    got = kernel_default(24 * GIB, (6, 18, 0), hashsize=100000)
    assert got.buckets == 100352 and got.max == 8 * 100352


def read(path: str) -> str | None:
    try:
        return Path(path).read_text()
    except OSError:
        return None


def test_formula_matches_running_kernel() -> None:
    """FACTS.md: this kernel picked buckets (and, untouched, max) from RAM by the formula."""
    buckets = read("/proc/sys/net/netfilter/nf_conntrack_buckets")
    meminfo = read("/proc/meminfo")
    release = read("/proc/sys/kernel/osrelease")
    if buckets is None or meminfo is None or release is None:
        pytest.skip("nf_conntrack not loaded here")
    from hostnet.observe.kernel import parse_kernel_version

    mem = next(int(line.split()[1]) * 1024 for line in meminfo.splitlines()
               if line.startswith("MemTotal:"))
    want = kernel_default(mem, parse_kernel_version(release.strip()))
    # nf_conntrack_max is global and writable (another test may have raised it); the bucket
    # count is what boot chose, unless a hashsize= was given
    param = read("/sys/module/nf_conntrack/parameters/hashsize")
    if param is not None and int(param) != int(buckets):
        pytest.skip("buckets were resized at run time")
    assert int(buckets) == want.buckets


def test_slabinfo_object_size() -> None:
    text = ("slabinfo - version: 2.1\n"
            "nf_conntrack_expect  0 0 208 19 1 : tunables 0 0 0 : slabdata 0 0 0\n"
            "nf_conntrack       64010  64050    320   25    2 : tunables 0 0 0 : slabdata 1 1 0\n")
    assert slab_entry_bytes(text) == 320
    assert slab_entry_bytes("slabinfo - version: 2.1\n") is None


def test_littles_law_profile() -> None:
    p = tcp_profile(2000, established_lifetime=30, timeout_established=432000, time_wait=120)
    assert p.entries == 2000 * (30 + 120)
    # no lifetime given: a typical one is assumed (and named), not the 5-day timeout
    assumed = tcp_profile(10, timeout_established=432000)
    assert assumed.entries == 10 * (60 + 120) and "assumed" in assumed.phases[0].state
    capped = tcp_profile(10, established_lifetime=10**9, timeout_established=3600, time_wait=0)
    assert capped.entries == 10 * 3600 and "capped" in capped.phases[0].state


def test_recommendation_from_profile_with_headroom() -> None:
    s = recommend(SizingInput(
        mem_bytes=24 * GIB, cpus=2, kernel=(6, 18, 0), current_max=262144,
        current_buckets=262144, profile=tcp_profile(2000, established_lifetime=30,
                                                    time_wait=120), entry_bytes=256))
    assert s.need == 450000  # 300000 entries at 2/3 usage
    assert s.max == 450048 and s.max % 512 == 0 and s.buckets == s.max
    assert s.memory_bytes == 450048 * 256 + 450048 * 8
    assert "net.netfilter.nf_conntrack_max = 450048" in s.suggestion()
    assert "options nf_conntrack hashsize=450048" in s.suggestion()
    assert any("Little's law" in step for step in s.steps)


def test_full_table_recommends_larger() -> None:
    s = recommend(SizingInput(mem_bytes=24 * GIB, cpus=2, kernel=(6, 18, 0),
                              current_max=262144, current_buckets=262144, count=262144,
                              peak=262144))
    assert s.max > 262144
    assert s.entry_bytes_source.startswith("typical")


def test_never_lowers_unless_asked() -> None:
    inp = dict(mem_bytes=24 * GIB, cpus=2, kernel=(6, 18, 0), current_max=2_000_000,
               current_buckets=2_000_000, count=1000, peak=5000)
    kept = recommend(SizingInput(**inp))  # type: ignore[arg-type]
    assert kept.max == 2_000_000 and kept.kept_current and kept.buckets == 2_000_000
    lowered = recommend(SizingInput(**inp, allow_lower=True))  # type: ignore[arg-type]
    assert lowered.max == 7680 and not lowered.kept_current


def test_no_load_uses_default_or_per_cpu_floor() -> None:
    small = recommend(SizingInput(mem_bytes=2 * GIB, cpus=16, kernel=(6, 1, 0)))
    assert small.max == 16 * 32768
    big = recommend(SizingInput(mem_bytes=24 * GIB, cpus=2, kernel=(6, 1, 0)))
    assert big.max == 262144


def test_memory_warning_on_small_host() -> None:
    s = recommend(SizingInput(mem_bytes=512 * MIB, cpus=1, kernel=(6, 1, 0),
                              profile=tcp_profile(1000)))
    assert s.warnings and "RAM" in s.warnings[0]


@pytest.mark.parametrize(("text", "seconds"), [("300", 300), ("30s", 30), ("5m", 300),
                                                 ("2h", 7200), ("1d", 86400), ("1.5h", 5400)])
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_parse_size_and_rate() -> None:
    assert parse_size("8G") == 8 * GIB and parse_size("512MiB") == 512 * MIB
    assert parse_size("1073741824") == GIB
    assert parse_rate("2000/s") == 2000 and parse_rate("120000/m") == 2000
    assert parse_rate("50") == 50
    for bad, parse in (("abc", parse_size), ("5 parsecs", parse_duration), ("3/fortnight",
                                                                          parse_rate)):
        with pytest.raises(ValueError):
            parse(bad)  # type: ignore[operator]
