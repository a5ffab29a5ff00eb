"""Whatever a sysctl file holds, lint never raises and the CLI exits 0, 1 or 2 (never 70)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hostnet.cli.main import cli
from hostnet.errors import HostnetError
from hostnet.knowledge.catalogue import load
from hostnet.sysctl.fix import apply_edits
from hostnet.sysctl.lint import NoKernel, lint_files
from hostnet.sysctl.parser import parse_text

FRAGMENTS = st.sampled_from(
    ["net.ipv4.ip_forward", "net.ipv4.conf.eth0.100.rp_filter", "net/ipv4/conf/eth0.1/rp_filter",
     "-", "=", " ", "\t", "#", ";", '"', "'", "*", "?", "[", "\n", "\r\n", "1", "0", "65535 1",
     "hostnet: ignore[SC1", "]", "disable IPv6", "net.ipv6.conf.all.disable_ipv6",
     "net.ipv4.netfilter.ip_conntrack_max", "net.ipv4.ip_local_port_range", "\x00", "\ufeff", "é"]
)  # fmt: skip
SYSCTL_TEXT = st.one_of(st.text(max_size=300), st.lists(FRAGMENTS, max_size=40).map("".join))


@settings(max_examples=150, deadline=None)
@given(SYSCTL_TEXT)
def test_lint_and_fix_never_raise(text: str) -> None:
    pf = parse_text(text, "/etc/sysctl.d/x.conf")
    result = lint_files([pf], load(), NoKernel())
    for f in result.findings:
        assert f.path == "/etc/sysctl.d/x.conf" and f.code.startswith("SC")
        assert f.line is None or 1 <= f.line <= max(1, len(pf.lines))
    apply_edits(text, result.edits)


def _exit(args: list[str], data: bytes | None = None) -> int:
    result = CliRunner().invoke(cli, ["lint", *args], input=data, standalone_mode=False)
    exc = result.exception
    if isinstance(exc, HostnetError):
        return exc.exit_code
    if exc is not None and not isinstance(exc, SystemExit):
        return 70  # main() would call this an internal error
    assert isinstance(result.return_value, int)
    return result.return_value


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300), st.booleans())
def test_cli_on_arbitrary_bytes_exits_0_1_or_2(data: bytes, fix: bool) -> None:
    fmt = "json"
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "x.conf")
        with open(path, "wb") as fh:
            fh.write(data)
        args = ["--no-kernel", "--fix" if fix else "--format", *([] if fix else [fmt]), path]
        assert _exit(args) in (0, 1, 2)


@pytest.mark.parametrize("data", [b"", b"# page\x0cbreak\nnet.ipv4.ip_forward = 1\n"])
def test_fix_leaves_files_without_edits_alone(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "x.conf"
    path.write_bytes(data)
    assert _exit(["--no-kernel", "--fix", str(path)]) == 0
    assert path.read_bytes() == data


@pytest.mark.parametrize("fmt", ["text", "github"])
def test_cli_text_on_non_utf8_file(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / "latin1.conf"
    path.write_bytes(b"# r\xe9glages\nnet.ipv4.ip_forward 1\x80\n")
    assert _exit(["--no-kernel", "--format", fmt, str(path)]) == 1


@settings(max_examples=60, deadline=None)
@given(SYSCTL_TEXT)
def test_cli_on_arbitrary_text_from_stdin(text: str) -> None:
    assert _exit(["--no-kernel", "--format", "json", "-"], text.encode("utf-8", "surrogatepass")) in (0, 1, 2)
