"""Kernel log sources, read through a Root so snapshots and fixture trees work the same.

Sources, in order:

* the ring buffer: ``dmesg --time-format iso`` (a snapshot stores it as the command output
  ``dmesg``); when dmesg is unavailable on the live host, ``/dev/kmsg`` read without blocking;
* the journal: ``journalctl -k`` (snapshot: ``journalctl-k``);
* log files under ``var/log``: ``kern.log``, ``syslog``, ``messages`` and their rotations
  (``.1``, ``.2.gz`` ...). Plain files are mmapped, ``.gz`` files are read in blocks.

Recognition is in :mod:`hostnet.conntrack.logscan` (pure).
"""

from __future__ import annotations

import gzip
import mmap
import os
import re
from collections.abc import Iterator

from hostnet.conntrack.logscan import scan_buffer, scan_chunks, summarise
from hostnet.host.root import Root
from hostnet.model.kernlog import LogSummary, SourceScan

LOG_DIR = "var/log"
_LOG_FILE = re.compile(r"^(kern\.log|syslog|messages)(?:\.(\d+))?(\.gz)?$")
CHUNK = 16 << 20


def log_files(root: Root) -> list[str]:
    """Relative paths of the kernel-bearing log files, newest first within each family."""
    found: list[tuple[str, int, str]] = []
    for name in root.listdir(LOG_DIR):
        m = _LOG_FILE.match(name)
        if m is None:
            continue
        found.append((m.group(1), int(m.group(2) or 0), f"{LOG_DIR}/{name}"))
    found.sort()
    return [rel for _family, _n, rel in found]


def _gzip_chunks(path: str) -> Iterator[bytes]:
    with gzip.open(path, "rb") as fh:
        while True:
            block = fh.read(CHUNK)
            if not block:
                return
            yield block


def scan_file(path: str, source: str | None = None) -> SourceScan:
    """Scan one log file (plain or gzip). Unreadable or empty files give an empty scan."""
    label = source or path
    if path.endswith(".gz"):
        try:
            return scan_chunks(_gzip_chunks(path), label)
        except (OSError, EOFError):
            return SourceScan(label)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return SourceScan(label)
    try:
        size = os.fstat(fd).st_size
        if size == 0:
            return SourceScan(label)
        with mmap.mmap(fd, size, prot=mmap.PROT_READ) as mm:
            return scan_buffer(mm, label)
    finally:
        os.close(fd)


def _read_kmsg() -> bytes:
    """Everything /dev/kmsg still holds, without blocking (live host only)."""
    out: list[bytes] = []
    try:
        fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return b""
    try:
        while True:
            try:
                record = os.read(fd, 8192)
            except BlockingIOError:
                break
            except BrokenPipeError:  # record overwritten while reading: skip it
                continue
            except OSError:
                break
            if not record:
                break
            out.append(record)
    finally:
        os.close(fd)
    return b"".join(out)


def ring_buffer(root: Root) -> SourceScan | None:
    text = root.command_output("dmesg", ["dmesg", "--time-format", "iso"], timeout=20)
    if text is not None:
        return scan_buffer(text.encode("utf-8", "replace"), "dmesg")
    if root.is_live:
        data = _read_kmsg()
        if data:
            return scan_buffer(data, "/dev/kmsg")
    return None


def journal(root: Root) -> SourceScan | None:
    argv = ["journalctl", "-k", "-o", "short-iso", "--no-pager", "-q",
            "--grep", "table full|suppressed"]
    text = root.command_output("journalctl-k", argv, timeout=30)
    if text is None:
        return None
    return scan_buffer(text.encode("utf-8", "replace"), "journalctl -k")


def scan_all(root: Root, *, files: bool = True) -> LogSummary:
    """Every source this root has, combined (see logscan.summarise for how)."""
    scans: list[SourceScan] = []
    for reader in (ring_buffer, journal):
        got = reader(root)
        if got is not None:
            scans.append(got)
    if files:
        for rel in log_files(root):
            scans.append(scan_file(str(root.file(rel)), "/" + rel))
    return summarise(scans)


def namespace_inodes(run_dir: str = "/run/netns") -> dict[int, str]:
    """Inode -> name of every namespace ``ip netns`` knows (to name 'netns N' in log lines)."""
    out: dict[int, str] = {}
    try:
        names = os.listdir(run_dir)
    except OSError:
        return out
    for name in names:
        try:
            out[os.stat(os.path.join(run_dir, name)).st_ino] = name
        except OSError:
            continue
    return out


def _restrict_note(root: Root) -> str:
    value = root.sysctl_value("kernel.dmesg_restrict")
    if value is None:
        return "kernel.dmesg_restrict unknown"
    if value.strip() == "1":
        return "kernel.dmesg_restrict = 1: only root or CAP_SYSLOG may read it"
    return f"kernel.dmesg_restrict = {value.strip()}"


def unreadable_sources(root: Root, *, snapshot_uid: int | None = None) -> list[str]:
    """Kernel log sources this run cannot read, each with the reason (the scan itself skips
    them silently). ``snapshot_uid``: the user a snapshot was collected as (its meta.json
    records what collect could not read, so only plain trees are judged here)."""
    out: list[str] = []
    if root.is_live:
        try:
            os.close(os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC))
        except PermissionError:
            out.append(f"kernel ring buffer (dmesg, /dev/kmsg): permission denied "
                       f"({_restrict_note(root)})")
        except OSError:
            pass  # no /dev/kmsg (a container): dmesg or the files may still answer
        for rel in ("var/log/journal", "run/log/journal"):
            for machine in root.listdir(rel):
                d = root.file(f"{rel}/{machine}")
                if d.is_dir() and not os.access(d, os.R_OK | os.X_OK):
                    out.append(f"/{rel}/{machine} (journal, permission denied: readable by "
                               "root and the adm/systemd-journal groups)")
    elif snapshot_uid is None and root.command_output("dmesg", []) is None:
        value = root.sysctl_value("kernel.dmesg_restrict")
        if value is not None and value.strip() == "1":
            out.append(f"kernel ring buffer: not in this tree ({_restrict_note(root)}; "
                       "collect the snapshot as root)")
    for rel in log_files(root):
        path = root.file(rel)
        if not os.access(path, os.R_OK):
            out.append(f"/{rel} (permission denied)")
    return out
