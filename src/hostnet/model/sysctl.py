"""One sysctl read: the value, or why there is none."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class SysctlState(enum.Enum):
    OK = "ok"
    MISSING = "missing"  # no such key on this kernel (or not in this snapshot)
    DENIED = "denied"  # exists, but this process may not read it (e.g. write-only, 0600)


@dataclass(frozen=True, slots=True)
class SysctlRead:
    key: str
    state: SysctlState
    value: str | None = None

    @property
    def ok(self) -> bool:
        return self.state is SysctlState.OK


def first_int(value: str | None) -> int | None:
    """The first whitespace-separated integer of a sysctl value, or None."""
    if value is None:
        return None
    try:
        return int(value.split()[0])
    except (ValueError, IndexError):
        return None
