"""Read, check, load and restore hostnet's ``HOSTNET-*`` chains with iptables/ip6tables.

The iptables analogue of :mod:`hostnet.state.nat_table`. Everything hostnet owns is in the
chains named ``HOSTNET-*`` of the raw, nat and filter tables (:data:`CHAINS`) plus one jump per
entry of :data:`JUMPS` from a built-in chain; nothing else of those tables is ever written.

- :func:`read_snapshot`: ``iptables-save`` (every table, no ``-t``, so a read instantiates no
  table) -> :class:`Snapshot`: each ``HOSTNET-*`` chain with its rules as iptables-save prints
  them, and for each jump the positions (1-based) where it is in its built-in chain.
- :func:`check`: ``iptables-restore --test --noflush``.
- :func:`load`: one ``iptables-restore --noflush`` document, one atomic COMMIT per table: the
  compiled document with, in each table's block before its COMMIT, the jumps that are missing
  (``-I BUILTIN 1 -j CHAIN``, checked against a fresh read) and the removal of ``HOSTNET-*``
  chains the document no longer declares. A jump therefore appears in the same commit that
  fills its chain: there is no moment where it points at an empty or half-filled chain.
- :func:`restore`: the same kind of document computed from a fresh read and a snapshot: old
  chain contents back, chains that did not exist flushed and deleted after their jumps are
  removed, jumps that were there put back at their old position. With the nf_tables variant
  a table that did not exist before and is left empty is deleted again; a legacy table, once
  the kernel instantiated it in the namespace, stays (empty).
- :func:`canonical`: the chains a document makes, as iptables-save prints them, by loading it
  into a throwaway network namespace (``unshare --net``) with the same binaries. iptables-save
  reorders matches (``-s`` before ``-i``) and drops quotes, so only the tool itself can say
  what a document looks like once loaded; the read-back and the planner compare with this.

The binaries are the host's choice (``iptables``, on Debian the nf_tables variant), or
``iptables-legacy``/``iptables-nft`` with ``variant="legacy"``/``"nft"`` or the environment
variable ``HOSTNET_IPTABLES`` (same values). Commands run in the namespace the process is in,
or in ``netns`` when given.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

from hostnet.errors import CommandError, UsageError
from hostnet.host.commands import run
from hostnet.host.netns import entered
from hostnet.nat.iptables import CHAINS, JUMPS

FAMILIES = ("ipv4", "ipv6")
VARIANTS = ("", "nft", "legacy")
VARIANT_ENV = "HOSTNET_IPTABLES"
PREFIX = "HOSTNET-"
TABLES = tuple(CHAINS)


# -- binaries -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Tool:
    """The iptables binaries of one family and variant."""

    family: str
    variant: str = ""

    @property
    def cmd(self) -> str:
        base = "iptables" if self.family == "ipv4" else "ip6tables"
        return f"{base}-{self.variant}" if self.variant else base

    @property
    def save(self) -> str:
        return f"{self.cmd}-save"

    @property
    def restore(self) -> str:
        return f"{self.cmd}-restore"


def tool(family: str, variant: str | None = None) -> Tool:
    """The binaries for ``family``; ``variant`` None: ``$HOSTNET_IPTABLES`` or the host's."""
    if family not in FAMILIES:
        raise UsageError(f"iptables family {family!r}: expected ipv4 or ipv6")
    chosen = os.environ.get(VARIANT_ENV, "") if variant is None else variant
    chosen = chosen.removeprefix("iptables-")
    if chosen not in VARIANTS:
        raise UsageError(f"{VARIANT_ENV}={chosen!r}: expected nft, legacy or nothing")
    return Tool(family, chosen)


# -- iptables-save text (pure) ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TableDump:
    """One ``*table`` block of iptables-save output (or of a restore document)."""

    name: str
    policies: tuple[tuple[str, str], ...] = ()  # built-in chain, policy (listing order)
    chains: tuple[str, ...] = ()  # user-defined chains (listing order)
    rules: tuple[str, ...] = ()  # "-A CHAIN ..." lines, in order

    def rules_of(self, chain: str) -> tuple[str, ...]:
        return tuple(r for r in self.rules if r.split(maxsplit=2)[1] == chain)

    @property
    def empty(self) -> bool:
        """Nothing but built-in chains with policy ACCEPT (as a table iptables just made)."""
        return not self.rules and not self.chains and all(p == "ACCEPT"
                                                          for _, p in self.policies)


