"""Which forwards changed between two configurations (pure): their conntrack entries are the
only ones to delete after an apply; flows of unchanged forwards keep their translation."""

from __future__ import annotations

from dataclasses import replace

from hostnet.model import nat as m

_NOWHERE = m.Origin("", 0, "")


def _key(f: m.Forward) -> m.Forward:
    return replace(f, origin=_NOWHERE)


def changed_forwards(old: m.NatConfig | None, new: m.NatConfig) -> list[m.Forward]:
    """Forwards of ``old`` that ``new`` removes or changes (target, ports, allowlist,
    interface, hairpin), in ``old``'s order. Moving an entry to another line is no change."""
    if old is None:
        return []
    kept = {_key(f) for f in new.forward}
    return [f for f in old.forward if _key(f) not in kept]
