"""``[nat] backend = "iptables"`` as a step of ``hostnet apply``: journaled, read back, undone.

One :class:`LoadIptables` step per family (``iptables`` for IPv4, ``ip6tables`` for IPv6)
loads the compiled document (:func:`hostnet.nat.iptables.render`, split by
:func:`~hostnet.nat.iptables.split_documents`) through :mod:`hostnet.state.iptables_table`.
A family without a document whose host still shows HOSTNET-* chains or jumps (IPv6 entries
removed from the config) gets a step that removes them (``document`` None), and
:func:`removal_steps` makes such steps for every family (a backend other than iptables). A
removal leaves the tables themselves (empty built-in chains); undo puts the chains back.

Read-back: iptables-save prints a rule in its own order of matches and quoting, so the
document's lines cannot be compared with it as text. The planner loads the document once in
a throwaway network namespace with the same binaries and keeps what iptables-save prints
there (``expected``, :func:`~hostnet.state.iptables_table.canonical`); ``verify`` and undo
compare the host's HOSTNET-* chains with that, rule for rule, and require every jump of
:data:`~hostnet.nat.iptables.JUMPS` (or none, when removing). The same comparison makes the
planner return no step when the host already shows the document, so a second apply is empty.

Like every step, it works in the namespace the process is in (a transaction runs inside its
target namespace); ``netns`` names it for the journal. Journal record: the snapshot before
(:class:`~hostnet.state.iptables_table.Snapshot`), what the step leaves (``expected`` and
whether the jumps are there) and the binary variant, so undo needs nothing but the record.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from hostnet.errors import CommandError, PlanError
from hostnet.model.nat import NatConfig
from hostnet.nat.iptables import render, split_documents
from hostnet.state import iptables_table as it
from hostnet.state.hostio import HostIO
from hostnet.state.steps import Outcome, Step, Undone, register


def _label(family: str, variant: str) -> str:
    return f"{it.Tool(family, variant).cmd} HOSTNET-* chains"


def differences(now: it.Snapshot, chains: tuple[it.Chain, ...], jumps: bool) -> list[str]:
    """What differs between the host (``now``) and ``chains`` plus the jumps (pure)."""
    have, want = now.chain_map(), {(c.table, c.name): c.rules for c in chains}
    out = [f"{t} {n} missing" for t, n in want if (t, n) not in have]
    out += [f"{t} {n} not expected" for t, n in have if (t, n) not in want]
    out += [f"{t} {n}: rules differ ({len(have[t, n])} on the host, {len(want[t, n])} "
            "expected)"
            for t, n in want if (t, n) in have and have[t, n] != want[t, n]]
    for j in now.jumps:
        if bool(j.positions) != jumps:
            out.append(f"{j.table} {j.builtin} -j {j.chain} "
                       f"{'missing' if jumps else 'still there'}")
    return out


@register
@dataclass(frozen=True, slots=True)
class LoadIptables(Step):
    """Load (or, with ``document`` None, remove) hostnet's HOSTNET-* chains of one family."""

    kind: ClassVar[str] = "iptables-nat"
    order: ClassVar[int] = 60
    netns: str | None
    family: str  # "ipv4" (iptables) or "ipv6" (ip6tables)
    document: str | None  # the iptables-restore --noflush text; None: remove
    reason: str
    expected: tuple[it.Chain, ...] = ()  # the chains as iptables-save prints them once loaded
    variant: str = ""  # "", "nft" or "legacy" (see iptables_table.tool)
    effect: str = "live"

    @property
    def jumps(self) -> bool:
        return self.document is not None

    def change(self) -> dict[str, Any]:
        return {"kind": self.kind, "netns": self.netns, "family": self.family,
                "variant": self.variant, "reason": self.reason, "effect": self.effect,
                "remove": self.document is None, "document": self.document,
                "chains": {f"{c.table} {c.name}": len(c.rules) for c in self.expected}}

    def text(self) -> str:
        label = _label(self.family, self.variant)
        if self.document is None:
            return f"{label}: remove"
        rules = sum(len(c.rules) for c in self.expected)
        return f"{label}: load {rules} rule(s) in {len(self.expected)} chains"

    def record(self, io: HostIO) -> dict[str, Any]:
        before = it.read_snapshot(self.family, None, self.variant)
        return {"kind": self.kind, "netns": self.netns, "family": self.family,
                "variant": self.variant, "text": self.text(), "before": before.to_dict(),
                "expected": [c.to_dict() for c in self.expected], "jumps": self.jumps}

    def run(self, io: HostIO) -> None:
        if not io.live:
            raise PlanError(f"{self.text()}: iptables rules are live state; --root alone "
                            "writes files")
        if self.document is None:
            now = it.read_snapshot(self.family, None, self.variant)
            it.restore(it.Snapshot(self.family, now.tables), None, self.variant)
        else:
            it.load(self.document, self.family, None, self.variant)

    def verify(self, io: HostIO) -> str | None:
        now = it.read_snapshot(self.family, None, self.variant)
        problems = differences(now, self.expected, self.jumps)
        return f"{self.text()}: {'; '.join(problems)}" if problems else None

    @classmethod
    def undo(cls, record: dict[str, Any], io: HostIO, force: bool) -> list[Undone]:
        target = str(record.get("text") or cls.kind)
        try:
            before = it.Snapshot.from_dict(dict(record["before"]))
            expected = tuple(it.Chain.from_dict(c) for c in record["expected"])
            jumps, variant = bool(record["jumps"]), str(record.get("variant") or "")
        except (KeyError, TypeError, ValueError) as exc:
            return [Undone(Outcome.DRIFT, target, f"unreadable journal record ({exc}): "
                           "left alone")]
        now = it.read_snapshot(before.family, None, variant)
        if now.same(before):
            return [Undone(Outcome.UNCHANGED, target, "already as before")]
        left = now.shows(expected, jumps)
        if not left and not force:
            changed = "; ".join(differences(now, expected, jumps))
            return [Undone(Outcome.DRIFT, target, f"changed since hostnet loaded it ({changed})"
                           ": left alone (--force puts the old chains back)")]
        after = it.restore(before, None, variant)
        if not after.same(before):
            return [Undone(Outcome.DRIFT, target, "could not be put back: "
                           + "; ".join(differences(after, before.chains,
                                                  any(before.jump_counts()))))]
        what = (f"{len(before.chains)} chain(s) as before" if before.chains
                else "hostnet's chains and jumps removed")
        return [Undone(Outcome.RESTORED if left else Outcome.FORCED, target, what)]


