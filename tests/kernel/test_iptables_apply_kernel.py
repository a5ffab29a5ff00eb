"""``backend = "iptables"`` as apply steps on the real kernel, in throwaway namespaces, with
the host's iptables (nf_tables on Debian) and, when installed, iptables-legacy: load, read
back, a second plan is empty, undo gives back iptables-save byte for byte (user rules and a
docker-like chain in the same tables untouched), drift is left alone unless forced, a refused
document changes nothing, IPv6 through ip6tables, and real traffic through the loaded rules."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hostnet.config.nat import parse_nat
from hostnet.errors import CommandError
from hostnet.host.netns import entered
from hostnet.model.nat import NatConfig
from hostnet.state import iptables_table as it
from hostnet.state.hostio import HostIO
from hostnet.state.ipt_step import LoadIptables, read_iptables_steps
from hostnet.state.steps import Outcome, Step, Undone, undo_record
from tests.helpers.nat_lab import CONFIG as TOPO_CONFIG
from tests.helpers.netns import Netns

CONFIG = TOPO_CONFIG.replace('backend = "nftables"', 'backend = "iptables"')
V6 = CONFIG + """
[[nat.forward]]
in = "wan0"
proto = "tcp"
port = 2222
to = "[2001:db8:2::20]:22"
allow = ["2001:db8:9::/48"]
"""


def _legacy_works() -> bool:
    if shutil.which("iptables-legacy-restore") is None:
        return False
    proc = subprocess.run(["unshare", "--net", "iptables-legacy-save"], capture_output=True,
                          check=False)
    return proc.returncode == 0


VARIANTS = [pytest.param("", id="host"),
            pytest.param("legacy", id="legacy", marks=pytest.mark.skipif(
                not _legacy_works(), reason="iptables-legacy not installed or not usable"))]


def cfg(text: str = CONFIG) -> NatConfig:
    return parse_nat(text).config


class Lab:
    """One namespace with user rules hostnet must never touch, and the step machinery."""

    def __init__(self, ns: Netns, variant: str) -> None:
        self.ns, self.variant, self.io = ns, variant, HostIO(live=True)

    def ipt(self, *args: str, family: str = "ipv4") -> None:
        self.ns.run([it.Tool(family, self.variant).cmd, *args])

    def user_rules(self, family: str = "ipv4") -> None:
        src = "192.0.2.7" if family == "ipv4" else "2001:db8:7::7"
        self.ipt("-A", "FORWARD", "-s", src, "-j", "ACCEPT", family=family)
        self.ipt("-t", "nat", "-N", "DOCKER", family=family)
        self.ipt("-t", "nat", "-A", "DOCKER", "-p", "tcp", "--dport", "99", "-j", "RETURN",
                 family=family)
        self.ipt("-t", "nat", "-A", "PREROUTING", "-j", "DOCKER", family=family)
        self.ipt("-t", "nat", "-A", "POSTROUTING", "-o", "lo", "-j", "RETURN", family=family)

    def save(self, family: str = "ipv4") -> str:
        out = self.ns.run([it.Tool(family, self.variant).save]).stdout
        return "".join(line + "\n" for line in out.splitlines() if not line.startswith("#"))

    def tables(self, family: str = "ipv4") -> dict[str, it.TableDump]:
        return it.parse_save(self.save(family))

    def plan(self, config: NatConfig) -> list[Step]:
        with entered(self.ns.name):
            return read_iptables_steps(config, self.ns.name, "[nat] backend = iptables",
                                       variant=self.variant)

    def apply(self, steps: list[Step]) -> list[dict[str, Any]]:
        with entered(self.ns.name):
            records = [s.record(self.io) for s in steps]
            for s in steps:
                s.run(self.io)
            assert [s.verify(self.io) for s in steps] == [None] * len(steps)
        return records

    def undo(self, records: list[dict[str, Any]], force: bool = False) -> list[Undone]:
        with entered(self.ns.name):
            return [u for r in reversed(records) for u in undo_record(r, self.io, force)]

    def exact(self, before: str, family: str = "ipv4", *, tables_stay: bool = False) -> None:
        """iptables-save as ``before``; legacy keeps a table the kernel instantiated (empty),
        and so does a removal (``tables_stay``) with either variant."""
        now = self.save(family)
        if self.variant != "legacy" and not tables_stay:
            assert now == before
            return
        old, new = it.parse_save(before), self.tables(family)
        assert {t: d for t, d in new.items() if t in old} == old
        assert all(d.empty for t, d in new.items() if t not in old)


@pytest.fixture(params=VARIANTS)
def lab(request: pytest.FixtureRequest, netns: Callable[..., Netns]) -> Iterator[Lab]:
    yield Lab(netns("ipt"), str(request.param))


def test_load_verify_replan_and_exact_undo(lab: Lab) -> None:
    lab.user_rules()
    before = lab.save()
    steps = lab.plan(cfg())
    assert [(type(s), s.family) for s in steps if isinstance(s, LoadIptables)] == [
        (LoadIptables, "ipv4")]
    records = lab.apply(steps)
    dumps = lab.tables()
    # the user's rules are where they were, after hostnet's jumps (inserted first)
    assert dumps["filter"].rules_of("FORWARD") == (
        "-A FORWARD -j HOSTNET-FORWARD", "-A FORWARD -s 192.0.2.7/32 -j ACCEPT")
    assert dumps["nat"].rules_of("PREROUTING") == (
        "-A PREROUTING -j HOSTNET-DNAT", "-A PREROUTING -j DOCKER")
    assert dumps["nat"].rules_of("DOCKER") == ("-A DOCKER -p tcp -m tcp --dport 99 -j RETURN",)
    assert len(dumps["filter"].rules_of("HOSTNET-FORWARD")) == 13
    assert lab.plan(cfg()) == []  # a second apply is empty
    assert [u.outcome for u in lab.undo(records)] == [Outcome.RESTORED]
    lab.exact(before)
    assert lab.undo(records)[0].outcome is Outcome.UNCHANGED
    assert len(lab.plan(cfg())) == 1


def test_reload_over_older_rules_and_a_moved_jump_come_back(lab: Lab) -> None:
    """An older hostnet load (other rules, a chain the config no longer has, the FORWARD jump
    at position 2) is replaced; undo after someone removed the jump (drift, forced) puts the
    old chains and the jump at its old position back."""
    lab.user_rules()
    lab.ipt("-N", "HOSTNET-FORWARD")
    lab.ipt("-A", "HOSTNET-FORWARD", "-p", "udp", "--dport", "7", "-j", "DROP")
    lab.ipt("-A", "FORWARD", "-j", "HOSTNET-FORWARD")
    lab.ipt("-A", "FORWARD", "-o", "lo", "-j", "ACCEPT")
    lab.ipt("-t", "nat", "-N", "HOSTNET-OLD")
    lab.ipt("-t", "nat", "-A", "HOSTNET-OLD", "-j", "RETURN")
    before = lab.save()
    records = lab.apply(lab.plan(cfg()))
    dumps = lab.tables()
    assert "HOSTNET-OLD" not in dumps["nat"].chains
    assert dumps["filter"].rules_of("FORWARD")[1] == "-A FORWARD -j HOSTNET-FORWARD"
    assert lab.plan(cfg()) == []
    lab.ipt("-D", "FORWARD", "-j", "HOSTNET-FORWARD")
    drift = lab.undo(records)
    assert [u.outcome for u in drift] == [Outcome.DRIFT]
    assert "FORWARD -j HOSTNET-FORWARD missing" in drift[0].message
    assert [u.outcome for u in lab.undo(records, force=True)] == [Outcome.FORCED]
    lab.exact(before)


def test_drift_in_a_hostnet_chain_is_left_unless_forced(lab: Lab) -> None:
    lab.user_rules()
    before = lab.save()
    records = lab.apply(lab.plan(cfg()))
    lab.ipt("-A", "HOSTNET-FORWARD", "-s", "192.0.2.99", "-j", "DROP")
    drifted = lab.save()
    res = lab.undo(records)
    assert [u.outcome for u in res] == [Outcome.DRIFT]
    assert "HOSTNET-FORWARD" in res[0].message
    assert lab.save() == drifted
    assert len(lab.plan(cfg())) == 1  # the host no longer shows the config
    assert [u.outcome for u in lab.undo(records, force=True)] == [Outcome.FORCED]
    lab.exact(before)


def test_a_refused_document_changes_nothing(lab: Lab) -> None:
    lab.user_rules()
    good = lab.apply(lab.plan(cfg()))
    before = lab.save()
    step = lab.plan(cfg(CONFIG.replace("port = 3389", "port = 3390")))[0]
    assert isinstance(step, LoadIptables) and step.document is not None
    # the last table (filter) refuses: the earlier ones (raw, nat) must not commit either
    head, sep, tail = step.document.rpartition("-j RETURN")
    bad = f"{head}{sep} --bogus{tail}"
    with pytest.raises(CommandError, match="refused"):
        it.canonical(bad, "ipv4", lab.variant)
    broken = LoadIptables(step.netns, "ipv4", bad, "test", step.expected, lab.variant)
    with entered(lab.ns.name), pytest.raises(CommandError, match="--test refused"):
        broken.record(lab.io)
        broken.run(lab.io)
    assert lab.save() == before
    assert [u.outcome for u in lab.undo(good)] == [Outcome.RESTORED]


def test_ipv6_document_through_ip6tables_and_its_removal(lab: Lab) -> None:
    lab.user_rules("ipv6")
    before4, before6 = lab.save(), lab.save("ipv6")
    steps = lab.plan(cfg(V6))
    assert [s.family for s in steps if isinstance(s, LoadIptables)] == ["ipv4", "ipv6"]
    records = lab.apply(steps)
    fwd6 = lab.tables("ipv6")["nat"].rules_of("HOSTNET-DNAT")
    assert any("--to-destination [2001:db8:2::20]:22" in r for r in fwd6), fwd6
    assert lab.plan(cfg(V6)) == []
    # the IPv6 entries leave the config: a step removes hostnet's ip6tables chains only
    again = lab.plan(cfg())
    assert [(s.family, s.document) for s in again if isinstance(s, LoadIptables)] == [
        ("ipv6", None)]
    removal = lab.apply(again)
    assert it.read_snapshot("ipv6", lab.ns.name, lab.variant).empty
    assert lab.plan(cfg()) == []
    assert [u.outcome for u in lab.undo(removal)] == [Outcome.RESTORED]
    assert lab.plan(cfg(V6)) == []
    assert [u.outcome for u in lab.undo(records)] == [Outcome.RESTORED, Outcome.RESTORED]
    lab.exact(before4)
    lab.exact(before6, "ipv6")


def test_loaded_rules_forward_an_allowed_client_and_block_another() -> None:
    """Real traffic through rules loaded by the step (host variant), then undone."""
    from tests.helpers.nat_lab import topology

    with topology() as t:
        lab = Lab(t.router, "")
        before = lab.save()
        records = lab.apply(lab.plan(cfg()))
        res = t.probe("inet", [
            {"id": "ok", "proto": "tcp", "src": "203.0.113.50", "dst": "203.0.113.1",
             "dport": 3389},
            {"id": "no", "proto": "tcp", "src": "203.0.113.51", "dst": "203.0.113.1",
             "dport": 3389}], wait=2.0)
        seen = t.seen()
        assert lab.undo(records)[0].outcome is Outcome.RESTORED
        lab.exact(before)
    assert (res["ok"]["result"], res["no"]["result"]) == ("ok", "timeout"), res
    assert seen["ok"]["local"] == "198.51.100.20:3389" and "no" not in seen


def test_a_table_block_commits_whole_or_not_at_all(lab: Lab) -> None:
    """Kernel fact load/restore rely on: iptables-restore --noflush commits each table's block
    as one unit; a line that fails (here a -D of a rule that is not there, which nf_tables'
    --test does not catch) leaves the chain, rules and jump before it unapplied."""
    lab.user_rules()
    before = lab.save()
    block = ("*filter\n:HOSTNET-FORWARD - [0:0]\n-A HOSTNET-FORWARD -j RETURN\n"
             "-I FORWARD 1 -j HOSTNET-FORWARD\n-D FORWARD -s 192.0.2.8/32 -j ACCEPT\nCOMMIT\n")
    proc = lab.ns.run([it.Tool("ipv4", lab.variant).restore, "--noflush"], input=block,
                      check=False)
    assert proc.returncode != 0
    assert lab.save() == before


def test_through_the_transaction_journal_failure_and_rollback(
        lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The steps in a real transaction: the journal (JSON on disk) holds all undo needs; a
    failure injected after the IPv6 step puts both families back; a good apply followed by
    'rollback' from the journal alone does too."""
    from hostnet.errors import ApplyFailed
    from hostnet.state.journal import Journal
    from hostnet.state.plan import Plan
    from hostnet.state.rollback import rollback
    from hostnet.state.transaction import apply

    lab.user_rules()
    lab.user_rules("ipv6")
    before4, before6 = lab.save(), lab.save("ipv6")
    state = tmp_path / "state"
    with entered(lab.ns.name):
        steps = read_iptables_steps(cfg(V6), lab.ns.name, "test", variant=lab.variant)
        plan = Plan(tuple(sorted(steps, key=lambda s: s.sort_key())), netns=lab.ns.name)
        monkeypatch.setenv("HOSTNET_TEST_FAIL_AT_STEP", "2")
        with pytest.raises(ApplyFailed, match="nothing is left half-applied"):
            apply(lambda: plan, lab.io, state_dir=state, netns=lab.ns.name, config="t")
        monkeypatch.delenv("HOSTNET_TEST_FAIL_AT_STEP")
    lab.exact(before4)
    lab.exact(before6, "ipv6")
    with entered(lab.ns.name):
        done = apply(lambda: plan, lab.io, state_dir=state, netns=lab.ns.name, config="t")
    assert done.generation is not None and done.generation.status == "applied"
    assert lab.plan(cfg(V6)) == []
    with entered(lab.ns.name):
        back = rollback(Journal(state, lab.ns.name), lab.io, None, force=False)
    assert [u.outcome for u in back.undone] == [Outcome.RESTORED, Outcome.RESTORED]
    lab.exact(before4)
    lab.exact(before6, "ipv6")


def test_removal_when_the_backend_is_no_longer_iptables(lab: Lab) -> None:
    from hostnet.state.ipt_step import read_removal_steps

    lab.user_rules()
    before = lab.save()
    records = lab.apply(lab.plan(cfg()))
    with entered(lab.ns.name):
        steps = read_removal_steps(lab.ns.name, "backend = nftables", variant=lab.variant)
    assert [(s.family, s.document) for s in steps if isinstance(s, LoadIptables)] == [
        ("ipv4", None)]
    removal = lab.apply(steps)
    lab.exact(before, tables_stay=True)  # the raw table the load made stays, empty
    with entered(lab.ns.name):
        assert read_removal_steps(lab.ns.name, "again", variant=lab.variant) == []
    assert [u.outcome for u in lab.undo(removal)] == [Outcome.RESTORED]
    assert lab.plan(cfg()) == []
    assert [u.outcome for u in lab.undo(records)] == [Outcome.RESTORED]
    lab.exact(before)
