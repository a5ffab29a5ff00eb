"""Plan steps: the protocol every kind of change follows, and the first two kinds.

A step is a frozen dataclass made by the (pure) planner. Its life in a transaction:

1. ``change()``: how ``plan`` shows it: a JSON object with at least ``kind``, ``reason`` and
   ``effect`` (``live``, ``boot`` or ``module-load``); ``text()`` is the one-line form.
2. ``record(io)``: what it journals BEFORE anything runs: everything needed to undo it (old
   values, old file bytes in base64 and their sha256) and to tell afterwards whether it ran
   (the value or digest it will leave). Read from the host at journal time.
3. ``run(io)``: the change itself, through :class:`~hostnet.state.hostio.HostIO` only.
4. ``verify(io)``: read back; None when the host shows what was meant, else what differs.
5. ``undo(record, io, force)`` (a classmethod, so rollback needs only the journal): three-way.
   The host still shows what the step left: put the old state back. It shows the old state:
   nothing to do. It shows something else: someone changed it since, so it is drift, reported
   and left alone unless ``force``.

Later kinds (``LoadNftTable``, link steps for VMs) subclass :class:`Step`, set ``kind`` and
``order`` and register with :func:`register`; rollback finds them by ``kind`` in the journal.
"""

from __future__ import annotations

import base64
import enum
import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from hostnet.state.hostio import HostIO, norm

EFFECTS = {
    "live": "live now",
    "boot": "file only: on next boot",
    "module-load": "file only: on next module load",
}


class Outcome(enum.Enum):
    RESTORED = "restored"
    UNCHANGED = "unchanged"  # the host already shows the old state
    DRIFT = "drift"  # changed by someone else since: left alone
    FORCED = "forced"  # drift overwritten (--force)


@dataclass(frozen=True, slots=True)
class Undone:
    outcome: Outcome
    target: str
    message: str


class Step(ABC):
    kind: ClassVar[str]
    #: Steps run in ascending order (ip_forward 0, other sysctls 10, files 50, nft 60...).
    order: ClassVar[int] = 50
    reason: str

    @abstractmethod
    def change(self) -> dict[str, Any]: ...

    @abstractmethod
    def text(self) -> str: ...

    @abstractmethod
    def record(self, io: HostIO) -> dict[str, Any]: ...

    @abstractmethod
    def run(self, io: HostIO) -> None: ...

    @abstractmethod
    def verify(self, io: HostIO) -> str | None: ...

    @classmethod
    @abstractmethod
    def undo(cls, record: dict[str, Any], io: HostIO, force: bool) -> list[Undone]: ...

    def sort_key(self) -> tuple[int, str]:
        return (self.order, self.text())


KINDS: dict[str, type[Step]] = {}
S = TypeVar("S", bound=type[Step])


def register(cls: S) -> S:
    KINDS[cls.kind] = cls
    return cls


def undo_record(record: dict[str, Any], io: HostIO, force: bool) -> list[Undone]:
    cls = KINDS.get(str(record.get("kind")))
    if cls is None:
        return [Undone(Outcome.DRIFT, str(record.get("kind")),
                       "unknown step kind in the journal (newer hostnet?): left alone")]
    return cls.undo(record, io, force)


def sha256(data: bytes | None) -> str | None:
    return None if data is None else hashlib.sha256(data).hexdigest()


# -- sysctl -------------------------------------------------------------------------------------


