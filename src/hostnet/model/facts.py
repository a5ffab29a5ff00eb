"""What the planner knows about the host: the values and files it read (typed, no I/O).

hostnet.observe.plan_facts reads them; hostnet.state plans and writes from them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

#: The files hostnet owns (their text is hostnet.state.files; Facts.owned_files holds what
#: they contain now, by these paths).
SYSCTL_FILE = "/etc/sysctl.d/90-hostnet.conf"
MODPROBE_FILE = "/etc/modprobe.d/hostnet.conf"


@dataclass(frozen=True, slots=True)
class KeyFact:
    key: str
    value: str | None
    state: str  # ok, missing, denied
    writable: bool | None = None


@dataclass(frozen=True, slots=True)
class LaterSetting:
    """A sysctl.d line read after hostnet's file at boot (so it wins)."""

    path: str
    line: int
    key: str
    value: str


@dataclass(frozen=True, slots=True)
class Facts:
    netns: str | None = None
    live: bool = True  # live values will be written
    files: bool = True  # owned files will be written
    kernel_known: bool = True  # values and keys below come from a real kernel (or snapshot)
    values: Mapping[str, KeyFact] = field(default_factory=dict)
    interfaces: tuple[str, ...] = ()
    mem_bytes: int = 0
    cpus: int = 1
    kernel: tuple[int, int, int] = (6, 0, 0)
    conntrack_module: str = "unknown"  # builtin, module, not-loaded, unknown
    owned_files: Mapping[str, bytes | None] = field(default_factory=dict)
    later: tuple[LaterSetting, ...] = ()
    listening: tuple[tuple[str, int], ...] = ()  # (proto, port) not on loopback
    v6_any: tuple[str, ...] = ()  # tcp/22 ... bound to ::
    hosts_v6_loopback: bool = False  # /etc/hosts names ::1
    slaac: tuple[str, ...] = ()  # interfaces taking router advertisements
    source: str = "hostnet.toml"  # the config file, for file headers

    def kernel_text(self) -> str:
        return "Linux " + ".".join(str(n) for n in self.kernel)

    def value(self, key: str) -> str | None:
        fact = self.values.get(key)
        return fact.value if fact is not None else None

    def fact(self, key: str) -> KeyFact:
        return self.values.get(key) or KeyFact(key, None, "missing", None)
