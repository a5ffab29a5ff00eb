"""Roll a generation back (three-way), confirm one, and the unconfirmed-revert entry point."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hostnet.errors import JournalError
from hostnet.state.hostio import HostIO, norm
from hostnet.state.ipt_step import LoadIptables  # noqa: F401  (registers iptables-nat)
from hostnet.state.journal import OPEN, Generation, Journal, locked
from hostnet.state.nat_step import LoadNftTable  # noqa: F401  (registers nft-table, nat-link)
from hostnet.state.steps import Undone
from hostnet.state.transaction import recover, settle, undo_all
from hostnet.state.vm_step import VmLinkStep  # noqa: F401  (registers the vm-link kind)

DONE = ("rolled-back", "reverted", "failed")


@dataclass(frozen=True, slots=True)
class RolledBack:
    generation: Generation
    undone: tuple[Undone, ...]


def pick(journal: Journal, gen_id: int | None) -> Generation:
    if gen_id is not None:
        return journal.load(gen_id)
    for candidate in reversed(journal.ids()):
        gen = journal.load(candidate)
        if gen.status not in DONE:
            return gen
    raise JournalError(f"nothing to roll back in {journal.dir}",
                       hint="'hostnet history' lists the generations")


def preview(gen: Generation, io: HostIO) -> list[str]:
    """What a rollback of ``gen`` would do, one line per record (reads only)."""
    out = []
    for rec in gen.records:
        if rec.get("kind") == "sysctl":
            now = io.read_sysctl(str(rec["key"]))
            if norm(now) == norm(rec.get("old")):
                state = "already back"
            elif norm(now) == norm(str(rec["new"])):
                state = f"{now} -> {rec.get('old')}"
            else:
                state = f"DRIFT: now {now}, hostnet wrote {rec['new']}, was {rec.get('old')}"
            out.append(f"{rec['key']}: {state}")
        elif rec.get("kind") == "file":
            out.append(f"{rec['path']}: restore the old file" if rec.get("old_b64") is not None
                       else f"{rec['path']}: remove (hostnet created it)")
        else:
            out.append(f"{rec.get('text') or rec.get('kind')}: undo")
    return out


def rollback(journal: Journal, io: HostIO, gen_id: int | None, *, force: bool,
             reason: str = "rolled back") -> RolledBack:
    with locked(journal.state_dir, wait=30.0):
        gen = pick(journal, gen_id)
        return _rollback(journal, io, gen, force, reason)


def _rollback(journal: Journal, io: HostIO, gen: Generation, force: bool,
              reason: str) -> RolledBack:
    undone = undo_all(gen, io, force)
    status = settle(gen, undone)
    if reason.startswith("reverted") and status == "rolled-back":
        status = "reverted"
    journal.write(gen.with_status(status, reason + (" (--force)" if force else "")))
    return RolledBack(journal.load(gen.id), tuple(undone))


def unconfirmed(journal: Journal, io: HostIO, gen_id: int | None,
                at: float | None = None) -> list[RolledBack]:
    """The revert that confirm prevents: wait until ``at``, then roll back ``gen_id`` (or, at
    boot, every open generation) unless it was confirmed meanwhile."""
    if at is not None:
        while (left := at - time.time()) > 0:
            time.sleep(min(left, 5.0))
    out = []
    with locked(journal.state_dir, wait=600.0):
        if gen_id is None:
            out += [RolledBack(g, ()) for g in recover(journal, io)]
        targets = [journal.load(gen_id)] if gen_id is not None else list(
            reversed(journal.all()))
        for gen in targets:
            if gen.status in OPEN:
                out.append(_rollback(journal, io, gen, False,
                                     "reverted: not confirmed before the deadline"))
    return out


def confirm(journal: Journal) -> Generation:
    with locked(journal.state_dir, wait=30.0):
        gen = journal.latest(("pending", "applying"))
        if gen is None:
            last = journal.latest()
            what = (f"generation {last.id} is {last.status}" if last else "no generations")
            raise JournalError(f"nothing waits for confirmation in {journal.dir} ({what})",
                               hint="'hostnet history' shows what happened")
        if gen.status == "applying":
            raise JournalError(f"generation {gen.id} is still being applied (or its apply "
                               "died): nothing to confirm yet")
        if gen.deadline is not None and time.time() > gen.deadline:
            raise JournalError(f"generation {gen.id}: the confirmation deadline has passed; "
                               "the revert is under way")
        gen = gen.with_status("confirmed", "confirmed")
        journal.write(gen)
        return gen


def history(journal: Journal) -> list[dict[str, Any]]:
    out = []
    for gen in journal.all():
        out.append({
            "id": gen.id, "netns": gen.netns, "status": gen.status, "created": gen.created,
            "deadline": gen.deadline, "root": gen.root, "live": gen.live, "config": gen.config,
            "changes": list(gen.changes), "events": list(gen.events),
        })
    return out


def state_dir_of(option: str | None) -> Path:
    from hostnet.state.journal import DEFAULT_STATE_DIR

    return Path(option) if option else DEFAULT_STATE_DIR
