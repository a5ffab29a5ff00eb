"""The compiled NAT table on the real kernel: masquerade, allowlisted forwards, hairpin, 1:1
with a proxy neighbour entry, notrack, atomic reload, exact restore, other tables untouched."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from hostnet.config.nat import parse_nat
from hostnet.nat import live
from hostnet.nat.compile import compile_table
from hostnet.nat.iptables import render as render_iptables
from hostnet.nat.iptables import split_documents
from hostnet.nat.nftables import render
from hostnet.state import nat_table
from tests.helpers.nat_lab import CONFIG, Topology, conntrack_entries, topology, write_config
from tests.helpers.nat_lab import probe as p
from tests.helpers.nat_traffic import assert_nat_traffic


@pytest.fixture(scope="module")
def topo() -> Iterator[Topology]:
    with topology() as t:
        yield t


def _load(t: Topology, text: str = CONFIG) -> nat_table.LoadResult:
    return nat_table.replace(render(compile_table(parse_nat(text).config)), t.router.name)


def test_traffic_through_the_compiled_table(topo: Topology) -> None:
    _load(topo)
    assert_nat_traffic(topo)


def test_reload_is_idempotent_restore_is_exact_and_other_tables_stay(topo: Topology) -> None:
    ns = topo.router.name
    topo.router.run(["nft", "-f", "-"], input=(
        "table ip other { chain fw { type filter hook forward priority 10; policy accept; "
        "counter comment \"not ours\"; }\n}\n"
        "table inet foreign { set s { type ipv4_addr; elements = { 192.0.2.9 }; }\n}\n"))
    others_before = [topo.router.run(["nft", "list", "table", *t]).stdout
                     for t in (("ip", "other"), ("inet", "foreign"))]
    nat_table.restore(None, ns)
    assert nat_table.read_table(ns) is None
    first = _load(topo)
    assert first.previous is None and first.changed
    again = _load(topo)
    assert not again.changed and again.previous == first.current
    changed = CONFIG.replace('port = "8000-8003"', 'port = "8000-8010"', 1)
    third = _load(topo, changed)
    assert third.changed and "tcp . 8010" in third.current
    back = nat_table.restore(third.previous, ns)
    assert nat_table.read_table(ns) == first.current == back.current
    nat_table.restore(None, ns)
    assert nat_table.read_table(ns) is None
    assert [topo.router.run(["nft", "list", "table", *t]).stdout
            for t in (("ip", "other"), ("inet", "foreign"))] == others_before
    topo.router.run(["nft", "delete", "table", "ip", "other"])
    topo.router.run(["nft", "delete", "table", "inet", "foreign"])
    _load(topo)


def test_a_refused_table_changes_nothing(topo: Topology) -> None:
    before = _load(topo).current
    with pytest.raises(Exception, match="nft -c refused"):
        nat_table.replace(render(compile_table(parse_nat(CONFIG).config)).replace(
            "masquerade comment", "masquerade bogus comment"), topo.router.name)
    assert nat_table.read_table(topo.router.name) == before


def test_conntrack_entries_of_changed_forwards_only(topo: Topology) -> None:
    _load(topo)
    topo.router.run(["conntrack", "-F"], check=False)
    res = topo.probe("inet", [p(f"u{i}", "udp", "203.0.113.50", "203.0.113.1", 5000)
                              for i in range(3)] +
                     [p(f"t{i}", "udp", "203.0.113.77", "203.0.113.1", 8001)
                      for i in range(2)], wait=1.5)
    assert all(v["result"] == "ok" for v in res.values()), res
    # the kernel's table says what changed: only udp/5000 gets a new target port
    loaded = live.of_table(nat_table.read_table_json(topo.router.name))
    assert loaded == live.of_config(parse_nat(CONFIG).config)
    new = parse_nat(CONFIG.replace("198.51.100.20:15000", "198.51.100.20:15001")).config
    gone = live.changed(loaded, live.of_config(new))
    assert [t.describe() for t in gone] == ["wan0 udp/5000 -> 198.51.100.20:15000"]
    cleared = nat_table.clear_translations(gone, topo.router.name)
    assert cleared.deleted == 3
    assert cleared.per_translation == (("wan0 udp/5000 -> 198.51.100.20:15000", 3),)
    left = conntrack_entries(topo.router)
    assert not [e for e in left if e["dport"] == "5000"]
    assert len([e for e in left if e["dport"] == "8001"]) == 2


def test_iptables_backend_is_accepted_by_iptables_restore(topo: Topology) -> None:
    v4, v6 = split_documents(render_iptables(parse_nat(CONFIG).config))
    assert v6 is None
    topo.router.run(["iptables-restore", "--noflush", "--test"], input=v4)


def test_proxy_neighbour_answers_only_with_the_route() -> None:
    """Kernel fact (arp_process): a proxy neighbour entry is answered only when the address
    is routed out of another interface than the one the request came in on."""
    with topology(route_public=False) as t:
        _load(t)
        res = t.probe("inet", [p("o2o", "udp", "203.0.113.52", "203.0.113.11", 7000)], wait=2)
        assert res["o2o"]["result"] != "ok"
        t.router.run(["ip", "route", "add", "203.0.113.11/32", "dev", "lan0"])
        t.inet.run(["ip", "neigh", "flush", "dev", "veth0"])
        res = t.probe("inet", [p("o2o2", "udp", "203.0.113.52", "203.0.113.11", 7000)], wait=3)
        assert res["o2o2"]["result"] == "ok"


def test_cli_compile_and_explain_in_the_namespace(topo: Topology) -> None:
    cfg = write_config()
    try:
        hn = [sys.executable, "-m", "hostnet"]
        text = subprocess.run([*hn, "nat", "compile", "--config", cfg, "--netns",
                               topo.router.name], capture_output=True, text=True, check=True)
        nat_table.replace(text.stdout, topo.router.name)
        topo.router.run(["nft", "-f", "-"], input=(
            "table ip other { chain fw { type filter hook forward priority 10; "
            "policy accept; }\n}\n"))
        out = subprocess.run([*hn, "nat", "explain", "--config", cfg, "--netns",
                              topo.router.name, "--from", "203.0.113.51", "--to",
                              "203.0.113.1:3389", "--format", "json"], capture_output=True,
                             text=True)
        doc = json.loads(out.stdout)
        assert out.returncode == 1
        assert (doc["verdict"], doc["reason"]) == ("dropped",
                                                   "not in the allowlist of nat.forward[0]")
        ok = subprocess.run([*hn, "nat", "explain", "--config", cfg, "--netns",
                             topo.router.name, "--from", "203.0.113.50", "--to",
                             "203.0.113.1:3389", "--format", "json"], capture_output=True,
                            text=True)
        doc = json.loads(ok.stdout)
        assert (ok.returncode, doc["delivered_to"]) == (0, "198.51.100.20:3389")
        assert "notes" not in doc, doc["notes"]  # the loaded table is the config's
        assert [s["chain"] for s in doc["steps"] if s.get("table") == "ip other"] == ["fw"]
        # a forward to an address on no connected network is refused with the interfaces read
        bad = write_config(CONFIG.replace('to = "198.51.100.20"\n', 'to = "192.0.2.250"\n', 1))
        res = subprocess.run([*hn, "nat", "compile", "--config", bad, "--netns",
                              topo.router.name], capture_output=True, text=True)
        assert res.returncode == 2 and "192.0.2.250 is on no connected network" in res.stderr
    finally:
        topo.router.run(["nft", "delete", "table", "ip", "other"], check=False)
        os.unlink(cfg)


def test_iptables_backend_behaves_like_the_table() -> None:
    """The same probes against the iptables-restore text (backend = "iptables")."""
    from hostnet.nat.iptables import JUMPS

    with topology() as t:
        v4, _ = split_documents(render_iptables(parse_nat(CONFIG).config))
        t.router.run(["iptables-restore", "--noflush"], input=v4)
        for table, builtin, chain in JUMPS:
            t.router.run(["iptables", "-t", table, "-I", builtin, "1", "-j", chain])
        res = t.probe_all({
            "inet": [p("fwd-ok", "tcp", "203.0.113.50", "203.0.113.1", 3389),
                     p("fwd-ok-udp", "udp", "192.0.2.5", "203.0.113.1", 5000),
                     p("fwd-no", "tcp", "203.0.113.51", "203.0.113.1", 3389),
                     p("direct-no", "udp", "203.0.113.50", "198.51.100.20", 15000),
                     p("anyone", "udp", "192.0.2.200", "203.0.113.1", 8002),
                     p("o2o-in", "udp", "203.0.113.52", "203.0.113.11", 7000),
                     p("notrack", "udp", "203.0.113.52", "203.0.113.1", 53)],
            "lanc": [p("hairpin-ok", "udp", "198.51.100.33", "203.0.113.1", 5000),
                     p("hairpin-no", "udp", "198.51.100.30", "203.0.113.1", 5000),
                     p("masq", "udp", "198.51.100.31", "203.0.113.254", 9100)],
            "srv": [p("o2o-out", "udp", "198.51.100.11", "203.0.113.254", 9100)],
        }, wait=2.0)
        seen = t.seen()
        entries = conntrack_entries(t.router)
    ok = {k for k, v in res.items() if v["result"] == "ok"}
    assert ok == {"fwd-ok", "fwd-ok-udp", "anyone", "o2o-in", "notrack", "hairpin-ok", "masq",
                  "o2o-out"}, res
    assert not {"fwd-no", "direct-no", "hairpin-no"} & set(seen)
    assert seen["fwd-ok-udp"]["local"] == "198.51.100.20:15000"
    assert seen["hairpin-ok"]["peer"] == "198.51.100.1"
    assert seen["masq"]["peer"] == "203.0.113.1"
    assert seen["o2o-out"]["peer"] == "203.0.113.11"
    assert not [e for e in entries if "53" in (e["dport"], e["sport"])]
