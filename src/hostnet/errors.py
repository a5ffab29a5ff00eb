"""Typed exceptions of the library. The CLI turns them into messages and exit codes."""

from __future__ import annotations


class HostnetError(Exception):
    """Base class. ``hint`` tells the user what to do about it."""

    exit_code = 2

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class UsageError(HostnetError):
    """The command line asked for something impossible."""


class InputError(HostnetError):
    """A file, snapshot or stream could not be read or is not what it should be."""


class NamespaceError(HostnetError):
    """A network namespace could not be entered or does not exist."""


class PermissionDenied(HostnetError):
    """The operation needs privileges the process does not have."""


class CommandError(HostnetError):
    """An external command (nft, conntrack, ip ...) failed or is missing."""


class SizingError(HostnetError):
    """Sizing inputs that are impossible or whose table cannot fit in memory."""


class ConfigError(HostnetError):
    """hostnet.toml is malformed, or asks for what this kernel cannot do. Nothing was changed.

    ``problems`` holds one line per mistake (``file:line: path: what was expected``)."""

    def __init__(self, message: str, problems: list[str] | None = None, *,
                 hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.problems = list(problems or [])


class PlanError(HostnetError):
    """The plan cannot be carried out safely (e.g. a file hostnet does not own)."""


class LockBusy(HostnetError):
    """Another hostnet apply, rollback or confirm holds the state directory's lock."""


class JournalError(HostnetError):
    """The journal under the state directory is missing, unreadable or not what was asked."""


class StepFailed(HostnetError):
    """One step of a transaction could not be carried out (the message names it)."""

    exit_code = 1


class ApplyFailed(HostnetError):
    """A step failed; everything already changed was put back (``undone`` says what)."""

    exit_code = 1
