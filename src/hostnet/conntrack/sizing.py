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

Limits it never crosses:

* the kernel's: ``nf_ct_alloc_hashtable`` (net/netfilter/nf_conntrack_core.c) refuses more
  than INT_MAX / sizeof(bucket head) buckets, before and after rounding up to whole pages
  (older kernels: UINT_MAX / 8), so a bigger ``nf_conntrack_buckets`` write fails and a bigger
  ``hashsize=`` makes the module fail to load; ``nf_conntrack_max`` is an int sysctl
  (nf_conntrack_standalone.c), at most INT_MAX;
* memory: a full table may take at most MEMORY_CAP of RAM. Above that the recommendation is
  capped and says why; a load that does not fit even without headroom is an error.

A flow's time in the table is its real lifetime, not the established timeout: the timeout is
how long an entry survives a flow that vanished without FIN/RST, an upper bound.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hostnet.errors import SizingError

if TYPE_CHECKING:
    from hostnet.model.host import HostState

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
#: A connection's lifetime when the user gives none (a typical web/API request or session).
DEFAULT_LIFETIME = 60.0
INT_MAX = (1 << 31) - 1
#: Most buckets the kernel allocates: INT_MAX / 8 (bytes per head), in whole pages of heads.
MAX_BUCKETS = (INT_MAX // BUCKET_BYTES) // (PAGE_SIZE // BUCKET_BYTES) * (PAGE_SIZE // BUCKET_BYTES)
#: nf_conntrack_max is an int sysctl; kept a multiple of 512 like the rest.
MAX_ENTRIES = INT_MAX // 512 * 512
#: Largest share of RAM a full table may take.
MEMORY_CAP = 0.25
#: Least RAM that makes sense to size for (the kernel's own floor is 1024 buckets).
MIN_RAM = 32 << 20


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
    """A TCP profile: each flow is established for its lifetime, then sits in TIME_WAIT.

    The established timeout only bounds the lifetime (a flow idle longer than it loses its
    entry); it is not how long flows live. Without a lifetime, DEFAULT_LIFETIME is assumed and
    named in the steps. Raises ValueError for a rate, lifetime or timeout that is not
    positive.
    """
    if not rate > 0 or not math.isfinite(rate):
        raise ValueError(f"rate {rate:g}: give a positive number of new flows per second")
    if not timeout_established > 0 or not time_wait >= 0:
        raise ValueError("timeouts must be positive")
    assumed = established_lifetime is None
    life = DEFAULT_LIFETIME if established_lifetime is None else established_lifetime
    if not life > 0 or not math.isfinite(life):
        raise ValueError(f"lifetime {life:g} s: give a positive duration")
    held = min(life, timeout_established)
    label = "ESTABLISHED (assumed lifetime; pass --established-lifetime)" if assumed else \
        "ESTABLISHED"
    if held < life:
        label = f"ESTABLISHED (lifetime capped by the {timeout_established:g} s timeout)"
    return TrafficProfile(rate, (Phase(label, held), Phase("TIME_WAIT", time_wait)))


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


def nice_round(value: int) -> int:
    """Round up to a whole number of bucket pages (512), which also keeps the max tidy."""
    return _round_up(max(value, 1), 512)


def recommend(inp: SizingInput) -> Sizing:
    """Recommended nf_conntrack_max and buckets, with every step explained."""
    if inp.mem_bytes < MIN_RAM:
        raise SizingError(f"RAM {inp.mem_bytes} bytes: too little to size a conntrack table "
                          f"for (at least {MIN_RAM >> 20} MiB)",
                          hint="give the machine's memory, e.g. --ram 8G")
    if inp.cpus < 1:
        raise SizingError(f"CPU count {inp.cpus}: give at least 1", hint="e.g. --cpus 4")
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
    entry_bytes = inp.entry_bytes or DEFAULT_ENTRY_BYTES
    target = nice_round(need)
    steps.append(f"rounded up to a multiple of 512: {target:,}")
    fits = _memory_limit(inp.mem_bytes, entry_bytes)
    if load and math.ceil(load) > fits:
        raise SizingError(
            f"{load:,.0f} entries at steady state would take "
            f"{load * (entry_bytes + BUCKET_BYTES) / GIB:,.1f} GiB, more than "
            f"{MEMORY_CAP:.0%} of the {inp.mem_bytes / GIB:.1f} GiB of RAM "
            f"({fits:,} entries fit)",
            hint="check the rate and lifetime; shorter timeouts or more RAM, or find what "
                 "fills the table (hostnet conntrack top)")
    limit = min(fits, MAX_ENTRIES)
    if target > limit:
        why = (f"{MEMORY_CAP:.0%} of RAM ({fits:,} entries of {entry_bytes} B)" if
               limit == fits else f"the kernel's int limit for nf_conntrack_max ({MAX_ENTRIES:,})")
        steps.append(f"capped at {limit:,}: a full table may take at most {why}")
        warnings.append(
            f"the load needs {target:,} entries with headroom, but at most {limit:,} fit "
            f"({why}): the table runs fuller than {TARGET_USAGE:.0%} at peak")
        target = limit
    kept = False
    if inp.current_max and target < inp.current_max and not inp.allow_lower:
        steps.append(
            f"current nf_conntrack_max {inp.current_max:,} is higher: kept "
            "(pass --allow-lower to size down)"
        )
        target = inp.current_max
        kept = True
    buckets = min(nice_round(target), MAX_BUCKETS)
    if buckets < nice_round(target):
        steps.append(f"buckets capped at {MAX_BUCKETS:,}: the kernel allocates at most "
                     "INT_MAX / 8 bucket heads (nf_ct_alloc_hashtable)")
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
    src = "/proc/slabinfo nf_conntrack" if inp.entry_bytes else "typical (slab unreadable)"
    memory = target * entry_bytes + buckets * BUCKET_BYTES
    share = memory / inp.mem_bytes if inp.mem_bytes else 0.0
    steps.append(
        f"memory when full: {target:,} x {entry_bytes} B ({src}) + {buckets:,} x "
        f"{BUCKET_BYTES} B = {memory / (1 << 20):,.1f} MiB ({share:.2%} of RAM)"
    )
    at_load = 8 * buckets
    if at_load != target:
        steps.append(
            f"note: with hashsize={buckets:,} at module load the kernel starts with "
            f"nf_conntrack_max = 8 x {buckets:,} = {at_load:,} "
            f"({at_load * entry_bytes / (1 << 20):,.0f} MiB when full); the sysctl line sets "
            f"{target:,} again, so it must be applied after nf_conntrack loads")
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


def _memory_limit(mem_bytes: int, entry_bytes: int) -> int:
    """Most entries (a multiple of 512) whose full table takes at most MEMORY_CAP of RAM."""
    fit = int(mem_bytes * MEMORY_CAP) // (entry_bytes + BUCKET_BYTES)
    return max(fit // 512 * 512, 512)


@dataclass(frozen=True, slots=True)
class SizeRequest:
    """What ``hostnet conntrack size`` was asked (None: take this host's value)."""

    rate: float | None = None
    established_lifetime: float | None = None
    timeout_established: int | None = None
    ram: int | None = None
    cpus: int | None = None
    allow_lower: bool = False


def size_host(host: HostState, req: SizeRequest) -> tuple[Sizing, SizingInput]:
    """Recommend a size for the observed host (its first namespace), with ``req`` overriding
    what was observed. Raises SizingError when the inputs are impossible or cannot fit."""
    ns = host.namespaces[0]
    ct = ns.conntrack
    mem = req.ram if req.ram is not None else host.kernel.mem_total
    if mem is None or (req.ram is None and not mem):
        raise SizingError("cannot tell how much RAM to size for",
                          hint="pass --ram SIZE (e.g. --ram 8G)")
    if req.established_lifetime is not None and req.rate is None:
        raise SizingError("--established-lifetime needs --rate",
                          hint="give the new connections per second, e.g. --rate 500/s")
    profile = None
    if req.rate is not None:
        timeout = (req.timeout_established
                   or ns.integer("net.netfilter.nf_conntrack_tcp_timeout_established")
                   or DEFAULT_TCP_ESTABLISHED)
        time_wait = (ns.integer("net.netfilter.nf_conntrack_tcp_timeout_time_wait")
                     or DEFAULT_TIME_WAIT)
        try:
            profile = tcp_profile(req.rate, established_lifetime=req.established_lifetime,
                                  timeout_established=timeout, time_wait=time_wait)
        except ValueError as exc:
            raise SizingError(str(exc), hint="see 'hostnet conntrack size --help'") from None
    inp = SizingInput(
        mem_bytes=mem, cpus=req.cpus if req.cpus is not None else host.kernel.cpus,
        kernel=host.kernel.version, current_max=ct.max if ct else None,
        current_buckets=ct.buckets if ct else None, count=(ct.count or 0) if ct else 0,
        peak=ct.peak if ct else 0, profile=profile,
        entry_bytes=ct.entry_bytes if ct else None, allow_lower=req.allow_lower)
    return recommend(inp), inp


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
