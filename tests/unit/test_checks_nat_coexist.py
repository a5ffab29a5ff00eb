"""NT106 on typed rulesets (pure), and the readers that give it other tables' chains: jumps
followed into regular chains, iptables-legacy-save read beside nft, iptables-nft's own
iptables-save output not counted twice."""

from __future__ import annotations

import json
from pathlib import Path

from hostnet.checks.nat_coexist import COEXIST, evaluate_coexistence, label, overlaps
from hostnet.findings import Severity
from hostnet.host.root import Root
from hostnet.model.firewall import BaseChain, Ruleset
from hostnet.observe.netns import _Notes, _ruleset
from hostnet.observe.parse_rules import made_by_nft, parse_iptables_save, parse_nft_json

ROOTS = Path(__file__).resolve().parents[1] / "fixtures" / "roots"


def ours(name: str, hook: str, prio: int, type_: str = "filter") -> BaseChain:
    return BaseChain("inet", "hostnet", name, hook, prio, type_, "accept", "nft", 1, ("drop",))


HOSTNET = (ours("dnat_prerouting", "prerouting", -100, "nat"),
           ours("filter_input", "input", 0), ours("filter_forward", "forward", 0),
           ours("snat_postrouting", "postrouting", 100, "nat"))


def rules(*others: BaseChain, mine: tuple[BaseChain, ...] = HOSTNET) -> Ruleset:
    return Ruleset(chains=(*mine, *others), sources=("nft -j list ruleset",))


def test_silent_without_our_table_or_without_others() -> None:
    docker = BaseChain("ip", "filter", "FORWARD", "forward", 0, "filter", "drop", "nft")
    assert evaluate_coexistence(rules(docker, mine=())) == []
    assert evaluate_coexistence(rules()) == []
    assert evaluate_coexistence(Ruleset()) == []


def test_forward_policy_drop_is_a_warning_with_the_chain_listed() -> None:
    docker = BaseChain("ip", "filter", "FORWARD", "forward", 0, "filter", "drop", "nft", 1,
                       ("jump",), ("accept",))
    [f] = evaluate_coexistence(rules(docker))
    assert (f.code, f.severity) == ("NT106", Severity.WARNING)
    assert f.suggestion is None  # no fix: the other table is not ours to edit
    assert ("ip filter FORWARD (iptables-nft) [forward, priority 0, policy drop, same priority "
            "as hostnet filter_forward, load order decides which runs first]: policy drop"
            in f.message)
    assert "DOCKER-USER" in f.message
    [c] = f.evidence["chains"]
    assert (c["hook"], c["priority"], c["policy"], c["order"], c["hostnet_chain"]) == (
        "forward", 0, "drop", "same", "filter_forward")
    assert any("accept ends only its own chain" in o for o in c["overrides"])  # via DOCKER-USER
    assert f.evidence["overriding"] == ["ip filter FORWARD (iptables-nft)"]


def test_accepting_chain_after_ours_is_info() -> None:
    fw = BaseChain("inet", "firewalld", "filter_FORWARD", "forward", 10, "filter", "accept",
                   "nft", 2, ("accept",))
    [f] = evaluate_coexistence(rules(fw))
    assert f.severity is Severity.INFO
    [o] = overlaps(rules(fw))
    assert o.order == "after" and not o.serious
    assert o.overrides == ("its accept ends only its own chain: hostnet's drops still apply",)
    assert "DOCKER-USER" not in f.message


def test_a_reject_reached_through_a_jump_counts() -> None:
    fw = BaseChain("inet", "firewalld", "filter_FORWARD", "forward", 10, "filter", "accept",
                   "nft", 3, ("accept", "jump"), ("reject",))
    [o] = overlaps(rules(fw))
    assert o.serious and "its reject rules win over hostnet's accept" in o.overrides


def test_nat_order_before_after_same() -> None:
    def nat(prio: int) -> BaseChain:
        return BaseChain("ip", "nat", "PREROUTING", "prerouting", prio, "nat", "accept", "nft",
                         1, ("jump",), nat=("dnat",))
    before, after, same = (overlaps(rules(nat(p)))[0] for p in (-110, -90, -100))
    assert "translates first: a new flow it NATs never meets hostnet's DNAT" in before.overrides
    assert "sees only new flows hostnet did not translate" in after.overrides
    assert any("whichever NAT chain runs first" in t for t in same.overrides)
    assert not (before.serious or after.serious or same.serious)
    assert before.ours.name == "dnat_prerouting"


def test_input_drop_rules_are_info_but_an_input_drop_policy_warns() -> None:
    rule = BaseChain("ip", "filter", "INPUT", "input", 0, "filter", "accept", "nft", 1, ("drop",))
    policy = BaseChain("ip", "filter", "INPUT", "input", 0, "filter", "drop", "nft")
    assert not overlaps(rules(rule))[0].serious
    assert overlaps(rules(policy))[0].serious
    # output drops touch only the host's own traffic
    out = BaseChain("ip", "filter", "OUTPUT", "output", 0, "filter", "drop", "nft")
    assert overlaps(rules(out)) == []  # hostnet has no output chain here
    with_out = (*HOSTNET, ours("dnat_output", "output", -100, "nat"))
    [o] = overlaps(rules(out, mine=with_out))
    assert not o.serious and o.ours.name == "dnat_output"


