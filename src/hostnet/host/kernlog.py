"""Raw kernel log sources: which log files a root has, their bytes (mmapped or gunzipped in
blocks), /dev/kmsg without blocking, and which sources this process cannot read.

Scanning them is :mod:`hostnet.observe.kernlog`; recognition :mod:`hostnet.conntrack.logscan`.
"""

from __future__ import annotations

import gzip
import mmap
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager

from hostnet.host.root import Root

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


def gzip_chunks(path: str) -> Iterator[bytes]:
    with gzip.open(path, "rb") as fh:
        while True:
            block = fh.read(CHUNK)
            if not block:
                return
            yield block


@contextmanager
def mapped(path: str) -> Iterator[mmap.mmap | None]:
    """A read-only mmap of a plain file (None when it is empty or cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        yield None
        return
    try:
        size = os.fstat(fd).st_size
        if size == 0:
            yield None
            return
        with mmap.mmap(fd, size, prot=mmap.PROT_READ) as mm:
            yield mm
    finally:
        os.close(fd)


def read_kmsg() -> bytes:
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
