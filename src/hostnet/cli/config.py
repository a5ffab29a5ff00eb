"""``hostnet config schema`` and ``hostnet init``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from hostnet.errors import InputError

ROLES = ("server", "nat-router", "vm-host", "desktop")


@click.group()
def config() -> None:
    """hostnet.toml tools."""


@config.command()
def schema() -> int:
    """Print the JSON Schema of hostnet.toml (for editors and CI checks)."""
    from hostnet.config.schema import json_schema

    click.echo(json.dumps(json_schema(), indent=2))
    return 0


@config.command()
@click.argument("path", metavar="FILE")
def check(path: str) -> int:
    """Check FILE against the schema only (no host reads). Exit 0 valid, 2 invalid."""
    from hostnet.state.prepare import load_config

    load_config(Path(path))
    click.echo(f"{path}: valid")
    return 0


@click.command()
@click.option("--role", type=click.Choice(ROLES), default=None,
              help="The host's role (default: detect it the way doctor does).")
@click.option("--output", "-o", metavar="FILE", default="/etc/hostnet/hostnet.toml",
              show_default=True, help="Where to write it; - for standard output.")
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def init(role: str | None, output: str, force: bool) -> int:
    """Write a commented starting hostnet.toml for this host's role.

    The role comes from what the host shows (forwarding, NAT rules, taps, listening
    services), as in 'hostnet doctor', unless --role is given. Nothing is applied.
    """
    from hostnet.config.starter import RoleLine, starter
    from hostnet.knowledge.roles import load

    why = ""
    if role is None:
        from hostnet.checks.roles import recommend_for
        from hostnet.observe.host import observe
        from hostnet.observe.netns import Want

        host = observe(None, want=Want(composition=False, log=False))
        role, why = recommend_for(host.namespaces[0])
    prof = load(role)
    lines = [RoleLine(k, e.wanted(), e.code) for k, e in sorted(prof.expectations.items())]
    text = starter(role, f"{role}: {why}" if why else "", lines)
    if output == "-":
        click.echo(text, nl=False)
        return 0
    target = Path(output)
    if target.exists() and not force:
        raise InputError(f"{target} exists", hint="pass --force to replace it, or -o FILE")
    from hostnet.state.hostio import write_atomic

    target.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(target, text.encode(), 0o644)
    click.echo(f"Wrote {target} (role {role}). Review it, then run 'hostnet plan'.")
    return 0
