"""``hostnet lint``: check sysctl files the way systemd-sysctl and procps read them."""

from __future__ import annotations

import sys

import click

from hostnet.cli.common import format_option, netns_option, open_root, root_option, use_colour
from hostnet.errors import InputError, UsageError
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
    against that namespace's keys, which differ for per-namespace settings.

    Silence one finding with '# hostnet: ignore[SC104]' on its line or the line above.
    """
    from hostnet.host.kernel_view import RootKernelView
    from hostnet.knowledge.catalogue import load
    from hostnet.sysctl.lint import FileNote, LintResult, lint_files
    from hostnet.sysctl.parser import ParsedFile, parse_text

    if not paths and not system:
        raise UsageError("nothing to lint", hint="give files, '-' for stdin, or --system")
    if do_fix and do_diff:
        raise UsageError("--fix and --diff do not go together", hint="use one of them")
    with open_root(root_path, netns, config_only=True) as root:
        parsed: list[ParsedFile] = []
        texts: dict[str, str] = {}
        notes: list[FileNote] = []
        if system:
            from hostnet.host.sysctl_files import system_sources

            sources, notes = system_sources(root)
            for src in sources:
                text = _read(root.file(src.real).as_posix(), shown=src.path)
                texts[src.path] = text
                parsed.append(parse_text(text, src.path))
        for path in _expand(paths):
            if path == "-":
                text = sys.stdin.read()
                texts["<stdin>"] = text
                parsed.append(parse_text(text, "<stdin>"))
            else:
                text = _read(path)
                texts[path] = text
                parsed.append(parse_text(text, path))
        kernel = None if no_kernel else RootKernelView(root)
        result: LintResult = lint_files(parsed, load(), kernel, notes=notes)
    if do_fix or do_diff:
        return _fix(result, texts, write=do_fix)
    click.echo(_printable(render(fmt, result.findings, colour=use_colour())), nl=False)
    fail = Severity.WARNING if strict else Severity.ERROR
    return 1 if any(f.severity >= fail for f in result.findings) else 0


def _printable(text: str) -> str:
    """Text read with surrogateescape may hold undecodable bytes: print them replaced."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _expand(paths: tuple[str, ...]) -> list[str]:
    import os

    out: list[str] = []
    for p in paths:
        if p != "-" and os.path.isdir(p):
            out.extend(os.path.join(p, n) for n in sorted(os.listdir(p)) if n.endswith(".conf"))
        else:
            out.append(p)
    return out


def _read(path: str, shown: str | None = None) -> str:
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as fh:
            return fh.read()
    except FileNotFoundError:
        raise InputError(f"{shown or path}: no such file", hint="check the path") from None
    except IsADirectoryError:
        raise InputError(f"{shown or path}: is a directory") from None
    except PermissionError:
        raise InputError(f"{shown or path}: permission denied", hint="run as root") from None
    except OSError as exc:
        raise InputError(f"{shown or path}: {exc.strerror}") from None


def _fix(result: object, texts: dict[str, str], *, write: bool) -> int:
    from hostnet.sysctl.fix import apply_edits, unified_diff
    from hostnet.sysctl.lint import LintResult

    assert isinstance(result, LintResult)
    changed = 0
    for path, text in texts.items():
        edits = [e for e in result.edits if e.path == path]
        if not edits:
            continue
        new = apply_edits(text, edits)
        if new == text:
            continue
        changed += 1
        if not write:
            click.echo(_printable(unified_diff(path, text, new)), nl=False)
        elif path == "<stdin>":
            click.echo(_printable(new), nl=False)
        else:
            _write_atomic(path, new)
            click.echo(
                f"fixed {path} ({len(edits)} change{'s' if len(edits) != 1 else ''})", err=True
            )
    if write and "<stdin>" in texts and not changed:
        click.echo(_printable(texts["<stdin>"]), nl=False)
    return 0


def _write_atomic(path: str, text: str) -> None:
    import os
    import tempfile

    directory = os.path.dirname(os.path.abspath(path))
    mode = os.stat(path).st_mode & 0o7777
    fd, tmp = tempfile.mkstemp(prefix=".hostnet-", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape") as fh:
            fh.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
