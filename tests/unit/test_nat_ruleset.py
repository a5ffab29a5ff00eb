"""The typed view of 'nft -j list ruleset' (recorded from a namespace holding our table and
iptables-nft rules) and what other tables' base chains do to ours."""

from __future__ import annotations

from pathlib import Path

import pytest

from hostnet.config.nat import load_nat
from hostnet.errors import InputError
from hostnet.nat.compile import compile_table
from hostnet.nat.ruleset import differences, overlaps, parse_ruleset

GOLDEN = Path(__file__).resolve().parent.parent / "golden"


def test_parse_tables_base_chains_and_actions() -> None:
    rs = parse_ruleset((GOLDEN / "nat-ruleset-sample.json").read_text())
    assert rs.tables == (("inet", "hostnet"), ("ip", "filter"), ("ip", "nat"))
    fwd = next(c for c in rs.on_hook("forward") if c.table == "filter")
    assert (fwd.type, fwd.priority, fwd.policy) == ("filter", 0, "drop")
    assert fwd.can("accept") == 1
    pre = next(c for c in rs.on_hook("prerouting") if c.table == "nat")
    assert pre.can("dnat") == 1  # an iptables-nft DNAT target ("xt") counts as a DNAT
    assert rs.table_exists("inet", "hostnet")


def test_overlaps_say_where_other_verdicts_win() -> None:
    rs = parse_ruleset((GOLDEN / "nat-ruleset-sample.json").read_text())
    table = compile_table(load_nat(GOLDEN / "nat-issue-example.toml").config)
    found = {o.chain.where: o.notes for o in overlaps(rs, table)}
    assert set(found) == {"ip nat PREROUTING", "ip filter FORWARD"}
    fwd = found["ip filter FORWARD"]
    assert any("a drop anywhere wins" in n for n in fwd)
    assert any("accept ends only this base chain" in n for n in fwd)
    assert any("which runs first is not defined" in n for n in fwd)
    assert any("first of the two NAT chains" in n for n in found["ip nat PREROUTING"])


def test_bad_json() -> None:
    with pytest.raises(InputError):
        parse_ruleset("{")
    assert parse_ruleset("").base_chains == ()


def test_differences_between_the_loaded_table_and_the_config() -> None:
    rs = parse_ruleset((GOLDEN / "nat-ruleset-sample.json").read_text())
    cfg = load_nat(GOLDEN / "nat-issue-example.toml").config
    # the sample was recorded from an older compile of the same file
    diff = differences(rs, compile_table(cfg))
    assert diff and all(isinstance(d, str) for d in diff)
    assert differences(parse_ruleset(""), compile_table(cfg)) == [
        "table inet hostnet is not loaded"]
