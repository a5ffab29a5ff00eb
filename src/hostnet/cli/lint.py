"""``hostnet lint``: check sysctl files the way systemd-sysctl and procps read them."""

from __future__ import annotations

import click

from hostnet.cli.common import format_option, netns_option, open_root, root_option, use_colour
from hostnet.errors import UsageError
from hostnet.findings import Severity
from hostnet.render.findings import FORMATS, render


@click.command()
@click.argument("paths", nargs=-1, metavar="[PATH ...]")
@click.option("--system", is_flag=True, help="Lint every file read at boot, in precedence order.")
@root_option
@netns_option
@format_option(*FORMATS)
@click.option("--strict", is_flag=True, help="Fail on warnings too.")
@click.option("--fix", "do_fix", is_flag=True, help="Write corrected files (stdin: to stdout).")
@click.option(
    "--diff", "do_diff", is_flag=True, help="Show the corrections as a diff; write nothing."
)
@click.option("--no-kernel", is_flag=True, help="Do not compare with the running kernel's keys.")
def lint(
    paths: tuple[str, ...],
    system: bool,
    root_path: str | None,
    netns: str | None,
    fmt: str,
    strict: bool,
    do_fix: bool,
    do_diff: bool,
    no_kernel: bool,
) -> int:
    """Check sysctl configuration files for mistakes.

    PATH is a file, a directory of *.conf files, or - for standard input. With --system,
    every file systemd-sysctl reads (/etc, /run, /usr/local/lib, /usr/lib sysctl.d) plus
    /etc/sysctl.conf, in the order they are applied. Exit 0: no errors (with --strict: no
    warnings either); 1: findings; 2: bad usage or unreadable input.

    Keys are checked against the running kernel (or the --root snapshot); with --netns,
    against that namespace's keys, which differ for per-namespace settings. Values are
    checked against what that kernel accepts and offers (ranges, congestion controls,
    qdiscs, modules loaded at boot).

    Silence one finding with '# hostnet: ignore[SC104]' on its line or the line above.
    """
    from hostnet.state.lint_fix import FixMode, LintRequest, run_lint

    if not paths and not system:
        raise UsageError("nothing to lint", hint="give files, '-' for stdin, or --system")
    if do_fix and do_diff:
        raise UsageError("--fix and --diff do not go together", hint="use one of them")
    mode = FixMode.FIX if do_fix else FixMode.DIFF if do_diff else FixMode.REPORT
    request = LintRequest(paths=paths, system=system, use_kernel=not no_kernel, mode=mode)
    with open_root(root_path, netns, config_only=True) as root:
        outcome = run_lint(root, request)
    if mode is FixMode.DIFF:
        for diff in outcome.diffs:
            click.echo(_printable(diff), nl=False)
        return 0
    if mode is FixMode.FIX:
        for path, count in outcome.fixed:
            click.echo(f"fixed {path} ({count} change{'s' if count != 1 else ''})", err=True)
        if outcome.stdout_text is not None:
            click.echo(_printable(outcome.stdout_text), nl=False)
        return 0
    findings = outcome.result.findings
    click.echo(_printable(render(fmt, findings, colour=use_colour())), nl=False)
    fail = Severity.WARNING if strict else Severity.ERROR
    return 1 if any(f.severity >= fail for f in findings) else 0


def _printable(text: str) -> str:
    """Text read with surrogateescape may hold undecodable bytes: print them replaced."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
