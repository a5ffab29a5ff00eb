"""Parse conntrack table lines (pure): ``/proc/net/nf_conntrack`` and ``conntrack -L`` output.

Two ways in:

* :func:`parse_line` builds a full typed :class:`Entry` from one line (slow path: tests,
  filters that need everything, tools that want records).
* :class:`FieldPattern` pulls only the fields asked for out of a whole block of lines with one
  compiled regular expression (fast path: ``hostnet conntrack top`` and the doctor's table
  composition). Feed it blocks of complete lines; it counts distinct field tuples in a
  ``Counter`` and never builds a record.

Line shapes seen on kernel 6.18 (``tests/fixtures/conntrack/``)::

    ipv4     2 tcp      6 299 ESTABLISHED src=A dst=B sport=P dport=Q [packets= bytes=]
        [UNREPLIED] src=B dst=A sport=Q dport=P [packets= bytes=] [ASSURED] mark=0 zone=0 use=2
    ipv4     2 gre      47 29 timeout=30, stream_timeout=180 src=A dst=B srckey=0x0 ...
    ipv6     10 icmpv6  58 29 src=2001:0db8:0000:... dst=... type=128 code=0 id=17185 ...
    tcp      6 299 ESTABLISHED src=A dst=B ...  mark=0 use=1          (conntrack -L)

Differences the code relies on: ``conntrack -L`` drops the two leading l3 fields, prints
IPv6 addresses compressed (the /proc file prints all eight groups, zero padded) and leaves
out ``zone=`` for zone 0 (the /proc file always prints it). UDP, ICMP and generic protocols
have no state word. Offloaded entries carry ``[OFFLOAD]``/``[HW_OFFLOAD]`` instead of
``[ASSURED]`` and no timeout. Per-direction zones print as ``zone-orig=``/``zone-reply=``.
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

#: Fields the fast path can extract, in the order they appear on a line.
FAST_FIELDS: tuple[str, ...] = (
    "proto", "state", "src", "dst", "sport", "dport", "unreplied", "assured", "mark", "zone",
)
#: Fields the prefix of a line carries (the fast path then anchors at the line start).
_HEAD_FIELDS = frozenset({"proto", "state"})

#: Value used for a field the line does not carry (icmp has no ports, udp no state).
MISSING = "-"


@dataclass(frozen=True, slots=True)
class Entry:
    """One conntrack entry. Ports are None for protocols without ports (icmp, gre ...)."""

    l3: str  # "ipv4" or "ipv6"
    proto: str  # "tcp", "udp", "icmp", "icmpv6", "sctp", "gre", "unknown" ...
    protonum: int
    timeout: int | None  # seconds left; None for offloaded entries (no timer printed)
    state: str | None  # tcp/sctp/dccp state word; None for stateless protocols
    src: str
    dst: str
    sport: int | None
    dport: int | None
    reply_src: str
    reply_dst: str
    reply_sport: int | None
    reply_dport: int | None
    assured: bool = False
    unreplied: bool = False
    offload: str | None = None  # "OFFLOAD" or "HW_OFFLOAD" (these hide the ASSURED flag)
    mark: int = 0
    zone: int = 0
    use: int | None = None
    #: Other key=value pairs of the original direction (icmp type/code/id, gre keys ...).
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def nat(self) -> bool:
        """Whether the reply tuple is not the mirror of the original (SNAT or DNAT)."""
        return (
            self.reply_src != self.dst
            or self.reply_dst != self.src
            or self.reply_sport != self.dport
            or self.reply_dport != self.sport
        )


@lru_cache(maxsize=65536)
def canonical_address(text: str) -> str:
    """The compressed form of an address (``2001:0db8:0000::`` -> ``2001:db8::``)."""
    if ":" not in text:
        return text
    try:
        return ipaddress.ip_address(text).compressed
    except ValueError:
        return text


def _port(text: str) -> int | None:
    return int(text) if text.isdigit() else None


def parse_line(line: str | bytes) -> Entry | None:
    """Parse one line of either format; None when it is not a conntrack entry."""
    if isinstance(line, bytes):
        line = line.decode("ascii", "replace")
    tokens = line.split()
    if len(tokens) < 4:
        return None
    i = 0
    l3: str | None = None
    if tokens[0] in ("ipv4", "ipv6") and tokens[1].isdigit():
        l3 = tokens[0]
        i = 2
    proto = tokens[i]
    if "=" in proto or not tokens[i + 1].isdigit():
        return None
    protonum = int(tokens[i + 1])
    i += 2
    timeout: int | None = None
    if i < len(tokens) and tokens[i].isdigit():
        timeout = int(tokens[i])
        i += 1
    state: str | None = None
    if i < len(tokens) and "=" not in tokens[i] and not tokens[i].startswith("["):
        state = tokens[i]
        i += 1
    orig: dict[str, str] = {}
    reply: dict[str, str] = {}
    side: dict[str, str] | None = None
    assured = unreplied = False
    offload: str | None = None
    mark = zone = 0
    use: int | None = None
    try:
        for tok in tokens[i:]:
            if tok[0] == "[":
                flag = tok.strip("[]")
                if flag == "ASSURED":
                    assured = True
                elif flag == "UNREPLIED":
                    unreplied = True
                elif flag in ("OFFLOAD", "HW_OFFLOAD"):
                    offload = flag
                continue
            key, eq, value = tok.partition("=")
            if not eq:
                return None
            if key == "src":
                side = orig if side is None else reply
            if key == "mark":
                mark = int(value)
            elif key == "zone":
                zone = int(value)
            elif key == "use":
                use = int(value)
            elif side is not None and key not in side:
                side[key] = value
    except ValueError:
        return None
    if "dst" not in orig or "dst" not in reply:
        return None
    src = canonical_address(orig.pop("src"))
    dst = canonical_address(orig.pop("dst"))
    if l3 is None:
        l3 = "ipv6" if ":" in src else "ipv4"
    sport = _port(orig.pop("sport", ""))
    dport = _port(orig.pop("dport", ""))
    for k in ("packets", "bytes"):
        orig.pop(k, None)
    return Entry(
        l3=l3, proto=proto, protonum=protonum, timeout=timeout, state=state,
        src=src, dst=dst, sport=sport, dport=dport,
        reply_src=canonical_address(reply["src"]), reply_dst=canonical_address(reply["dst"]),
        reply_sport=_port(reply.get("sport", "")), reply_dport=_port(reply.get("dport", "")),
        assured=assured, unreplied=unreplied, offload=offload, mark=mark, zone=zone, use=use,
        extra=orig,
    )


@dataclass(slots=True)
class ParseCount:
    """How many lines a parse saw and how many it could not read."""

    lines: int = 0
    skipped: int = 0

    @property
    def entries(self) -> int:
        return self.lines - self.skipped


def parse_lines(lines: Iterable[str | bytes], count: ParseCount | None = None) -> Iterator[Entry]:
    """Parse many lines; garbage and blank lines are skipped and counted in ``count``."""
    tally = count if count is not None else ParseCount()
    for line in lines:
        tally.lines += 1
        entry = parse_line(line)
        if entry is None:
            tally.skipped += 1
            continue
        yield entry


# -- fast path ------------------------------------------------------------------------------

_FIELD_RE: dict[str, tuple[str, str]] = {
    # field: (capturing form, form when the field is not wanted)
    "src": (r" src=(\S+)", r" src=\S+"),
    "dst": (r" dst=(\S+)", r" dst=\S+"),
    "ports": (r"(?: sport=(\d+) dport=(\d+))?", ""),
    "sport": (r"(?: sport=(\d+) dport=\d+)?", ""),
    "dport": (r"(?: sport=\d+ dport=(\d+))?", ""),
    "unreplied": (r"(?:.*?( \[UNREPLIED\]))?", ""),
    "assured": (r"(?:.*? \[(ASSURED|OFFLOAD|HW_OFFLOAD)\])?", ""),
    "mark": (r"(?:.*? mark=(\d+))?", ""),
    "zone": (r"(?:.*? zone=(\d+))?", ""),
}

_HEAD = r"(?m)^(?:ipv[46] +\d+ +)?{proto} +\d+ +(?:\d+ +)?{state}.*?"


class FieldPattern:
    """Extract some fields from blocks of table lines with one regular expression.

    ``FieldPattern(("dst", "dport")).count(block, counter)`` adds one to ``counter`` per
    entry, keyed by the tuple of the wanted fields as bytes (``b""`` when the line does not
    carry the field: the port of an icmp entry, the state of a udp entry, ``zone`` in
    ``conntrack -L`` output for zone 0). Flags come back as ``b""`` or the flag word
    (``assured``: ``b"ASSURED"``, ``b"OFFLOAD"`` or ``b"HW_OFFLOAD"``;
    ``unreplied``: ``b" [UNREPLIED]"``). Lines without ``src=`` and ``dst=`` are not counted;
    :meth:`count` returns how many lines the block had and how many were counted, so the
    caller can report the difference as skipped.
    """

    __slots__ = ("fields", "regex", "single")

    def __init__(self, fields: Sequence[str]) -> None:
        unknown = [f for f in fields if f not in FAST_FIELDS]
        if unknown:
            raise ValueError(f"unknown field(s) {', '.join(unknown)} (known: {FAST_FIELDS})")
        if not fields:
            raise ValueError("no field asked for")
        wanted = set(fields)
        # Capture order is line order; self.fields records it for the caller.
        order = [f for f in FAST_FIELDS if f in wanted]
        self.fields: tuple[str, ...] = tuple(order)
        parts: list[str] = []
        if wanted & _HEAD_FIELDS:
            proto = r"(\S+)" if "proto" in wanted else r"\S+"
            state = r"(?:([A-Z][A-Z_0-9]*) +)?" if "state" in wanted else ""
            parts.append(_HEAD.format(proto=proto, state=state))
            parts.append(r"(?<= )src=(\S+)" if "src" in wanted else r"(?<= )src=\S+")
        else:
            parts.append(_FIELD_RE["src"][0 if "src" in wanted else 1])
        parts.append(_FIELD_RE["dst"][0 if "dst" in wanted else 1])
        if "sport" in wanted and "dport" in wanted:
            parts.append(_FIELD_RE["ports"][0])
        elif "sport" in wanted:
            parts.append(_FIELD_RE["sport"][0])
        elif "dport" in wanted:
            parts.append(_FIELD_RE["dport"][0])
        for name in ("unreplied", "assured", "mark", "zone"):
            if name in wanted:
                parts.append(_FIELD_RE[name][0])
        parts.append(r" .*\n")
        self.regex = re.compile("".join(parts).encode())
        self.single = len(order) == 1

    def findall(self, block: bytes) -> list[tuple[bytes, ...]]:
        """Field tuples (in :attr:`fields` order) of every entry in ``block``."""
        found = self.regex.findall(block)
        if self.single:
            return [(v,) for v in found]
        return found

    def count(self, block: bytes, counter: Counter[bytes] | Counter[tuple[bytes, ...]]) -> tuple[
        int, int
    ]:
        """Add the entries of ``block`` (complete lines) to ``counter``.

        Keys are ``bytes`` when one field was asked for, tuples of bytes otherwise.
        Returns (lines in the block, entries counted).
        """
        if block and not block.endswith(b"\n"):
            block += b"\n"
        found = self.regex.findall(block)
        counter.update(found)
        return block.count(b"\n"), len(found)


def blocks(items: Iterable[bytes | str], size: int = 1 << 20) -> Iterator[bytes]:
    """Regroup lines or chunks into blocks of whole lines of about ``size`` bytes.

    Accepts single lines (with or without their newline) or arbitrary chunks of a stream:
    a partial last line is held back until its end arrives.
    """
    pending: list[bytes] = []
    held = 0
    tail = b""
    for item in items:
        data = item.encode("utf-8", "replace") if isinstance(item, str) else item
        if not data:
            continue
        if tail:
            data = tail + data
            tail = b""
        cut = data.rfind(b"\n")
        if cut < 0:
            # a line without newline: a single line handed over without its "\n", or a
            # chunk that ends mid-line; keep it until more arrives
            tail = data
            continue
        if cut != len(data) - 1:
            tail = data[cut + 1 :]
            data = data[: cut + 1]
        pending.append(data)
        held += len(data)
        if held >= size:
            yield b"".join(pending)
            pending.clear()
            held = 0
    if tail:
        pending.append(tail if tail.endswith(b"\n") else tail + b"\n")
    if pending:
        yield b"".join(pending)
