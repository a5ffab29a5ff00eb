"""Who fills the conntrack table: group entries by fields and count them (pure).

Input is always an iterable of byte blocks (or lines) of table text, either format
(``/proc/net/nf_conntrack`` or ``conntrack -L``). Memory stays bounded by the number of
distinct keys: the text is never held whole and no record is built per entry. Prefixes
(``src/24``) and IPv6 spelling are applied once at the end, to the distinct raw addresses.

Two entry points:

* :func:`top` -- ``hostnet conntrack top``: one grouping (``--by``), filters, top N.
* :func:`composition` -- the doctor's "table composition": totals by state, protocol and
  flags, and the top sources, destinations and destination ports, in one pass.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from hostnet.conntrack.table import MISSING, FieldPattern, blocks, canonical_address
from hostnet.model.conntrack import Composition

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
KeyValue = str | int

#: Fields ``--by`` accepts. ``l3`` is derived from the source address.
BY_FIELDS: tuple[str, ...] = (
    "src", "dst", "sport", "dport", "proto", "state", "zone", "mark", "l3",
)
_ADDRESS_FIELDS = frozenset({"src", "dst"})
_INT_FIELDS = frozenset({"sport", "dport", "zone", "mark"})


@dataclass(frozen=True, slots=True)
class KeyPart:
    """One component of a grouping key: a field, and for addresses optional prefix lengths."""

    field: str
    v4: int | None = None
    v6: int | None = None

    @property
    def label(self) -> str:
        if self.v4 is None and self.v6 is None:
            return self.field
        if self.v4 is not None and self.v6 is not None:
            return f"{self.field}/{self.v4}/{self.v6}"
        return f"{self.field}/{self.v4 if self.v4 is not None else self.v6}"


def parse_by(text: str) -> tuple[KeyPart, ...]:
    """Parse ``--by``: fields joined by commas; an address may carry ``/N`` or ``/V4/V6``.

    ``src/24`` groups IPv4 sources by /24 and leaves IPv6 addresses whole (a length up to 32
    is an IPv4 prefix); ``src/64`` groups IPv6 sources by /64 and leaves IPv4 addresses
    whole (a length above 32 is an IPv6 prefix); ``src/24/64`` does both.
    Raises ValueError with a readable message.
    """
    parts: list[KeyPart] = []
    for raw in text.split(","):
        item = raw.strip().lower()
        if not item:
            raise ValueError(f"empty field in --by {text!r}")
        name, *lens = item.split("/")
        if name not in BY_FIELDS:
            raise ValueError(f"unknown field {name!r} in --by (known: {', '.join(BY_FIELDS)})")
        if not lens:
            parts.append(KeyPart(name))
            continue
        if name not in _ADDRESS_FIELDS:
            raise ValueError(f"only src and dst take a prefix length, not {name!r}")
        if len(lens) > 2 or not all(n.isdigit() for n in lens):
            raise ValueError(f"bad prefix in {item!r}: use {name}/N or {name}/V4/V6")
        nums = [int(n) for n in lens]
        if any(n > 128 for n in nums):
            raise ValueError(f"prefix length above 128 in {item!r}")
        if len(nums) == 2:
            if nums[0] > 32:
                raise ValueError(f"IPv4 prefix length above 32 in {item!r}")
            parts.append(KeyPart(name, nums[0], nums[1]))
        elif nums[0] > 32:
            parts.append(KeyPart(name, None, nums[0]))
        else:
            parts.append(KeyPart(name, nums[0], None))
    if len({p.field for p in parts}) != len(parts):
        raise ValueError(f"a field appears twice in --by {text!r}")
    return tuple(parts)


@dataclass(frozen=True, slots=True)
class Filters:
    """Keep only entries that match every given condition."""

    proto: str | None = None
    state: str | None = None
    assured: bool = False
    unreplied: bool = False
    src: IPNetwork | None = None
    dst: IPNetwork | None = None
    dport: int | None = None

    def fields(self) -> set[str]:
        out: set[str] = set()
        for name in ("proto", "state", "src", "dst", "dport"):
            if getattr(self, name) is not None:
                out.add(name)
        if self.assured:
            out.add("assured")
        if self.unreplied:
            out.add("unreplied")
        return out

    @property
    def active(self) -> bool:
        return bool(self.fields())


def parse_network(text: str) -> IPNetwork:
    """``198.51.100.0/24``, ``2001:db8::/32`` or a single address. ValueError when bad."""
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise ValueError(f"not an address or network: {text!r}") from None


@dataclass(frozen=True, slots=True)
class Group:
    key: tuple[KeyValue, ...]
    count: int
    share: float  # of the matched entries, 0..1


@dataclass(frozen=True, slots=True)
class Top:
    """Result of :func:`top`."""

    by: tuple[KeyPart, ...]
    entries: int  # entries read
    matched: int  # entries that passed the filters (the total the shares refer to)
    skipped: int  # lines that were not conntrack entries
    groups: tuple[Group, ...]
    others_count: int = 0
    others_groups: int = 0
    distinct: int = 0

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(p.label for p in self.by)

    def to_dict(self) -> dict[str, Any]:
        cols = self.columns
        return {
            "version": 1,
            "by": ",".join(cols),
            "columns": list(cols),
            "entries": self.entries,
            "matched": self.matched,
            "skipped": self.skipped,
            "distinct": self.distinct,
            "groups": [
                {**dict(zip(cols, g.key, strict=True)), "count": g.count,
                 "share": round(g.share, 6)}
                for g in self.groups
            ],
            "others": {
                "groups": self.others_groups,
                "count": self.others_count,
                "share": round(self.others_count / self.matched, 6) if self.matched else 0.0,
            },
        }


def _decode(raw: bytes) -> str:
    return raw.decode("ascii", "replace")


def _address_key(part: KeyPart) -> Callable[[bytes], KeyValue]:
    def key(raw: bytes) -> KeyValue:
        text = canonical_address(_decode(raw))
        plen = part.v6 if ":" in text else part.v4
        if plen is None:
            return text
        try:
            return ipaddress.ip_network(f"{text}/{plen}", strict=False).with_prefixlen
        except ValueError:
            return text

    return key


def _int_key(raw: bytes) -> KeyValue:
    return int(raw) if raw else MISSING


def _zone_key(raw: bytes) -> KeyValue:
    return int(raw) if raw else 0  # conntrack -L leaves out zone=0


def _text_key(raw: bytes) -> KeyValue:
    return _decode(raw) if raw else MISSING


def _l3_key(raw: bytes) -> KeyValue:
    return "ipv6" if b":" in raw else "ipv4"


def _converter(part: KeyPart) -> Callable[[bytes], KeyValue]:
    if part.field in _ADDRESS_FIELDS:
        return _address_key(part)
    if part.field == "zone":
        return _zone_key
    if part.field in _INT_FIELDS:
        return _int_key
    if part.field == "l3":
        return _l3_key
    return _text_key


def _in_network(net: IPNetwork) -> Callable[[bytes], bool]:
    cache: dict[bytes, bool] = {}

    def test(raw: bytes) -> bool:
        hit = cache.get(raw)
        if hit is None:
            try:
                hit = ipaddress.ip_address(_decode(raw)) in net
            except ValueError:
                hit = False
            cache[raw] = hit
        return hit

    return test


def _predicate(filters: Filters, index: dict[str, int]) -> Callable[[tuple[bytes, ...]], bool]:
    tests: list[tuple[int, Callable[[bytes], bool]]] = []
    if filters.proto is not None:
        want_proto = filters.proto.lower().encode()
        tests.append((index["proto"], lambda v: v == want_proto))
    if filters.state is not None:
        want_state = filters.state.upper().encode()
        tests.append((index["state"], lambda v: v == want_state))
    if filters.assured:
        tests.append((index["assured"], lambda v: v == b"ASSURED"))
    if filters.unreplied:
        tests.append((index["unreplied"], bool))
    if filters.src is not None:
        tests.append((index["src"], _in_network(filters.src)))
    if filters.dst is not None:
        tests.append((index["dst"], _in_network(filters.dst)))
    if filters.dport is not None:
        want_port = str(filters.dport).encode()
        tests.append((index["dport"], lambda v: v == want_port))

    def keep(values: tuple[bytes, ...]) -> bool:
        return all(test(values[i]) for i, test in tests)

    return keep


class TopCounter:
    """Streaming form of :func:`top`: ``feed`` blocks, then ``result``."""

    def __init__(self, by: Sequence[KeyPart] | str = "src", filters: Filters | None = None):
        self.by = parse_by(by) if isinstance(by, str) else tuple(by)
        self.filters = filters or Filters()
        needed = {"src" if p.field == "l3" else p.field for p in self.by} | self.filters.fields()
        self.pattern = FieldPattern(sorted(needed))
        self.counter: Counter[Any] = Counter()
        self.lines = 0
        self.entries = 0

    def feed(self, block: bytes) -> None:
        lines, found = self.pattern.count(block, self.counter)
        self.lines += lines
        self.entries += found

    def result(self, limit: int | None = 10) -> Top:
        fields = self.pattern.fields
        index = {name: i for i, name in enumerate(fields)}
        single = len(fields) == 1
        keep = _predicate(self.filters, index) if self.filters.active else None
        picks = [(index["src" if p.field == "l3" else p.field], _converter(p)) for p in self.by]
        grouped: Counter[tuple[KeyValue, ...]] = Counter()
        matched = 0
        for raw, n in self.counter.items():
            values: tuple[bytes, ...] = (raw,) if single else raw
            if keep is not None and not keep(values):
                continue
            matched += n
            grouped[tuple(conv(values[i]) for i, conv in picks)] += n
        ordered = sorted(grouped.items(), key=lambda kv: (-kv[1], _sort_key(kv[0])))
        shown = ordered if limit is None or limit <= 0 else ordered[:limit]
        rest = ordered[len(shown):]
        return Top(
            by=self.by,
            entries=self.entries,
            matched=matched,
            skipped=self.lines - self.entries,
            groups=tuple(Group(k, n, n / matched if matched else 0.0) for k, n in shown),
            others_count=sum(n for _, n in rest),
            others_groups=len(rest),
            distinct=len(grouped),
        )


def _sort_key(key: tuple[KeyValue, ...]) -> tuple[tuple[int, str], ...]:
    # ints before text, ints in numeric order (zero padded)
    return tuple((0, f"{v:012d}") if isinstance(v, int) else (1, v) for v in key)


def top(
    chunks: Iterable[bytes | str],
    by: Sequence[KeyPart] | str = "src",
    *,
    limit: int | None = 10,
    filters: Filters | None = None,
) -> Top:
    """Group the entries of a table by ``by`` and return the ``limit`` biggest groups."""
    counter = TopCounter(by, filters)
    for block in blocks(chunks):
        counter.feed(block)
    return counter.result(limit)


# -- the doctor's table composition ---------------------------------------------------------


def composition(chunks: Iterable[bytes | str], limit: int = 5) -> Composition:
    """Summarise a table in one streaming pass (four regex scans per block, no records).

    ``chunks`` is any iterable of table text: lines (with their newline) or blocks, as
    bytes or str, in either format. For example, from a check::

        from hostnet.host.conntrack_source import open_table
        with open_table(ctx.root) as table:
            comp = composition(table.chunks, limit=5)
        comp.by_state.get("tcp ESTABLISHED", 0), comp.top_src[:3]
    """
    head = FieldPattern(("proto", "state", "unreplied", "assured"))
    srcs = FieldPattern(("src",))
    dsts = FieldPattern(("dst",))
    ports = FieldPattern(("proto", "dport"))
    c_head: Counter[Any] = Counter()
    c_src: Counter[Any] = Counter()
    c_dst: Counter[Any] = Counter()
    c_port: Counter[Any] = Counter()
    lines = entries = 0
    for block in blocks(chunks):
        n_lines, found = head.count(block, c_head)
        lines += n_lines
        entries += found
        srcs.count(block, c_src)
        dsts.count(block, c_dst)
        ports.count(block, c_port)
    by_proto: Counter[str] = Counter()
    by_state: Counter[str] = Counter()
    assured = unreplied = offloaded = 0
    for (proto, state, unrep, flag), n in c_head.items():
        p = _decode(proto)
        by_proto[p] += n
        by_state[f"{p} {_decode(state)}" if state else p] += n
        if unrep:
            unreplied += n
        if flag == b"ASSURED":
            assured += n
        elif flag:
            offloaded += n
    port_counts: Counter[tuple[str, int]] = Counter()
    for (proto, dport), n in c_port.items():
        if dport:
            port_counts[(_decode(proto), int(dport))] += n
    return Composition(
        entries=entries,
        skipped=lines - entries,
        by_proto=dict(by_proto.most_common()),
        by_state=dict(by_state.most_common()),
        assured=assured,
        unreplied=unreplied,
        offloaded=offloaded,
        top_src=_top_addresses(c_src, limit),
        top_dst=_top_addresses(c_dst, limit),
        top_dport=sorted(port_counts.items(), key=lambda kv: (-kv[1], kv[0]))[:limit],
    )


def _top_addresses(counter: Counter[Any], limit: int) -> list[tuple[str, int]]:
    merged: Counter[str] = Counter()
    for raw, n in counter.items():
        merged[canonical_address(_decode(raw))] += n
    return sorted(merged.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
