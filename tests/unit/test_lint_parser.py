"""The sysctl.d parser reads lines the way systemd-sysctl and procps do (hostnet.sysctl.parser)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hostnet.sysctl.keys import key_to_path, normalize_key, path_to_key
from hostnet.sysctl.parser import parse_text

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "sysctl"


def one(text: str):  # type: ignore[no-untyped-def]
    pf = parse_text(text, "/etc/sysctl.d/t.conf")
    assert len(pf.assignments) == 1, pf
    return pf.assignments[0]


def test_comments_hash_and_semicolon_are_not_assignments() -> None:
    pf = parse_text("# a = b\n; net.ipv4.ip_forward = 1\n   # indented\n\n\t\n")
    assert pf.assignments == [] and pf.not_assignments == [] and pf.exclusions == []
    assert [(c.line, c.marker, c.column) for c in pf.comments] == [
        (1, "#", 1),
        (2, ";", 1),
        (3, "#", 4),
    ]
    assert pf.comments[1].text == "; net.ipv4.ip_forward = 1"


def test_split_at_first_equals_and_trim() -> None:
    a = one("  net.ipv4.tcp_rmem\t=  4096 87380 6291456 \t\n")
    assert (a.key, a.raw_key, a.value) == ("net.ipv4.tcp_rmem", "net.ipv4.tcp_rmem", "4096 87380 6291456")
    assert (a.line, a.column, a.value_column) == (1, 3, 24)
    b = one("kernel.core_pattern=|/bin/x a=b")
    assert b.key == "kernel.core_pattern" and b.value == "|/bin/x a=b"
    assert b.value_column == len("kernel.core_pattern=") + 1


def test_no_spaces_around_equals() -> None:
    a = one("net.ipv4.ip_forward=1")
    assert (a.key, a.value, a.column, a.value_column) == ("net.ipv4.ip_forward", "1", 1, 21)


def test_quotes_and_inline_comments_are_kept_in_the_value() -> None:
    assert one('net.core.somaxconn = "4096"').value == '"4096"'
    assert one("net.core.somaxconn = '4096'").value == "'4096'"
    assert one("net.ipv4.tcp_fin_timeout = 15 # faster").value == "15 # faster"
    assert one("net.ipv4.tcp_fin_timeout = 15 ; faster").value == "15 ; faster"


def test_dash_prefix_ignores_failure() -> None:
    a = one("-net.core.default_qdisc = fq_codel")
    assert a.ignore_failure and a.key == "net.core.default_qdisc" and a.raw_key == "net.core.default_qdisc"
    assert (a.column, a.value_column) == (2, 27)
    b = one("  - net.core.default_qdisc = fq")
    assert b.ignore_failure and b.key == "net.core.default_qdisc" and b.column == 5
    assert not one("net.core.default_qdisc = fq").ignore_failure


def test_dash_key_without_value_is_an_exclusion() -> None:
    pf = parse_text("net.ipv4.conf.*.rp_filter = 2\n-net.ipv4.conf.all.rp_filter\n")
    assert [(e.line, e.key, e.column) for e in pf.exclusions] == [(2, "net.ipv4.conf.all.rp_filter", 2)]
    assert pf.assignments[0].is_glob and not pf.not_assignments


def test_line_without_equals_is_not_an_assignment() -> None:
    pf = parse_text("net.ipv4.ip_forward 1\n  -net.ipv4.ip_forward 1\n")
    assert [(n.line, n.text, n.column) for n in pf.not_assignments] == [
        (1, "net.ipv4.ip_forward 1", 1),
        (2, "-net.ipv4.ip_forward 1", 3),
    ]
    assert pf.exclusions == []


def test_empty_value() -> None:
    a = one("net.ipv4.ip_forward =   ")
    assert a.value == "" and a.key == "net.ipv4.ip_forward"


@pytest.mark.parametrize(
    "raw",
    ["net.ipv4.conf.*.rp_filter", "net.ipv4.conf.eth?.rp_filter", "net.ipv4.conf.eth[01].rp_filter"],
)
def test_globs(raw: str) -> None:
    assert one(f"{raw} = 1").is_glob


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ("net.ipv4.ip_forward", "net.ipv4.ip_forward"),
        ("net/ipv4/ip_forward", "net.ipv4.ip_forward"),
        ("/net/ipv4/ip_forward", "net.ipv4.ip_forward"),
        # the first separator decides: '/' form keeps dots inside names
        ("net/ipv4/conf/eth0.100/rp_filter", "net.ipv4.conf.eth0/100.rp_filter"),
        # '.' form: a '/' stands for a dot inside a name
        ("net.ipv4.conf.eth0/100.rp_filter", "net.ipv4.conf.eth0/100.rp_filter"),
    ],
)
def test_slash_and_dot_key_forms(raw: str, key: str) -> None:
    a = one(f"{raw} = 1")
    assert a.key == key and a.raw_key == raw
    assert normalize_key(raw) == key


def test_key_path_round_trip() -> None:
    assert key_to_path("net.ipv4.conf.eth0/100.rp_filter") == "net/ipv4/conf/eth0.100/rp_filter"
    assert path_to_key("net/ipv4/conf/eth0.100/rp_filter") == "net.ipv4.conf.eth0/100.rp_filter"


def test_no_line_continuation() -> None:
    pf = parse_text("net.ipv4.tcp_rmem = 4096 \\\n 87380 6291456\n")
    assert pf.assignments[0].value == "4096 \\"
    assert [n.text for n in pf.not_assignments] == ["87380 6291456"]


def test_crlf_and_tabs() -> None:
    pf = parse_text("net.ipv4.ip_forward = 1\r\n\tnet.core.somaxconn\t=\t1024\r\n")
    assert [(a.key, a.value) for a in pf.assignments] == [
        ("net.ipv4.ip_forward", "1"),
        ("net.core.somaxconn", "1024"),
    ]
    assert pf.assignments[1].column == 2


def test_suppression_on_the_line_above_covers_the_next_line_only() -> None:
    pf = parse_text("# hostnet: ignore[SC113, sc104]\nnet.ipv4.tcp_syncookies = 0\nx = 1\n")
    assert pf.is_suppressed(2, "SC113") and pf.is_suppressed(2, "SC104")
    assert pf.is_suppressed(1, "SC113")  # the comment line itself
    assert not pf.is_suppressed(3, "SC113")
    assert not pf.is_suppressed(2, "SC110")
    assert not pf.is_suppressed(None, "SC113")


def test_suppression_on_the_line_itself() -> None:
    pf = parse_text("net.ipv4.tcp_syncookies = 0  # hostnet: ignore[SC113]\nnet.ipv4.ip_forward = 1\n")
    assert pf.is_suppressed(1, "SC113")
    # an inline suppression does not carry to the next line
    assert not pf.is_suppressed(2, "SC113")
    # ... and it is part of the value, like any text after '='
    assert pf.assignments[0].value == "0  # hostnet: ignore[SC113]"


def test_suppression_all_and_semicolon_comment() -> None:
    pf = parse_text("; hostnet: ignore[ALL]\nnet.ipv4.tcp_syncookies = 0\n")
    assert pf.is_suppressed(2, "SC101") and pf.is_suppressed(2, "SC999")


def test_unrelated_hostnet_comment_is_not_a_suppression() -> None:
    pf = parse_text("# managed by hostnet: do not edit\nnet.ipv4.ip_forward = 1\n")
    assert pf.suppressed == {}


def test_debian_default_file_has_only_comments() -> None:
    pf = parse_text((FIX / "clean" / "debian-sysctl.conf").read_text(), "/etc/sysctl.conf")
    assert pf.assignments == [] and pf.not_assignments == [] and pf.exclusions == []
    assert len(pf.comments) > 40


def test_systemd_default_file_shapes() -> None:
    pf = parse_text((FIX / "clean" / "50-default.conf").read_text(), "/usr/lib/sysctl.d/50-default.conf")
    globs = [a.key for a in pf.assignments if a.is_glob]
    assert globs == [
        "net.ipv4.conf.*.rp_filter",
        "net.ipv4.conf.*.accept_source_route",
        "net.ipv4.conf.*.promote_secondaries",
    ]
    assert [e.key for e in pf.exclusions] == [
        "net.ipv4.conf.all.rp_filter",
        "net.ipv4.conf.all.accept_source_route",
        "net.ipv4.conf.all.promote_secondaries",
    ]
    ignored = {a.key: a.value for a in pf.assignments if a.ignore_failure}
    assert ignored == {"net.ipv4.ping_group_range": "0 2147483647", "net.core.default_qdisc": "fq_codel"}
    assert pf.not_assignments == []
