"""Only removed or changed forwards lose their conntrack entries after an apply."""

from __future__ import annotations

from pathlib import Path

from hostnet.config.nat import parse_nat
from hostnet.nat.diff import changed_forwards

EXAMPLE = (Path(__file__).resolve().parent.parent / "golden" / "nat-issue-example.toml").read_text()
SECOND = '\n[[nat.forward]]\nin = "wan0"\nproto = "udp"\nport = 5000\nto = "198.51.100.21"\n'


def test_changed_and_removed_forwards() -> None:
    old = parse_nat(EXAMPLE + SECOND).config
    assert changed_forwards(None, old) == []
    assert changed_forwards(old, old) == []
    moved = parse_nat("# a comment line moves everything\n" + EXAMPLE + SECOND).config
    assert changed_forwards(old, moved) == []
    narrower = parse_nat(EXAMPLE.replace(', "192.0.2.0/28"', "") + SECOND).config
    assert [f.origin.path for f in changed_forwards(old, narrower)] == ["nat.forward[0]"]
    removed = parse_nat(EXAMPLE).config
    assert [f.origin.path for f in changed_forwards(old, removed)] == ["nat.forward[1]"]
