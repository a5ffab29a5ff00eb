"""Run a Plan as one transaction: journal, arm the revert, change, read back, undo on failure.

1. Under the state directory's lock, a generation left ``applying`` by a process that died is
   rolled back first (so every run starts from a consistent host).
2. The journal of every value and file the plan will replace is written and fsynced.
3. With ``confirm_within``, the revert is armed (systemd timer or detached reverter).
4. Steps run in order; then every one is read back.
5. Any failure (a step, the read-back, an exception) puts back what had changed and names the
   step. ``HOSTNET_TEST_FAIL_AT_STEP=N`` / ``HOSTNET_TEST_KILL_AT_STEP=N`` (tests only) fail or
   SIGKILL the process right after step N's write (0: after the journal, before any write).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hostnet.errors import ApplyFailed, HostnetError, PlanError, StepFailed
from hostnet.host.root import Root
from hostnet.state.hostio import HostIO
from hostnet.state.journal import Generation, Journal, locked
from hostnet.state.steps import Outcome, Step, Undone, undo_record

if TYPE_CHECKING:  # the planner pulls in the schema library; rollback does not need it
    from hostnet.state.plan import Plan


@dataclass(frozen=True, slots=True)
class Applied:
    generation: Generation | None
    recovered: tuple[Generation, ...] = ()
    plan: Plan | None = None


def _hook(n: int) -> None:
    if os.environ.get("HOSTNET_TEST_KILL_AT_STEP") == str(n):
        os.kill(os.getpid(), signal.SIGKILL)
    if os.environ.get("HOSTNET_TEST_FAIL_AT_STEP") == str(n):
        raise StepFailed(f"failure injected by HOSTNET_TEST_FAIL_AT_STEP={n}")


def undo_all(gen: Generation, io: HostIO, force: bool) -> list[Undone]:
    """Undo every record of ``gen``, last first. A step that cannot be undone is reported."""
    out: list[Undone] = []
    for record in reversed(gen.records):
        try:
            out += undo_record(record, io, force)
        except HostnetError as exc:
            out.append(Undone(Outcome.DRIFT, str(record.get("key") or record.get("path")
                                                 or record.get("text") or record.get("kind")),
                              f"could not be restored: {exc.message}"))
    return out


def settle(gen: Generation, undone: list[Undone]) -> str:
    return "partial" if any(u.outcome is Outcome.DRIFT for u in undone) else "rolled-back"


def recover(journal: Journal, io: HostIO) -> list[Generation]:
    """Roll back a generation left ``applying`` by a process that died (we hold the lock).

    Only the newest can be: every run under the lock recovers it before starting another."""
    gen = journal.latest()
    if gen is None or gen.status != "applying":
        return []
    undone = undo_all(gen, io, force=False)
    gen = gen.with_status(settle(gen, undone), "interrupted apply rolled back by the next "
                          "hostnet run")
    journal.write(gen)
    return [gen]


def apply(make: Callable[[], Plan], io: HostIO, *, state_dir: Path, netns: str | None,
          config: str, approve: Callable[[Plan, list[Generation]], bool] = lambda p, r: True,
          confirm_within: float | None = None, root_arg: str | None = None,
          host: Root | None = None) -> Applied:
    """Under the lock: recover, plan (``make``, so the plan sees the recovered host), ask
    ``approve``, then run the transaction."""
    journal = Journal(state_dir, netns)
    with locked(state_dir):
        recovered = recover(journal, io)
        waiting = journal.latest()  # a pending generation blocks applies: it is the newest
        if waiting is not None and waiting.status == "pending":
            raise PlanError(f"generation {waiting.id} is waiting for confirmation",
                            hint="run 'hostnet confirm' to keep it or 'hostnet rollback' first")
        plan = make()
        if plan.empty or not approve(plan, recovered):
            return Applied(None, tuple(recovered), plan)
        steps: list[Step] = list(plan.steps)
        deadline = time.time() + confirm_within if confirm_within else None
        gen = Generation(
            id=journal.next_id(), netns=netns, root=str(io.files_root), live=io.live,
            created=time.time(), status="applying",
            records=tuple(step.record(io) for step in steps),
            changes=tuple(step.change() for step in steps), config=config, deadline=deadline)
        journal.write(gen)  # before the first change
        if confirm_within:
            from hostnet.state.confirm import arm

            how = arm(gen.id, deadline or 0.0, confirm_within, state_dir=state_dir, netns=netns,
                      root=root_arg, host=host or Root("/"))
            gen = gen.with_status("applying", f"revert armed: {how}", reverter=how)
            journal.write(gen)
        hup = _ignore_hangup()  # a dropped SSH session must not stop it half-way
        try:
            return _run(journal, gen, steps, io, confirm_within, recovered, plan)
        finally:
            if hup is not None:
                signal.signal(signal.SIGHUP, hup)


def _ignore_hangup() -> Any:
    try:
        return signal.signal(signal.SIGHUP, signal.SIG_IGN)
    except ValueError:  # not the main thread
        return None


def _run(journal: Journal, gen: Generation, steps: list[Step], io: HostIO,
         confirm_within: float | None, recovered: list[Generation], plan: Plan) -> Applied:
    _hook(0)
    index = 0
    current: Step | None = None
    try:
        for index, step in enumerate(steps, 1):
            current = step
            step.run(io)
            _hook(index)
        current = None
        problems = [p for p in (s.verify(io) for s in steps) if p]
        if problems:
            raise StepFailed("read-back: " + "; ".join(problems))
        final = (gen.with_status("pending", "applied; waiting for confirmation")
                 if confirm_within else gen.with_status("applied", "applied"))
        journal.write(final)  # a full disk here too undoes the changes
    except BaseException as exc:
        undone = undo_all(gen, io, force=True)
        what = f"step {index} of {len(steps)} ({current.text()})" if current else (
            "the read-back")
        why = exc.message if isinstance(exc, HostnetError) else f"{type(exc).__name__}: {exc}"
        status = "failed" if settle(gen, undone) == "rolled-back" else "partial"
        with contextlib.suppress(HostnetError):  # on a full disk it stays "applying"
            journal.write(gen.with_status(status, f"{what} failed: {why}; changes undone"))
        if not isinstance(exc, Exception):
            raise
        restored = sum(1 for u in undone if u.outcome in (Outcome.RESTORED, Outcome.FORCED))
        left = [f"{u.target}: {u.message}" for u in undone if u.outcome is Outcome.DRIFT]
        raise ApplyFailed(
            f"{what} failed: {why}. {restored} value(s)/file(s) already changed were put "
            "back" + (f"; NOT restored: {'; '.join(left)}" if left else "; nothing is left "
                      "half-applied"),
            hint=f"journal: generation {gen.id} in {journal.dir}") from None
    return Applied(final, tuple(recovered), plan)