def test_other_hooks_and_families_are_left_out() -> None:
    bridge = BaseChain("bridge", "filter", "forward", "forward", 0, "filter", "drop", "nft")
    netdev = BaseChain("netdev", "x", "in", "ingress", 0, "filter", "drop", "nft")
    assert overlaps(rules(bridge, netdev)) == []


def test_legacy_chains_and_labels() -> None:
    legacy = parse_iptables_save(
        "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
        ":BLOCK - [0:0]\n-A FORWARD -j BLOCK\n-A BLOCK -s 192.0.2.0/24 -j DROP\nCOMMIT\n"
        "*nat\n:PREROUTING ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n"
        "-A POSTROUTING -o wan0 -j MASQUERADE\nCOMMIT\n", "ipv4", "iptables-legacy-save")
    found = {label(o.other): o for o in overlaps(Ruleset(chains=(*HOSTNET, *legacy.chains)))}
    assert set(found) == {"iptables-legacy -t filter INPUT", "iptables-legacy -t filter FORWARD",
                          "iptables-legacy -t nat PREROUTING",
                          "iptables-legacy -t nat POSTROUTING"}
    fwd = found["iptables-legacy -t filter FORWARD"]
    assert fwd.serious and "its drop rules win over hostnet's accept" in fwd.overrides
    post = found["iptables-legacy -t nat POSTROUTING"]
    assert (post.other.priority, post.order) == (100, "same")
    assert any("whichever NAT chain" in t for t in post.overrides)
    assert found["iptables-legacy -t filter INPUT"].overrides == (
        "no rules, so it passes everything",)
    v6 = BaseChain("ipv6", "filter", "FORWARD", "forward", 0, "filter", "drop",
                   "ip6tables-legacy-save")
    assert label(v6) == "ip6tables-legacy -t filter FORWARD"
    plain = BaseChain("ipv4", "filter", "FORWARD", "forward", 0, "filter", "drop", "iptables-save")
    assert label(plain) == "iptables -t filter FORWARD"


def test_iptables_save_targets() -> None:
    rs = parse_iptables_save(
        "*filter\n:FORWARD DROP [0:0]\n:DOCKER-USER - [0:0]\n:GONE - [0:0]\n"
        "-A FORWARD -j LOG\n-A FORWARD -g GONE\n-A FORWARD -j DOCKER-USER\n"
        "-A DOCKER-USER -j RETURN\n-A GONE -j REJECT\nCOMMIT\n"
        "*nat\n:PREROUTING ACCEPT [0:0]\n:DOCKER - [0:0]\n-A PREROUTING -j DOCKER\n"
        "-A DOCKER -p tcp --dport 80 -j DNAT --to-destination 198.51.100.9:80\nCOMMIT\n")
    by = {(c.table, c.name): c for c in rs.chains}
    fwd = by[("filter", "FORWARD")]
    assert fwd.verdicts == ("goto", "jump")  # LOG is not a verdict
    assert fwd.reached == ("reject", "return") and fwd.drops and fwd.can_drop
    pre = by[("nat", "PREROUTING")]
    assert pre.nat == ("dnat",) and pre.priority == -100 and pre.type == "nat"
    assert [r.chain for r in rs.nat] == ["DOCKER"]


def test_nft_json_follows_jumps_xt_targets_and_named_verdict_maps() -> None:
    doc = {"nftables": [
        {"table": {"family": "ip", "name": "filter"}},
        {"chain": {"family": "ip", "table": "filter", "name": "FORWARD", "type": "filter",
                   "hook": "forward", "prio": 0, "policy": "accept"}},
        {"chain": {"family": "ip", "table": "filter", "name": "DOCKER-USER"}},
        {"chain": {"family": "ip", "table": "filter", "name": "DEEP"}},
        {"chain": {"family": "ip", "table": "filter", "name": "LOOP"}},
        {"map": {"family": "ip", "table": "filter", "name": "vm", "type": "ifname",
                 "map": "verdict", "elem": [["eth9", {"jump": {"target": "LOOP"}}]]}},
        {"rule": {"family": "ip", "table": "filter", "chain": "FORWARD", "expr": [
            {"jump": {"target": "DOCKER-USER"}}]}},
        {"rule": {"family": "ip", "table": "filter", "chain": "FORWARD", "expr": [
            {"vmap": {"key": {"meta": {"key": "iifname"}}, "data": "@vm"}}]}},
        {"rule": {"family": "ip", "table": "filter", "chain": "DOCKER-USER", "expr": [
            {"goto": {"target": "DEEP"}}]}},
        {"rule": {"family": "ip", "table": "filter", "chain": "DEEP", "expr": [
            {"xt": {"type": "target", "name": "REJECT"}}]}},
        {"rule": {"family": "ip", "table": "filter", "chain": "LOOP", "expr": [
            {"jump": {"target": "LOOP"}}, {"accept": None}]}},
    ]}
    [fwd] = parse_nft_json(json.dumps(doc)).chains
    assert fwd.verdicts == ("jump",)
    assert fwd.reached == ("accept", "reject")
    assert fwd.drops and fwd.accepts and fwd.rules == 2


