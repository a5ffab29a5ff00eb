"""The shape of hostnet's read registry (the data lives in hostnet.observe.registry)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Command:
    """A read-only command; ``name`` is where a snapshot keeps its output."""

    name: str
    argv: tuple[str, ...]
    #: Snapshot names older hostnet versions used for the same data (read, never written).
    legacy: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ReadSet:
    """Everything hostnet may read, as ``hostnet collect`` stores it."""

    #: Files that follow the network namespace (/proc/net/...), relative to the root.
    netns_files: tuple[str, ...]
    #: Files about the machine.
    host_files: tuple[str, ...]
    #: Directories stored whole.
    trees: tuple[str, ...]
    #: Commands run inside the namespace.
    netns_commands: tuple[Command, ...]
    #: Commands about the whole host.
    host_commands: tuple[Command, ...]
    #: Kernel log files under /var/log (glob patterns).
    log_globs: tuple[str, ...]
    #: The conntrack table (big; optional).
    table: str
    #: Files named after the running kernel (``{release}`` is its osrelease).
    release_files: tuple[str, ...] = ()
    #: Glob patterns of small files (module states).
    globs: tuple[str, ...] = ()
    #: Paths whose stat(2) is read (device nodes: a snapshot holds no nodes, only their
    #: mode, owner and device numbers, see :class:`NodeStat`).
    stats: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class NodeStat:
    """What stat(2) says of a path: the full st_mode, owner, and device numbers."""

    mode: int
    uid: int
    gid: int
    major: int = 0
    minor: int = 0
