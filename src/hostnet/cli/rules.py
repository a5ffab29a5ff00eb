"""``hostnet rules`` and ``hostnet explain CODE``."""

from __future__ import annotations

import json

import click

from hostnet.cli.common import format_option
from hostnet.errors import UsageError


@click.command()
@format_option("text", "json")
@click.option(
    "--family", metavar="PREFIX", help="Only codes starting with PREFIX (SC, CT, HD ...)."
)
def rules(fmt: str, family: str | None) -> int:
    """List every finding code with its name, severity and summary."""
    from hostnet.rules import all_rules

    selected = [
        r for r in all_rules().values() if family is None or r.code.startswith(family.upper())
    ]
    if fmt == "json":
        click.echo(
            json.dumps(
                [
                    {
                        "code": r.code,
                        "name": r.name,
                        "severity": str(r.severity),
                        "summary": r.summary,
                    }
                    for r in selected
                ],
                indent=2,
            )
        )
        return 0
    for r in selected:
        click.echo(f"{r.code}  {r.name:<28} {r.severity!s:<8} {r.summary}")
    return 0


@click.command()
@click.argument("code")
def explain(code: str) -> int:
    """Print the documentation page of CODE (e.g. SC104): why, bad, good, references."""
    from hostnet.rules import all_rules, rule_doc

    known = all_rules()
    wanted = code.upper()
    if wanted not in known:
        by_name = {r.name: r.code for r in known.values()}
        if code.lower() in by_name:
            wanted = by_name[code.lower()]
        else:
            raise UsageError(f"unknown code {code!r}", hint="'hostnet rules' lists every code")
    page = rule_doc(wanted)
    if page is None:
        raise UsageError(f"{wanted} has no documentation page")
    click.echo(page, nl=not page.endswith("\n"))
    return 0
