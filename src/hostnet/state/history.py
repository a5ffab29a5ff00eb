"""Keep conntrack counter readings for the next run (atomic: temporary file + rename).

The format and the reader are in hostnet.host.history.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path

from hostnet.host.history import DEFAULT_STATE_DIR, load, reading_file
from hostnet.model.conntrack import Reading

__all__ = ["DEFAULT_STATE_DIR", "load", "save"]

def save(state_dir: Path, netns: str | None, reading: Reading) -> None:
    """Write the reading atomically (creating the directory, mode 0700)."""
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    target = reading_file(state_dir, netns)
    fd, tmp = tempfile.mkstemp(prefix=".conntrack-", dir=state_dir)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(reading.to_json(), fh, sort_keys=True)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
