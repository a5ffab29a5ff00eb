"""Invariants between sysctl values that lint and doctor both check, each written once (pure).

Each function takes values as the kernel prints them (or as a file writes them) and returns a
typed result with the problems found and ONE proposed value per key that satisfies every
invariant of that key at once, so two rules never propose different values for one key.

Kernel facts (net/ipv4/sysctl_net_ipv4.c, ipv4_local_port_range and set_local_port_range):
ip_local_port_range takes two integers, each 1..65535 (``ip_local_port_range_min/max``); the
write fails with EINVAL when high < low or when low is below ip_unprivileged_port_start; ends
of the same parity are accepted but the kernel logs "prefer different parity" because
connect() walks one parity and leaves the other to bind().
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

PORT_KEY = "net.ipv4.ip_local_port_range"
PORT_MIN, PORT_MAX = 1, 65535
DEFAULT_PORT_RANGE = (32768, 60999)
DEFAULT_UNPRIVILEGED_START = 1024
#: (default key, max key): a default above its max is clamped by the kernel for setsockopt
#: callers but sockets that never ask still get the default (net/core/sock.c, sock_init_data).
DEFAULT_MAX_PAIRS = (
    ("net.core.rmem_default", "net.core.rmem_max"),
    ("net.core.wmem_default", "net.core.wmem_max"),
)
#: min, default (or pressure), max triples whose order the kernel does not check.
ORDERED_TRIPLES = ("net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem", "net.ipv4.tcp_mem", "net.ipv4.udp_mem")


class PortProblem(enum.Enum):
    NOT_TWO_INTEGERS = "not-two-integers"
    OUT_OF_BOUNDS = "out-of-bounds"  # an end outside 1..65535: EINVAL
    REVERSED = "reversed"  # high < low: EINVAL
    BELOW_UNPRIVILEGED = "below-unprivileged-start"  # low < ip_unprivileged_port_start: EINVAL
    SAME_PARITY = "same-parity"  # accepted, the kernel warns
    TOO_SMALL = "too-small"  # fewer usable ports than the role needs

    @property
    def refused(self) -> bool:
        """The kernel refuses the write (the value cannot be in effect)."""
        return self in (
            PortProblem.NOT_TWO_INTEGERS,
            PortProblem.OUT_OF_BOUNDS,
            PortProblem.REVERSED,
            PortProblem.BELOW_UNPRIVILEGED,
        )


@dataclass(frozen=True, slots=True)
class PortRangeCheck:
    low: int | None
    high: int | None
    problems: tuple[PortProblem, ...]
    usable: int | None  # ports in the range minus reserved ones (None when invalid)
    unprivileged_start: int
    proposed: tuple[int, int] | None  # one value that satisfies every invariant; None if clean

    @property
    def proposed_text(self) -> str | None:
        return None if self.proposed is None else f"{self.proposed[0]} {self.proposed[1]}"

    def has(self, problem: PortProblem) -> bool:
        return problem in self.problems


def _ints(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(p) for p in text.split()]
    except ValueError:
        return None


def _reserved_in(low: int, high: int, reserved: Sequence[tuple[int, int]]) -> int:
    return sum(max(0, min(hi, high) - max(lo, low) + 1) for lo, hi in reserved)


def check_port_range(
    text: str | None,
    *,
    unprivileged_start: int | None = None,
    minimum: int | None = None,
    reserved: Iterable[tuple[int, int]] = (),
) -> PortRangeCheck | None:
    """Check ``ip_local_port_range``; None when there is nothing to judge (no value, or text
    that is not numbers at all)."""
    nums = _ints(text)
    if nums is None or not nums:
        return None
    start = DEFAULT_UNPRIVILEGED_START if unprivileged_start is None else unprivileged_start
    res = list(reserved)
    problems: list[PortProblem] = []
    if len(nums) != 2:
        problems.append(PortProblem.NOT_TWO_INTEGERS)
        low, high = DEFAULT_PORT_RANGE
        given: tuple[int | None, int | None] = (None, None)
    else:
        low, high = nums
        given = (low, high)
        if not all(PORT_MIN <= n <= PORT_MAX for n in nums):
            problems.append(PortProblem.OUT_OF_BOUNDS)
        if high < low:
            problems.append(PortProblem.REVERSED)
        if min(low, high) < start and PortProblem.OUT_OF_BOUNDS not in problems:
            problems.append(PortProblem.BELOW_UNPRIVILEGED)
    usable: int | None = None
    if not any(p.refused for p in problems):
        usable = high - low + 1 - _reserved_in(low, high, res)
        if low < high and low % 2 == high % 2:
            problems.append(PortProblem.SAME_PARITY)
        if minimum is not None and usable < minimum:
            problems.append(PortProblem.TOO_SMALL)
    proposed = _propose(low, high, start, minimum, res) if problems else None
    return PortRangeCheck(given[0], given[1], tuple(problems), usable, start, proposed)


def _propose(
    low: int, high: int, start: int, minimum: int | None, reserved: Sequence[tuple[int, int]]
) -> tuple[int, int]:
    """The nearest range that the kernel takes, has ends of different parity and, given a
    minimum, holds at least that many usable ports. The top end moves up before the bottom
    moves down, so an already small range never shrinks."""
    floor = max(PORT_MIN, start)
    if high < low:
        low, high = high, low
    low = min(max(low, floor), PORT_MAX)
    high = min(max(high, low), PORT_MAX)
    if minimum is not None and high - low + 1 - _reserved_in(low, high, reserved) < minimum:
        high = PORT_MAX
        need = minimum + _reserved_in(max(floor, PORT_MAX - minimum + 1), PORT_MAX, reserved)
        low = max(floor, min(low, PORT_MAX - need + 1))
    if low < high and low % 2 == high % 2:
        if high < PORT_MAX:
            high += 1
        elif low - 1 >= floor:
            low -= 1
        else:
            high -= 1
    return low, high


# -- buffers ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TripleOrder:
    key: str
    values: tuple[int, int, int]
    proposed: tuple[int, int, int]  # the same three numbers in rising order

    @property
    def proposed_text(self) -> str:
        return " ".join(str(v) for v in self.proposed)


def check_triple_order(key: str, text: str | None) -> TripleOrder | None:
    """min <= default <= max for tcp_rmem/tcp_wmem (and the tcp_mem/udp_mem thresholds);
    the kernel stores any order. None when in order or not three integers."""
    nums = _ints(text)
    if nums is None or len(nums) != 3:
        return None
    lo, mid, hi = nums
    if lo <= mid <= hi:
        return None
    fixed = sorted(nums)
    return TripleOrder(key, (lo, mid, hi), (fixed[0], fixed[1], fixed[2]))


@dataclass(frozen=True, slots=True)
class DefaultAboveMax:
    default_key: str
    max_key: str
    default: int
    maximum: int
    proposed_max: int  # raise the max to the default (the default is what sockets get)


def check_default_above_max(
    default_key: str, default: int | None, max_key: str, maximum: int | None
) -> DefaultAboveMax | None:
    if default is None or maximum is None or default <= maximum:
        return None
    return DefaultAboveMax(default_key, max_key, default, maximum, default)


# -- dirty page thresholds ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BackgroundAboveDirty:
    """dirty_background_ratio >= dirty_ratio (or the _bytes pair): mm/page-writeback.c
    (domain_dirty_limits) then uses half of the dirty limit as the background limit, so
    the background value set is not the one in effect."""

    background_key: str
    dirty_key: str
    background: int
    dirty: int


DIRTY_PAIRS = (
    ("vm.dirty_background_ratio", "vm.dirty_ratio"),
    ("vm.dirty_background_bytes", "vm.dirty_bytes"),
)


def check_background_below_dirty(
    background_key: str, background: int | None, dirty_key: str, dirty: int | None
) -> BackgroundAboveDirty | None:
    if not background or not dirty or background < dirty:
        return None
    return BackgroundAboveDirty(background_key, dirty_key, background, dirty)


# -- IPv6 forwarding and router advertisements -----------------------------------------------


@dataclass(frozen=True, slots=True)
class RaIgnored:
    """accept_ra = 1 on an interface that forwards IPv6: the kernel ignores router
    advertisements there (net/ipv6/ndisc.c, ipv6_accept_ra: forwarding needs accept_ra = 2).
    Only IPv6 forwarding matters; net.ipv4 forwarding has no effect on it."""

    interface: str
    proposed_accept_ra: int = 2


def check_ra_with_forwarding(
    interface: str, forwarding: str | None, accept_ra: str | None
) -> RaIgnored | None:
    f, a = _ints(forwarding), _ints(accept_ra)
    if not f or not a or f[0] == 0 or a[0] != 1:
        return None
    return RaIgnored(interface)
