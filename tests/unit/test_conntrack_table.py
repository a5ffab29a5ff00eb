"""The table parser on lines captured from kernel 6.18 (tests/fixtures/conntrack/)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from hostnet.conntrack.table import (
    FieldPattern,
    ParseCount,
    blocks,
    canonical_address,
    parse_line,
    parse_lines,
)

FIX = Path(__file__).resolve().parent.parent / "fixtures" / "conntrack"
PROC = (FIX / "proc_mixed.txt").read_text()
LIST = (FIX / "conntrack_L_mixed.txt").read_text()
RARE = (FIX / "synthetic_rare.txt").read_text()


def entries(text: str) -> list:  # type: ignore[type-arg]
    return list(parse_lines(text.splitlines(keepends=True)))


def test_proc_and_conntrack_l_give_the_same_entries() -> None:
    a, b = entries(PROC), entries(LIST)
    assert len(a) == len(b) == 10
    for x, y in zip(a, b, strict=True):
        # use= differs (the dump itself holds a reference) and -L omits zone=0
        assert (x.l3, x.proto, x.src, x.dst, x.sport, x.dport, x.reply_src, x.reply_dport,
                x.state, x.assured, x.unreplied, x.mark, x.zone) == (
                y.l3, y.proto, y.src, y.dst, y.sport, y.dport, y.reply_src, y.reply_dport,
                y.state, y.assured, y.unreplied, y.mark, y.zone)


def test_tcp_with_zone_mark_and_flags() -> None:
    line = next(ln for ln in PROC.splitlines() if "zone=7" in ln)
    e = parse_line(line)
    assert e is not None
    assert (e.l3, e.proto, e.protonum, e.state) == ("ipv4", "tcp", 6, "ESTABLISHED")
    assert (e.src, e.dst, e.sport, e.dport) == ("198.51.100.7", "203.0.113.9", 1234, 443)
    assert (e.reply_src, e.reply_dst, e.reply_sport, e.reply_dport) == (
        "203.0.113.9", "198.51.100.7", 443, 1234)
    # conntrack -I ... -u ASSURED gives an entry that is ASSURED yet never saw a reply
    assert e.assured and e.unreplied
    assert (e.mark, e.zone, e.use) == (42, 7, 2)
    assert not e.nat


def test_ipv6_from_proc_is_compressed() -> None:
    e = next(x for x in entries(PROC) if x.proto == "icmpv6")
    assert (e.l3, e.src, e.dst) == ("ipv6", "2001:db8::1", "2001:db8::2")
    assert e.extra == {"type": "128", "code": "0", "id": "17185"}
    assert e.sport is None and e.state is None


def test_conntrack_l_has_no_l3_column_but_l3_is_derived() -> None:
    six = [e for e in entries(LIST) if e.l3 == "ipv6"]
    assert {e.proto for e in six} == {"icmpv6", "udp"}
    assert sorted(e.zone for e in entries(LIST)) == [0] * 9 + [7]


def test_snat_shows_in_the_reply_tuple() -> None:
    e = next(x for x in entries(PROC) if x.dport == 5353)
    assert e.sport != e.reply_dport == 40000
    assert e.nat


def test_gre_timeouts_and_unknown_protocol() -> None:
    gre = next(x for x in entries(RARE) if x.proto == "gre")
    assert gre.state is None and gre.protonum == 47
    assert gre.extra["srckey"] == "0x0"
    unk = next(x for x in entries(PROC) if x.proto == "unknown")
    assert unk.protonum == 250 and unk.unreplied and not unk.assured


def test_rare_shapes_offload_sctp_dccp_zone_dirs() -> None:
    count = ParseCount()
    got = list(parse_lines(RARE.splitlines(keepends=True), count))
    assert count.lines == 9 and count.skipped == 3 and count.entries == 6
    _gre, off, hw, sctp, dccp, syn = got
    assert off.offload == "OFFLOAD" and off.timeout is None and not off.assured
    assert hw.offload == "HW_OFFLOAD"
    assert (sctp.proto, sctp.state, sctp.assured) == ("sctp", "ESTABLISHED", True)
    assert (dccp.proto, dccp.state) == ("dccp", "OPEN")
    assert (syn.zone, syn.mark, syn.unreplied, syn.state) == (5, 7, True, "SYN_SENT")
    assert syn.reply_dst == "203.0.113.1" and syn.nat


@pytest.mark.parametrize("line", [
    "", "garbage", "ipv4 2 tcp 6 10", "ipv4 2 tcp x 10 src=1 dst=2",
    "tcp 6 5 ESTABLISHED src=192.0.2.1 dst=192.0.2.2 sport=1 dport=2",
    "tcp 6 5 ESTABLISHED src=192.0.2.1 dst=192.0.2.2 mark=notanumber src=a dst=b",
    "tcp 6 5 ESTABLISHED src=192.0.2.1 bare src=192.0.2.2 dst=192.0.2.1",
])
def test_garbage_is_none_not_a_crash(line: str) -> None:
    assert parse_line(line) is None


def test_bytes_lines_parse_too() -> None:
    assert parse_line(PROC.splitlines()[0].encode()) == parse_line(PROC.splitlines()[0])


def test_canonical_address() -> None:
    assert canonical_address("2001:0db8:0000:0000:0000:0000:0000:0001") == "2001:db8::1"
    assert canonical_address("192.0.2.1") == "192.0.2.1"
    assert canonical_address("zz:zz") == "zz:zz"


# -- fast path agrees with the slow path --------------------------------------------------

def slow_counts(text: str, fields: tuple[str, ...]) -> Counter[tuple[object, ...]]:
    out: Counter[tuple[object, ...]] = Counter()
    for e in entries(text):
        flag = e.offload or ("ASSURED" if e.assured else "")
        values = {
            "proto": e.proto, "state": e.state or "", "src": e.src, "dst": e.dst,
            "sport": "" if e.sport is None else str(e.sport),
            "dport": "" if e.dport is None else str(e.dport),
            "unreplied": " [UNREPLIED]" if e.unreplied else "", "assured": flag,
            "mark": str(e.mark), "zone": str(e.zone),
        }
        out[tuple(values[f] for f in fields)] += 1
    return out


def fast_counts(text: str, fields: tuple[str, ...]) -> Counter[tuple[object, ...]]:
    pat = FieldPattern(fields)
    raw: Counter[object] = Counter()
    for block in blocks([text]):
        pat.count(block, raw)
    out: Counter[tuple[object, ...]] = Counter()
    for key, n in raw.items():
        values = dict(zip(pat.fields, key if isinstance(key, tuple) else (key,), strict=True))
        vals = []
        for f in fields:
            v = values[f].decode()
            if f in ("src", "dst"):
                v = canonical_address(v)
            if f == "zone" and not v:
                v = "0"
            vals.append(v)
        out[tuple(vals)] += n
    return out


@pytest.mark.parametrize("fields", [
    ("src",), ("dst",), ("sport",), ("dport",), ("proto",), ("state",), ("mark",), ("zone",),
    ("assured",), ("unreplied",), ("dst", "dport"), ("proto", "state", "unreplied", "assured"),
    ("zone", "src", "dport"),
])
@pytest.mark.parametrize("name", ["proc_mixed.txt", "conntrack_L_mixed.txt",
                                  "proc_nat_peer.txt", "synthetic_rare_valid"])
def test_fast_path_matches_full_parse(fields: tuple[str, ...], name: str) -> None:
    if name == "synthetic_rare_valid":  # the well-formed lines of the rare shapes
        text = "".join(ln for ln in RARE.splitlines(keepends=True) if parse_line(ln))
    else:
        text = (FIX / name).read_text()
    assert fast_counts(text, fields) == slow_counts(text, fields)


def test_fast_path_on_rare_shapes_counts_garbage_lines() -> None:
    pat = FieldPattern(("src", "state", "assured"))
    raw: Counter[object] = Counter()
    lines, found = pat.count(RARE.encode(), raw)
    # the truncated last line still has src= and dst=: the fast path is lenient there
    assert (lines, found) == (9, 7)
    assert raw[(b"ESTABLISHED", b"192.0.2.10", b"OFFLOAD")] == 1
    assert raw[(b"ESTABLISHED", b"192.0.2.11", b"HW_OFFLOAD")] == 1
    assert raw[(b"OPEN", b"192.0.2.13", b"ASSURED")] == 1


def test_field_pattern_rejects_unknown_fields() -> None:
    with pytest.raises(ValueError, match="unknown field"):
        FieldPattern(("bogus",))
    with pytest.raises(ValueError):
        FieldPattern(())


def test_blocks_rejoin_lines_split_across_chunks() -> None:
    data = PROC.encode()
    pieces = [data[i:i + 37] for i in range(0, len(data), 37)]
    out = list(blocks(pieces, size=100))
    assert b"".join(out) == data
    assert all(b.endswith(b"\n") for b in out)
    # a last line without newline gets one
    assert list(blocks([b"a\nb"])) == [b"a\nb\n"]
    assert list(blocks(["x\n", "y\n"])) == [b"x\ny\n"]
