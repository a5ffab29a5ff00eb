"""The [nat] schema and loader: the issue's example loads unchanged; every mistake is named
with file:line, dotted path and what was expected; cross-entry validation."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from click.testing import CliRunner

from hostnet.cli.main import cli
from hostnet.config.nat import line_map, load_nat, parse_nat
from hostnet.config.nat_validate import check_connected
from hostnet.errors import InputError
from hostnet.model import nat as m

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
EXAMPLE = GOLDEN / "nat-issue-example.toml"

FWD = """[nat]
[[nat.masquerade]]
source = ["198.51.100.0/24"]
out = "wan0"
[[nat.forward]]
in = "wan0"
proto = "tcp"
port = 3389
to = "198.51.100.20"
"""


def _error(text: str) -> str:
    with pytest.raises(InputError) as exc:
        parse_nat(text, "/etc/hostnet/hostnet.toml")
    return exc.value.message


def test_issue_example_loads_unchanged() -> None:
    loaded = load_nat(EXAMPLE)
    cfg = loaded.config
    assert cfg.backend is m.Backend.NFTABLES
    assert cfg.masquerade[0].sources == (ipaddress.ip_network("198.51.100.0/24"),)
    f = cfg.forward[0]
    assert (f.in_iface, f.proto, f.ports, str(f.to_addr), f.to_port, f.hairpin) == (
        "wan0", m.Proto.TCP, m.PortRange(3389, 3389), "198.51.100.20", None, True)
    assert f.allow == (ipaddress.ip_network("203.0.113.50/32"),
                       ipaddress.ip_network("192.0.2.0/28"))
    assert f.origin == m.Origin("nat-issue-example.toml", 9, "nat.forward[0]")
    assert cfg.one_to_one[0].arp is m.ArpMode.PROXY
    assert cfg.notrack[0].ports == m.PortRange(53, 53)
    # hairpin with an allowlist that names no LAN host cannot match: a warning, not an error
    assert [w.message for w in loaded.warnings] == [
        "hairpin can never match: no LAN network is in the allowlist (the allowlist applies "
        "to hairpinned traffic too)"]


def test_forms_of_port_and_to() -> None:
    cfg = parse_nat(FWD.replace("port = 3389", 'port = "8000-8100"')
                    .replace('"198.51.100.20"', '"198.51.100.20:13389"')).config
    assert cfg.forward[0].ports == m.PortRange(8000, 8100)
    assert cfg.forward[0].to_port == 13389
    v6 = parse_nat(FWD.replace('"198.51.100.20"', '"[2001:db8::20]:22"')).config
    assert v6.forward[0].family is m.Family.V6 and v6.forward[0].to_port == 22


@pytest.mark.parametrize(("change", "where", "expected"), [
    (("port = 3389", "port = 65536"), ":8: nat.forward[0].port:", "out of range: expected 1-65535"),
    (("port = 3389", "port = 0"), ":8: nat.forward[0].port:", "out of range"),
    (("port = 3389", 'port = "9000-8000"'), ":8: nat.forward[0].port:", "backwards"),
    (("port = 3389", 'port = "http"'), ":8: nat.forward[0].port:", "expected a port 1-65535"),
    (('proto = "tcp"', 'proto = "sctp"'), ":7: nat.forward[0].proto:", "expected 'tcp' or 'udp'"),
    (('to = "198.51.100.20"', 'to = "198.51.100.300"'), ":9: nat.forward[0].to:",
     'expected "ADDR" or "ADDR:PORT"'),
    (('in = "wan0"', 'inn = "wan0"'), ":6: nat.forward[0].inn:", "unknown key"),
    (('in = "wan0"', ''), ":5: nat.forward[0].in:", "missing"),
    (('out = "wan0"', 'out = "wan0"\nsnat_to = "nowhere"'), ":5: nat.masquerade[0].snat_to:",
     "expected an IPv4 or IPv6 address"),
    (('source = ["198.51.100.0/24"]', 'source = ["198.51.100.1/24"]'),
     ":3: nat.masquerade[0].source[0]:", "host bits set"),
])
def test_field_errors_name_file_line_path_and_expectation(change: tuple[str, str], where: str,
                                                          expected: str) -> None:
    msg = _error(FWD.replace(*change))
    assert "/etc/hostnet/hostnet.toml" + where in msg, msg
    assert expected in msg


@pytest.mark.parametrize(("extra", "path", "expected"), [
    ('allow = []\n', "nat.forward[0].allow", "empty allowlist lets nobody in"),
    ('allow = ["2001:db8::/32"]\n', "nat.forward[0].allow", "can never match"),
    ('[[nat.forward]]\nin = "wan0"\nproto = "tcp"\nport = "3000-4000"\nto = "198.51.100.21"\n',
     "nat.forward[1].port", "overlaps nat.forward[0]"),
    ('[[nat.notrack]]\nproto = "tcp"\nport = "3380-3390"\n', "nat.notrack[0]",
     "untracked packets are never NATed"),
    ('[[nat.one_to_one]]\npublic = "203.0.113.11"\nprivate = "2001:db8::11"\n',
     "nat.one_to_one[0]", "one address family"),
    ('[[nat.masquerade]]\nsource = ["198.51.100.0/24"]\nout = "wan1"\n'
     '[[nat.one_to_one]]\npublic = "203.0.113.11"\nprivate = "198.51.100.11"\n',
     "nat.one_to_one[0]", "which interface faces the outside"),
])
def test_cross_entry_errors(extra: str, path: str, expected: str) -> None:
    msg = _error(FWD + extra)
    assert f": {path}: " in msg and expected in msg, msg


def test_overlap_names_the_later_forward_line() -> None:
    text = FWD + '[[nat.forward]]\nin = "wan0"\nproto = "tcp"\nport = 3389\nto = "198.51.100.9"\n'
    assert _error(text).startswith("/etc/hostnet/hostnet.toml:13: nat.forward[1].port: overlaps")


def test_same_port_on_other_interface_is_fine_unless_hairpin_makes_it_ambiguous() -> None:
    other = '[[nat.forward]]\nin = "wan1"\nproto = "tcp"\nport = 3389\nto = "198.51.100.9"\n'
    assert len(parse_nat(FWD + other).config.forward) == 2
    assert "hairpin is ambiguous" in _error(FWD + other + "hairpin = true\n")


def test_notrack_on_replies_of_a_loopback_forward() -> None:
    text = FWD.replace('"198.51.100.20"', '"127.0.0.1:53"') + \
        '[[nat.notrack]]\nproto = "tcp"\nport = 53\n'
    assert "untracks the replies of nat.forward[0]" in _error(text)


def test_not_toml_and_no_nat_table() -> None:
    assert "not valid TOML" in _error("[nat\n")
    assert "line 1" in _error("[nat\n")
    assert "no [nat] table" in _error("[sysctl]\n")


def test_ipv6_masquerade_only_when_listed_and_warned() -> None:
    loaded = parse_nat(FWD.replace('"198.51.100.0/24"', '"198.51.100.0/24", "2001:db8:1::/64"'))
    assert any("masquerades IPv6" in w.message for w in loaded.warnings)


def test_line_map() -> None:
    lines = line_map(EXAMPLE.read_text())
    assert lines["nat.backend"] == 2
    assert lines["nat.forward[0]"] == 9
    assert lines["nat.forward[0].port"] == 12
    assert lines["nat.notrack[0].port"] == 24


def test_connected_networks_check_is_pure() -> None:
    cfg = parse_nat(FWD).config
    lan = ipaddress.ip_interface("198.51.100.1/24")
    wan = ipaddress.ip_interface("203.0.113.1/24")
    assert check_connected(cfg, {"wan0": (wan,), "lan0": (lan,)}) == []
    problems = check_connected(cfg, {"wan0": (wan,)})
    assert [p.severity for p in problems] == ["error"]
    assert "198.51.100.20 is on no connected network" in problems[0].message
    missing = check_connected(cfg, {"lan0": (lan,)})
    assert {p.severity for p in missing} == {"warning"}


def test_cli_exit_2_with_location(tmp_path: Path) -> None:
    bad = tmp_path / "hostnet.toml"
    bad.write_text(FWD.replace("port = 3389", "port = 70000"))
    result = CliRunner().invoke(cli, ["nat", "compile", "--config", str(bad)])
    assert result.exit_code != 0
    from hostnet.cli.main import main

    with pytest.raises(SystemExit) as exc:
        main(["nat", "compile", "--config", str(bad)])
    assert exc.value.code == 2
