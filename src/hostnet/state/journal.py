"""The journal: one generation (a JSON file) per apply, per namespace, under the state dir.

``STATE/journal/<ns>/<id>.json`` where ``<ns>`` is ``init`` or ``netns-<name>``. A generation
holds the plan it ran, one record per step (old values; old file bytes in base64 with their
sha256) and its status. It is written whole to a temporary file, fsynced, renamed over the
old one and the directory fsynced, BEFORE the first change, and again at each status change;
so a reader only ever sees a complete generation. ``STATE/lock`` (flock) keeps two applies,
rollbacks or confirms apart.

Statuses: ``applying`` (changes under way, or the process died), ``pending`` (applied, the
revert is armed until ``deadline``), ``applied``/``confirmed`` (kept), ``failed`` (a step
failed and the changes were undone), ``rolled-back``, ``reverted`` (nobody confirmed in time),
``partial`` (rolled back except for drift).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from hostnet.errors import JournalError, LockBusy
from hostnet.state.hostio import write_atomic

DEFAULT_STATE_DIR = Path("/var/lib/hostnet")
VERSION = 1
OPEN = ("applying", "pending")  # a rollback is still owed, or may be
KEPT = ("applied", "confirmed")


def ns_dir_name(netns: str | None) -> str:
    return "init" if netns is None else "netns-" + re.sub(r"[^A-Za-z0-9_.-]", "_", netns)


@dataclass(frozen=True, slots=True)
class Generation:
    id: int
    netns: str | None
    root: str  # where the files were written
    live: bool
    created: float
    status: str
    records: tuple[dict[str, Any], ...]
    changes: tuple[dict[str, Any], ...]
    config: str = ""
    deadline: float | None = None  # revert unless confirmed by then (epoch seconds)
    reverter: str | None = None  # how the revert is armed (systemd unit or pid)
    events: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        # not dataclasses.asdict: its deep copy of every record costs more than the write
        return {"version": VERSION, "id": self.id, "netns": self.netns, "root": self.root,
                "live": self.live, "created": self.created, "status": self.status,
                "records": list(self.records), "changes": list(self.changes),
                "config": self.config, "deadline": self.deadline, "reverter": self.reverter,
                "events": list(self.events)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Generation:
        if data.get("version") != VERSION:
            raise ValueError(f"journal version {data.get('version')!r} (this hostnet reads 1)")
        return cls(
            id=int(data["id"]), netns=data.get("netns"), root=str(data["root"]),
            live=bool(data["live"]), created=float(data["created"]), status=str(data["status"]),
            records=tuple(data["records"]), changes=tuple(data["changes"]),
            config=str(data.get("config", "")),
            deadline=None if data.get("deadline") is None else float(data["deadline"]),
            reverter=data.get("reverter"), events=tuple(data.get("events", ())),
        )

    def with_status(self, status: str, event: str | None = None, **kw: Any) -> Generation:
        events = self.events + ((f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {event}",)
                                if event else ())
        return replace(self, status=status, events=events, **kw)


class Journal:
    def __init__(self, state_dir: str | os.PathLike[str], netns: str | None) -> None:
        self.state_dir = Path(state_dir)
        self.netns = netns
        self.dir = self.state_dir / "journal" / ns_dir_name(netns)

    def _path(self, gen_id: int) -> Path:
        return self.dir / f"{gen_id:06d}.json"

    def ids(self) -> list[int]:
        try:
            names = os.listdir(self.dir)
        except FileNotFoundError:
            return []
        return sorted(int(n[:-5]) for n in names if n.endswith(".json") and n[:-5].isdigit())

    def next_id(self) -> int:
        ids = self.ids()
        return (ids[-1] + 1) if ids else 1

    def load(self, gen_id: int) -> Generation:
        path = self._path(gen_id)
        try:
            return Generation.from_json(json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            known = ", ".join(str(i) for i in self.ids()) or "none"
            raise JournalError(f"no generation {gen_id} in {self.dir}",
                               hint=f"generations here: {known} (see 'hostnet history')") from None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise JournalError(f"{path}: unreadable journal: {exc}") from None

    def all(self) -> list[Generation]:
        return [self.load(i) for i in self.ids()]

    def latest(self, statuses: tuple[str, ...] | None = None) -> Generation | None:
        for gen_id in reversed(self.ids()):
            gen = self.load(gen_id)
            if statuses is None or gen.status in statuses:
                return gen
        return None

    def write(self, gen: Generation) -> None:
        """Atomically (re)write one generation; nothing partial is ever visible."""
        data = json.dumps(gen.to_json(), indent=1, sort_keys=True).encode() + b"\n"
        try:
            self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            write_atomic(self._path(gen.id), data, 0o600)
        except OSError as exc:
            raise JournalError(f"cannot write the journal in {self.dir}: {exc.strerror or exc}",
                               hint="free space in the state directory (--state-dir); "
                                    "nothing was changed") from None


@contextlib.contextmanager
def locked(state_dir: str | os.PathLike[str], wait: float = 0.0) -> Iterator[None]:
    """Hold ``STATE/lock``; wait up to ``wait`` seconds for another holder, then LockBusy."""
    base = Path(state_dir)
    try:
        base.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(base / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise JournalError(f"cannot use the state directory {base}: {exc.strerror or exc}",
                           hint="run as root, or pass --state-dir DIR") from None
    try:
        end = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= end:
                    holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
                    raise LockBusy(f"another hostnet apply/rollback holds {base / 'lock'} "
                                   f"(pid {holder})", hint="wait for it to finish") from None
                time.sleep(0.05)
        with contextlib.suppress(OSError):  # the pid is for messages only (a full disk)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)
