"""Read the conntrack readings a previous run kept (the writer is hostnet.state.history).

One small JSON file per namespace under the state directory (``/var/lib/hostnet`` on the live
host): ``conntrack-<namespace>.json`` holding the time, the counters, the count, the highest
count seen and the namespace inode (a recreated namespace with the same name starts afresh).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from hostnet.model.conntrack import Reading

DEFAULT_STATE_DIR = Path("/var/lib/hostnet")


def reading_file(state_dir: Path, netns: str | None) -> Path:
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", netns) if netns else "init"
    return state_dir / f"conntrack-{name}.json"


def load(state_dir: Path, netns: str | None, inode: int | None = None) -> Reading | None:
    """The last reading for this namespace, or None (missing, corrupt, other namespace)."""
    try:
        data = json.loads(reading_file(state_dir, netns).read_text(encoding="utf-8"))
        reading = Reading.from_json(data)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if inode is not None and reading.inode is not None and reading.inode != inode:
        return None
    return reading
