"""``hostnet collect``: store exactly what the registry says hostnet reads."""

from __future__ import annotations

from hostnet.host.collect import CollectReport
from hostnet.host.collect import collect as write_snapshot
from hostnet.observe.registry import READS


def collect(out: str, *, netns: str | None = None, table: bool = True,
            config: str | None = None) -> CollectReport:
    """``config``: the hostnet.toml whose [[vm]] entries the doctor judges on the snapshot
    (default: the host's /etc/hostnet/hostnet.toml, when it has one)."""
    return write_snapshot(out, READS, netns=netns, table=table, config=config)
