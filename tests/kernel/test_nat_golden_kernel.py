"""Every golden compiler output is accepted by the real tools in a throwaway namespace:
``nft -c -f`` for the nftables files, ``iptables-restore``/``ip6tables-restore --test`` for
the iptables ones, and a loaded table lists back unchanged when loaded again."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from hostnet.nat.iptables import split_documents
from hostnet.state import nat_table
from tests.helpers.netns import Netns

GOLDEN = Path(__file__).resolve().parent.parent / "golden"


@pytest.mark.parametrize("path", sorted(GOLDEN.glob("nat-*.nft")), ids=lambda p: p.stem)
def test_nft_golden_loads(netns: Callable[..., Netns], path: Path) -> None:
    ns = netns("natgold")
    text = path.read_text()
    nat_table.check(text, ns.name)
    first = nat_table.replace(text, ns.name)
    assert first.previous is None
    again = nat_table.replace(text, ns.name)
    assert not again.changed


@pytest.mark.parametrize("path", sorted(GOLDEN.glob("nat-*.iptables")), ids=lambda p: p.stem)
def test_iptables_golden_restores(netns: Callable[..., Netns], path: Path) -> None:
    ns = netns("natgold")
    v4, v6 = split_documents(path.read_text())
    ns.run(["iptables-restore", "--noflush", "--test"], input=v4)
    if v6 is not None:
        ns.run(["ip6tables-restore", "--noflush", "--test"], input=v6)
