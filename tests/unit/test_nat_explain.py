"""explain from the config alone: verdicts, reasons, translations and the hook order; the
compiler's rule count does not grow with the number of forwards; the CLI's JSON shape."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from hostnet.cli.main import cli
from hostnet.config.nat import load_nat, parse_nat
from hostnet.model import nat as m
from hostnet.nat.compile import compile_table, lines_comment
from hostnet.nat.explain import Packet, Result, explain
from hostnet.nat.router import Router, parse_spec
from hostnet.nat.ruleset import parse_ruleset

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
EXAMPLE = GOLDEN / "nat-issue-example.toml"
ROUTER = parse_spec(["wan0=203.0.113.1/24", "lan0=198.51.100.1/24"], "wan0")
IP = ipaddress.ip_address


def run(src: str, dst: str, dport: int | None, iif: str | None, proto: str = "tcp",
        path: Path = EXAMPLE, router: Router = ROUTER, state: str = "new") -> Result:
    cfg = load_nat(path).config
    return explain(compile_table(cfg), cfg, router,
                   Packet(IP(src), IP(dst), proto, 40000, dport, iif, state))


def test_allowlisted_client_reaches_the_forward() -> None:
    res = run("203.0.113.50", "203.0.113.1", 3389, "wan0")
    assert (res.verdict, res.delivered_to, res.source_seen) == (
        "delivered", "198.51.100.20:3389", "203.0.113.50")
    assert res.conntrack == ("original tcp 203.0.113.50:40000 -> 203.0.113.1:3389, reply "
                             "198.51.100.20:3389 -> 203.0.113.50:40000")
    phases = [s.phase for s in res.steps]
    assert phases == ["ingress", "neighbour", "prerouting", "prerouting", "prerouting",
                      "route", "rp_filter", "forward", "postrouting", "verdict"]
    dnat = res.steps[4]
    assert (dnat.chain, dnat.priority) == ("dnat_prerouting", -100)
    assert "destination becomes 198.51.100.20:3389" in dnat.text
    assert dnat.origin == "nat-issue-example.toml:9 nat.forward[0]"


def test_several_allowlists_go_through_verdict_maps() -> None:
    path = GOLDEN / "nat-router.toml"
    router = parse_spec(["wan0=203.0.113.1/24", "wan1=192.0.2.1/26", "lan0=198.51.100.1/24"],
                        "wan0")
    ok = run("192.0.2.70", "192.0.2.1", 22, "wan1", path=path, router=router)
    assert (ok.verdict, ok.delivered_to) == ("delivered", "198.51.100.130:2222")
    assert [s.chain for s in ok.steps if s.chain and s.chain.startswith("a4_")] == ["a4_2_in",
                                                                                     "a4_2_fwd"]
    no = run("192.0.2.5", "192.0.2.1", 22, "wan1", path=path, router=router)
    assert (no.verdict, no.reason) == ("dropped", "not in the allowlist of nat.forward[2]")
    anyone = run("192.0.2.99", "203.0.113.1", 8002, "wan0", path=path, router=router)
    assert anyone.delivered_to == "198.51.100.20:8002"


def test_other_client_is_dropped_with_the_forward_named() -> None:
    res = run("203.0.113.60", "203.0.113.1", 3389, "wan0")
    assert (res.verdict, res.delivered_to) == ("dropped", None)
    assert res.reason == "not in the allowlist of nat.forward[0]"


def test_routing_straight_to_the_private_address_is_dropped() -> None:
    res = run("203.0.113.50", "198.51.100.20", 3389, "wan0")
    assert res.verdict == "dropped"
    assert "no forward allows" in res.reason


def test_hairpin_needs_the_allowlist_too() -> None:
    res = run("198.51.100.30", "203.0.113.1", 3389, "lan0")
    assert res.verdict == "dropped"
    assert res.reason == "not in the allowlist (hairpin) of nat.forward[0]"


def test_hairpin_from_an_allowlisted_lan_host_gets_snat(tmp_path: Path) -> None:
    cfg = tmp_path / "h.toml"
    cfg.write_text(EXAMPLE.read_text().replace('"192.0.2.0/28"]', '"192.0.2.0/28", '
                                               '"198.51.100.0/24"]'))
    res = run("198.51.100.30", "203.0.113.1", 3389, "lan0", path=cfg)
    assert (res.verdict, res.delivered_to, res.source_seen) == (
        "delivered", "198.51.100.20:3389", "198.51.100.1")


def test_one_to_one_both_ways_and_proxy_arp() -> None:
    res = run("192.0.2.99", "203.0.113.11", 22, "wan0")
    assert (res.delivered_to, res.source_seen) == ("198.51.100.11:22", "192.0.2.99")
    assert "proxy neighbour entry for 203.0.113.11 on wan0" in res.steps[1].text
    out = run("198.51.100.11", "192.0.2.99", 80, "lan0")
    assert (out.delivered_to, out.source_seen) == ("192.0.2.99:80", "203.0.113.11")
    masq = run("198.51.100.50", "192.0.2.99", 80, "lan0", proto="udp")
    assert masq.source_seen == "203.0.113.1"


def test_notrack_means_no_entry_and_no_nat() -> None:
    res = run("192.0.2.99", "203.0.113.1", 53, "wan0", proto="udp")
    assert res.verdict == "delivered" and res.conntrack == "none (untracked)"
    assert any("untracked" in s.text for s in res.steps)


def test_established_flows_keep_their_translation() -> None:
    res = run("198.51.100.50", "192.0.2.99", 80, "lan0", state="established")
    assert any("NAT chains are not consulted" in s.text for s in res.steps)
    assert res.source_seen == "203.0.113.1"
    fwd = run("203.0.113.50", "203.0.113.1", 3389, "wan0", state="established")
    assert (fwd.verdict, fwd.delivered_to) == ("delivered", "198.51.100.20:3389")


def test_router_itself_to_its_public_address() -> None:
    res = run("203.0.113.1", "203.0.113.1", 3389, None)
    assert (res.verdict, res.delivered_to) == ("delivered", "198.51.100.20:3389")
    assert res.steps[0].phase == "origin"


def test_routing_time_checks() -> None:
    strict = Router(ROUTER.ifaces, ROUTER.defaults, {"all": 1})
    res = run("198.51.100.77", "192.0.2.99", 80, "wan0", router=strict)
    assert res.verdict == "dropped" and "rp_filter (strict)" in res.reason
    nobody = run("203.0.113.50", "203.0.113.99", 80, "wan0")
    assert nobody.verdict == "dropped" and "never reaches the router" in nobody.reason


def test_forward_to_loopback_needs_route_localnet() -> None:
    text = EXAMPLE.read_text().replace('to = "198.51.100.20"', 'to = "127.0.0.1:3389"')
    cfg = parse_nat(text).config
    table = compile_table(cfg)
    assert [s.key for s in table.needs.sysctls] == ["net.ipv4.ip_forward",
                                                    "net.ipv4.conf.wan0.route_localnet"]
    pk = Packet(IP("203.0.113.50"), IP("203.0.113.1"), "tcp", 1, 3389, "wan0")
    res = explain(table, cfg, ROUTER, pk)
    assert res.verdict == "dropped" and "route_localnet" in res.reason
    ok = Router(ROUTER.ifaces, ROUTER.defaults, {}, {"wan0": True})
    assert explain(table, cfg, ok, pk).delivered_to == "127.0.0.1:3389"


def test_other_tables_are_listed_in_priority_order_with_caveats() -> None:
    rs = parse_ruleset((GOLDEN / "nat-ruleset-sample.json").read_text())
    cfg = load_nat(EXAMPLE).config
    res = explain(compile_table(cfg), cfg, ROUTER,
                  Packet(IP("203.0.113.50"), IP("203.0.113.1"), "tcp", 1, 3389, "wan0"),
                  [c for c in rs.base_chains if c.table != "hostnet"])
    foreign = [s for s in res.steps if s.table and s.table != "inet hostnet"]
    assert [(s.table, s.chain) for s in foreign] == [("ip nat", "PREROUTING"),
                                                     ("ip filter", "FORWARD")]
    assert "policy drop" in foreign[1].text
    assert res.caveats == ("ip filter FORWARD (forward, priority 0) can drop it: a drop in any "
                           "table wins",)


def _forwards(n: int) -> m.NatConfig:
    o = m.Origin("x.toml", 1, "nat.forward[0]")
    fwds = tuple(m.Forward("wan0", m.Proto.TCP, m.PortRange(10000 + i, 10000 + i),
                           IP(f"198.51.{100 + i // 250 % 4}.{i % 250 + 1}"), None,
                           (ipaddress.ip_network("192.0.2.0/28"),), True, o)
                 for i in range(n))
    return m.NatConfig(forward=fwds)


def test_rule_count_does_not_grow_with_forwards() -> None:
    small, big = compile_table(_forwards(10)), compile_table(_forwards(10000))
    assert [len(c.rules) for c in small.chains] == [len(c.rules) for c in big.chains]
    assert len(big.set("fwd4").elements) == 10000


def test_lines_comment_fits_a_rule_comment() -> None:
    origins = [m.Origin("hostnet.toml", i, f"nat.forward[{i}]") for i in range(1, 5000)]
    text = lines_comment(origins, "what")
    assert len(text) <= 127 and "4999 entries" in text


def test_cli_json_shape_and_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    ok = CliRunner().invoke(cli, ["nat", "explain", "--config", str(EXAMPLE), "--from",
                                  "203.0.113.50:5555", "--to", "203.0.113.1:3389", "--format",
                                  "json"])
    assert ok.exit_code == 0, ok.output
    doc = json.loads(ok.stdout)
    assert {"version", "verdict", "delivered_to", "reason", "steps"} <= set(doc)
    assert (doc["version"], doc["verdict"], doc["delivered_to"]) == (1, "delivered",
                                                                     "198.51.100.20:3389")
    from hostnet.cli.main import main

    with pytest.raises(SystemExit) as exc:
        main(["nat", "explain", "--config", str(EXAMPLE), "--from", "203.0.113.60", "--to",
              "203.0.113.1:3389"])
    assert exc.value.code == 1
    assert "verdict: dropped (not in the allowlist of nat.forward[0])" in capsys.readouterr().out


@pytest.mark.parametrize("args", [["--to", "203.0.113.1"], ["--to", "nothing:80"],
                                  ["--to", "203.0.113.1:99999"]])
def test_cli_bad_endpoints(args: list[str]) -> None:
    from hostnet.cli.main import main

    with pytest.raises(SystemExit) as exc:
        main(["nat", "explain", "--config", str(EXAMPLE), "--from", "192.0.2.1", *args])
    assert exc.value.code == 2


def test_ipv6_forward_and_allowlist() -> None:
    router = parse_spec(["wan0=2001:db8:ff00::1/64", "lan0=2001:db8:1::1/64",
                         "wan0=203.0.113.1/24", "lan0=198.51.100.1/24"], "wan0")
    path = GOLDEN / "nat-ipv6.toml"
    ok = run("2001:db8:ffff::5", "2001:db8:ff00::1", 443, "wan0", path=path, router=router)
    assert (ok.verdict, ok.delivered_to, ok.source_seen) == (
        "delivered", "[2001:db8:1::20]:8443", "2001:db8:ffff::5")
    no = run("2001:db8:eeee::5", "2001:db8:ff00::1", 443, "wan0", path=path, router=router)
    assert no.verdict == "dropped" and no.reason == "not in the allowlist of nat.forward[0]"
    v4 = run("203.0.113.50", "203.0.113.1", 443, "wan0", path=path, router=router)
    assert v4.delivered_to == "198.51.100.20:443"
    # no IPv6 masquerade unless an IPv6 source is listed: LAN hosts leave unchanged
    out = run("2001:db8:1::30", "2001:db8:9::1", 80, "lan0", path=path, router=router)
    assert (out.verdict, out.source_seen) == ("delivered", "2001:db8:1::30")


def test_icmp_follows_the_one_to_one_address_only() -> None:
    echo = run("192.0.2.99", "203.0.113.11", None, "wan0", proto="icmp")
    assert (echo.verdict, echo.delivered_to) == ("delivered", "198.51.100.11")
    local = run("192.0.2.99", "203.0.113.1", None, "wan0", proto="icmp")
    assert (local.verdict, local.delivered_to) == ("delivered", "203.0.113.1")
