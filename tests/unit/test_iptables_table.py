"""iptables-save text -> hostnet's snapshot, and the restore documents computed from it
(hostnet.state.iptables_table, ipt_step's pure planner). The fixtures are real iptables-save
output (nf_tables and legacy variants) of a namespace with a user rule in FORWARD, a
docker-like DOCKER chain, and the e2e topology's config loaded with its jumps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hostnet.config.nat import parse_nat
from hostnet.errors import CommandError, UsageError
from hostnet.nat.iptables import CHAINS, JUMPS, render, split_documents
from hostnet.state import iptables_table as it
from hostnet.state.ipt_step import (
    LoadIptables,
    differences,
    documents,
    iptables_steps,
    removal_steps,
)
from hostnet.state.steps import KINDS
from tests.helpers.nat_lab import CONFIG

FIX = Path(__file__).parent.parent / "fixtures" / "iptables"
CFG = parse_nat(CONFIG.replace('"nftables"', '"iptables"')).config
DOC = split_documents(render(CFG))[0]


def dumps(name: str) -> dict[str, it.TableDump]:
    return it.parse_save((FIX / f"{name}.save").read_text())


def snap(name: str) -> it.Snapshot:
    return it.snapshot_of("ipv4", dumps(name))


@pytest.mark.parametrize("variant", ["nft", "legacy"])
def test_parse_save_of_both_variants(variant: str) -> None:
    d = dumps(f"{variant}-loaded")
    assert set(d) == {"raw", "nat", "filter"}
    assert d["nat"].chains[0] == "DOCKER"
    assert d["nat"].policies[0] == ("PREROUTING", "ACCEPT")
    assert d["nat"].rules_of("PREROUTING") == ("-A PREROUTING -j HOSTNET-DNAT",
                                               "-A PREROUTING -j DOCKER")
    assert d["filter"].rules_of("FORWARD")[-1] == "-A FORWARD -s 192.0.2.7/32 -j ACCEPT"
    assert not d["nat"].empty and not dumps(f"{variant}-user")["filter"].empty
    user = dumps(f"{variant}-user")
    assert set(user) == {"nat", "filter"}  # no raw table: nothing made it yet


def test_both_variants_give_the_same_snapshot() -> None:
    assert snap("nft-loaded") == snap("legacy-loaded")
    assert snap("nft-user") == snap("legacy-user")


def test_snapshot_holds_hostnet_chains_and_jump_positions_only() -> None:
    s = snap("nft-loaded")
    assert {(c.table, c.name) for c in s.chains} == {(t, c) for t, cs in CHAINS.items()
                                                     for c in cs}
    assert all(c.name.startswith("HOSTNET-") for c in s.chains)
    assert [(j.builtin, j.chain, j.positions) for j in s.jumps] == [
        (b, c, (1,)) for _, b, c in JUMPS]
    assert s.tables == ("raw", "nat", "filter")
    user = snap("nft-user")
    assert user.chains == () and user.empty and user.tables == ("nat", "filter")
    assert user.jump_counts() == (0,) * len(JUMPS)
    assert it.Snapshot.from_dict(json.loads(json.dumps(s.to_dict()))) == s


def test_the_document_is_not_what_iptables_save_prints() -> None:
    """Why the read-back compares with a canonical listing, not with the document's lines:
    iptables-save moves ``-s`` before ``-i`` and drops quotes it does not need."""
    loaded = snap("nft-loaded")
    declared = it.chains_of("ipv4", DOC)
    assert {(c.table, c.name) for c in declared} == {(c.table, c.name) for c in loaded.chains}
    assert not loaded.shows(declared, True)
    assert loaded.shows(loaded.chains, True)
    assert not loaded.shows(loaded.chains, False)
    problems = differences(loaded, declared, True)
    assert "nat HOSTNET-DNAT: rules differ (10 on the host, 10 expected)" in problems
    assert "filter HOSTNET-INPUT-HP missing" not in problems


def test_load_document_adds_missing_jumps_to_the_same_commit() -> None:
    doc = it.load_document(DOC, dumps("nft-user"))
    blocks = doc.split("COMMIT\n")
    for table, builtin, chain in JUMPS:
        block = next(b for b in blocks if b.startswith(f"*{table}\n"))
        assert f"-I {builtin} 1 -j {chain}\n" in block
        assert block.index(f":{chain} - [0:0]") < block.index(f"-I {builtin} 1 -j {chain}")
    assert "DOCKER" not in doc and "192.0.2.7" not in doc and "-D " not in doc
    again = it.load_document(DOC, dumps("nft-loaded"))
    assert "-I " not in again and "-X " not in again
    assert it.chains_of("ipv4", again) == it.chains_of("ipv4", DOC)


def test_load_document_removes_hostnet_chains_the_document_drops() -> None:
    now = dict(dumps("nft-user"))
    now["nat"] = it.TableDump("nat", now["nat"].policies, (*now["nat"].chains, "HOSTNET-OLD"),
                              (*now["nat"].rules, "-A HOSTNET-OLD -j RETURN"))
    doc = it.load_document(DOC, now)
    assert "-F HOSTNET-OLD\n" in doc and "-X HOSTNET-OLD\n" in doc
    assert "DOCKER" not in doc


def test_restore_document_takes_everything_of_hostnet_away_and_nothing_else() -> None:
    doc = it.restore_document(dumps("nft-loaded"), snap("nft-user"))
    for _, builtin, chain in JUMPS:
        assert f"-D {builtin} -j {chain}\n" in doc and f"-X {chain}\n" in doc
    assert "HOSTNET-HAIRPIN" in doc and "-A " not in doc and "-I " not in doc
    assert "DOCKER" not in doc and "192.0.2.7" not in doc
    lines = doc.splitlines()
    assert lines.index("-F HOSTNET-FORWARD") < lines.index("-D FORWARD -j HOSTNET-FORWARD") \
        < lines.index("-X HOSTNET-FORWARD")
    assert it.restore_document(dumps("nft-loaded"), snap("nft-loaded")) == ""
    assert it.restore_document(dumps("nft-user"), snap("nft-user")) == ""


def test_restore_document_puts_contents_and_jumps_back_at_their_old_position() -> None:
    old = snap("nft-loaded")
    jumps = tuple(it.Jump(j.table, j.builtin, j.chain, (5,) if j.builtin == "FORWARD"
                          else j.positions) for j in old.jumps)
    old = it.Snapshot("ipv4", old.tables, old.chains, jumps)
    doc = it.restore_document(dumps("nft-user"), old)
    # FORWARD holds one rule now: position 5 becomes the end (2)
    assert "-I FORWARD 2 -j HOSTNET-FORWARD\n" in doc
    assert "-I PREROUTING 1 -j HOSTNET-DNAT\n" in doc
    body = "".join(f"{line}\n" for line in doc.splitlines() if not line.startswith("-I "))
    assert it.chains_of("ipv4", body) == old.chains  # every rule back, in order


def test_parse_save_refuses_what_is_not_iptables_save_output() -> None:
    with pytest.raises(CommandError, match="outside a table"):
        it.parse_save("-A FORWARD -j ACCEPT\n")
    with pytest.raises(CommandError, match="no COMMIT"):
        it.parse_save("*filter\n:INPUT ACCEPT [0:0]\n")
    with pytest.raises(CommandError, match="unexpected line"):
        it.parse_save("*filter\nbogus\nCOMMIT\n")


def test_tool_names_follow_the_variant(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(it.VARIANT_ENV, raising=False)
    assert (it.tool("ipv4").restore, it.tool("ipv6").save) == ("iptables-restore",
                                                              "ip6tables-save")
    assert it.tool("ipv6", "legacy").restore == "ip6tables-legacy-restore"
    monkeypatch.setenv(it.VARIANT_ENV, "iptables-nft")
    assert it.tool("ipv4").cmd == "iptables-nft"
    assert it.tool("ipv4", "").cmd == "iptables"  # an explicit variant wins
    with pytest.raises(UsageError):
        it.tool("ipv4", "bogus")
    with pytest.raises(UsageError):
        it.tool("inet")


def test_planner_is_empty_when_the_host_shows_the_document() -> None:
    loaded, user = snap("nft-loaded"), snap("nft-user")
    expected = {"ipv4": loaded.chains}
    assert iptables_steps(CFG, "ns", "r", {"ipv4": loaded, "ipv6": None}, expected) == []
    steps = iptables_steps(CFG, "ns", "r", {"ipv4": user, "ipv6": None}, expected, "legacy")
    assert len(steps) == 1
    step = steps[0]
    assert isinstance(step, LoadIptables) and KINDS["iptables-nat"] is LoadIptables
    assert (step.family, step.document, step.expected, step.variant, step.order) == (
        "ipv4", DOC, loaded.chains, "legacy", 60)
    assert step.text() == "iptables-legacy HOSTNET-* chains: load 48 rule(s) in 9 chains"
    change = step.change()
    assert (change["kind"], change["effect"], change["remove"]) == ("iptables-nat", "live",
                                                                  False)
    assert change["chains"]["filter HOSTNET-FORWARD"] == 13
    json.dumps(change)


def test_planner_removes_ipv6_chains_the_config_no_longer_has() -> None:
    loaded = snap("nft-loaded")
    v6 = it.Snapshot("ipv6", loaded.tables, loaded.chains, loaded.jumps)
    steps = iptables_steps(CFG, None, "r", {"ipv4": loaded, "ipv6": v6},
                           {"ipv4": loaded.chains})
    assert [(s.family, s.document) for s in steps if isinstance(s, LoadIptables)] == [
        ("ipv6", None)]
    assert steps[0].text() == "ip6tables HOSTNET-* chains: remove"
    empty6 = it.Snapshot("ipv6", ("nat",))
    assert iptables_steps(CFG, None, "r", {"ipv4": loaded, "ipv6": empty6},
                          {"ipv4": loaded.chains}) == []


def test_documents_split_by_family() -> None:
    assert documents(CFG) == {"ipv4": DOC, "ipv6": None}
    v6 = parse_nat(CONFIG.replace('"nftables"', '"iptables"').replace(
        'to = "198.51.100.20:15000"', 'to = "[2001:db8:2::20]:15000"').replace(
        'allow = ["203.0.113.50", "192.0.2.0/28", "198.51.100.32/30"]\nhairpin = true\n\n'
        '[[nat.forward]]\nin = "wan0"\nproto = "tcp"\nport = "8000',
        'allow = ["2001:db8:9::/48"]\n\n[[nat.forward]]\nin = "wan0"\nproto = "tcp"\n'
        'port = "8000', 1)).config
    docs = documents(v6)
    assert docs["ipv6"] is not None and "[2001:db8:2::20]:15000" in docs["ipv6"]
    assert "2001:db8" not in (docs["ipv4"] or "")


def test_removal_steps_for_families_that_show_hostnet_state() -> None:
    loaded, user = snap("nft-loaded"), snap("nft-user")
    steps = removal_steps("ns", "backend is nftables now", {"ipv4": loaded, "ipv6": user})
    assert [(s.family, s.document, s.reason) for s in steps if isinstance(s, LoadIptables)] \
        == [("ipv4", None, "backend is nftables now")]
    assert removal_steps(None, "r", {"ipv4": user, "ipv6": None}) == []