# -- planning -----------------------------------------------------------------------------------


def documents(cfg: NatConfig) -> dict[str, str | None]:
    """The restore document of each family (None: the config has nothing for it)."""
    v4, v6 = split_documents(render(cfg))
    return {"ipv4": v4, "ipv6": v6}


def iptables_steps(cfg: NatConfig, netns: str | None, reason: str,
                   current: Mapping[str, it.Snapshot | None],
                   expected: Mapping[str, tuple[it.Chain, ...]],
                   variant: str = "") -> list[Step]:
    """One step per family whose host (``current``; None: could not be read) does not show
    what the config's document makes (``expected``, see :func:`~iptables_table.canonical`)
    (pure). A family without a document gets a removal step only if the host shows
    HOSTNET-* chains or jumps of it."""
    steps: list[Step] = []
    for family, doc in documents(cfg).items():
        snap = current.get(family)
        if doc is None:
            steps += removal_steps(netns, f"{reason} (nothing for {family} in the config "
                                   "any more)", {family: snap}, variant)
            continue
        want = expected[family]
        if snap is not None and snap.shows(want, True):
            continue
        steps.append(LoadIptables(netns, family, doc, reason, want, variant))
    return steps


def removal_steps(netns: str | None, reason: str, current: Mapping[str, it.Snapshot | None],
                  variant: str = "") -> list[Step]:
    """A step removing hostnet's chains and jumps for each family of ``current`` that shows
    any (pure); e.g. when the config's backend is no longer iptables."""
    return [LoadIptables(netns, family, None, reason, (), variant)
            for family, snap in current.items() if snap is not None and not snap.empty]


def _read_optional(family: str, variant: str) -> it.Snapshot | None:
    try:
        return it.read_snapshot(family, None, variant)
    except CommandError:  # no ip6tables (or iptables) here: nothing of ours can be there
        return None


def read_removal_steps(netns: str | None, reason: str, *,
                       variant: str | None = None) -> list[Step]:
    """:func:`removal_steps` on what the namespace the process is in shows now."""
    chosen = it.tool("ipv4", variant).variant
    return removal_steps(netns, reason, {f: _read_optional(f, chosen) for f in it.FAMILIES},
                         chosen)


def read_iptables_steps(cfg: NatConfig, netns: str | None, reason: str, *,
                        variant: str | None = None) -> list[Step]:
    """:func:`iptables_steps` on what the namespace the process is in shows now. Each
    document is canonicalised in a throwaway namespace, which also refuses a bad one
    (CommandError) before anything is planned."""
    chosen = it.tool("ipv4", variant).variant
    current: dict[str, it.Snapshot | None] = {}
    expected: dict[str, tuple[it.Chain, ...]] = {}
    for family, doc in documents(cfg).items():
        if doc is None:
            current[family] = _read_optional(family, chosen)
            continue
        expected[family] = it.canonical(doc, family, chosen)
        current[family] = it.read_snapshot(family, None, chosen)
    return iptables_steps(cfg, netns, reason, current, expected, chosen)
