"""Conntrack sizing maths (pure).

The kernel's own default (``nf_conntrack_init_start`` in net/netfilter/nf_conntrack_core.c):

* 5.15 and later, no ``hashsize=`` given: buckets = RAM / 16384 / sizeof(bucket head) (8 bytes
  on 64-bit, 4 on 32-bit); more than 4 GiB of RAM on 64-bit: 262144; more than 1 GiB: 65536;
  never fewer than 1024. ``nf_conntrack_max`` = buckets (factor 1: each entry is hashed twice,
  once per direction, so chains average two entries when the table is full).
* Before 5.15: same RAM share; more than 4 GiB: 65536; more than 1 GiB: 16384; at least 32;
  ``nf_conntrack_max`` = 4 x buckets.
* With an explicit ``hashsize=`` the factor is 8 on every version.
* The hash allocation rounds the bucket count up to a whole page of bucket heads (512 on
  64-bit with 4 KiB pages) before the max is computed.

A recommendation takes the largest of: the observed count now, the peak seen before (history),
and what a traffic profile needs by Little's law (entries = new flows per second x seconds
each flow stays in the table, summed over the states it passes through); adds headroom; and
never goes below what the admin already set unless asked to.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

GIB = 1 << 30
PAGE_SIZE = 4096
#: Fallback bytes per entry when /proc/slabinfo is unreadable (struct nf_conn plus slab slack).
DEFAULT_ENTRY_BYTES = 320
#: One bucket is one pointer-sized list head.
BUCKET_BYTES = 8
#: Target: the table at most this full at the expected peak (1 / 0.66 = 1.5x headroom).
TARGET_USAGE = 2 / 3
#: Default TCP close-down state that every closed connection passes through (seconds).
DEFAULT_TIME_WAIT = 120
DEFAULT_TCP_ESTABLISHED = 432000
#: With no load figures, allow this many entries per CPU (the rule kube-proxy applies).
PER_CPU_FLOOR = 32768


@dataclass(frozen=True, slots=True)
class KernelDefault:
    buckets: int
    max: int
    steps: tuple[str, ...]


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def kernel_default(
    mem_bytes: int,
    kernel: tuple[int, int, int] = (6, 0, 0),
    *,
    bits: int = 64,
    hashsize: int | None = None,
) -> KernelDefault:
    """Buckets and nf_conntrack_max the kernel picks at module load."""
    head = 8 if bits >= 64 else 4
    per_page = PAGE_SIZE // head
    steps: list[str] = []
    if hashsize:
        buckets = _round_up(hashsize, per_page)
        steps.append(f"hashsize={hashsize} given: buckets = {buckets} (whole pages of heads)")
        steps.append(f"explicit hashsize: nf_conntrack_max = 8 x {buckets} = {8 * buckets}")
        return KernelDefault(buckets, 8 * buckets, tuple(steps))
    new = kernel >= (5, 15, 0)
    raw = mem_bytes // 16384 // head
    steps.append(f"RAM {mem_bytes} B / 16384 / {head} = {raw} buckets")
    if new:
        if bits >= 64 and mem_bytes > 4 * GIB:
            raw = 262144
            steps.append("more than 4 GiB on 64-bit: 262144 buckets")
        elif mem_bytes > GIB:
            raw = 65536
            steps.append("more than 1 GiB: 65536 buckets")
        floor, factor = 1024, 1
    else:
        if mem_bytes > 4 * GIB:
            raw = 65536
            steps.append("more than 4 GiB: 65536 buckets")
        elif mem_bytes > GIB:
            raw = 16384
            steps.append("more than 1 GiB: 16384 buckets")
        floor, factor = 32, 4
    if raw < floor:
        raw = floor
        steps.append(f"at least {floor} buckets")
    buckets = _round_up(raw, per_page)
    if buckets != raw:
        steps.append(f"rounded up to whole pages of bucket heads: {buckets}")
    version = ">= 5.15" if new else "< 5.15"
    steps.append(f"kernel {version}: nf_conntrack_max = {factor} x {buckets} = {factor * buckets}")
    return KernelDefault(buckets, factor * buckets, tuple(steps))


@dataclass(frozen=True, slots=True)
class Phase:
    """One state a typical flow spends time in, and for how long (seconds)."""

    state: str
    seconds: float


@dataclass(frozen=True, slots=True)
class TrafficProfile:
    """New flows per second and the states each one passes through."""

    rate: float
    phases: tuple[Phase, ...]

    @property
    def seconds_per_flow(self) -> float:
        return sum(p.seconds for p in self.phases)

    @property
    def entries(self) -> float:
        return self.rate * self.seconds_per_flow


def tcp_profile(
    rate: float,
    *,
    established_lifetime: float | None = None,
    timeout_established: float = DEFAULT_TCP_ESTABLISHED,
    time_wait: float = DEFAULT_TIME_WAIT,
) -> TrafficProfile:
    """A TCP profile: each flow is established for its lifetime (capped by the established
    timeout: an idle flow that never closes stays that long), then sits in TIME_WAIT.

    Without a lifetime the flows are assumed never to close, so they stay for the whole
    established timeout: the worst case, and the reason the 5-day default fills tables.
    """
    if established_lifetime is None:
        return TrafficProfile(rate, (Phase("ESTABLISHED (never closed)", timeout_established),))
    held = min(established_lifetime, timeout_established)
    return TrafficProfile(rate, (Phase("ESTABLISHED", held), Phase("TIME_WAIT", time_wait)))


@dataclass(frozen=True, slots=True)
class SizingInput:
    mem_bytes: int
    cpus: int
    kernel: tuple[int, int, int] = (6, 0, 0)
    current_max: int | None = None
    current_buckets: int | None = None
    count: int = 0
    peak: int = 0
    profile: TrafficProfile | None = None
    entry_bytes: int | None = None
    allow_lower: bool = False


@dataclass(frozen=True, slots=True)
class Sizing:
    max: int
    buckets: int
    need: int
    default: KernelDefault
    entry_bytes: int
    entry_bytes_source: str
    memory_bytes: int
    memory_share: float
    kept_current: bool
    steps: tuple[str, ...]
    profile_entries: float | None = None
    warnings: tuple[str, ...] = field(default_factory=tuple)

    def sysctl_lines(self) -> list[str]:
        return [
            f"net.netfilter.nf_conntrack_max = {self.max}",
            f"net.netfilter.nf_conntrack_buckets = {self.buckets}",
        ]

    def modprobe_line(self) -> str:
        return f"options nf_conntrack hashsize={self.buckets}"

    def suggestion(self) -> str:
        return "\n".join(
            ["# /etc/sysctl.d/90-hostnet.conf", *self.sysctl_lines(),
             "# /etc/modprobe.d/hostnet.conf (buckets at boot)", self.modprobe_line()]
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "nf_conntrack_max": self.max,
            "nf_conntrack_buckets": self.buckets,
            "need": self.need,
            "kernel_default": {"max": self.default.max, "buckets": self.default.buckets},
            "profile_entries": self.profile_entries,
            "entry_bytes": self.entry_bytes,
            "entry_bytes_source": self.entry_bytes_source,
            "memory_bytes": self.memory_bytes,
            "memory_share": round(self.memory_share, 6),
            "kept_current": self.kept_current,
            "steps": list(self.steps),
            "warnings": list(self.warnings),
            "sysctl": self.sysctl_lines(),
            "modprobe": self.modprobe_line(),
        }


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


def nice_round(value: int) -> int:
    """Round up to a whole number of bucket pages (512), which also keeps the max tidy."""
    return _round_up(max(value, 1), 512)


def recommend(inp: SizingInput) -> Sizing:
    """Recommended nf_conntrack_max and buckets, with every step explained."""
    steps: list[str] = []
    warnings: list[str] = []
    default = kernel_default(inp.mem_bytes, inp.kernel)
    steps.append(
        f"kernel default for {inp.mem_bytes / GIB:.1f} GiB RAM: "
        f"max {default.max}, buckets {default.buckets}"
    )
    candidates: dict[str, float] = {"kernel default": default.max}
    if inp.count:
        candidates["count now"] = inp.count
    if inp.peak:
        candidates["peak seen"] = inp.peak
    profile_entries: float | None = None
    if inp.profile is not None:
        profile_entries = inp.profile.entries
        parts = " + ".join(f"{p.seconds:g} s {p.state}" for p in inp.profile.phases)
        steps.append(
            f"Little's law: {inp.profile.rate:g} new flows/s x ({parts}) = "
            f"{profile_entries:,.0f} entries in the table at steady state"
        )
        candidates["traffic profile"] = profile_entries
    load = max(v for k, v in candidates.items() if k != "kernel default") if len(
        candidates) > 1 else 0.0
    if load:
        source = max((k for k in candidates if k != "kernel default"), key=candidates.__getitem__)
        need = math.ceil(load / TARGET_USAGE)
        steps.append(
            f"largest load: {source} = {load:,.0f}; keep the table at most "
            f"{TARGET_USAGE:.0%} full: {load:,.0f} / {TARGET_USAGE:.2f} = {need:,}"
        )
    else:
        per_cpu = PER_CPU_FLOOR * max(inp.cpus, 1)
        need = max(default.max, per_cpu)
        steps.append(
            f"no load figures: the larger of the kernel default ({default.max:,}) and "
            f"{PER_CPU_FLOOR:,} per CPU x {inp.cpus} = {per_cpu:,}"
        )
    target = nice_round(need)
    steps.append(f"rounded up to a multiple of 512: {target:,}")
    kept = False
    if inp.current_max and target < inp.current_max and not inp.allow_lower:
        steps.append(
            f"current nf_conntrack_max {inp.current_max:,} is higher: kept "
            "(pass --allow-lower to size down)"
        )
        target = inp.current_max
        kept = True
    buckets = nice_round(target)
    if inp.current_buckets and not inp.allow_lower and (
        inp.current_buckets >= buckets or (kept and inp.current_buckets * 4 >= target)
    ):
        buckets = inp.current_buckets  # already enough (at most 4 entries per bucket)
        steps.append(f"buckets: the current {buckets:,} are enough (at most 4 entries each)")
    else:
        steps.append(
            f"buckets = max (factor 1, as the kernel does since 5.15: each entry sits in two "
            f"chains, so full chains average two entries): {buckets:,}"
        )
    entry_bytes = inp.entry_bytes or DEFAULT_ENTRY_BYTES
    src = "/proc/slabinfo nf_conntrack" if inp.entry_bytes else "typical (slab unreadable)"
    memory = target * entry_bytes + buckets * BUCKET_BYTES
    share = memory / inp.mem_bytes if inp.mem_bytes else 0.0
    steps.append(
        f"memory when full: {target:,} x {entry_bytes} B ({src}) + {buckets:,} x "
        f"{BUCKET_BYTES} B = {memory / (1 << 20):,.1f} MiB ({share:.2%} of RAM)"
    )
    if share > 0.10:
        warnings.append(
            f"a full table would take {share:.0%} of RAM: find what fills it "
            "(hostnet conntrack top) before raising the limit this far"
        )
    return Sizing(
        max=target, buckets=buckets, need=need, default=default, entry_bytes=entry_bytes,
        entry_bytes_source=src, memory_bytes=memory, memory_share=share, kept_current=kept,
        steps=tuple(steps), profile_entries=profile_entries, warnings=tuple(warnings),
    )


_UNITS = {"": 1, "s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}
_SIZES = {"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10, "m": 1 << 20,
          "mb": 1 << 20, "mib": 1 << 20, "g": GIB, "gb": GIB, "gib": GIB, "t": 1 << 40,
          "tb": 1 << 40, "tib": 1 << 40}


def _split_number(text: str) -> tuple[float, str]:
    s = text.strip().lower().replace("_", "")
    i = 0
    while i < len(s) and (s[i].isdigit() or s[i] == "."):
        i += 1
    if i == 0:
        raise ValueError(f"{text!r}: expected a number")
    return float(s[:i]), s[i:].strip()


def parse_duration(text: str) -> float:
    """'300', '300s', '5m', '2h', '1d' -> seconds."""
    value, unit = _split_number(text)
    if unit not in _UNITS:
        raise ValueError(f"{text!r}: unknown unit {unit!r} (s, m, h, d, w)")
    return value * _UNITS[unit]


def parse_size(text: str) -> int:
    """'24G', '512MiB', '1073741824' -> bytes (binary units)."""
    value, unit = _split_number(text)
    if unit not in _SIZES:
        raise ValueError(f"{text!r}: unknown unit {unit!r} (K, M, G, T)")
    return int(value * _SIZES[unit])


def parse_rate(text: str) -> float:
    """'2000', '2000/s', '120000/m' -> flows per second."""
    s = text.strip().lower()
    num, _, per = s.partition("/")
    value, unit = _split_number(num)
    if unit:
        raise ValueError(f"{text!r}: expected N or N/s")
    per = per.strip() or "s"
    if per not in _UNITS:
        raise ValueError(f"{text!r}: unknown period {per!r} (s, m, h)")
    return value / _UNITS[per]
