"""``hostnet lint`` end to end through click: exit codes, formats, --fix/--diff, stdin, --system."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from hostnet.cli.main import cli
from hostnet.sysctl import rules as R

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SYSCTL = FIXTURES / "sysctl"
SYSTEM_ROOT = FIXTURES / "roots" / "lint-system"
FINDING_FIELDS = {"code", "name", "severity", "path", "line", "column", "key", "message", "suggestion"}


def run(*args: str, input: str | bytes | None = None) -> tuple[int, str]:
    """Run ``hostnet lint ARGS``; return (exit code as main() would exit, stdout)."""
    from hostnet.errors import HostnetError

    result = CliRunner().invoke(
        cli, ["lint", *args], input=input, standalone_mode=False, catch_exceptions=True
    )
    exc = result.exception
    if isinstance(exc, HostnetError):
        return exc.exit_code, result.output
    if isinstance(exc, click.ClickException):  # as hostnet.cli.main.main maps it
        return (2 if exc.exit_code == 1 else exc.exit_code), result.output
    if exc is not None and not isinstance(exc, SystemExit):
        raise exc
    return result.return_value, result.output  # type: ignore[return-value]


def findings(*args: str, input: str | None = None) -> tuple[int, list[dict[str, object]]]:
    code, out = run("--format", "json", *args, input=input)
    return code, json.loads(out)["findings"]


def test_clean_file_exits_0() -> None:
    code, out = run("--no-kernel", str(SYSCTL / "clean" / "90-router.conf"))
    assert code == 0 and out == "no findings\n"


def test_errors_exit_1_and_text_shows_location_and_fix() -> None:
    code, out = run("--no-kernel", str(SYSCTL / "every-class.conf"))
    assert code == 1
    path = str(SYSCTL / "every-class.conf")
    assert f"{path}:7:22: error SC108 [quoted-value] " in out
    assert "    fix: net.core.somaxconn = 4096" in out
    assert out.rstrip().endswith("16 findings: 6 error, 9 warning, 1 info")


def test_warnings_only_exit_0_unless_strict(tmp_path: Path) -> None:
    f = tmp_path / "w.conf"
    f.write_text("net.ipv4.tcp_syncookies = 0\n")
    assert run("--no-kernel", str(f))[0] == 0
    assert run("--no-kernel", "--strict", str(f))[0] == 1
    f.write_text("net.ipv4.ip_local_port_range = 1024 65000\n")  # info only
    assert run("--no-kernel", "--strict", str(f))[0] == 0


@pytest.mark.parametrize(
    "args",
    [
        (),  # nothing to lint
        ("/nonexistent/hostnet/x.conf",),
        ("--fix", "--diff", "-"),
        ("--format", "yaml", "-"),
        ("--no-such-option",),
    ],
)
def test_bad_usage_exits_2(args: tuple[str, ...]) -> None:
    code, _ = run(*args, input="")
    assert code == 2


def test_directory_is_not_a_file_for_system_root(tmp_path: Path) -> None:
    assert run("--system", "--root", str(tmp_path / "missing"))[0] == 2


def test_json_schema() -> None:
    code, out = run("--no-kernel", "--format", "json", str(SYSCTL / "nat-router.conf"))
    doc = json.loads(out)
    assert code == 1 and doc["version"] == 1
    assert set(doc) >= {"version", "findings", "summary"}
    # the reversed port range is an error (EINVAL), the repeat of ip_forward = 1 is info
    assert doc["summary"] == {"error": 4, "warning": 5, "info": 1}
    for f in doc["findings"]:
        assert set(f) >= FINDING_FIELDS
        assert f["severity"] in ("error", "warning", "info")
        assert f["path"] == str(SYSCTL / "nat-router.conf")
        assert isinstance(f["line"], int)
    first = doc["findings"][0]
    assert (first["code"], first["name"], first["line"], first["column"], first["key"]) == (
        "SC121", "dotted-interface-name", 8, 1, "net.ipv4.conf.eth1.100.rp_filter",
    )  # fmt: skip


def test_sarif_shape() -> None:
    code, out = run("--no-kernel", "--format", "sarif", str(SYSCTL / "every-class.conf"))
    doc = json.loads(out)
    assert code == 1 and doc["version"] == "2.1.0" and "sarif" in doc["$schema"]
    (run_,) = doc["runs"]
    driver = run_["tool"]["driver"]
    assert driver["name"] == "hostnet" and isinstance(driver["version"], str)
    ids = [r["id"] for r in driver["rules"]]
    assert ids == sorted(set(ids)) and "SC108" in ids
    assert next(r for r in driver["rules"] if r["id"] == "SC108")["name"] == R.QUOTED_VALUE.name
    assert len(run_["results"]) == 16
    for res in run_["results"]:
        assert ids[res["ruleIndex"]] == res["ruleId"]
        assert res["level"] in ("error", "warning", "note")
        assert res["message"]["text"]
        (loc,) = res["locations"]
        phys = loc["physicalLocation"]
        assert phys["artifactLocation"]["uri"] == str(SYSCTL / "every-class.conf").lstrip("/")
        assert phys["region"]["startLine"] >= 1
    q = next(r for r in run_["results"] if r["ruleId"] == "SC108")
    assert q["locations"][0]["physicalLocation"]["region"] == {
        "startLine": 7,
        "startColumn": 22,
    }


def test_github_annotations() -> None:
    code, out = run("--no-kernel", "--format", "github", str(SYSCTL / "every-class.conf"))
    lines = out.splitlines()
    assert code == 1 and len(lines) == 16
    path = str(SYSCTL / "every-class.conf")
    assert lines[0].startswith(f"::error file={path},line=2,col=1,title=SC101 not-an-assignment::")
    assert any(line.startswith("::notice ") and "SC123" in line for line in lines)
    assert any(line.startswith("::warning ") and "SC110" in line for line in lines)
    assert all(line.startswith(("::error ", "::warning ", "::notice ")) for line in lines)


def test_stdin() -> None:
    code, out = run("--no-kernel", "-", input="net.ipv4.tcp_tw_recycle = 1\n")
    assert code == 0 and out.startswith("<stdin>:1:1: warning SC105 [removed-key]")
    code, fs = findings("--no-kernel", "-", input='net.core.somaxconn = "1024"\n')
    assert code == 1 and [(f["path"], f["code"]) for f in fs] == [("<stdin>", "SC108")]


def test_directory_argument_reads_conf_files_in_order(tmp_path: Path) -> None:
    (tmp_path / "10-a.conf").write_text("net.ipv4.tcp_fin_timeout = 30\n")
    (tmp_path / "20-b.conf").write_text("net.ipv4.tcp_fin_timeout = 15\n")
    (tmp_path / "notes.txt").write_text("garbage\n")
    code, fs = findings("--no-kernel", str(tmp_path))
    assert code == 0
    assert [(Path(str(f["path"])).name, f["code"]) for f in fs] == [("10-a.conf", "SC111")]


@pytest.fixture
def broken(tmp_path: Path) -> Path:
    dst = tmp_path / "every-class.conf"
    shutil.copy(SYSCTL / "every-class.conf", dst)
    return dst


def test_diff_shows_changes_and_writes_nothing(broken: Path) -> None:
    before = broken.read_text()
    code, out = run("--no-kernel", "--diff", str(broken))
    assert code == 0 and broken.read_text() == before
    assert out.startswith(f"--- a{broken}\n+++ b{broken}\n@@")
    assert '\n-net.core.somaxconn = "4096"\n' in out and "\n+net.core.somaxconn = 4096\n" in out
    assert "\n-; a semicolon comment\n" in out and "\n+# a semicolon comment\n" in out


FIXED_CODES = {"SC101", "SC105", "SC108", "SC109", "SC110", "SC113", "SC116", "SC117", "SC119", "SC121"}


def test_fix_writes_a_corrected_copy(broken: Path) -> None:
    before = broken.read_text()
    code, _ = run("--no-kernel", "--fix", str(broken))
    after = broken.read_text()
    assert code == 0 and after != before
    _, fs = findings("--no-kernel", str(broken))
    assert not FIXED_CODES & {str(f["code"]) for f in fs}, fs
    # untouched lines keep their text and order, comments included
    untouched = [line for line in before.splitlines() if line in after.splitlines()]
    assert [line for line in after.splitlines() if line in untouched] == untouched
    assert "# One mistake of every class hostnet finds without looking at a kernel." in after
    assert "# hostnet: ignore[SC113]" in after
    lines = after.splitlines()
    i = lines.index("# allow forwarding on the LAN")
    assert lines[i + 1] == "net.ipv4.conf.all.forwarding = 1"
    assert after.endswith("\n")


def test_fix_twice_changes_nothing_the_second_time(broken: Path) -> None:
    run("--no-kernel", "--fix", str(broken))
    once = broken.read_text()
    code, _ = run("--no-kernel", "--fix", str(broken))
    assert code == 0 and broken.read_text() == once
    assert run("--no-kernel", "--diff", str(broken))[1] == ""


@pytest.mark.parametrize("name", ["blog-hardening.conf", "nat-router.conf"])
def test_fix_is_idempotent_on_realistic_files(tmp_path: Path, name: str) -> None:
    f = tmp_path / name
    shutil.copy(SYSCTL / name, f)
    run("--no-kernel", "--fix", str(f))
    once = f.read_text()
    run("--no-kernel", "--fix", str(f))
    assert f.read_text() == once


def test_fix_keeps_the_file_mode(broken: Path) -> None:
    broken.chmod(0o640)
    run("--no-kernel", "--fix", str(broken))
    assert broken.stat().st_mode & 0o777 == 0o640


def test_fix_from_stdin_prints_the_corrected_text() -> None:
    code, out = run("--no-kernel", "--fix", "-", input="# keep me\nnet.core.somaxconn = '1024'\n")
    assert code == 0 and out == "# keep me\nnet.core.somaxconn = 1024\n"
    code, out = run("--no-kernel", "--fix", "-", input="net.core.somaxconn = 1024\n")
    assert code == 0 and out == "net.core.somaxconn = 1024\n"


def test_system_with_root_fixture() -> None:
    code, fs = findings("--system", "--root", str(SYSTEM_ROOT))
    got = [(f["path"], f["line"], f["code"]) for f in fs]
    assert ("/etc/sysctl.conf", None, "SC115") in got
    assert ("/etc/sysctl.d/60-tuning", None, "SC115") in got
    assert ("/usr/lib/sysctl.d/50-coredump.conf", None, "SC124") in got
    assert ("/usr/lib/sysctl.d/50-pid-max.conf", None, "SC124") in got
    assert not any(str(p).endswith("README") for p, _, _ in got)
    assert ("/etc/sysctl.d/90-router.conf", 5, "SC122") in got  # nf_conntrack not in modules-load.d
    assert ("/etc/sysctl.d/90-router.conf", 6, "SC122") not in got  # br_netfilter is
    over = {(f["path"], f["line"]): f for f in fs if f["code"] == "SC111"}
    assert over[("/etc/sysctl.d/10-local.conf", 3)]["evidence"]["winner"] == "/etc/sysctl.d/90-router.conf:3"
    # the classic surprise: a local 10- file loses to the vendor 50-default.conf
    assert over[("/etc/sysctl.d/10-local.conf", 2)]["evidence"]["winner"] == "/usr/lib/sysctl.d/50-default.conf:50"
    assert "/usr/lib/sysctl.d/50-default.conf:50" in str(over[("/etc/sysctl.d/10-local.conf", 2)]["message"])
    vendor = over[("/usr/lib/sysctl.d/50-default.conf", 21)]
    assert vendor["severity"] == "info" and vendor["evidence"]["winner"] == "/etc/sysctl.d/90-router.conf:4"
    assert over[("/etc/sysctl.d/90-router.conf", 2)]["evidence"]["winner"] == "/etc/sysctl.conf:2"
    # masked files are not read: the vendor pid_max and core_pattern never appear
    assert not any(p in ("/usr/lib/sysctl.d/50-pid-max.conf", "/usr/lib/sysctl.d/50-coredump.conf") and ln
                   for p, ln, _ in got)  # fmt: skip
    assert code == 0  # warnings and infos only


def test_system_with_root_is_strict_failure() -> None:
    assert run("--system", "--strict", "--root", str(SYSTEM_ROOT))[0] == 1


def test_system_text_names_the_winner() -> None:
    _, out = run("--system", "--root", str(SYSTEM_ROOT))
    assert (
        "/etc/sysctl.d/10-local.conf:3:1: warning SC111 [overridden-key] net.ipv4.tcp_fin_timeout = 30 "
        "is overridden by /etc/sysctl.d/90-router.conf:3" in out
    )


def test_system_with_99_sysctl_link_reads_sysctl_conf_without_sc115(tmp_path: Path) -> None:
    root = tmp_path / "root"
    shutil.copytree(SYSTEM_ROOT, root, symlinks=True)
    (root / "etc/sysctl.d/99-sysctl.conf").symlink_to("../sysctl.conf")
    _, fs = findings("--system", "--root", str(root))
    assert ("/etc/sysctl.conf", "SC115") not in {(f["path"], f["code"]) for f in fs}


def test_rules_shows_every_severity_a_rule_emits() -> None:
    from hostnet.cli.main import cli as main_cli

    res = CliRunner().invoke(main_cli, ["rules", "--family", "SC", "--format", "json"])
    assert res.exit_code == 0, res.output
    by_code = {r["code"]: r for r in json.loads(res.output)}
    assert by_code["SC110"]["severities"] == ["warning", "info"]
    assert by_code["SC107"]["severities"] == ["error", "warning"]
    assert by_code["SC106"]["severities"] == ["error", "warning", "info"]
    assert by_code["SC101"]["severities"] == ["error"]
    text = CliRunner().invoke(main_cli, ["rules", "--family", "SC"]).output
    assert "SC110  duplicate-key" in text and "warning/info" in text


def test_fix_write_is_atomic_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    from hostnet.state.lint_fix import write_atomic

    target = tmp_path / "90-x.conf"
    target.write_text("net.core.somaxconn = '1024'\n")
    target.chmod(0o640)
    write_atomic(str(target), "net.core.somaxconn = 1024\n")
    assert target.read_text() == "net.core.somaxconn = 1024\n"
    assert target.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["90-x.conf"]
