"""Aggregation (top, composition) and the ``conntrack top`` command on saved tables."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from hostnet.cli.main import cli
from hostnet.conntrack.top import (
    Filters,
    KeyPart,
    composition,
    parse_by,
    parse_network,
    top,
)

FIX = Path(__file__).resolve().parent.parent / "fixtures" / "conntrack"
PROC = (FIX / "proc_mixed.txt").read_bytes()
LIST = (FIX / "conntrack_L_mixed.txt").read_bytes()
RARE = (FIX / "synthetic_rare.txt").read_bytes()


def keys(result: object) -> dict[tuple[object, ...], int]:
    return {g.key: g.count for g in result.groups}  # type: ignore[attr-defined]


# -- --by --------------------------------------------------------------------------------

def test_parse_by() -> None:
    assert parse_by("src") == (KeyPart("src"),)
    assert parse_by("dst,dport") == (KeyPart("dst"), KeyPart("dport"))
    assert parse_by("src/24") == (KeyPart("src", 24, None),)
    assert parse_by("src/64") == (KeyPart("src", None, 64),)
    assert parse_by("SRC/24/48")[0].label == "src/24/48"
    assert parse_by("dst/16")[0].label == "dst/16"


@pytest.mark.parametrize("bad,msg", [
    ("bogus", "unknown field"), ("src,", "empty"), ("dport/24", "only src and dst"),
    ("src/x", "bad prefix"), ("src/129", "above 128"), ("src/33/64", "IPv4"),
    ("src,src", "twice"), ("src/1/2/3", "bad prefix"),
])
def test_parse_by_errors(bad: str, msg: str) -> None:
    with pytest.raises(ValueError, match=msg):
        parse_by(bad)


# -- top ----------------------------------------------------------------------------------

@pytest.mark.parametrize("data", [PROC, LIST], ids=["proc", "conntrack-L"])
def test_top_by_src_counts_and_shares(data: bytes) -> None:
    r = top([data], "src")
    assert (r.entries, r.matched, r.skipped, r.distinct) == (10, 10, 0, 5)
    assert keys(r) == {("192.0.2.1",): 5, ("2001:db8::1",): 2, ("198.51.100.7",): 1,
                       ("198.51.100.8",): 1, ("2001:db8::5",): 1}
    assert r.groups[0].share == 0.5
    assert sum(g.share for g in r.groups) == pytest.approx(1.0)


def test_both_formats_agree_on_every_key() -> None:
    for by in ("src", "dst", "sport", "dport", "proto", "state", "zone", "mark", "l3",
               "src/24/64", "dst,dport", "proto,state"):
        assert keys(top([PROC], by, limit=None)) == keys(top([LIST], by, limit=None)), by


def test_limit_and_others() -> None:
    r = top([PROC], "dst,dport", limit=2)
    assert len(r.groups) == 2 and r.groups[0].key == ("192.0.2.2", "-")
    assert r.others_groups == r.distinct - 2 == 7
    assert r.others_count == 10 - sum(g.count for g in r.groups)
    assert r.to_dict()["others"] == {"groups": 7, "count": 7, "share": 0.7}
    assert len(top([PROC], "src", limit=0).groups) == 5  # 0: everything


def test_prefixes_per_family() -> None:
    assert keys(top([PROC], "src/24")) == {
        ("192.0.2.0/24",): 5, ("2001:db8::1",): 2, ("198.51.100.0/24",): 2,
        ("2001:db8::5",): 1}
    assert keys(top([PROC], "src/64")) == {
        ("192.0.2.1",): 5, ("2001:db8::/64",): 3, ("198.51.100.7",): 1, ("198.51.100.8",): 1}
    assert keys(top([PROC], "dst/16/32")) == {
        ("192.0.0.0/16",): 5, ("2001:db8::/32",): 3, ("203.0.0.0/16",): 2}


def test_missing_fields_and_defaults() -> None:
    assert keys(top([PROC], "state"))[("-",)] == 8  # udp, icmp, generic have no state
    assert keys(top([LIST], "zone")) == {(0,): 9, (7,): 1}  # -L leaves out zone=0
    assert keys(top([PROC], "mark")) == {(0,): 9, (42,): 1}
    assert keys(top([PROC], "l3")) == {("ipv4",): 7, ("ipv6",): 3}
    assert keys(top([PROC], "sport"))[("-",)] == 3


@pytest.mark.parametrize("filters,expect", [
    (Filters(proto="tcp"), {("198.51.100.7",): 1, ("192.0.2.1",): 1}),
    (Filters(proto="UDP", unreplied=True), {("192.0.2.1",): 2, ("2001:db8::1",): 1}),
    (Filters(assured=True), {("198.51.100.7",): 1, ("192.0.2.1",): 1, ("2001:db8::5",): 1}),
    (Filters(state="established"), {("198.51.100.7",): 1}),
    (Filters(src=parse_network("2001:db8::/32")), {("2001:db8::1",): 2, ("2001:db8::5",): 1}),
    (Filters(dst=parse_network("203.0.113.0/24")), {("198.51.100.7",): 1, ("198.51.100.8",): 1}),
    (Filters(dport=53), {("192.0.2.1",): 1, ("2001:db8::1",): 1}),
    (Filters(proto="tcp", dport=53), {}),
])
def test_filters(filters: Filters, expect: dict[tuple[object, ...], int]) -> None:
    for data in (PROC, LIST):
        r = top([data], "src", filters=filters, limit=None)
        assert keys(r) == expect
        assert r.matched == sum(expect.values()) and r.entries == 10


def test_filter_shares_are_of_the_matched_entries() -> None:
    r = top([PROC], "src", filters=Filters(proto="udp"))
    assert r.matched == 4
    assert r.groups[0].share == 0.5


def test_parse_network() -> None:
    assert str(parse_network("198.51.100.7")) == "198.51.100.7/32"
    assert str(parse_network("198.51.100.7/24")) == "198.51.100.0/24"
    with pytest.raises(ValueError, match="not an address"):
        parse_network("nope")


def test_garbage_is_counted_not_fatal() -> None:
    r = top([RARE], "src")
    assert r.skipped == 2 and r.entries == 7
    assert top([b"", b"\n\n", b"junk\n"], "src").skipped == 3


def test_text_lines_and_split_chunks_give_the_same_answer() -> None:
    lines = PROC.decode().splitlines(keepends=True)
    chunks = [PROC[i:i + 50] for i in range(0, len(PROC), 50)]
    assert keys(top(lines, "dst,dport")) == keys(top(chunks, "dst,dport")) == keys(
        top([PROC], "dst,dport"))


# -- composition ----------------------------------------------------------------------------

def test_composition() -> None:
    for data in (PROC, LIST):
        c = composition([data], limit=2)
        assert (c.entries, c.skipped) == (10, 0)
        assert c.by_proto["udp"] == 4 and c.by_proto["tcp"] == 2
        assert c.by_state["tcp ESTABLISHED"] == 1 and c.by_state["udp"] == 4
        assert (c.assured, c.unreplied, c.offloaded) == (3, 6, 0)
        assert [(a.address, a.count) for a in c.top_src] == [("192.0.2.1", 5),
                                                             ("2001:db8::1", 2)]
        assert (c.top_src[0].unreplied, c.top_src[0].assured) == (3, 1)
        assert [(a.address, a.count) for a in c.top_dst] == [("192.0.2.2", 5),
                                                             ("2001:db8::2", 2)]
        assert [(p.proto, p.port, p.count) for p in c.top_dport] == [("udp", 53, 2),
                                                                     ("tcp", 443, 1)]
        assert c.share(c.assured) == 0.3
        assert not c.own_known and c.to_host == 0
        assert json.loads(json.dumps(c.to_dict()))["top_dport"][0] == {
            "proto": "udp", "dport": 53, "count": 2, "local": 0, "nated": 0}
        own = composition([data], own={"192.0.2.2", "2001:db8:0:0::2"})
        assert own.own_known and own.to_host == 7 and own.forwarded == 3
        assert own.top_dport[0].local == 2


def test_composition_offload_and_garbage() -> None:
    c = composition([RARE])
    assert c.offloaded == 2 and c.skipped == 2
    assert c.by_state["sctp ESTABLISHED"] == 1 and c.by_state["gre"] == 1


def test_composition_of_nothing() -> None:
    c = composition([])
    assert c.entries == 0 and c.share(0) == 0.0 and c.top_src == ()


def test_composition_sees_nat_in_the_reply_tuple() -> None:
    c = composition([RARE])
    assert c.nated == 1  # the SYN_SENT entry's reply goes to 203.0.113.1, not the source


# -- the command on saved tables ------------------------------------------------------------

def run(*args: str, input: bytes | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["conntrack", "top", *args], input=input,
                                standalone_mode=False, catch_exceptions=True)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.return_value, result.output  # type: ignore[return-value]


def test_cli_text_from_file() -> None:
    code, out = run("--file", str(FIX / "proc_mixed.txt"), "--by", "dst,dport", "-n", "2")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["DST", "DPORT", "COUNT", "SHARE"]
    assert lines[1].split() == ["192.0.2.2", "-", "2", "20.0%"]
    assert lines[3].split() == ["others", "(7", "groups)", "7", "70.0%"]
    assert "10 entries in 9 groups" in lines[-1]


def test_cli_json_from_stdin_with_filters() -> None:
    code, out = run("--file", "-", "--format", "json", "--proto", "udp", "--unreplied",
                    "--by", "src/64", input=LIST)
    doc = json.loads(out)
    assert code == 0 and doc["source"]["kind"] == "stdin"
    assert (doc["entries"], doc["matched"], doc["by"]) == (10, 3, "src/64")
    assert doc["groups"][0] == {"src/64": "192.0.2.1", "count": 2, "share": 0.666667}


def test_cli_gzip_file_and_root_tree_and_archive(tmp_path: Path) -> None:
    gz = tmp_path / "table.gz"
    gz.write_bytes(gzip.compress(PROC))
    _, out = run("--file", str(gz), "--format", "json")
    assert json.loads(out)["entries"] == 10
    tree = tmp_path / "root"
    (tree / "proc/net").mkdir(parents=True)
    (tree / "proc/sys").mkdir(parents=True)  # what makes it a host tree
    (tree / "proc/net/nf_conntrack").write_bytes(PROC)
    _, out = run("--root", str(tree), "--format", "json", "--by", "proto")
    doc = json.loads(out)
    assert doc["source"]["kind"] == "proc" and doc["groups"][0] == {
        "proto": "udp", "count": 4, "share": 0.4}
    archive = tmp_path / "snap.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        meta = b'{"hostnet": "0.1.0", "members": 4}'
        for name, data in (("proc/net/nf_conntrack", PROC), ("proc/meminfo", b"MemTotal: 1 kB\n"),
                           ("proc/sys/kernel/osrelease", b"6.1.0\n"),
                           ("proc/sys/net/ipv4/ip_forward", b"0\n"),
                           (".hostnet/meta.json", meta)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    _, out = run("--root", str(archive), "--format", "json")
    assert json.loads(out)["matched"] == 10


@pytest.mark.parametrize("args,msg", [
    (["--by", "nope"], "unknown field"),
    (["--src", "not-a-net"], "not an address"),
    (["--file", "/nonexistent/table"], "no such file"),
    (["--file", "-", "--netns", "x"], "does not combine"),
])
def test_cli_errors_say_what_and_where(args: list[str], msg: str) -> None:
    from hostnet.errors import HostnetError

    with pytest.raises(HostnetError, match=msg) as info:
        run(*args)
    assert info.value.exit_code == 2


def test_cli_root_without_table(tmp_path: Path) -> None:
    from hostnet.errors import InputError

    (tmp_path / "proc/sys").mkdir(parents=True)
    with pytest.raises(InputError, match="no conntrack table") as info:
        run("--root", str(tmp_path))
    assert info.value.hint and "--file" in info.value.hint
