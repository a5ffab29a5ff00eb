"""``hostnet collect`` snapshots: everything hostnet reads, in one .tar.gz.

The archive mirrors the host's paths (proc/sys/..., etc/sysctl.d/...), keeps file modes (so
read-only keys stay read-only) and stores command output under .hostnet/commands/. Any
read-only command accepts it back with ``--root FILE.tar.gz``: the same readers then run on it.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import tarfile
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from hostnet import __version__
from hostnet.errors import InputError
from hostnet.host.root import COMMANDS_DIR, META_FILE, Root
from hostnet.model.reads import ReadSet

#: Kernel log files above LOG_LIMIT are left out and noted.
LOG_LIMIT = 256 << 20


@dataclass
class CollectReport:
    path: str
    files: int = 0
    bytes: int = 0
    skipped: list[str] = field(default_factory=list)


class _Writer:
    def __init__(self, tar: tarfile.TarFile, report: CollectReport) -> None:
        self.tar = tar
        self.report = report
        self.dirs: set[str] = set()

    def add_bytes(self, rel: str, data: bytes, mode: int = 0o644) -> None:
        info = tarfile.TarInfo(rel)
        info.size = len(data)
        info.mode = mode & 0o777
        info.mtime = int(time.time())
        self.tar.addfile(info, io.BytesIO(data))
        self.report.files += 1
        self.report.bytes += len(data)

    def add_file(self, rel: str, *, limit: int | None = None) -> None:
        src = Path("/") / rel
        try:
            st = src.stat()
            if limit is not None and st.st_size > limit:
                self.report.skipped.append(f"/{rel} ({st.st_size} bytes, over the limit)")
                return
            with open(src, "rb") as fh:
                data = fh.read()
        except (PermissionError, OSError) as exc:
            if not isinstance(exc, FileNotFoundError):
                self.report.skipped.append(f"/{rel} ({exc.strerror or exc})")
            return
        self.add_bytes(rel, data, st.st_mode)

    def add_tree(self, rel: str) -> None:
        base = Path("/") / rel
        if not base.is_dir():
            return
        for dirpath, _dirs, files in os.walk(base):
            for name in sorted(files):
                full = Path(dirpath) / name
                sub = full.relative_to("/").as_posix()
                if full.is_symlink():
                    info = tarfile.TarInfo(sub)
                    info.type = tarfile.SYMTYPE
                    info.linkname = os.readlink(full)
                    self.tar.addfile(info)
                    continue
                self.add_file(sub)


def collect(out: str, reads: ReadSet, *, netns: str | None = None,
            table: bool = True) -> CollectReport:
    """Write a snapshot of what ``reads`` names (read inside ``netns``) to ``out``."""
    from hostnet.host.commands import run_optional
    from hostnet.host.kernlog import namespace_inodes
    from hostnet.host.netns import entered, netns_inode

    report = CollectReport(out)
    tmp = f"{out}.tmp-{os.getpid()}"
    try:
        with tarfile.open(tmp, "w:gz", compresslevel=6) as tar:
            w = _Writer(tar, report)
            with entered(netns):
                inode = netns_inode() if netns is not None else None
                _collect_proc_sys(w)
                for rel in reads.netns_files + reads.host_files:
                    w.add_file(rel)
                if table:
                    w.add_file(reads.table)
                _collect_interfaces(w)
                for cmd in reads.netns_commands + reads.host_commands:
                    output = run_optional(list(cmd.argv), timeout=20)
                    if output is not None:
                        w.add_bytes(f"{COMMANDS_DIR}/{cmd.name}", output.encode())
            seen: set[str] = set()
            for rel in reads.trees:
                real = os.path.realpath("/" + rel)
                if real in seen:
                    continue  # /lib -> /usr/lib on merged-/usr systems: keep one copy
                seen.add(real)
                w.add_tree(rel)
            for pattern in reads.log_globs:
                for path in sorted(Path("/var/log").glob(pattern)):
                    w.add_file(path.relative_to("/").as_posix(), limit=LOG_LIMIT)
            meta = {
                "hostnet": __version__,
                "hostname": socket.gethostname(),
                "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "netns": netns,
                "netns_inode": inode,
                "namespace_names": {str(k): v for k, v in namespace_inodes().items()},
                "uid": os.geteuid(),
                "skipped": report.skipped,
            }
            w.add_bytes(META_FILE, json.dumps(meta, indent=2).encode())
        os.replace(tmp, out)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return report


def _collect_proc_sys(w: _Writer) -> None:
    base = "/proc/sys"
    for dirpath, dirs, files in os.walk(base):
        dirs.sort()
        for name in sorted(files):
            full = os.path.join(dirpath, name)
            rel = full.lstrip("/")
            try:
                mode = os.stat(full).st_mode
            except OSError:
                continue
            try:
                with open(full, "rb") as fh:
                    data = fh.read(1 << 20)
            except OSError:
                # write-only or root-only keys: keep the entry (with its mode), no value
                w.report.skipped.append(f"/{rel} (unreadable)")
                w.add_bytes(rel, b"", mode & ~0o444)
                continue
            w.add_bytes(rel, data, mode)


def _collect_interfaces(w: _Writer) -> None:
    base = Path("/sys/class/net")
    for iface in sorted(os.listdir(base)) if base.is_dir() else []:
        d = base / iface
        for leaf in ("uevent", "type", "tun_flags", "address", "operstate", "mtu"):
            if (d / leaf).exists():
                w.add_file(f"sys/class/net/{iface}/{leaf}")
        if (d / "bridge").is_dir():
            w.add_file(f"sys/class/net/{iface}/bridge/stp_state")


@contextmanager
def opened(path: str) -> Iterator[Root]:
    """A Root over a directory tree or an unpacked snapshot archive (removed afterwards)."""
    p = Path(path)
    if p.is_dir():
        yield Root(p)
        return
    if not p.exists():
        raise InputError(
            f"{path}: no such file or directory",
            hint="give --root a directory or a file from 'hostnet collect'",
        )
    try:
        tar = tarfile.open(p, "r:*")  # noqa: SIM115 - closed by the with below
    except (tarfile.TarError, OSError) as exc:
        raise InputError(
            f"{path}: not a snapshot archive ({exc})",
            hint="make one with 'hostnet collect -o FILE.tar.gz'",
        ) from None
    tmp = tempfile.mkdtemp(prefix="hostnet-root-")
    try:
        with tar:
            try:
                # "tar" keeps file modes (read-only keys stay read-only) and still refuses
                # absolute paths and members outside the target directory
                tar.extractall(tmp, filter="tar")
            except (tarfile.TarError, OSError) as exc:
                raise InputError(f"{path}: cannot unpack ({exc})") from None
        yield Root(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
