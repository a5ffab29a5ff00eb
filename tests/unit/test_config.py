"""hostnet.toml: the issue's example is accepted as written; every kind of mistake is an error
naming the file, the line, the dotted path and what was expected."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from hostnet.cli.main import cli
from hostnet.config.load import ConfigInvalid, Locator, dotted, parse
from hostnet.config.schema import BUCKETS_MAX, Bound, HostnetConfig, json_schema, parse_duration
from hostnet.config.starter import RoleLine, fix_config, starter

EXAMPLE = """\
role = "server"                      # optional: the role profile's values join the plan

[sysctl]
"net.ipv4.tcp_syncookies" = 1
"net.ipv4.ip_local_port_range" = "20000 60999"
"net.core.somaxconn" = { at_least = 8192 }        # only ever raise
"net.ipv4.tcp_fin_timeout" = { at_most = 30 }     # only ever lower

[conntrack]
max = "auto"                          # from RAM, CPUs and the role; or a number
buckets = "auto"                      # live through the sysctl

[conntrack.timeouts]
tcp_established = "1d"                # durations or seconds
udp = 30

[ipv6]
enabled = false                       # or true, or a list of interfaces to disable it on
"""


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigInvalid) as info:
        parse(text, "/etc/hostnet/hostnet.toml")
    return [str(p) for p in info.value.problems]


def test_issue_example_is_accepted_as_written() -> None:
    loaded = parse(EXAMPLE)
    cfg = loaded.config
    assert cfg.role == "server"
    assert cfg.sysctl["net.ipv4.tcp_syncookies"] == 1
    assert cfg.sysctl["net.ipv4.ip_local_port_range"] == "20000 60999"
    assert cfg.sysctl["net.core.somaxconn"] == Bound(at_least=8192)
    assert cfg.sysctl["net.ipv4.tcp_fin_timeout"] == Bound(at_most=30)
    assert cfg.conntrack is not None and cfg.conntrack.max == "auto"
    assert cfg.conntrack.buckets == "auto"
    assert cfg.conntrack.timeouts is not None
    assert cfg.conntrack.timeouts.keys() == {
        "tcp_established": ("net.netfilter.nf_conntrack_tcp_timeout_established", 86400),
        "udp": ("net.netfilter.nf_conntrack_udp_timeout", 30)}
    assert cfg.ipv6 is not None and cfg.ipv6.enabled is False
    assert loaded.origin("sysctl", "net.core.somaxconn") == "hostnet.toml:6"
    assert loaded.line_of("conntrack", "timeouts", "udp") == 15
    assert loaded.line_of("ipv6", "enabled") == 18


@pytest.mark.parametrize(("text", "expected"), [
    ('role = "server"\n[sysctl\n', "/etc/hostnet/hostnet.toml:2: not valid TOML"),
    ('rol = "server"\n', '/etc/hostnet/hostnet.toml:1: rol: unknown key (did you mean role?)'),
    ('role = "srv"\n', "hostnet.toml:1: role: expected 'server', 'nat-router', 'vm-host' or "
                       "'desktop', got \"srv\""),
    ('\n[sysctl]\n"net.core.somaxconn" = true\n',
     'hostnet.toml:3: sysctl."net.core.somaxconn": expected a number or a string'),
    ('[sysctl]\n"net.core.somaxconn" = { at_leest = 5 }\n',
     "hostnet.toml:2: sysctl.\"net.core.somaxconn\": unknown bound 'at_leest'"),
    ('[sysctl]\n"net.core.somaxconn" = [1, 2]\n', "got an array"),
    ('[sysctl]\n"net.core.somaxconn" = { at_least = 9, at_most = 3 }\n', "at_least is above"),
    ('[sysctl]\n"not a key" = 1\n', 'sysctl."not a key": "not a key" is not a sysctl key name'),
    ('[conntrack]\nbuckets = 999999999\n',
     f"hostnet.toml:2: conntrack.buckets: expected 1 to {BUCKETS_MAX} (the kernel refuses"),
    ('[conntrack]\nmax = "lots"\n', 'conntrack.max: expected "auto" or a number, got "lots"'),
    ('[conntrack]\nmax = 0\n', "conntrack.max: expected 1 to 2147483647"),
    ('[conntrack]\nmaxx = 5\n', "conntrack.maxx: unknown key (did you mean max?)"),
    ('[conntrack.timeouts]\nudp = "3x"\n', "conntrack.timeouts.udp: \"3x\": unknown unit 'x'"),
    ('[conntrack.timeouts]\ntcp_establishd = 5\n',
     "hostnet.toml:2: conntrack.timeouts.tcp_establishd: unknown key (did you mean "
     "tcp_established?)"),
    ('[ipv6]\nenabled = "no"\n', 'ipv6.enabled: expected true, false or a list of interfaces'),
    ('[ipv6]\nenabled = ["eth0", "bad name"]\n', '"bad name" is not an interface name'),
    ('[ipv6]\nenable = false\n', "ipv6.enable: unknown key (did you mean enabled?)"),
    ('[nat]\nx = 1\n', "hostnet.toml:2: nat.x: unknown key; known here: backend, masquerade"),
    ('[natt]\nx = 1\n', "natt: unknown key (did you mean nat?)"),
])
def test_mistakes_name_line_path_and_expectation(text: str, expected: str) -> None:
    found = problems(text)
    assert any(expected in p for p in found), found


def test_every_problem_is_reported_at_once() -> None:
    found = problems('role = "x"\n[conntrack]\nmax = "y"\n[ipv6]\nenabled = 3\n')
    assert [p.split(": ")[0] for p in found] == [
        "/etc/hostnet/hostnet.toml:1", "/etc/hostnet/hostnet.toml:3",
        "/etc/hostnet/hostnet.toml:5"]


def test_unquoted_sysctl_names_are_joined_back() -> None:
    loaded = parse("[sysctl]\nnet.core.somaxconn = 4096\n")
    assert loaded.config.sysctl == {"net.core.somaxconn": 4096}
    assert loaded.line_of("sysctl", "net.core.somaxconn") == 2


def test_locator_follows_arrays_of_tables_and_inline_arrays() -> None:
    text = ('[nat]\nforward = [\n  { port = 80 },\n  { port = 443 },\n  { port = "x" },\n]\n'
            '[[vm]]\nname = "a"\n[[vm]]\nname = "b"\n[vm.disk]\nsize = 3\n')
    loc = Locator(text)
    assert loc.line(("nat", "forward", 2, "port")) == 5
    assert loc.line(("nat", "forward", 0)) == 3
    assert loc.line(("vm", 1, "name")) == 10
    assert loc.line(("vm", 1, "disk", "size")) == 12
    assert dotted(("nat", "forward", 2, "port")) == "nat.forward[2].port"
    assert dotted(("sysctl", "net.core.somaxconn")) == 'sysctl."net.core.somaxconn"'


@pytest.mark.parametrize(("text", "seconds"), [(30, 30), ("30", 30), ("90s", 90), ("5m", 300),
                                                ("2h", 7200), ("1d", 86400), ("1w", 604800)])
def test_durations(text: int | str, seconds: int) -> None:
    assert parse_duration(text) == seconds


def test_bounds_only_raise_or_lower() -> None:
    assert Bound(at_least=8192).clamp(4096) == 8192
    assert Bound(at_least=8192).clamp(10000) == 10000
    assert Bound(at_most=30).clamp(60) == 30
    assert Bound(at_most=30).clamp(10) == 10


def test_json_schema_is_strict_and_complete() -> None:
    schema = json_schema()
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) == set(HostnetConfig.model_fields)
    assert schema["$defs"]["ConntrackConfig"]["properties"]["buckets"]["anyOf"][0][
        "maximum"] == BUCKETS_MAX
    result = CliRunner().invoke(cli, ["config", "schema"])
    assert result.exit_code == 0
    assert json.loads(result.output)["title"] == "hostnet.toml"


def test_config_check_cli(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text(EXAMPLE)
    bad = tmp_path / "bad.toml"
    bad.write_text("[sysctl\n")
    from hostnet.cli.main import main

    with pytest.raises(SystemExit) as ok:
        main(["config", "check", str(good)])
    assert ok.value.code == 0
    with pytest.raises(SystemExit) as err:
        main(["config", "check", str(bad)])
    assert err.value.code == 2


@pytest.mark.parametrize("role", ["server", "nat-router", "vm-host", "desktop"])
def test_starter_file_parses_for_every_role(role: str) -> None:
    from hostnet.knowledge.roles import load

    exps = [RoleLine(k, e.wanted(), e.code) for k, e in sorted(load(role).expectations.items())]
    text = starter(role, f"{role}: because", exps)
    loaded = parse(text)
    assert loaded.config.role == role
    assert all(f"#   {e.key} {e.wanted}" in text for e in exps)
    if role in ("nat-router", "vm-host"):
        assert loaded.config.conntrack is not None and loaded.config.conntrack.max == "auto"


def test_fix_config_snippet_from_findings() -> None:
    text = fix_config([
        ("HD101", "net.ipv4.tcp_syncookies is 0", "net.ipv4.tcp_syncookies = 1"),
        ("TN111", "few ports", "net.ipv4.ip_local_port_range = 20000 60999"),
        ("HD101", "again", "net.ipv4.tcp_syncookies = 2"),
        ("CT101", "table full",
         "# /etc/sysctl.d/90-hostnet.conf\nnet.netfilter.nf_conntrack_max = 524288\n"
         "options nf_conntrack hashsize=131072"),
        ("V6101", "no fix", None),
    ])
    data = tomllib.loads(text)
    assert data == {"sysctl": {"net.ipv4.tcp_syncookies": 1,
                               "net.ipv4.ip_local_port_range": "20000 60999"},
                    "conntrack": {"max": 524288}}
    assert "# HD101: net.ipv4.tcp_syncookies is 0" in text
    parse(text)  # a valid hostnet.toml
    assert fix_config([]).startswith("# hostnet doctor: no finding")


def test_init_writes_a_file_that_plan_accepts(tmp_path: Path) -> None:
    out = tmp_path / "h.toml"
    result = CliRunner().invoke(cli, ["init", "--role", "nat-router", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert parse(out.read_text()).config.role == "nat-router"
    again = CliRunner().invoke(cli, ["init", "--role", "server", "-o", str(out)])
    assert again.exit_code != 0 and "exists" in str(again.exception or again.output)


def test_doctor_fix_config_prints_a_valid_snippet() -> None:
    root = Path(__file__).resolve().parents[1] / "fixtures/roots/doctor-webserver"
    result = CliRunner().invoke(cli, ["doctor", "--root", str(root), "--role", "server",
                                      "--no-composition", "--fix-config"])
    assert result.exit_code == 0, result.output
    data = tomllib.loads(result.output)
    assert data.get("sysctl"), result.output
    parse(result.output)  # the snippet is itself a valid hostnet.toml


def test_vm_entries_join_the_same_file() -> None:
    """[[vm]] (hostnet.config.vm) is one field of the top-level model: a file holding both is
    accepted by plan/apply, and a bad entry is reported at its line with vm[N]."""
    text = ('[sysctl]\n"net.core.somaxconn" = 8192\n\n[[vm]]\nname = "web1"\ntap = "tap-web1"\n'
            'owner = "root"\nuplink = "eth0"\naddresses = ["203.0.113.10"]\n\n'
            '[[vm]]\nname = "bad"\ntap = "tap-x"\nowner = "root"\n')
    with pytest.raises(ConfigInvalid) as info:
        parse(text)
    [problem] = [str(p) for p in info.value.problems]
    assert problem.startswith("hostnet.toml:11: vm[1]: routed mode needs uplink")
    ok = parse(text.split("\n\n[[vm]]\nname = \"bad\"")[0])
    assert [v.name for v in ok.config.vm] == ["web1"]


def test_nat_section_joins_the_same_file() -> None:
    """[nat] (hostnet.config.nat) is one field of the top-level model: errors come back with
    the line and nat.forward[N] paths."""
    text = ('[nat]\n[[nat.forward]]\nin = "eth0"\nproto = "tcp"\nport = 80\n'
            'to = "192.0.2.10"\n[[nat.forward]]\nin = "eth0"\nproto = "tcpx"\nport = 443\n'
            'to = "192.0.2.10"\n')
    with pytest.raises(ConfigInvalid) as info:
        parse(text)
    assert [str(p) for p in info.value.problems] == [
        "hostnet.toml:9: nat.forward[1].proto: expected 'tcp' or 'udp', got \"tcpx\""]
    ok = parse(text.replace('"tcpx"', '"udp"'))
    assert ok.config.nat is not None and len(ok.config.nat.forward) == 2
