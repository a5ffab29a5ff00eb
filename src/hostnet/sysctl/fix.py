"""Apply lint edits to a file's text, keeping comments and order (pure)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from hostnet.sysctl.lint_result import Edit


def apply_edits(text: str, edits: Iterable[Edit]) -> str:
    """Return ``text`` with each edit's line replaced by its lines, every other byte kept
    (line endings included). Idempotent: a line that already carries hostnet's marker
    comment is not marked again."""
    by_line = {e.line: e for e in edits}
    if not by_line:
        return text
    lines = text.split("\n")
    out: list[str] = []
    for number, line in enumerate(lines, start=1):
        edit = by_line.get(number)
        if edit is None:
            out.append(line)
            continue
        ending = "\r" if line.endswith("\r") else ""
        new = list(edit.lines)
        if len(new) == 2 and new[0].startswith("# hostnet:") and out and out[-1].rstrip(
            "\r"
        ) == new[0]:
            new = new[1:]  # already marked by an earlier --fix
        indent = line[: len(line) - len(line.lstrip())]
        out.extend((indent + n if n else n) + ending for n in new)
    return "\n".join(out)


def unified_diff(path: str, before: str, after: str) -> str:
    return "".join(
        difflib.unified_diff(
            before.splitlines(keepends=True),
            after.splitlines(keepends=True),
            fromfile=f"a{path}" if path.startswith("/") else f"a/{path}",
            tofile=f"b{path}" if path.startswith("/") else f"b/{path}",
        )
    )
