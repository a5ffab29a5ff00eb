"""``hostnet rules`` and ``hostnet explain CODE``."""

from __future__ import annotations

import json

import click

from hostnet.cli.common import format_option
from hostnet.errors import UsageError
from hostnet.findings import Severity


@click.command()
@format_option("text", "json")
@click.option(
    "--family", metavar="PREFIX", help="Only codes starting with PREFIX (SC, CT, HD ...)."
)
def rules(fmt: str, family: str | None) -> int:
    """List every finding code with its name, the severities it emits and its summary.

    A rule that emits more than one severity shows all of them, its default first
    (e.g. SC110 warning/info: a repeat with another value warns, the same value is info).
    """
    from hostnet.rules import all_rules

    selected = [
        r for r in all_rules().values() if family is None or r.code.startswith(family.upper())
    ]
    emitted = _emitted()

    def severities(code: str, default: Severity) -> list[str]:
        extra = [s for s in emitted.get(code, ()) if s != default]
        return [str(default), *(str(s) for s in sorted(extra, reverse=True))]

    if fmt == "json":
        click.echo(
            json.dumps(
                [
                    {
                        "code": r.code,
                        "name": r.name,
                        "severity": str(r.severity),
                        "severities": severities(r.code, r.severity),
                        "summary": r.summary,
                    }
                    for r in selected
                ],
                indent=2,
            )
        )
        return 0
    for r in selected:
        shown = "/".join(severities(r.code, r.severity))
        click.echo(f"{r.code}  {r.name:<28} {shown:<18} {r.summary}")
    return 0


def _emitted() -> dict[str, tuple[Severity, ...]]:
    """Every severity a rule can emit, from the optional EMITS table of its rule module."""
    import importlib

    from hostnet.rules import RULE_MODULES

    out: dict[str, tuple[Severity, ...]] = {}
    for name in RULE_MODULES:
        out.update(getattr(importlib.import_module(name), "EMITS", {}))
    return out


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
