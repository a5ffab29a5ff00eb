"""``hostnet collect``: store exactly what the registry says hostnet reads."""

from __future__ import annotations

from hostnet.host.snapshot import CollectReport
from hostnet.host.snapshot import collect as write_snapshot
from hostnet.observe.registry import READS


def collect(out: str, *, netns: str | None = None, table: bool = True) -> CollectReport:
    return write_snapshot(out, READS, netns=netns, table=table)
