"""Writing ``hostnet collect`` snapshots (reading them back: hostnet.host.snapshot).

The archive mirrors the host's paths (proc/sys/..., etc/sysctl.d/...), keeps file modes (so
read-only keys stay read-only), stores command output under .hostnet/commands/ and the
stat(2) of device nodes in .hostnet/stat.json (an archive holds no nodes).
``.hostnet/meta.json`` is written last (see hostnet.host.snapshot).
"""

from __future__ import annotations

import io
import json
import os
import socket
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from hostnet import __version__
from hostnet.errors import InputError
from hostnet.host.root import COMMANDS_DIR, META_FILE, STAT_FILE, node_stat
from hostnet.host.snapshot import META_FORMAT, inside_link
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
        self.members = 0  # tar members written (meta.json records it)

    def add_bytes(self, rel: str, data: bytes, mode: int = 0o644) -> None:
        info = tarfile.TarInfo(rel)
        info.size = len(data)
        info.mode = mode & 0o777
        info.mtime = int(time.time())
        self.tar.addfile(info, io.BytesIO(data))
        self.members += 1
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
                    info.linkname = inside_link(sub, os.readlink(full))
                    self.tar.addfile(info)
                    self.members += 1
                    continue
                self.add_file(sub)


#: Where a snapshot keeps the hostnet.toml the VM checks judge (``collect --config FILE``
#: stores FILE here; meta.json's "config" then names it as the collected host did).
CONFIG_FILE = "etc/hostnet/hostnet.toml"


def collect(out: str, reads: ReadSet, *, netns: str | None = None, table: bool = True,
            config: str | None = None) -> CollectReport:
    """Write a snapshot of what ``reads`` names (read inside ``netns``) to ``out``; with
    ``config``, that file is stored as the snapshot's :data:`CONFIG_FILE` instead of the
    host's own."""
    from hostnet.host.kernlog import namespace_inodes
    from hostnet.host.netns import entered, netns_inode, validate_name

    if netns is not None:
        validate_name(netns)  # before anything is written
    report = CollectReport(out)
    config_data = None
    if config is not None:
        try:
            config_data = Path(config).read_bytes()
        except OSError as exc:
            raise InputError(f"{config}: cannot read ({exc.strerror or exc})",
                             hint="--config takes the hostnet.toml the doctor judges") from None
        config = os.path.abspath(config)
    tmp = f"{out}.tmp-{os.getpid()}"
    try:
        tar = tarfile.open(tmp, "w:gz", compresslevel=6)  # noqa: SIM115 - closed by the with
    except OSError as exc:
        raise InputError(f"{out}: cannot write the snapshot ({exc.strerror or exc})",
                         hint="pick a writable place with -o") from None
    try:
        with tar:
            w = _Writer(tar, report)
            with entered(netns):
                inode = netns_inode() if netns is not None else None
                _collect_proc_sys(w)
                for rel in reads.netns_files + reads.host_files:
                    if rel == CONFIG_FILE and config_data is not None:
                        w.add_bytes(rel, config_data, 0o644)
                    else:
                        w.add_file(rel)
                _collect_stats(w, reads.stats)
                release = os.uname().release
                for pattern in reads.release_files:
                    w.add_file(pattern.format(release=release))
                for pattern in reads.globs:
                    for path in sorted(Path("/").glob(pattern)):
                        w.add_file(path.relative_to("/").as_posix())
                if table:
                    w.add_file(reads.table)
                _collect_interfaces(w)
                for cmd in reads.netns_commands + reads.host_commands:
                    output = _run_command(list(cmd.argv), report)
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
                "format": META_FORMAT,
                "hostnet": __version__,
                "hostname": socket.gethostname(),
                "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "netns": netns,
                "netns_inode": inode,
                "namespace_names": {str(k): v for k, v in namespace_inodes().items()},
                "uid": os.geteuid(),
                "skipped": report.skipped,
                "members": w.members,
                "config": config,
            }
            w.add_bytes(META_FILE, json.dumps(meta, indent=2).encode())
        os.replace(tmp, out)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return report


def _run_command(argv: list[str], report: CollectReport) -> str | None:
    """Output of a read-only command; a failure that says why (dmesg under dmesg_restrict,
    nft without CAP_NET_ADMIN) is recorded as skipped. Missing tools are not."""
    from hostnet.errors import CommandError
    from hostnet.host.commands import run

    try:
        proc = run(argv, timeout=20, check=False)
    except CommandError as exc:
        if "not found" not in exc.message:
            report.skipped.append(exc.message)
        return None
    if proc.returncode != 0:
        err = proc.stderr.strip().splitlines()
        if err:
            report.skipped.append(f"{' '.join(argv)}: {err[0]}")
        return None
    return proc.stdout


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
            except OSError as exc:
                # keep the entry (with its mode), no value; only keys a reader could have
                # read with more privilege are "skipped" (write-only keys such as
                # vm/drop_caches have nothing to read, stable_secret answers EIO when unset)
                if isinstance(exc, PermissionError) and mode & 0o444:
                    w.report.skipped.append(f"/{rel} (permission denied)")
                w.add_bytes(rel, b"", mode & ~0o444)
                continue
            w.add_bytes(rel, data, mode)


def _collect_stats(w: _Writer, paths: tuple[str, ...]) -> None:
    out: dict[str, dict[str, int] | None] = {}
    for rel in paths:
        try:
            st = node_stat(os.stat("/" + rel))
        except FileNotFoundError:
            out[rel] = None
            continue
        except OSError as exc:
            w.report.skipped.append(f"/{rel} (stat: {exc.strerror or exc})")
            continue
        out[rel] = {"mode": st.mode, "uid": st.uid, "gid": st.gid, "major": st.major,
                    "minor": st.minor}
    w.add_bytes(STAT_FILE, json.dumps(out, indent=2, sort_keys=True).encode())


def _collect_interfaces(w: _Writer) -> None:
    base = Path("/sys/class/net")
    for iface in sorted(os.listdir(base)) if base.is_dir() else []:
        d = base / iface
        for leaf in ("uevent", "type", "tun_flags", "address", "operstate", "mtu"):
            if (d / leaf).exists():
                w.add_file(f"sys/class/net/{iface}/{leaf}")
        if (d / "bridge").is_dir():
            w.add_file(f"sys/class/net/{iface}/bridge/stp_state")
