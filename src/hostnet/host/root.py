"""Root: typed readers over a host tree (``/``, a fixture tree, or an unpacked snapshot).

Every reader takes paths relative to the root, so the same code runs on the live host, on
test fixtures and on ``hostnet collect`` snapshots. Nothing here writes.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path

from hostnet.errors import InputError
from hostnet.model.keys import key_to_path, path_to_key
from hostnet.model.reads import NodeStat
from hostnet.model.sysctl import SysctlRead, SysctlState, first_int

#: Where a snapshot keeps the output of commands it ran (see hostnet.host.snapshot).
COMMANDS_DIR = ".hostnet/commands"
#: Snapshot metadata (JSON) written by ``hostnet collect``.
META_FILE = ".hostnet/meta.json"
#: stat(2) of the registry's ``stats`` paths (JSON: path -> NodeStat fields, or null when the
#: path did not exist), written by ``hostnet collect``: a snapshot holds no device nodes.
STAT_FILE = ".hostnet/stat.json"


class Root:
    """A host tree. ``Root("/")`` is the live host."""

    def __init__(self, path: str | os.PathLike[str] = "/") -> None:
        self.path = Path(path)
        self._proc_sys = str(self.path / "proc/sys") + "/"
        self._live = self.path == Path("/")
        self._prefetched: dict[str, str | None] = {}
        if not self.path.is_dir():
            raise InputError(
                f"{self.path}: not a directory",
                hint="pass --root a directory or a .tar.gz written by 'hostnet collect'",
            )

    def __repr__(self) -> str:
        return f"Root({str(self.path)!r})"

    @property
    def is_live(self) -> bool:
        return self.path == Path("/")

    # -- plain files -----------------------------------------------------------------------
    def file(self, rel: str) -> Path:
        rel = rel.lstrip("/")
        if self._live and rel.startswith("proc/net/"):
            # /proc/net is /proc/self/net: the namespace of the main thread. A thread that
            # entered another namespace (setns is per thread) must read thread-self.
            rel = "proc/thread-self/net/" + rel[len("proc/net/") :]
        return self.path / rel

    def exists(self, rel: str) -> bool:
        return self.file(rel).exists()

    def read_text(self, rel: str) -> str | None:
        """File contents, or None when the file does not exist. Permission errors raise."""
        try:
            with open(self.file(rel), encoding="utf-8", errors="replace") as fh:
                return fh.read()
        except FileNotFoundError:
            return None
        except NotADirectoryError:
            return None

    def lines(self, rel: str) -> Iterator[str]:
        """Stream a file line by line (for big /proc files). Missing file: nothing."""
        try:
            fh = open(  # noqa: SIM115 - closed by the with below, after the missing-file check
                self.file(rel), encoding="utf-8", errors="replace", buffering=1 << 20
            )
        except (FileNotFoundError, NotADirectoryError):
            return
        with fh:
            yield from fh

    def stat(self, rel: str) -> NodeStat | None:
        """stat(2) of ``rel`` (None: it does not exist). A snapshot answers from
        :data:`STAT_FILE` when it has one (collect stores no device nodes); a tree without
        it, and the live host, are asked directly. Other errors than a missing path raise."""
        if not self._live:
            text = self.read_text(STAT_FILE)
            if text is not None:
                return _recorded_stat(text, rel.lstrip("/"), self.path / STAT_FILE)
        try:
            st = os.stat(self.file(rel))
        except (FileNotFoundError, NotADirectoryError):
            return None
        return node_stat(st)

    def listdir(self, rel: str) -> list[str]:
        try:
            return sorted(os.listdir(self.file(rel)))
        except (FileNotFoundError, NotADirectoryError):
            return []

    # -- /proc/sys --------------------------------------------------------------------------
    def sysctl(self, key: str) -> SysctlRead:
        path = self._proc_sys + key_to_path(key)
        try:
            with open(path, encoding="utf-8", errors="replace") as fh:
                text = fh.read()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return SysctlRead(key, SysctlState.MISSING)
        except PermissionError:
            return SysctlRead(key, SysctlState.DENIED)
        except OSError as exc:  # EIO/EINVAL from odd entries such as route/flush
            if exc.errno in (errno.EIO, errno.EINVAL, errno.EPERM, errno.EACCES):
                return SysctlRead(key, SysctlState.DENIED)
            raise
        return SysctlRead(key, SysctlState.OK, text.rstrip("\n"))

    def sysctl_value(self, key: str) -> str | None:
        read = self.sysctl(key)
        return read.value if read.ok else None

    def sysctl_int(self, key: str) -> int | None:
        return first_int(self.sysctl_value(key))

    def sysctl_exists(self, key: str) -> bool:
        return os.path.isfile(self._proc_sys + key_to_path(key))

    def sysctl_writable(self, key: str) -> bool | None:
        """Whether the key's mode has any write bit (None when missing)."""
        try:
            st = os.stat(self._proc_sys + key_to_path(key))
        except OSError:
            return None
        return bool(st.st_mode & 0o222)

    def sysctl_keys(self, prefix: str = "") -> list[str]:
        """Every key under /proc/sys (optionally below a dotted prefix), sorted."""
        base = self.file("proc/sys")
        start = base / key_to_path(prefix) if prefix else base
        out: list[str] = []
        for dirpath, _dirs, files in os.walk(start):
            rel = os.path.relpath(dirpath, base)
            for name in files:
                out.append(path_to_key(name if rel == "." else f"{rel}/{name}"))
        out.sort()
        return out

    # -- kernel and machine -------------------------------------------------------------------
    @cached_property
    def osrelease(self) -> str:
        text = self.read_text("proc/sys/kernel/osrelease")
        return text.strip() if text else ""

    def module_params(self, module: str) -> dict[str, str | None]:
        """/sys/module/MODULE/parameters: value, or None when unreadable (mode 0200/0600)."""
        base = f"sys/module/{module}/parameters"
        out: dict[str, str | None] = {}
        for name in self.listdir(base):
            try:
                text = self.read_text(f"{base}/{name}")
            except PermissionError:
                out[name] = None
                continue
            out[name] = None if text is None else text.strip()
        return out

    def net_interfaces(self) -> list[str]:
        return self.listdir("sys/class/net")

    def interface_kind(self, name: str) -> str:
        """'bridge', 'tun', 'veth', 'loopback', 'ether' ... from sysfs (best effort)."""
        base = f"sys/class/net/{name}"
        if self.exists(f"{base}/bridge"):
            return "bridge"
        if self.exists(f"{base}/tun_flags"):
            return "tun"
        uevent = self.read_text(f"{base}/uevent") or ""
        for line in uevent.splitlines():
            if line.startswith("DEVTYPE="):
                return line.split("=", 1)[1].strip()
        if name == "lo":
            return "loopback"
        return "ether"

    # -- command output (live: run it; snapshot: what collect stored) --------------------------
    def command_output(self, name: str, argv: list[str], timeout: float = 10.0) -> str | None:
        """Output of a read-only command. None when unavailable (missing binary, no data)."""
        if not self.is_live:
            return self.read_text(f"{COMMANDS_DIR}/{name}")
        if name in self._prefetched:
            return self._prefetched.pop(name)
        from hostnet.host.commands import run_optional

        return run_optional(argv, timeout=timeout)

    def prefetch(self, commands: list[tuple[str, list[str]]], timeout: float = 10.0) -> None:
        """Run these commands side by side now; command_output(name) then answers from the
        result once (live host only; a snapshot already holds the outputs)."""
        if not self.is_live:
            return
        from hostnet.host.commands import run_many_optional

        outputs = run_many_optional([argv for _, argv in commands], timeout=timeout)
        self._prefetched.update(zip((n for n, _ in commands), outputs, strict=True))


def node_stat(st: os.stat_result) -> NodeStat:
    """The NodeStat of an os.stat() answer (device numbers only for device nodes)."""
    import stat

    dev = stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)
    return NodeStat(st.st_mode, st.st_uid, st.st_gid, os.major(st.st_rdev) if dev else 0,
                    os.minor(st.st_rdev) if dev else 0)


def _recorded_stat(text: str, rel: str, where: Path) -> NodeStat | None:
    import json

    try:
        doc = json.loads(text)
        entry = doc.get(rel) if isinstance(doc, dict) else None
        if entry is None:
            return None
        return NodeStat(*(int(entry[k]) for k in ("mode", "uid", "gid", "major", "minor")))
    except (ValueError, TypeError, KeyError, AttributeError):
        raise InputError(f"{where}: not the stat record 'hostnet collect' writes; the snapshot "
                         "is damaged") from None
