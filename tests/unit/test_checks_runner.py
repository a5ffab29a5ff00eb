"""The runner, the doctor's text/JSON/Nagios output and the CLI, on fixture trees."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import pytest
from click.testing import CliRunner

from hostnet.checks.runner import DoctorReport, NamespaceReport
from hostnet.cli.doctor import parse_interval
from hostnet.cli.main import cli
from hostnet.errors import UsageError
from hostnet.findings import Finding, Severity
from hostnet.host.root import Root
from hostnet.model.conntrack import ConntrackStats
from hostnet.model.host import ConntrackView
from hostnet.render.doctor import nagios, render_text
from hostnet.service.doctor import run

FIX = Path(__file__).resolve().parents[1] / "fixtures/roots"
WEB = str(FIX / "doctor-webserver")
ROUTER = str(FIX / "doctor-router")


def test_run_recommends_and_reports() -> None:
    report = run(Root(WEB), composition=False)
    [ns] = report.namespaces
    assert ns.role == "server" and not ns.role_given
    assert "NAT rules present" in ns.role_reason
    assert ns.facts["nat_rules"] == ["masquerade in table ip nat chain postrouting"]
    assert not any(k.startswith("_") for k in ns.facts)
    assert "NT101" in {f.code for f in report.findings}
    extra = report.json_extra()
    assert extra["role"] == "server" and extra["facts"] is ns.facts


def test_forced_role_keeps_the_recommendation_in_the_reason() -> None:
    report = run(Root(ROUTER), role="server", composition=False)
    ns = report.namespaces[0]
    assert ns.role == "server" and ns.role_given
    assert "looks like a nat-router" in ns.role_reason
    assert "NT102" in {f.code for f in report.findings}


def test_snapshot_and_netns_do_not_mix() -> None:
    with pytest.raises(UsageError):
        run(Root(WEB), netns=["x"])


def test_text_report_groups_by_area_worst_first() -> None:
    text = render_text(run(Root(WEB), composition=False))
    lines = text.splitlines()
    assert lines[0].startswith("hostnet doctor: PROBLEMS - 1 error")
    assert "recommended because forwarding off" in lines[2]
    sections = [line.split(" (")[0] for line in lines if line and not line.startswith(" ")
                and "(" in line and not line.startswith(("hostnet", "role"))]
    assert sections[0] == "NAT/forwarding"  # the only error
    assert set(sections) == {"NAT/forwarding", "Hardening", "Tuning", "IPv6"}
    assert "          net.ipv4.ip_forward = 1" in lines


def _ns(facts: Mapping[str, object], findings: list[Finding], readable: bool = True,
        name: str | None = None) -> NamespaceReport:
    view = None
    if "conntrack_count" in facts:
        view = ConntrackView(count=int(str(facts["conntrack_count"])),
                             max=int(str(facts["conntrack_max"])), buckets=None,
                             stats=ConntrackStats(0, {"drop": int(str(facts["conntrack_drop"]))}))
    return NamespaceReport(name, "server", "x", False, findings, dict(facts), [], readable,
                           conntrack=view)


CT = Finding("CT101", "conntrack-table-full", Severity.ERROR, "full")
FACTS = {"conntrack_usage": 0.953, "conntrack_count": 249800, "conntrack_max": 262144,
         "conntrack_drop": 1234}


def test_nagios_line() -> None:
    code, line = nagios(DoctorReport([_ns(FACTS, [CT])]))
    assert code == 2
    assert line == ("HOSTNET CRITICAL - 1 error: CT101 conntrack-table-full | "
                    "'conntrack_usage'=95.3%;75;90;0;100 'conntrack_entries'=249800;;;0;262144 "
                    "'drops'=1234c")
    code, line = nagios(DoctorReport([_ns({}, [])]))
    assert (code, line) == (0, "HOSTNET OK - no findings")
    code, line = nagios(DoctorReport([_ns({}, [], readable=False)]))
    assert code == 3 and line.startswith("HOSTNET UNKNOWN")
    two = DoctorReport([_ns(FACTS, []), _ns(FACTS, [], name="blue")])
    assert "'blue_conntrack_usage'=95.3%" in nagios(two)[1]


def test_several_namespaces_json_shape() -> None:
    report = DoctorReport([_ns(FACTS, []), _ns({"a": 1}, [], name="blue")])
    extra = report.json_extra()
    assert extra["facts"] == {"initial": FACTS, "blue": {"a": 1}}
    assert extra["role"] == {"initial": "server", "blue": "server"}


def test_parse_interval() -> None:
    assert parse_interval("5s") == 5.0
    assert parse_interval("500ms") == 0.5
    assert parse_interval("2m") == 120.0
    assert parse_interval("3") == 3.0
    assert parse_interval("0") is None
    with pytest.raises(UsageError):
        parse_interval("soon")


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["doctor", *args], standalone_mode=False)
    if result.exception is not None and not isinstance(result.exception, UsageError):
        raise result.exception
    code = result.return_value if isinstance(result.return_value, int) else 2
    return code, result.output


def test_cli_json_and_exit_codes() -> None:
    code, out = invoke("--root", WEB, "--format", "json", "--no-composition")
    doc = json.loads(out)
    assert code == 1
    assert doc["version"] == 1 and doc["role"] == "server"
    assert doc["summary"]["error"] == 1
    assert {"findings", "summary", "role", "role_reason", "facts", "unreadable"} <= set(doc)
    nt = next(f for f in doc["findings"] if f["code"] == "NT101")
    assert nt["suggestion"] == "net.ipv4.ip_forward = 1"
    assert nt["evidence"]["net.ipv4.ip_forward"] == 0
    code, _ = invoke("--root", ROUTER, "--no-composition")
    assert code == 0  # warnings only, fail-on error
    code, _ = invoke("--root", ROUTER, "--no-composition", "--fail-on", "warning")
    assert code == 1


def test_cli_nagios_and_sarif() -> None:
    code, out = invoke("--root", ROUTER, "--no-composition", "--nagios")
    assert code == 1 and out.startswith("HOSTNET WARNING - ")
    code, out = invoke("--root", WEB, "--no-composition", "--format", "sarif")
    assert json.loads(out)["runs"][0]["results"]


def test_cli_unreadable_tree_is_unknown(tmp_path: Path) -> None:
    (tmp_path / "proc/sys").mkdir(parents=True)  # a host tree, but nothing in it
    code, out = invoke("--root", str(tmp_path), "--no-composition", "--nagios")
    assert code == 3 and "UNKNOWN" in out
    code, out = invoke("--root", str(tmp_path), "--no-composition")
    assert code == 2
    assert out.startswith("hostnet doctor: UNKNOWN: nothing could be read")
    assert "role:" not in out  # no guess from nothing


def test_cli_bad_usage() -> None:
    result = CliRunner().invoke(cli, ["doctor", "--root", WEB, "--netns", "x"],
                                standalone_mode=False)
    assert isinstance(result.exception, UsageError)
    result = CliRunner().invoke(cli, ["doctor", "--interval", "soon"], standalone_mode=False)
    assert isinstance(result.exception, UsageError)


def _broken(s: object) -> list[Finding]:
    raise KeyError("a bug in a rule")


def _fine(ctx: object) -> list[Finding]:
    return [CT]


#: This module doubles as a check module for the runner test below.
CHECKS = (_broken, _fine)


def test_a_broken_check_is_noted_and_the_others_run() -> None:
    report = run(Root(ROUTER), modules=["tests.unit.test_checks_runner"], composition=False)
    assert [f.code for f in report.findings] == ["CT101"]
    assert any("_broken: internal error" in u for u in report.unreadable)
