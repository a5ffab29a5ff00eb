"""Issue 8's wrong conntrack advice, each with a regression test (pure parts).

The kernel proofs (the proposed snippets applied to real namespaces) are in
tests/kernel/test_conntrack_advice.py.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from hostnet.checks.conntrack_composition import evaluate_flood, evaluate_notrack
from hostnet.conntrack.sizing import (
    GIB,
    MAX_BUCKETS,
    MAX_ENTRIES,
    MEMORY_CAP,
    SizingInput,
    recommend,
    tcp_profile,
)
from hostnet.conntrack.top import composition
from hostnet.errors import SizingError
from hostnet.knowledge import roles
from hostnet.knowledge.catalogue import load as load_catalogue
from hostnet.model.conntrack import USAGE_CRITICAL, USAGE_WARNING
from hostnet.model.firewall import NatRule, Ruleset

REPO = Path(__file__).resolve().parents[2]
ROUTER = "203.0.113.1"  # the router's outside address
LAN_GW = "192.0.2.1"  # the router's LAN address
SERVER = "198.51.100.10"


def dns_line(src: str, dst: str, sport: int, reply_src: str, reply_dst: str) -> str:
    return (f"ipv4     2 udp      17 29 src={src} dst={dst} sport={sport} dport=53 "
            f"src={reply_src} dst={reply_dst} sport=53 dport={sport} mark=0 zone=0 use=2\n")


def syn_line(src: str, dst: str, sport: int) -> str:
    return (f"ipv4     2 tcp      6 119 SYN_RECV src={src} dst={dst} sport={sport} dport=80 "
            f"[UNREPLIED] src={dst} dst={src} sport=80 dport={sport} mark=0 zone=0 use=2\n")


def https_line(src: str, dst: str, sport: int) -> str:
    return (f"ipv4     2 tcp      6 431999 ESTABLISHED src={src} dst={dst} sport={sport} "
            f"dport=443 src={dst} dst={src} sport=443 dport={sport} [ASSURED] mark=0 zone=0 "
            "use=2\n")


# -- item 1: conntrack size -------------------------------------------------------------------

def test_rate_alone_does_not_assume_flows_live_five_days() -> None:
    """`--rate 2000/s` used to propose 1,296,000,000 entries (every flow held 432000 s)."""
    sizing = recommend(SizingInput(mem_bytes=24 * GIB, cpus=8, kernel=(6, 18, 0),
                                   profile=tcp_profile(2000.0)))
    assert sizing.max < 10_000_000
    assert sizing.memory_share < MEMORY_CAP
    assert any("assumed lifetime" in s for s in sizing.steps)


def test_established_timeout_only_caps_the_lifetime() -> None:
    p = tcp_profile(100.0, established_lifetime=3600.0, timeout_established=600.0)
    assert p.seconds_per_flow == 600 + 120
    assert "capped" in p.phases[0].state


def test_what_does_not_fit_is_an_error() -> None:
    with pytest.raises(SizingError, match="RAM"):
        recommend(SizingInput(mem_bytes=8 * GIB, cpus=4, profile=tcp_profile(
            2000.0, established_lifetime=432000.0)))


def test_capped_at_a_share_of_ram_with_the_reason() -> None:
    # 4000/s x 180 s = 720,000 entries fit in 1 GiB; the 1.5x headroom does not
    sizing = recommend(SizingInput(mem_bytes=GIB, cpus=2, profile=tcp_profile(4000.0)))
    assert sizing.memory_bytes <= GIB * MEMORY_CAP
    assert any("capped" in s for s in sizing.steps)
    assert any("fuller than" in w for w in sizing.warnings)


def test_never_more_than_the_kernel_accepts() -> None:
    """nf_ct_alloc_hashtable refuses more than INT_MAX / 8 buckets; the max is an int."""
    assert MAX_BUCKETS == 268_434_944 and MAX_BUCKETS % 512 == 0
    assert MAX_BUCKETS <= ((1 << 31) - 1) // 8
    sizing = recommend(SizingInput(mem_bytes=4096 * GIB, cpus=256,
                                   profile=tcp_profile(100_000.0, established_lifetime=3000.0)))
    assert sizing.buckets <= MAX_BUCKETS and sizing.max <= MAX_ENTRIES


@pytest.mark.parametrize("mem", [0, 1, 1 << 20])
def test_too_little_ram_is_refused(mem: int) -> None:
    with pytest.raises(SizingError):
        recommend(SizingInput(mem_bytes=mem, cpus=1))


@pytest.mark.parametrize("bad", [0.0, -5.0, float("inf")])
def test_bad_rates_are_refused(bad: float) -> None:
    with pytest.raises(ValueError):
        tcp_profile(bad)


@pytest.mark.parametrize("args", [["--cpus", "-3"], ["--timeout-established", "-1"],
                                  ["--ram", "0"], ["--ram", "1"], ["--rate", "0/s"],
                                  ["--established-lifetime", "5m"],
                                  ["--rate", "2000/s", "--established-lifetime", "5d"]])
def test_size_command_usage_errors_exit_2(args: list[str]) -> None:
    proc = size_command(*args)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.startswith(("hostnet: error", "Usage"))


def size_command(*args: str) -> subprocess.CompletedProcess[str]:
    root = str(REPO / "tests/fixtures/roots/debian9-4.9")
    return subprocess.run([sys.executable, "-m", "hostnet", "conntrack", "size", "--root", root,
                           *args], capture_output=True, text=True, timeout=60, check=False)


def test_size_command_on_a_fixture_tree() -> None:
    import json

    proc = size_command("--rate", "2000/s", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["current"]["nf_conntrack_count"] == 64000
    assert data["nf_conntrack_max"] <= MAX_ENTRIES and data["memory_share"] < MEMORY_CAP


# -- item 2: CT110 notrack -------------------------------------------------------------------

OWN_ROUTER = {ROUTER, LAN_GW}


def test_no_notrack_on_a_nat_router_full_of_masqueraded_dns() -> None:
    lines = "".join(dns_line(f"192.0.2.{10 + i % 50}", "198.51.100.53", 10000 + i,
                             "198.51.100.53", ROUTER) for i in range(900))
    lines += "".join(https_line("192.0.2.20", "198.51.100.80", 20000 + i) for i in range(100))
    comp = composition([lines], own=OWN_ROUTER)
    assert comp.forwarded == 1000 and comp.nated == 900
    assert comp.top_dport[0].port == 53 and comp.top_dport[0].nated == 900
    rules = Ruleset(nat=(NatRule("masquerade", "ip", "nat", "post", "postrouting", "nft"),),
                    uses_conntrack=True, sources=("nft",))
    assert evaluate_notrack(comp, rules, None) == []


def test_no_notrack_for_forwarded_dns_even_without_nat() -> None:
    lines = "".join(dns_line(f"192.0.2.{10 + i % 50}", "198.51.100.53", 10000 + i,
                             "198.51.100.53", f"192.0.2.{10 + i % 50}") for i in range(900))
    comp = composition([lines], own=OWN_ROUTER)
    assert comp.nated == 0 and comp.forwarded == 900
    assert evaluate_notrack(comp, Ruleset(), None) == []


def test_notrack_for_a_dns_server_answering_itself() -> None:
    lines = "".join(dns_line(f"203.0.113.{10 + i % 50}", SERVER, 10000 + i, SERVER,
                             f"203.0.113.{10 + i % 50}") for i in range(900))
    lines += "".join(https_line("203.0.113.5", SERVER, 20000 + i) for i in range(100))
    comp = composition([lines], own={SERVER})
    assert comp.to_host == 1000 and comp.top_dport[0].local == 900
    found = evaluate_notrack(comp, Ruleset(), None)
    assert [f.code for f in found] == ["CT110"]
    snippet = found[0].suggestion or ""
    assert "fib daddr type local udp dport 53 notrack" in snippet
    assert "priority raw" in snippet


def test_notrack_warns_a_dropping_input_chain_about_untracked_packets() -> None:
    from hostnet.model.firewall import BaseChain

    lines = "".join(dns_line(f"203.0.113.{10 + i % 50}", SERVER, 10000 + i, SERVER,
                             f"203.0.113.{10 + i % 50}") for i in range(900))
    rules = Ruleset(chains=(BaseChain("inet", "filter", "input", "input", 0, "filter", "drop",
                                      "nft"),), uses_conntrack=True, sources=("nft",))
    found = evaluate_notrack(composition([lines], own={SERVER}), rules, None)
    assert "ct state untracked udp dport 53 accept" in (found[0].suggestion or "")


def test_no_notrack_without_knowing_the_own_addresses() -> None:
    lines = "".join(dns_line(f"203.0.113.{i % 50}", SERVER, 10000 + i, SERVER,
                             f"203.0.113.{i % 50}") for i in range(900))
    assert evaluate_notrack(composition([lines]), Ruleset(), None) == []


# -- item 3: CT109 flood ---------------------------------------------------------------------

def test_flood_fix_names_only_the_flooding_source_and_limits_new_connections() -> None:
    lines = "".join(syn_line("203.0.113.66", SERVER, 1024 + i) for i in range(700))
    for client in ("198.51.100.21", "198.51.100.22"):
        lines += "".join(https_line(client, SERVER, 30000 + i) for i in range(150))
    comp = composition([lines], own={SERVER})
    by_src = {a.address: a for a in comp.top_src}
    assert by_src["203.0.113.66"].unreplied == 700 and by_src["198.51.100.21"].assured == 150
    found = evaluate_flood(comp, None)
    assert [f.code for f in found] == ["CT109"]
    assert found[0].evidence["flooding"] == ["203.0.113.66"]
    snippet = found[0].suggestion or ""
    assert "198.51.100.21" not in snippet and "198.51.100.22" not in snippet
    assert "ct state new" in snippet and "flags dynamic, timeout" in snippet
    assert "add @flood_v4 { ip saddr limit rate over 100/second }" in snippet
    assert "priority filter" in snippet and "priority raw" not in snippet


def test_no_flood_finding_for_real_clients() -> None:
    lines = "".join(https_line(f"198.51.100.{20 + i % 3}", SERVER, 30000 + i)
                    for i in range(900))
    assert evaluate_flood(composition([lines], own={SERVER}), None) == []


# -- items 9/10 and issue 7: knowledge is data, one set of thresholds -----------------------------

def test_every_roles_toml_key_is_in_the_catalogue() -> None:
    catalogue = load_catalogue()
    for name in roles.names():
        role = roles.load(name)
        for key in [*role.expectations, *role.conntrack_timeouts]:
            assert catalogue.get(key) is not None, (name, key)


def test_role_timeouts_live_in_roles_toml_with_reasons() -> None:
    import hostnet.checks.conntrack_timeouts as mod

    assert not hasattr(mod, "ROLE_TIMEOUTS")
    est = "net.netfilter.nf_conntrack_tcp_timeout_established"
    assert roles.load("nat-router").conntrack_timeouts[est].max == 7440
    assert est not in roles.load("desktop").conntrack_timeouts
    for name in roles.names():
        assert all(a.reason for a in roles.load(name).conntrack_timeouts.values())


def test_bad_timeout_entries_are_refused() -> None:
    data = {"roles": {"x": {"conntrack_timeouts": {"k": {"max": 10, "fix": 20,
                                                         "reason": "r"}}}}}
    with pytest.raises(roles.RoleError):
        roles.resolve(data, "x")
    data["roles"]["x"]["conntrack_timeouts"]["k"] = {"max": 10}
    with pytest.raises(roles.RoleError):
        roles.resolve(data, "x")


def test_alert_thresholds_equal_the_usage_constants() -> None:
    text = (REPO / "contrib/prometheus/hostnet-alerts.yml").read_text()
    exprs = [line.split("expr:", 1)[1] for line in text.splitlines()
             if "expr:" in line and "usage_ratio" in line]
    assert exprs
    found = {float(x) for e in exprs for x in re.findall(r"[<>]=?\s*([0-9.]+)", e)}
    assert found == {USAGE_WARNING, USAGE_CRITICAL}


def test_renderers_use_the_usage_constants() -> None:
    from hostnet.render import doctor, watch

    assert doctor.USAGE_WARNING is USAGE_WARNING and doctor.USAGE_CRITICAL is USAGE_CRITICAL
    assert (watch.WARN_USAGE, watch.ERROR_USAGE) == (USAGE_WARNING, USAGE_CRITICAL)


def test_watch_help_interval_matches_the_engine() -> None:
    from hostnet.cli import watch as cli_watch
    from hostnet.service import watch as engine

    assert cli_watch.TOP_EVERY == engine.TOP_EVERY
