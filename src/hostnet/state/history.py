"""Previous conntrack counter readings, so a later run can compute rates and peaks.

One small JSON file per namespace under the state directory (``/var/lib/hostnet`` on the live
host, or ``Context.state_dir``): ``conntrack-<namespace>.json`` holding the time, the counters,
the count, the highest count seen and the namespace inode (a recreated namespace with the same
name starts afresh). Writes are atomic (temporary file + rename).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from pathlib import Path

from hostnet.model.conntrack import Reading, merge_peak

DEFAULT_STATE_DIR = Path("/var/lib/hostnet")


def _file(state_dir: Path, netns: str | None) -> Path:
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", netns) if netns else "init"
    return state_dir / f"conntrack-{name}.json"


def load(state_dir: Path, netns: str | None, inode: int | None = None) -> Reading | None:
    """The last reading for this namespace, or None (missing, corrupt, other namespace)."""
    try:
        data = json.loads(_file(state_dir, netns).read_text(encoding="utf-8"))
        reading = Reading.from_json(data)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if inode is not None and reading.inode is not None and reading.inode != inode:
        return None
    return reading


def save(state_dir: Path, netns: str | None, reading: Reading) -> None:
    """Write the reading atomically (creating the directory, mode 0700)."""
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    target = _file(state_dir, netns)
    fd, tmp = tempfile.mkstemp(prefix=".conntrack-", dir=state_dir)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(reading.to_json(), fh, sort_keys=True)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def merge(previous: Reading | None, now: Reading) -> Reading:
    """``now`` with the peak carried over from ``previous`` (model.conntrack.merge_peak)."""
    return merge_peak(previous, now)
