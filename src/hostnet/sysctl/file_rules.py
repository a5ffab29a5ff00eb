"""Rules about lines and about keys set more than once: non-assignments, ';' comments,
assignments glued onto comments, duplicates within a file, overrides across files, globs
after explicit keys (pure)."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence

from hostnet.findings import Severity
from hostnet.sysctl import rules as R
from hostnet.sysctl.linter import Linter, a_text, find_file
from hostnet.sysctl.parser import Assignment, ParsedFile

_ASSIGN_IN_TEXT = re.compile(r"((?:[A-Za-z0-9_\-]+[./])+[A-Za-z0-9_\-]+)\s*=\s*(\S.*)$")


def check_lines(lx: Linter, pf: ParsedFile) -> None:
    for na in pf.not_assignments:
        words = na.text.split()
        fix: str | None = None
        if len(words) == 2 and lx.is_known(words[0].lstrip("-")):
            fix = f"{words[0]} = {words[1]}"
        lx.emit(
            R.NOT_ASSIGNMENT,
            pf.path,
            na.line,
            f"'{na.text}' has no '=': systemd-sysctl ignores the line and procps reports "
            "invalid syntax",
            column=na.column,
            suggestion=fix or "write it as key = value, or comment it out",
            edit=(fix,) if fix else None,
        )
    for c in pf.comments:
        if c.marker == ";":
            fixed = "#" + c.text[1:]
            lx.emit(
                R.SEMICOLON_COMMENT,
                pf.path,
                c.line,
                "';' starts a comment for procps and older systemd, but the newest "
                "systemd-sysctl reads this line as a setting",
                column=c.column,
                suggestion=fixed,
                edit=(fixed,),
            )
        body = c.text[1:]
        if "=" not in body:
            continue
        m = _ASSIGN_IN_TEXT.search(body)
        if m is None:
            continue
        written = m.group(1)
        real = written if lx.is_known(written) else lx.recover_glued(written)
        if real is None:
            continue
        at = m.start(1) + len(written) - len(real)  # where the real key starts in body
        before = body[:at]
        if not before.strip() or before[-1].isspace() or before.rstrip()[-1] in "#;":
            continue  # a commented-out setting, or prose that mentions a key
        assignment = f"{real} = {m.group(2).strip()}"
        lx.emit(
            R.COMMENTED_ASSIGNMENT,
            pf.path,
            c.line,
            f"'{assignment}' is glued onto the comment, so it is never applied "
            "(a lost line break?)",
            column=c.column + 1 + at,
            key=real,
            suggestion=f"put '{assignment}' on its own line",
            edit=((c.marker + before).rstrip(), assignment),
        )


def check_repeat(
    lx: Linter,
    a: Assignment,
    in_file: dict[str, Assignment],
    seen: dict[str, Assignment],
    pf: ParsedFile,
    files: Sequence[ParsedFile],
) -> None:
    """SC110 (again in the same file) and SC111 (again in a later file)."""
    earlier = in_file.get(a.key)
    if earlier is not None and earlier.value == a.value:
        lx.emit(
            R.DUPLICATE_KEY,
            pf.path,
            a.line,
            f"{a.key} = {a.value} is already set to the same value on line {earlier.line} "
            "of this file; this line changes nothing",
            column=a.column,
            key=a.key,
            severity=Severity.INFO,
            suggestion="remove this line",
            edit=(f"# {a_text(a)}  # hostnet: same as line {earlier.line}",),
        )
        return
    if earlier is not None:
        lx.emit(
            R.DUPLICATE_KEY,
            pf.path,
            earlier.line,
            f"{a.key} is set again on line {a.line} of this file"
            f" ({earlier.value!r} then {a.value!r}); this line has no effect",
            column=earlier.column,
            key=a.key,
            suggestion="remove this line",
            edit=(f"# {a_text(earlier)}  # hostnet: set again on line {a.line}",),
        )
        return
    other = seen.get(a.key)
    if other is None or other.path == pf.path or other.value == a.value:
        return
    vendor = not other.path.startswith("/etc/")
    lx.emit(
        R.OVERRIDDEN_KEY,
        other.path,
        other.line,
        f"{a.key} = {other.value} is overridden by {pf.path}:{a.line} "
        f"({a.key} = {a.value}), which is read later and wins"
        + (
            " when procps 'sysctl --system' runs (systemd-sysctl does not read /etc/sysctl.conf)"
            if pf.path == "/etc/sysctl.conf"
            else ""
        ),
        column=other.column,
        key=a.key,
        severity=Severity.INFO if vendor else None,
        evidence={"winner": f"{pf.path}:{a.line}", "value": a.value},
        parsed=find_file(files, other.path),
    )


def check_glob_order(
    lx: Linter, glob: Assignment, seen: dict[str, Assignment], pf: ParsedFile
) -> None:
    """A glob after explicit keys it matches: systemd keeps the explicit values, procps
    (which applies lines in order) overwrites them."""
    width = glob.key.count(".")
    hit = [
        a
        for k, a in seen.items()
        if k.count(".") == width and fnmatch.fnmatchcase(k, glob.key) and a.value != glob.value
    ]
    if not hit:
        return
    first = hit[0]
    more = f" and {len(hit) - 1} more" if len(hit) > 1 else ""
    lx.emit(
        R.PARSER_DISAGREEMENT,
        pf.path,
        glob.line,
        f"{glob.key} = {glob.value} comes after {first.key} = {first.value} "
        f"({first.path}:{first.line}){more}: systemd-sysctl keeps explicit keys over globs, "
        "procps sysctl --system applies lines in order and overwrites them",
        column=glob.column,
        key=glob.key,
        suggestion="put the glob before the explicit keys it should not override",
    )
