"""What a doctor check sees: a Root to read, the chosen role, and a place to record facts.

A check is a function ``(ctx: Context) -> Iterable[Finding]``; each check module lists its
checks in a module-level ``CHECKS`` tuple and defines its rules as module-level ``Rule``s.
Checks read only through ``ctx`` (never the live host directly) so that snapshots and fixture
trees give the same answers as the machine they came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hostnet.host.root import Root, first_int


@dataclass
class Context:
    root: Root
    role: str = "server"
    netns: str | None = None
    #: Where state between runs lives (previous counter readings); None: keep nothing.
    state_dir: Path | None = None
    #: Seconds to sample counters for rates (None: use the previous run's reading if any).
    interval: float | None = None
    #: Include the table composition (walks the conntrack table; slower).
    composition: bool = True
    #: Values that drove decisions, reported in JSON output as "facts".
    facts: dict[str, Any] = field(default_factory=dict)
    #: Things the checks could not read (permission, missing files), reported to the user.
    unreadable: list[str] = field(default_factory=list)
    _sysctl_cache: dict[str, str | None] = field(default_factory=dict, repr=False)

    def sysctl(self, key: str) -> str | None:
        """Value of a key, cached; None when missing or unreadable (recorded as unreadable)."""
        if key in self._sysctl_cache:
            return self._sysctl_cache[key]
        read = self.root.sysctl(key)
        value = read.value if read.ok else None
        if read.state.value == "denied":
            self.unreadable.append(f"sysctl {key} (permission denied)")
        self._sysctl_cache[key] = value
        return value

    def sysctl_int(self, key: str) -> int | None:
        return first_int(self.sysctl(key))

    def fact(self, name: str, value: Any) -> Any:
        self.facts[name] = value
        return value