def test_made_by_nft() -> None:
    assert made_by_nft("# Generated by iptables-nft-save v1.8.9 (nf_tables) on ...\n*filter\n")
    assert not made_by_nft("# Generated by iptables-save v1.8.9 on ...\n*filter\n")


class _Commands(Root):
    """A snapshot whose commands are given as text (None: not stored)."""

    def __init__(self, outputs: dict[str, str]) -> None:
        super().__init__(ROOTS / "doctor-router")
        self.outputs = outputs

    def command_output(self, name: str, argv: list[str], timeout: float = 10.0) -> str | None:
        return self.outputs.get(name)


NFT_HOSTNET = json.dumps({"nftables": [
    {"chain": {"family": "inet", "table": "hostnet", "name": "filter_forward", "type": "filter",
               "hook": "forward", "prio": 0, "policy": "accept"}},
    {"chain": {"family": "ip", "table": "filter", "name": "FORWARD", "type": "filter",
               "hook": "forward", "prio": 0, "policy": "drop"}}]})
IPT_NFT = ("# Generated by iptables-nft-save v1.8.9 (nf_tables) on Wed\n*filter\n"
           ":INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n")
LEGACY = ("# Generated by iptables-save v1.8.9 on Wed\n*filter\n:INPUT ACCEPT [0:0]\n"
          ":FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n")


def _read(outputs: dict[str, str]) -> Ruleset:
    return _ruleset(_Commands(outputs), _Notes())


def test_observe_reads_legacy_beside_nft_and_not_iptables_nft_twice() -> None:
    rs = _read({"nft-ruleset.json": NFT_HOSTNET, "iptables-save.txt": IPT_NFT,
                "iptables-legacy-save.txt": LEGACY})
    got = sorted((c.source, c.table, c.name) for c in rs.chains)
    assert got == [("iptables-legacy-save", "filter", "FORWARD"),
                   ("iptables-legacy-save", "filter", "INPUT"),
                   ("iptables-legacy-save", "filter", "OUTPUT"),
                   ("nft", "filter", "FORWARD"), ("nft", "hostnet", "filter_forward")]
    [f] = evaluate_coexistence(rs)
    assert {c["chain"] for c in f.evidence["chains"]} == {
        "ip filter FORWARD (iptables-nft)", "iptables-legacy -t filter FORWARD"}


def test_observe_legacy_iptables_save_is_not_read_twice() -> None:
    # iptables-save is the legacy one here: iptables-legacy-save would say the same
    rs = _read({"nft-ruleset.json": NFT_HOSTNET, "iptables-save.txt": LEGACY,
                "iptables-legacy-save.txt": LEGACY})
    assert sorted(c.source for c in rs.chains if c.name == "FORWARD") == [
        "iptables-save", "nft"]
    # no nft at all: iptables-nft's own listing is all there is, and it is kept
    only = _read({"iptables-save.txt": IPT_NFT})
    assert {c.name for c in only.chains} == {"INPUT", "FORWARD", "OUTPUT"}


def test_rule_is_registered() -> None:
    from hostnet.checks.runner import DEFAULT_MODULES
    from hostnet.rules import all_rules

    assert all_rules()["NT106"] == COEXIST
    assert "hostnet.checks.nat_coexist" in DEFAULT_MODULES


def test_snapshot_fixture_from_the_kernel() -> None:
    """The doctor-coexist root holds what a namespace showed (hostnet + iptables-nft with
    DOCKER-USER and a docker DNAT, a firewalld-like table, a bridge table, legacy rules)."""
    cmds = ROOTS / "doctor-coexist" / ".hostnet" / "commands"
    rs = parse_nft_json((cmds / "nft-ruleset.json").read_text())
    legacy = parse_iptables_save((cmds / "iptables-legacy-save.txt").read_text(), "ipv4",
                                 "iptables-legacy-save")
    found = {label(o.other): o for o in overlaps(Ruleset(chains=rs.chains + legacy.chains))}
    assert "bridge filter forward" not in found
    assert found["ip nat PREROUTING (iptables-nft)"].other.nat == ("dnat",)  # via DOCKER
    assert found["inet firewalld filter_FORWARD"].other.reached == ("accept",)
    assert found["inet firewalld filter_FORWARD"].other.drops  # its own reject
    assert found["iptables-legacy -t filter FORWARD"].serious  # drop in BLOCK


def test_a_drop_policy_before_our_dnat_warns() -> None:
    raw = BaseChain("ip", "raw", "PREROUTING", "prerouting", -300, "filter", "drop", "nft")
    [o] = overlaps(rules(raw))
    assert o.serious and o.order == "before" and o.ours.name == "dnat_prerouting"
    assert o.overrides[0].startswith("policy drop")
