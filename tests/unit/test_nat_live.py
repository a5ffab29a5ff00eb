"""What a loaded table translates (nat.live), read from tables the kernel listed
(tests/fixtures/nat-live/*.json: the golden configs loaded with nft -f and listed with
``nft -j list table inet hostnet``), and the digest stamp in the table's comment."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from hostnet.config.nat import load_nat
from hostnet.errors import InputError
from hostnet.nat import live
from hostnet.nat.compile import compile_table
from hostnet.nat.nftables import render, stamp_of

FIXTURES = Path(__file__).parent.parent / "fixtures" / "nat-live"
GOLDEN = Path(__file__).parent.parent / "golden"


@pytest.mark.parametrize("name", ["nat-router", "nat-ipv6", "nat-issue-example"])
def test_the_kernel_table_translates_what_the_config_says(name: str) -> None:
    cfg = load_nat(GOLDEN / f"{name}.toml").config
    got = live.of_table((FIXTURES / f"{name}.json").read_text())
    assert got == live.of_config(cfg)
    assert got and live.changed(got, live.of_config(cfg)) == []


def test_both_families_and_allowlists_are_read() -> None:
    got = live.of_table((FIXTURES / "nat-ipv6.json").read_text())
    assert {t.family for t in got.values()} == {4, 6}
    router = live.of_table((FIXTURES / "nat-router.json").read_text())
    assert len({t.sources for t in router.values()}) >= 2  # per-forward allowlists (vmap)
    assert any(t.sources == ("0.0.0.0/0",) for t in router.values())


def test_changed_is_target_or_allowlist_per_port() -> None:
    cfg = load_nat(GOLDEN / "nat-router.toml").config
    old = live.of_config(cfg)
    first = cfg.forward[0]
    moved = replace(first, to_port=60000)  # every public port of it to one other port
    narrower = replace(first, allow=first.sources[:1] if len(first.sources) > 1 else ())
    assert [t.key for t in live.changed(old, live.of_config(
        replace(cfg, forward=(moved, *cfg.forward[1:]))))] == sorted(
            t.key for t in old.values() if t.in_iface == first.in_iface and t.proto ==
            first.proto.value and t.port in first.ports)
    assert live.changed(old, live.of_config(replace(cfg, forward=(narrower,
                                                                   *cfg.forward[1:]))))
    assert live.changed(old, {}) == sorted(old.values())
    assert live.changed({}, old) == []
    # moving an entry to another line changes nothing
    relined = replace(first, origin=replace(first.origin, line=first.origin.line + 5))
    assert live.changed(old, live.of_config(replace(cfg, forward=(relined,
                                                                   *cfg.forward[1:])))) == []


def test_translation_round_trips_through_the_journal() -> None:
    for t in live.of_config(load_nat(GOLDEN / "nat-ipv6.toml").config).values():
        assert live.Translation.from_json(t.to_json()) == t
        assert t.describe().startswith(t.in_iface)


def test_no_table_and_bad_json() -> None:
    assert live.of_table("") == {}
    with pytest.raises(InputError, match="not the expected JSON"):
        live.of_table("{nope")


def test_stamp_names_the_body_only() -> None:
    cfg = load_nat(GOLDEN / "nat-router.toml").config
    text = render(compile_table(cfg))
    stamp = stamp_of(text)
    assert stamp is not None and len(stamp) == 16
    # the header (file name) is not part of it; the body (a port) is
    assert stamp_of(text.replace("nat-router.toml;", "elsewhere.toml;")) == stamp
    other = replace(cfg, forward=cfg.forward[1:])
    assert stamp_of(render(compile_table(other))) != stamp
    assert stamp_of(None) is None and stamp_of("table inet hostnet {\n}\n") is None
