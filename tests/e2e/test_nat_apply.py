"""``hostnet plan/apply/rollback`` with a ``[nat]`` table on the NAT router topology.

apply loads ``table inet hostnet`` with what it needs (ip_forward, the proxy entry and /32
route of the 1:1 address) in one journaled generation; the traffic then is what the issue
asks (tests/helpers/nat_traffic.py); a second apply plans nothing; a changed forward deletes
the conntrack entries of that forward only and says how many; rollback restores the previous
table exactly, then nothing; other tables are never touched; an unconfirmed apply reverts.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.nat_lab import CONFIG, Topology, conntrack_entries, topology
from tests.helpers.nat_lab import probe as p
from tests.helpers.nat_traffic import assert_nat_traffic

OTHERS = ("table ip other { chain fw { type filter hook forward priority 10; policy accept; "
          "ip saddr 192.0.2.99 accept comment \"not ours\"; }\n}\n"
          "table inet foreign { set s { type ipv4_addr; elements = { 192.0.2.9 }; }\n}\n")


def hostnet(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hostnet", *args], capture_output=True,
                          text=True, timeout=120)


@pytest.fixture(scope="module")
def topo() -> Iterator[Topology]:
    with topology() as t:
        # what hostnet apply must set up itself
        t.router.run(["ip", "neigh", "del", "proxy", "203.0.113.11", "dev", "wan0"])
        t.router.run(["ip", "route", "del", "203.0.113.11/32"])
        t.router.sysctl("net.ipv4.ip_forward", "0")
        t.router.run(["nft", "-f", "-"], input=OTHERS)
        yield t


def _router_state(t: Topology) -> dict[str, str]:
    def out(*cmd: str) -> str:
        return t.router.run(list(cmd), check=False).stdout.strip()

    return {"table": out("nft", "list", "table", "inet", "hostnet"),
            "others": out("nft", "list", "table", "ip", "other") + out(
                "nft", "list", "table", "inet", "foreign"),
            "proxy": out("ip", "neigh", "show", "proxy"),
            "route": out("ip", "route", "show", "203.0.113.11"),
            "forward": t.router.sysctl("net.ipv4.ip_forward")}


def test_apply_rollback_and_conntrack(topo: Topology, tmp_path: Path) -> None:
    cfg = tmp_path / "hostnet.toml"
    cfg.write_text(CONFIG)
    common = ["--config", str(cfg), "--netns", topo.router.name,
              "--state-dir", str(tmp_path / "state")]
    before = _router_state(topo)
    assert before["table"] == "" and before["proxy"] == "" and before["forward"] == "0"

    plan = hostnet("plan", *common, "--format", "json")
    assert plan.returncode == 0, plan.stderr
    kinds = [c["kind"] for c in json.loads(plan.stdout)["changes"]]
    assert kinds[0] == "sysctl" and "nft-table" in kinds and kinds.count("nat-link") == 2

    first = hostnet("apply", *common, "--yes")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "table inet hostnet: create (10 forwarded port(s))" in first.stdout, first.stdout
    assert "proxy neighbour 203.0.113.11 on wan0" in first.stdout
    applied = _router_state(topo)
    assert applied["forward"] == "1" and "203.0.113.11 dev wan0" in applied["proxy"]
    assert applied["route"].startswith("203.0.113.11 dev lan0")
    assert 'comment "hostnet sha256:' in applied["table"]
    assert applied["others"] == before["others"]
    assert_nat_traffic(topo)

    again = hostnet("apply", *common, "--yes")
    assert again.returncode == 0 and "Nothing to do" in again.stdout, again.stdout

    # flows through two forwards; then only udp/5000 gets a new target port
    topo.router.run(["conntrack", "-F"], check=False)
    res = topo.probe("inet", [p(f"u{i}", "udp", "203.0.113.50", "203.0.113.1", 5000)
                              for i in range(3)] +
                     [p(f"t{i}", "udp", "203.0.113.77", "203.0.113.1", 8001)
                      for i in range(2)], wait=1.5)
    assert all(v["result"] == "ok" for v in res.values()), res
    cfg.write_text(CONFIG.replace("198.51.100.20:15000", "198.51.100.20:15001"))
    changed = hostnet("apply", *common, "--yes")
    assert changed.returncode == 0, changed.stdout + changed.stderr
    assert "table inet hostnet: replace" in changed.stdout
    assert "conntrack: 3 entries of 1 changed or removed forwarded port(s) deleted" in \
        changed.stdout, changed.stdout
    left = conntrack_entries(topo.router)
    assert not [e for e in left if e["dport"] == "5000"]
    assert len([e for e in left if e["dport"] == "8001"]) == 2
    assert "198.51.100.20 . 15001" in _router_state(topo)["table"]

    # rollback: the previous table exactly, then the state before any apply
    back = hostnet("rollback", "--netns", topo.router.name, "--state-dir",
                   str(tmp_path / "state"), "--yes")
    assert back.returncode == 0, back.stdout + back.stderr
    assert _router_state(topo) == applied
    first_back = hostnet("rollback", "--netns", topo.router.name, "--state-dir",
                         str(tmp_path / "state"), "--yes")
    assert first_back.returncode == 0, first_back.stdout + first_back.stderr
    assert _router_state(topo) == before
    history = hostnet("history", "--netns", topo.router.name, "--state-dir",
                      str(tmp_path / "state"))
    assert "table inet hostnet: create" in history.stdout


def test_drift_is_left_alone_and_removing_nat_removes_the_table(topo: Topology,
                                                                 tmp_path: Path) -> None:
    cfg = tmp_path / "hostnet.toml"
    cfg.write_text(CONFIG)
    state = ["--netns", topo.router.name, "--state-dir", str(tmp_path / "state")]
    common = ["--config", str(cfg), *state]
    assert hostnet("apply", *common, "--yes").returncode == 0
    # someone re-points a forward by hand: the stamp still says ours, the translations do not
    topo.router.run(["nft", "delete", "element", "inet", "hostnet", "fwd4",
                     '{ "wan0" . tcp . 3389 }'])
    topo.router.run(["nft", "add", "element", "inet", "hostnet", "fwd4",
                     '{ "wan0" . tcp . 3389 : 198.51.100.21 . 3389 }'])
    drifted = hostnet("rollback", *state, "--yes")
    assert drifted.returncode == 1 and "drift: table inet hostnet" in drifted.stdout
    assert "198.51.100.21" in _router_state(topo)["table"]
    plan = hostnet("plan", *common)
    assert "table inet hostnet: replace" in plan.stdout, plan.stdout
    forced = hostnet("rollback", *state, "--yes", "--force")
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert _router_state(topo)["table"] == ""

    assert hostnet("apply", *common, "--yes").returncode == 0
    cfg.write_text("[sysctl]\n")
    removed = hostnet("apply", *common, "--yes")
    assert removed.returncode == 0, removed.stdout + removed.stderr
    assert "table inet hostnet: remove" in removed.stdout
    assert _router_state(topo)["table"] == ""
    assert hostnet("rollback", *state, "--yes").returncode == 0  # the removal
    assert "sha256" in _router_state(topo)["table"]
    assert hostnet("rollback", *state, "--yes").returncode == 0  # the apply
    assert _router_state(topo)["table"] == ""


def test_unconfirmed_apply_reverts_the_table(topo: Topology, tmp_path: Path) -> None:
    cfg = tmp_path / "hostnet.toml"
    cfg.write_text(CONFIG)
    state = ["--netns", topo.router.name, "--state-dir", str(tmp_path / "state")]
    before = _router_state(topo)
    applied = hostnet("apply", "--config", str(cfg), *state, "--yes", "--confirm-within", "3s")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "sha256" in _router_state(topo)["table"]
    deadline = time.time() + 30
    while time.time() < deadline and _router_state(topo) != before:
        time.sleep(0.5)
    assert _router_state(topo) == before
    assert "reverted" in hostnet("history", *state).stdout


@pytest.mark.parametrize("mode", ["FAIL", "KILL"])
def test_a_failure_at_any_step_leaves_the_router_as_it_was(topo: Topology, tmp_path: Path,
                                                           mode: str) -> None:
    import os

    cfg = tmp_path / "hostnet.toml"
    cfg.write_text(CONFIG)
    state = ["--netns", topo.router.name, "--state-dir", str(tmp_path / "state")]
    before = _router_state(topo)
    steps = len(json.loads(hostnet("plan", "--config", str(cfg), *state[:2], "--format",
                                   "json").stdout)["changes"])
    assert steps == 4  # ip_forward, the table, the proxy entry, the route
    for n in range(1, steps + 1):
        env = {**os.environ, f"HOSTNET_TEST_{mode}_AT_STEP": str(n)}
        proc = subprocess.run([sys.executable, "-m", "hostnet", "apply", "--config", str(cfg),
                               *state, "--yes"], capture_output=True, text=True, env=env,
                              timeout=120)
        assert proc.returncode != 0
        if mode == "KILL":  # the next run rolls the dead one back first
            assert hostnet("history", *state).returncode == 0
            plan = hostnet("rollback", *state, "--yes", "--unconfirmed")
            assert plan.returncode == 0, plan.stdout + plan.stderr
        assert _router_state(topo) == before, (n, proc.stdout, proc.stderr)


def test_iptables_backend_through_apply_and_rollback(topo: Topology, tmp_path: Path) -> None:
    cfg = tmp_path / "hostnet.toml"
    cfg.write_text(CONFIG.replace('backend = "nftables"', 'backend = "iptables"'))
    state = ["--netns", topo.router.name, "--state-dir", str(tmp_path / "state")]
    common = ["--config", str(cfg), *state]

    def saved() -> str:
        out = topo.router.run(["iptables-save"]).stdout
        return "\n".join(x for x in out.splitlines() if not x.startswith("#"))

    before, state_before = saved(), _router_state(topo)
    applied = hostnet("apply", *common, "--yes")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "iptables: load" in applied.stdout and "table inet hostnet" not in applied.stdout
    assert "-j HOSTNET-DNAT" in saved()
    topo.clear_logs()
    res = topo.probe("inet", [p("ok", "tcp", "203.0.113.50", "203.0.113.1", 3389),
                              p("no", "tcp", "203.0.113.51", "203.0.113.1", 3389)], wait=2.0)
    assert res["ok"]["result"] == "ok" and res["no"]["result"] == "timeout", res
    assert "no" not in topo.seen()
    assert "Nothing to do" in hostnet("apply", *common, "--yes").stdout
    back = hostnet("rollback", *state, "--yes")
    assert back.returncode == 0, back.stdout + back.stderr
    assert saved() == before and _router_state(topo) == state_before
