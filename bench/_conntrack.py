"""Shared set-up of the conntrack benchmarks: a big real table in a throwaway namespace.

A child namespace cannot raise its own nf_conntrack_max (read-only there, equal to the
global value), so a table above 262144 entries needs the global limit raised: benchmarks
(never tests) do that in ``raised_global_max`` and put the old value back on the way out.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.helpers.conntrack import assured_lines

MAX_KEY = Path("/proc/sys/net/netfilter/nf_conntrack_max")


def require_root_tools() -> None:
    if os.geteuid() != 0:
        raise SystemExit("run as root (namespaces, conntrack -R)")
    for tool in ("ip", "nft", "conntrack"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} not found")


@contextmanager
def raised_global_max(entries: int) -> Iterator[None]:
    old = MAX_KEY.read_text().strip()
    want = max(int(old), int(entries * 1.1))
    MAX_KEY.write_text(str(want))
    print(f"global nf_conntrack_max {old} -> {want} (restored at the end)")
    try:
        yield
    finally:
        MAX_KEY.write_text(old)
        print(f"global nf_conntrack_max restored to {MAX_KEY.read_text().strip()}")


def load_entries(nsx: list[str], entries: int) -> float:
    """Load ``entries`` ASSURED TCP entries with ``conntrack -R``; seconds it took."""
    with tempfile.NamedTemporaryFile("w", suffix=".ct", delete=False) as fh:
        fh.write(assured_lines(entries, timeout=7200, src_net="198.51.100.0/27"))
        path = fh.name
    start = time.perf_counter()
    try:
        subprocess.run([*nsx, "conntrack", "-R", path], check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    finally:
        os.unlink(path)
    return time.perf_counter() - start
