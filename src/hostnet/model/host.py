"""HostState: everything observed about a host, one NetnsState per network namespace."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from hostnet.model.conntrack import Composition, ConntrackStats, Reading
from hostnet.model.firewall import Ruleset
from hostnet.model.net import Listener, Network
from hostnet.model.sysctl import SysctlRead, first_int

if TYPE_CHECKING:  # annotations only: the log types load with the log scan
    from hostnet.model.kernlog import LogSummary
    from hostnet.model.vm import VmCheckInput

INITIAL = "initial"


class NotObserved(KeyError):
    """A check asked for a sysctl key that observe was not told to read (a programming
    error: declare the key in hostnet.observe.registry)."""


@dataclass(frozen=True, slots=True)
class KernelInfo:
    release: str
    version: tuple[int, int, int]
    mem_total: int | None
    cpus: int
    #: When the machine booted (btime of /proc/stat, epoch seconds): dates ``[secs]`` log
    #: stamps.
    boot_time: float | None = None
    #: When the host was observed (epoch seconds; a snapshot: when it was collected). Dates
    #: syslog stamps, which carry no year.
    observed_at: float | None = None


@dataclass(frozen=True, slots=True)
class ConntrackView:
    """One namespace's conntrack table: size, limit, counters and what rates they allow."""

    count: int | None
    max: int | None
    buckets: int | None
    stats: ConntrackStats | None = None
    stats_source: str = ""
    #: Rates per second and over how long, from interval sampling or the previous reading.
    rates: dict[str, float] | None = None
    rate_seconds: float | None = None
    rate_source: str | None = None
    #: The reading kept from an earlier run (state dir), if any.
    previous: Reading | None = None
    #: The reading to keep for the next run (the caller stores it through state/).
    now: Reading | None = None
    peak: int = 0
    #: nf_conntrack_max is read-only here: a child namespace sees the global value.
    child_namespace: bool = False
    #: Size of one entry from /proc/slabinfo (root only), bytes.
    entry_bytes: int | None = None
    previous_age_s: float | None = None

    @property
    def usage(self) -> float | None:
        if self.count is None or not self.max:
            return None
        return self.count / self.max

    def counter(self, name: str) -> int | None:
        return None if self.stats is None else self.stats.get(name)

    def rate(self, name: str) -> float | None:
        if self.rates is None:
            return None
        if name in self.rates:
            return self.rates[name]
        alias = {"chaintoolong": "chainlength", "clash_resolve": "clashres"}.get(name)
        return self.rates.get(alias) if alias else None


@dataclass(frozen=True)
class NetnsState:
    """One network namespace as observed (the one we ran in when ``name`` is None)."""

    name: str | None
    sysctl: dict[str, SysctlRead]
    #: Interfaces listed under /proc/sys/net/<family>/conf (all/default excluded).
    conf_interfaces: dict[str, tuple[str, ...]]
    network: Network
    listeners: tuple[Listener, ...]
    ruleset: Ruleset
    conntrack: ConntrackView | None
    composition: Composition | None = None
    ipv6: bool = True
    inode: int | None = None
    #: When the namespace was created (mtime of its /run/netns file), epoch seconds.
    created: float | None = None
    #: Where this came from when it is a snapshot of a named namespace (meta.json).
    snapshot_of: str | None = None
    #: Facts for the report that did not fit a field (kept small and typed by the reader).
    unreadable: tuple[str, ...] = ()
    readable: bool = True
    #: The [[vm]] entries, /dev/net/tun and this namespace's links, when a hostnet.toml with
    #: VMs was given or found (hostnet.observe.vm); None otherwise.
    vm: VmCheckInput | None = None

    @property
    def label(self) -> str:
        return self.name or self.snapshot_of or INITIAL

    @property
    def netns(self) -> str | None:
        """The namespace's name when it is not the initial one (live or snapshot)."""
        return self.name or self.snapshot_of

    @property
    def is_child(self) -> bool:
        return self.name is not None or self.snapshot_of is not None

    def read(self, key: str) -> SysctlRead:
        got = self.sysctl.get(key)
        if got is None:
            raise NotObserved(key)
        return got

    def value(self, key: str) -> str | None:
        r = self.read(key)
        return r.value if r.ok else None

    def integer(self, key: str) -> int | None:
        return first_int(self.value(key))

    def first_int(self, *keys: str) -> int | None:
        for key in keys:
            v = self.integer(key)
            if v is not None:
                return v
        return None


@dataclass(frozen=True)
class HostState:
    kernel: KernelInfo
    namespaces: tuple[NetnsState, ...]
    live: bool
    #: The kernel log summary, when the caller asked for it (global, not per namespace).
    log: LogSummary | None = None
    #: Named namespaces by inode (to attribute "table full in netns N" log lines).
    namespace_names: dict[int, str] = field(default_factory=dict)
    #: Namespaces that could not be entered (name, why).
    skipped: tuple[tuple[str, str], ...] = ()
    unreadable: tuple[str, ...] = ()
