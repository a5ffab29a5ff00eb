"""explain against the kernel: more than a thousand probes (TCP and UDP; sources inside and
outside allowlists; forwarded, local and unforwarded ports; hairpin; 1:1 both ways; notrack;
the router's own traffic) through the real topology. For every probe explain's verdict, the
address and port it says the packet is delivered to, the source the server sees and the
conntrack entry must be what the kernel did."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from hostnet.config.nat import parse_nat
from hostnet.nat.compile import compile_table
from hostnet.nat.explain import Packet, endpoint, explain
from hostnet.nat.nftables import render
from hostnet.nat.ruleset import parse_ruleset
from hostnet.state import nat_table
from tests.helpers.nat_lab import (
    CONFIG,
    INET_SOURCES,
    LAN_SOURCES,
    conntrack_entries,
    probe,
    topology,
)

ROUNDS = 4
ROUTER_TARGETS = [("tcp", 3389), ("udp", 5000), ("tcp", 8000), ("tcp", 8002), ("udp", 8001),
                  ("udp", 8003), ("udp", 53), ("tcp", 9000), ("udp", 9000)]


def _probes(rounds: int = ROUNDS) -> dict[str, list[dict[str, Any]]]:
    by_ns: dict[str, list[dict[str, Any]]] = {"inet": [], "lanc": [], "srv": [], "router": []}
    n = 0

    def add(ns: str, proto: str, src: str, dst: str, port: int) -> None:
        nonlocal n
        n += 1
        by_ns[ns].append(probe(f"{ns}-{n}", proto, src, dst, port))

    for _ in range(rounds):
        for src in INET_SOURCES:
            for proto, port in ROUTER_TARGETS:
                add("inet", proto, src, "203.0.113.1", port)
            for proto in ("tcp", "udp"):
                add("inet", proto, src, "203.0.113.11", 7000)
            add("inet", "tcp", src, "198.51.100.20", 3389)
            add("inet", "udp", src, "198.51.100.20", 15000)
        for src in LAN_SOURCES:
            for proto, port in ROUTER_TARGETS[:2] + ROUTER_TARGETS[2:7:2] + [("tcp", 9000)]:
                add("lanc", proto, src, "203.0.113.1", port)
            for proto in ("tcp", "udp"):
                add("lanc", proto, src, "203.0.113.11", 7000)
                add("lanc", proto, src, "203.0.113.254", 9100)
        for src in ("198.51.100.11", "198.51.100.20"):
            for proto in ("tcp", "udp"):
                add("srv", proto, src, "203.0.113.254", 9100)
        add("router", "tcp", "203.0.113.1", "203.0.113.1", 3389)
        add("router", "udp", "203.0.113.1", "203.0.113.1", 5000)
        add("router", "udp", "203.0.113.1", "203.0.113.11", 7000)
    return by_ns


KERNEL_VERDICT = {"ok": "delivered", "timeout": "dropped", "refused": "rejected"}
IIF = {"inet": "wan0", "lanc": "lan0", "srv": "lan0", "router": None}


#: every forward behind one allowlist: the DNAT rule checks it itself (no verdict maps)
ALLOW = 'allow = ["203.0.113.50", "192.0.2.0/28", "198.51.100.32/30"]\n'
ONE_ALLOWLIST = CONFIG.replace('port = "8000-8003"\nto = "198.51.100.20"\n',
                               'port = "8000-8003"\nto = "198.51.100.20"\n' + ALLOW)


@pytest.mark.parametrize(("config", "rounds"), [(CONFIG, ROUNDS), (ONE_ALLOWLIST, 1)],
                         ids=["allowlists-by-verdict-map", "one-allowlist-in-rule"])
def test_explain_matches_the_kernel_on_1000_probes(config: str, rounds: int) -> None:
    loaded = parse_nat(config)
    table = compile_table(loaded.config)
    with topology() as t:
        nat_table.replace(render(table), t.router.name)
        router = nat_table.read_router(t.router.name)
        others = parse_ruleset(nat_table.read_ruleset_json(t.router.name)).base_chains
        t.router.run(["conntrack", "-F"], check=False)
        t.clear_logs()
        by_ns = _probes(rounds)
        results = t.probe_all(by_ns, wait=2.5)
        seen = t.seen()
        entries = {(e["proto"], e["src"], e["sport"], e["dst"], e["dport"]): e
                   for e in conntrack_entries(t.router)}
    probes = [(ns, pr) for ns, items in by_ns.items() for pr in items]
    assert len(probes) >= 1000 or rounds < ROUNDS
    mismatches: list[str] = []
    verdicts: dict[str, int] = {}
    for ns, pr in probes:
        got = results[pr["id"]]
        sport = got["sport"]
        res = explain(table, loaded.config, router,
                      Packet(ipaddress.ip_address(pr["src"]), ipaddress.ip_address(pr["dst"]),
                             pr["proto"], sport, pr["dport"], IIF[ns]), others)
        verdicts[res.verdict] = verdicts.get(res.verdict, 0) + 1
        kernel = KERNEL_VERDICT.get(got["result"], got["result"])
        what = f"{pr} explain={res.verdict}/{res.delivered_to}/{res.source_seen} kernel={got}"
        if kernel != res.verdict:
            mismatches.append(f"verdict: {what} reason={res.reason}")
            continue
        rec = seen.get(pr["id"])
        key = (pr["proto"], pr["src"], str(sport), pr["dst"], str(pr["dport"]))
        entry = entries.get(key)
        if res.verdict == "delivered":
            if rec is None or (rec["local"], rec["peer"]) != (res.delivered_to, res.source_seen):
                mismatches.append(f"translation: {what} server={rec}")
            if res.conntrack.startswith("none"):
                if entry is not None:
                    mismatches.append(f"untracked but entry: {what} {entry}")
            elif entry is None:
                mismatches.append(f"no conntrack entry: {what}")
            else:
                reply = endpoint(ipaddress.ip_address(entry["rsrc"]), int(entry["rsport"]))
                if (reply, entry["rdst"]) != (res.delivered_to, res.source_seen):
                    mismatches.append(f"conntrack: {what} {entry}")
        else:
            if rec is not None:
                mismatches.append(f"dropped but a server saw it: {what} {rec}")
            if entry is not None:
                mismatches.append(f"dropped but conntrack has it: {what} {entry}")
    assert not mismatches, f"{len(mismatches)} mismatches, first: " + "\n".join(mismatches[:8])
    # the probes cover both outcomes and the untracked path
    assert verdicts.get("delivered", 0) > 75 * rounds, verdicts
    assert verdicts.get("dropped", 0) > 50 * rounds, verdicts