def parse_save(text: str) -> dict[str, TableDump]:
    """Tables of iptables-save output (comments, counters and COMMIT lines dropped)."""
    out: dict[str, TableDump] = {}
    table: str | None = None
    policies: list[tuple[str, str]] = []
    chains: list[str] = []
    rules: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("*"):
            table, policies, chains, rules = line[1:], [], [], []
        elif table is None:
            raise CommandError(f"iptables-save output: {line!r} outside a table")
        elif line == "COMMIT":
            out[table] = TableDump(table, tuple(policies), tuple(chains), tuple(rules))
            table = None
        elif line.startswith(":"):
            parts = line[1:].split()
            if len(parts) < 2:
                raise CommandError(f"iptables-save output: bad chain line {line!r}")
            if parts[1] == "-":
                chains.append(parts[0])
            else:
                policies.append((parts[0], parts[1]))
        elif line.startswith("-A ") and len(line.split()) >= 2:
            rules.append(" ".join(line.split()))
        else:
            raise CommandError(f"iptables-save output: unexpected line {line!r}")
    if table is not None:
        raise CommandError(f"iptables-save output: table {table} has no COMMIT")
    return out


# -- snapshot -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Chain:
    table: str
    name: str
    rules: tuple[str, ...] = ()  # "-A NAME ..." as iptables-save prints them

    def to_dict(self) -> dict[str, Any]:
        return {"table": self.table, "name": self.name, "rules": list(self.rules)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Chain:
        return cls(str(d["table"]), str(d["name"]), tuple(str(r) for r in d["rules"]))


@dataclass(frozen=True, slots=True)
class Jump:
    table: str
    builtin: str
    chain: str
    positions: tuple[int, ...] = ()  # 1-based rule numbers in ``builtin``; () absent

    @property
    def rule(self) -> str:
        return f"-A {self.builtin} -j {self.chain}"

    def to_dict(self) -> dict[str, Any]:
        return {"table": self.table, "builtin": self.builtin, "chain": self.chain,
                "positions": list(self.positions)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Jump:
        return cls(str(d["table"]), str(d["builtin"]), str(d["chain"]),
                   tuple(int(p) for p in d["positions"]))


@dataclass(frozen=True, slots=True)
class Snapshot:
    """hostnet's part of one family's tables: JSON-serialisable for the journal."""

    family: str
    tables: tuple[str, ...] = ()  # which of raw/nat/filter existed
    chains: tuple[Chain, ...] = ()  # every HOSTNET-* chain of those tables
    jumps: tuple[Jump, ...] = field(default_factory=lambda: tuple(
        Jump(t, b, c) for t, b, c in JUMPS))

    def chain_map(self) -> dict[tuple[str, str], tuple[str, ...]]:
        return {(c.table, c.name): c.rules for c in self.chains}

    def jump_counts(self) -> tuple[int, ...]:
        return tuple(len(j.positions) for j in self.jumps)

    def same(self, other: Snapshot) -> bool:
        """The same chains with the same rules and the same number of each jump (positions
        and which tables exist are not compared)."""
        return (self.chain_map() == other.chain_map()
                and self.jump_counts() == other.jump_counts())

    def shows(self, chains: tuple[Chain, ...], jumps: bool) -> bool:
        """Exactly ``chains`` (no other HOSTNET-* chain) and every jump present (``jumps``)
        or none of them."""
        return (self.chain_map() == {(c.table, c.name): c.rules for c in chains}
                and all(bool(n) == jumps for n in self.jump_counts()))

    @property
    def empty(self) -> bool:
        return not self.chains and not any(self.jump_counts())

    def to_dict(self) -> dict[str, Any]:
        return {"family": self.family, "tables": list(self.tables),
                "chains": [c.to_dict() for c in self.chains],
                "jumps": [j.to_dict() for j in self.jumps]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Snapshot:
        return cls(str(d["family"]), tuple(str(t) for t in d["tables"]),
                   tuple(Chain.from_dict(c) for c in d["chains"]),
                   tuple(Jump.from_dict(j) for j in d["jumps"]))


def snapshot_of(family: str, dumps: dict[str, TableDump]) -> Snapshot:
    """The snapshot of parsed iptables-save output (pure)."""
    chains = tuple(Chain(t, name, dumps[t].rules_of(name)) for t in TABLES if t in dumps
                   for name in dumps[t].chains if name.startswith(PREFIX))
    jumps = []
    for t, b, c in JUMPS:
        rules = dumps[t].rules_of(b) if t in dumps else ()
        want = f"-A {b} -j {c}"
        jumps.append(Jump(t, b, c, tuple(i for i, r in enumerate(rules, 1) if r == want)))
    return Snapshot(family, tuple(t for t in TABLES if t in dumps), chains, tuple(jumps))


def chains_of(family: str, document: str) -> tuple[Chain, ...]:
    """The chains a restore document (or save output) declares, with its rule lines."""
    return snapshot_of(family, parse_save(document)).chains


# -- documents (pure) ---------------------------------------------------------------------------


def _block(table: str, now: TableDump | None, want: dict[str, tuple[str, ...]],
           jumps: list[tuple[Jump, tuple[int, ...]]], declare_all: bool) -> list[str]:
    """Lines of one table's block taking ``now`` to ``want`` (HOSTNET chains -> rule lines)
    and each jump to the wanted positions; [] when nothing changes."""
    have = {} if now is None else {c: now.rules_of(c) for c in now.chains
                                   if c.startswith(PREFIX)}
    declare = [c for c in want if declare_all or have.get(c) != want[c]]
    drop = [c for c in have if c not in want]
    deletes: list[str] = []
    inserts: list[tuple[str, int, str]] = []
    for jump, positions in jumps:
        count = len(jump.positions)
        deletes += [f"-D {jump.builtin} -j {jump.chain}"] * max(0, count - len(positions))
        inserts += [(jump.builtin, p, jump.chain) for p in positions[count:]]
    if not (declare or drop or deletes or inserts):
        return []
    lines = [f"*{table}", *(f":{c} - [0:0]" for c in declare), *(f"-F {c}" for c in drop),
             *deletes, *(f"-X {c}" for c in drop)]
    for c in declare:
        lines += want[c]
    length = {b: 0 if now is None else len(now.rules_of(b)) for b, _, _ in inserts}
    for line in deletes:
        builtin = line.split()[1]
        if builtin in length:
            length[builtin] -= 1
    for builtin, pos, chain in sorted(inserts):
        at = min(pos, length[builtin] + 1)
        lines.append(f"-I {builtin} {at} -j {chain}")
        length[builtin] += 1
    return [*lines, "COMMIT"]


def load_document(text: str, now: dict[str, TableDump], family: str = "ipv4") -> str:
    """The restore document that loads ``text`` (a compiled document) onto ``now``: its
    chains declared (so emptied) and filled, HOSTNET-* chains it does not declare removed,
    missing jumps inserted at position 1 in the same table commit."""
    doc = parse_save(text)
    current = snapshot_of(family, now)
    out: list[str] = []
    for table in TABLES:
        want = {c: doc[table].rules_of(c) for c in doc[table].chains} if table in doc else {}
        jumps = [(j, (j.positions or (1,)) if j.chain in want else ())
                 for j in current.jumps if j.table == table]
        out += _block(table, now.get(table), want, jumps, declare_all=True)
    return "\n".join(out) + "\n" if out else ""


def restore_document(now: dict[str, TableDump], old: Snapshot) -> str:
    """The restore document that takes ``now`` back to ``old`` ("" when it already is)."""
    current = snapshot_of(old.family, now)
    out: list[str] = []
    for table in TABLES:
        want = {c.name: c.rules for c in old.chains if c.table == table}
        olds = {(j.builtin, j.chain): j.positions for j in old.jumps}
        jumps = [(j, olds.get((j.builtin, j.chain), ())) for j in current.jumps
                 if j.table == table]
        out += _block(table, now.get(table), want, jumps, declare_all=False)
    return "\n".join(out) + "\n" if out else ""


# -- the host -----------------------------------------------------------------------------------


def read_tables(family: str = "ipv4", netns: str | None = None,
                variant: str | None = None) -> dict[str, TableDump]:
    t = tool(family, variant)
    with entered(netns):
        proc = run([t.save], check=False, timeout=60)
    if proc.returncode != 0:
        raise CommandError(f"{t.save} failed: {proc.stderr.strip()}",
                           hint=f"is {t.cmd} installed and is this root?")
    return parse_save(proc.stdout)


def read_snapshot(family: str = "ipv4", netns: str | None = None,
                  variant: str | None = None) -> Snapshot:
    """hostnet's chains and jumps of ``family`` as the host shows them now."""
    return snapshot_of(family, read_tables(family, netns, variant))


def check(text: str, family: str = "ipv4", netns: str | None = None,
          variant: str | None = None) -> None:
    """``iptables-restore --test --noflush``: CommandError when the tool would refuse."""
    t = tool(family, variant)
    with entered(netns):
        proc = run([t.restore, "--test", "--noflush"], input=text, check=False, timeout=120)
    if proc.returncode != 0:
        raise CommandError(f"{t.restore} --test refused the {family} rules: "
                           f"{proc.stderr.strip()}",
                           hint="nothing was changed; this is a bug if the config loaded")


def _commit(text: str, t: Tool, netns: str | None) -> None:
    check(text, t.family, netns, t.variant)
    with entered(netns):
        proc = run([t.restore, "--noflush"], input=text, check=False, timeout=120)
    if proc.returncode != 0:
        raise CommandError(f"{t.restore} --noflush failed: {proc.stderr.strip()}",
                           hint="each table commits on its own: tables before the one named "
                           "may have changed (rollback puts them back)")


def load(text: str, family: str = "ipv4", netns: str | None = None,
         variant: str | None = None) -> Snapshot:
    """Load a compiled document (see module doc); the snapshot after."""
    t = tool(family, variant)
    doc = load_document(text, read_tables(family, netns, t.variant), family)
    if doc:
        _commit(doc, t, netns)
    return read_snapshot(family, netns, t.variant)


def restore(old: Snapshot, netns: str | None = None, variant: str | None = None) -> Snapshot:
    """Put ``old`` back exactly (see module doc); the snapshot after."""
    t = tool(old.family, variant)
    doc = restore_document(read_tables(old.family, netns, t.variant), old)
    if doc:
        _commit(doc, t, netns)
    after = read_tables(old.family, netns, t.variant)
    made = [n for n in TABLES if n in after and n not in old.tables and after[n].empty]
    if made and _nf_tables(t, netns):
        for name in made:
            _drop_nft_table("ip" if old.family == "ipv4" else "ip6", name, netns)
        after = read_tables(old.family, netns, t.variant)
    return snapshot_of(old.family, after)


def _nf_tables(t: Tool, netns: str | None) -> bool:
    with entered(netns):
        return "nf_tables" in run([t.cmd, "-V"], check=False).stdout


def _drop_nft_table(family: str, name: str, netns: str | None) -> None:
    """Delete nft ``table FAMILY NAME`` only if it holds nothing but empty base chains."""
    with entered(netns):
        proc = run(["nft", "-j", "list", "table", family, name], check=False)
        if proc.returncode != 0:
            return
        objects = json.loads(proc.stdout).get("nftables", [])
        kinds = {k for o in objects for k in o if k != "metainfo"}
        if kinds <= {"table", "chain"}:
            run(["nft", "delete", "table", family, name])


def canonical(text: str, family: str = "ipv4", variant: str | None = None) -> tuple[Chain, ...]:
    """The chains ``text`` makes, as iptables-save prints them once loaded (loaded in a
    throwaway network namespace: the host is not touched). CommandError if refused."""
    t = tool(family, variant)
    proc = run(["unshare", "--net", "--", "sh", "-c", '"$0" --noflush && exec "$1"',
                t.restore, t.save], input=text, check=False, timeout=120)
    if proc.returncode != 0:
        raise CommandError(f"{t.restore} refused the {family} rules: {proc.stderr.strip()}",
                           hint="nothing was changed; this is a bug if the config loaded")
    return snapshot_of(family, parse_save(proc.stdout)).chains
