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
