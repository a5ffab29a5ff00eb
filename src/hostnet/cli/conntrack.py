"""``hostnet conntrack``: subcommands load lazily, like the top-level group."""

from __future__ import annotations

import click

from hostnet.cli.main import LazyGroup

SUBCOMMANDS: dict[str, tuple[str, str, str]] = {
    "top": ("hostnet.cli.conntrack_top", "top", "Who fills the table: group entries by field."),
    "size": ("hostnet.cli.conntrack_size", "size", "Sizing maths for nf_conntrack_max/buckets."),
    "watch": ("hostnet.cli.watch", "watch", "Live view (same as 'hostnet watch')."),
}


class _LazyConntrack(LazyGroup):
    specs = SUBCOMMANDS


@click.group(cls=_LazyConntrack)
def conntrack() -> None:
    """Look at the conntrack table: who fills it, how big it should be, live usage."""