@register
@dataclass(frozen=True, slots=True)
class SetSysctl(Step):
    """Write one live value in ``netns`` (None: the namespace hostnet runs in).

    ``side_prefixes``: subtrees the kernel itself may rewrite when this key is written
    (writing ip_forward sets forwarding on every interface and flips all.accept_redirects);
    every key below them is journaled too, and undo restores those its own write changed.
    """

    kind: ClassVar[str] = "sysctl"
    netns: str | None
    key: str
    old: str | None
    new: str
    reason: str
    effect: str = "live"
    side_prefixes: tuple[str, ...] = field(default=())
    first: bool = False  # written before every other step (ip_forward)

    @property
    def order(self) -> int:  # type: ignore[override]
        return 0 if self.first else 10

    def change(self) -> dict[str, Any]:
        return {"kind": self.kind, "netns": self.netns, "key": self.key, "old": self.old,
                "new": self.new, "reason": self.reason, "effect": self.effect}

    def text(self) -> str:
        return f"{self.key}: {self.old} -> {self.new}"

    def record(self, io: HostIO) -> dict[str, Any]:
        side = {k: io.read_sysctl(k) for p in self.side_prefixes for k in io.sysctl_keys(p)
                if k != self.key}
        return {"kind": self.kind, "netns": self.netns, "key": self.key,
                "old": io.read_sysctl(self.key), "new": self.new, "side": side}

    def run(self, io: HostIO) -> None:
        io.write_sysctl(self.key, self.new)

    def verify(self, io: HostIO) -> str | None:
        now = io.read_sysctl(self.key)
        if norm(now) != norm(self.new):
            return f"{self.key}: wrote {self.new!r}, the kernel shows {now!r}"
        return None

    @classmethod
    def undo(cls, record: dict[str, Any], io: HostIO, force: bool) -> list[Undone]:
        key, old, new = str(record["key"]), record.get("old"), str(record["new"])
        now = io.read_sysctl(key)
        if old is None:
            return [Undone(Outcome.UNCHANGED, key, "had no value before: nothing to restore")]
        if norm(now) == norm(old):
            return [Undone(Outcome.UNCHANGED, key, f"already {old}")]
        if norm(now) != norm(new) and not force:
            return [Undone(Outcome.DRIFT, key,
                           f"is {now} (hostnet wrote {new}, was {old}): changed since, left alone"
                           " (--force restores it)")]
        side: dict[str, str | None] = dict(record.get("side") or {})
        before = {k: io.read_sysctl(k) for k in side}
        io.write_sysctl(key, str(old))
        out = [Undone(Outcome.RESTORED if norm(now) == norm(new) else Outcome.FORCED, key,
                      f"{norm(now)} -> {norm(old)}")]
        for side_key, side_old in side.items():
            after = io.read_sysctl(side_key)
            # only what our write just changed, and only if that is not the old value
            if side_old is None or after == before[side_key] or norm(after) == norm(side_old):
                continue
            io.write_sysctl(side_key, side_old)
            out.append(Undone(Outcome.RESTORED, side_key,
                              f"{after} -> {side_old} (rewritten by the kernel with {key})"))
        return out


# -- owned files --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One key of an owned file: what the file said before and says after."""

    key: str
    old: str | None
    new: str
    reason: str


@register
@dataclass(frozen=True, slots=True)
class WriteOwnedFile(Step):
    """Replace a file hostnet owns (its header proves it) with ``text``."""

    kind: ClassVar[str] = "file"
    order: ClassVar[int] = 50
    path: str
    old_digest: str | None
    content: str
    reason: str
    effect: str = "boot"
    entries: tuple[FileEntry, ...] = ()

    @property
    def new_digest(self) -> str:
        return hashlib.sha256(self.content.encode()).hexdigest()

    def change(self) -> dict[str, Any]:
        return {"kind": self.kind, "path": self.path, "old_digest": self.old_digest,
                "new_digest": self.new_digest, "reason": self.reason, "effect": self.effect,
                "entries": [{"key": e.key, "old": e.old, "new": e.new, "reason": e.reason}
                            for e in self.entries]}

    def text(self) -> str:
        return f"{self.path}: {'rewrite' if self.old_digest else 'create'}"

    def record(self, io: HostIO) -> dict[str, Any]:
        old = io.read_file(self.path)
        return {"kind": self.kind, "path": self.path, "root": str(io.files_root),
                "old_b64": None if old is None else base64.b64encode(old).decode(),
                "old_sha256": sha256(old), "new_sha256": self.new_digest}

    def run(self, io: HostIO) -> None:
        io.write_file(self.path, self.content.encode())

    def verify(self, io: HostIO) -> str | None:
        if sha256(io.read_file(self.path)) != self.new_digest:
            return f"{self.path}: the file on disk is not what was written"
        return None

    @classmethod
    def undo(cls, record: dict[str, Any], io: HostIO, force: bool) -> list[Undone]:
        path = str(record["path"])
        now = sha256(io.read_file(path))
        old_b64 = record.get("old_b64")
        old = None if old_b64 is None else base64.b64decode(old_b64)
        if sha256(old) != record.get("old_sha256"):
            return [Undone(Outcome.DRIFT, path, "journal copy of the old file is damaged")]
        if now == record.get("old_sha256"):
            return [Undone(Outcome.UNCHANGED, path, "already as before")]
        if now != record.get("new_sha256") and not force:
            return [Undone(Outcome.DRIFT, path, "edited since hostnet wrote it: left alone "
                           "(--force puts the old file back)")]
        io.write_file(path, old)
        return [Undone(Outcome.RESTORED if now == record.get("new_sha256") else Outcome.FORCED,
                       path, "removed (did not exist before)" if old is None
                       else "old contents put back")]
