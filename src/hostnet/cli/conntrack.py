"""``hostnet conntrack``: subcommands load lazily, like the top-level group."""

from __future__ import annotations

import importlib

import click

SUBCOMMANDS: dict[str, tuple[str, str, str]] = {
    "top": ("hostnet.cli.conntrack_top", "top", "Who fills the table: group entries by field."),
    "size": ("hostnet.cli.conntrack_size", "size", "Sizing maths for nf_conntrack_max/buckets."),
    "watch": ("hostnet.cli.watch", "watch", "Live view (same as 'hostnet watch')."),
}


class _LazyConntrack(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(SUBCOMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        spec = SUBCOMMANDS.get(cmd_name)
        if spec is None:
            return None
        command = getattr(importlib.import_module(spec[0]), spec[1])
        assert isinstance(command, click.Command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(n, s[2]) for n, s in SUBCOMMANDS.items()])


@click.group(cls=_LazyConntrack)
def conntrack() -> None:
    """Look at the conntrack table: who fills it, how big it should be, live usage."""
