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
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from hostnet.conntrack.table import MISSING, FieldPattern, blocks, canonical_address
from hostnet.model.conntrack import AddressCount, Composition, PortCount

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


#: One pass per block for the composition: protocol, state, original source, destination and
#: destination port, the UNREPLIED flag, the reply source, destination and source port, and
#: the ASSURED/OFFLOAD flag (the reply part is optional: a truncated line still counts).
_COMPOSITION = re.compile(
    rb"(?m)^(?:ipv[46] +\d+ +)?(\S+) +\d+ +(?:\d+ +)?(?:([A-Z][A-Z_0-9]*) +)?.*?"
    rb"(?<= )src=(\S+) dst=(\S+)(?: sport=\d+ dport=(\d+))?"
    rb"(?:.*?( \[UNREPLIED\])? src=(\S+) dst=(\S+)(?: sport=(\d+))?)?"
    rb"(?:.*? \[(ASSURED|OFFLOAD|HW_OFFLOAD)\])? .*\n"
)


def composition(chunks: Iterable[bytes | str], limit: int = 5,
                own: Iterable[str] | None = None) -> Composition:
    """Summarise a table in one streaming pass (one regex scan per block, no records).

    ``chunks`` is any iterable of table text: lines (with their newline) or blocks, as
    bytes or str, in either format. ``own`` are the namespace's own addresses (any
    spelling): with them, entries are split into traffic to or from the host itself and
    traffic routed through it, per destination port too. For example::

        from hostnet.host.conntrack_source import open_table
        with open_table(root) as table:
            comp = composition(table.chunks, limit=5, own={"192.0.2.1"})
        comp.by_state.get("tcp ESTABLISHED", 0), comp.top_src[:3]
    """
    counts: Counter[tuple[bytes, ...]] = Counter()
    lines = entries = 0
    findall = _COMPOSITION.findall
    for block in blocks(chunks):
        found = findall(block)
        counts.update(found)
        lines += block.count(b"\n")
        entries += len(found)
    mine = frozenset(canonical_address(a) for a in own) if own is not None else None
    canon: dict[bytes, str] = {}

    def name(raw: bytes) -> str:
        got = canon.get(raw)
        if got is None:
            got = canon[raw] = canonical_address(_decode(raw))
        return got

    by_proto: Counter[str] = Counter()
    by_state: Counter[str] = Counter()
    src_n: Counter[str] = Counter()
    src_unrep: Counter[str] = Counter()
    src_assured: Counter[str] = Counter()
    dst_n: Counter[str] = Counter()
    port_n: Counter[tuple[str, int]] = Counter()
    port_local: Counter[tuple[str, int]] = Counter()
    port_nated: Counter[tuple[str, int]] = Counter()
    assured = unreplied = offloaded = to_host = from_host = forwarded = nated = 0
    for key, n in counts.items():
        proto, state, src, dst, dport, unrep, rsrc, rdst, rsport, flag = key
        p = _decode(proto)
        by_proto[p] += n
        by_state[f"{p} {_decode(state)}" if state else p] += n
        s_name = name(src)
        src_n[s_name] += n
        dst_n[name(dst)] += n
        if unrep:
            unreplied += n
            src_unrep[s_name] += n
        if flag == b"ASSURED":
            assured += n
            src_assured[s_name] += n
        elif flag:
            offloaded += n
        is_nat = bool(rdst) and (rsrc != dst or rdst != src
                                 or bool(rsport and dport and rsport != dport))
        if is_nat:
            nated += n
        local = False
        if mine is not None:
            local = name(dst) in mine
            if local:
                to_host += n
            elif s_name in mine:
                from_host += n
            else:
                forwarded += n
        if dport:
            pk = (p, int(dport))
            port_n[pk] += n
            if is_nat:
                port_nated[pk] += n
            elif local:
                port_local[pk] += n
    top_src = sorted(src_n.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
    top_dst = sorted(dst_n.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
    top_port = sorted(port_n.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
    return Composition(
        entries=entries,
        skipped=lines - entries,
        by_proto=dict(by_proto.most_common()),
        by_state=dict(by_state.most_common()),
        assured=assured,
        unreplied=unreplied,
        offloaded=offloaded,
        top_src=tuple(AddressCount(a, n, src_unrep[a], src_assured[a]) for a, n in top_src),
        top_dst=tuple(AddressCount(a, n) for a, n in top_dst),
        top_dport=tuple(PortCount(k[0], k[1], n, port_local[k], port_nated[k])
                        for k, n in top_port),
        to_host=to_host,
        from_host=from_host,
        forwarded=forwarded,
        nated=nated,
        own_known=mine is not None,
    )
