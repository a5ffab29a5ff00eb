"""Scan the kernel log sources of a root for conntrack trouble.

Sources, in order:

* the ring buffer: ``dmesg --time-format iso`` (a snapshot stores it as the command output
  ``dmesg``); when dmesg is unavailable on the live host, ``/dev/kmsg`` read without blocking;
* the journal: ``journalctl -k`` (snapshot: ``journalctl-k``);
* log files under ``var/log``: ``kern.log``, ``syslog``, ``messages`` and their rotations
  (``.1``, ``.2.gz`` ...). Plain files are mmapped, ``.gz`` files are read in blocks.
"""

from __future__ import annotations

from hostnet.conntrack.logscan import scan_buffer, scan_chunks, summarise
from hostnet.host import kernlog
from hostnet.host.root import Root
from hostnet.model.kernlog import LogSummary, SourceScan
from hostnet.observe import registry as reg
from hostnet.observe.netns import command


def scan_file(path: str, source: str | None = None) -> SourceScan:
    """Scan one log file (plain or gzip). Unreadable or empty files give an empty scan."""
    label = source or path
    if path.endswith(".gz"):
        try:
            return scan_chunks(kernlog.gzip_chunks(path), label)
        except (OSError, EOFError):
            return SourceScan(label)
    with kernlog.mapped(path) as mm:
        return SourceScan(label) if mm is None else scan_buffer(mm, label)


def ring_buffer(root: Root) -> SourceScan | None:
    text = command(root, reg.DMESG, timeout=20)
    if text is not None:
        return scan_buffer(text.encode("utf-8", "replace"), "dmesg")
    if root.is_live:
        data = kernlog.read_kmsg()
        if data:
            return scan_buffer(data, "/dev/kmsg")
    return None


def journal(root: Root) -> SourceScan | None:
    text = command(root, reg.JOURNAL, timeout=30)
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
        for rel in kernlog.log_files(root):
            scans.append(scan_file(str(root.file(rel)), "/" + rel))
    return summarise(scans)
