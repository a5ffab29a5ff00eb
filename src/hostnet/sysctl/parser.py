"""Read sysctl.d files the way systemd-sysctl and procps ``sysctl -p`` read them (pure).

Both strip each line, skip blank lines and comments, take an optional leading ``-`` (ignore a
failure to write), split at the first ``=`` and trim key and value. Neither removes quotes,
neither knows inline comments (text after the value belongs to the value), neither continues
lines. Where the two disagree the parser records it so that lint can say so:

- ``;`` starts a comment for procps and for systemd up to v255; the newest systemd treats it
  as an ordinary character (the line is then "not an assignment" or a bogus key).
- ``key =`` with nothing after: systemd writes the empty string, procps calls it invalid.
- ``-key`` alone: systemd (>= 254) excludes the key from earlier globs; procps rejects it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from hostnet.sysctl.keys import normalize_key

_SUPPRESS = re.compile(r"hostnet:\s*ignore\[([A-Za-z0-9_, ]+)\]")


@dataclass(slots=True)
class Assignment:
    path: str
    line: int
    key: str  # canonical dotted form
    raw_key: str  # as written (after the '-' prefix, trimmed)
    value: str  # trimmed, exactly what the kernel would receive
    column: int  # 1-based column of the key
    value_column: int  # 1-based column of the value
    ignore_failure: bool = False

    @property
    def is_glob(self) -> bool:
        k = self.key
        return "*" in k or "?" in k or "[" in k


@dataclass(frozen=True, slots=True)
class Exclusion:
    """``-key`` without a value: systemd excludes the key from globs."""

    path: str
    line: int
    key: str
    column: int


@dataclass(frozen=True, slots=True)
class NotAssignment:
    """A non-comment line without ``=``."""

    path: str
    line: int
    text: str
    column: int


@dataclass(frozen=True, slots=True)
class Comment:
    path: str
    line: int
    text: str  # the whole stripped line, marker included
    marker: str  # '#' or ';'
    column: int


@dataclass
class ParsedFile:
    path: str
    lines: list[str]
    assignments: list[Assignment] = field(default_factory=list)
    exclusions: list[Exclusion] = field(default_factory=list)
    not_assignments: list[NotAssignment] = field(default_factory=list)
    comments: list[Comment] = field(default_factory=list)
    #: line number -> codes suppressed on that line (from the line itself or the line above)
    suppressed: dict[int, frozenset[str]] = field(default_factory=dict)

    def is_suppressed(self, line: int | None, code: str) -> bool:
        if line is None:
            return False
        codes = self.suppressed.get(line)
        return codes is not None and (code in codes or "ALL" in codes)


def parse_text(text: str, path: str = "<stdin>") -> ParsedFile:
    # systemd and procps split on "\n" only (a form feed is not a line break for them)
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    parsed = ParsedFile(path=path, lines=lines)
    suppress_next: frozenset[str] | None = None
    for number, raw in enumerate(lines, start=1):
        stripped = raw.strip()
        here: frozenset[str] | None = None
        if "hostnet:" in raw:
            match = _SUPPRESS.search(raw)
            if match:
                here = frozenset(c.strip().upper() for c in match.group(1).split(",") if c.strip())
        codes = (suppress_next or frozenset()) | (here or frozenset())
        if codes:
            parsed.suppressed[number] = codes
        # a suppression comment on its own line covers the next line
        suppress_next = here if here is not None and stripped[:1] in ("#", ";") else None
        if not stripped:
            continue
        indent = len(raw) - len(raw.lstrip())
        first = stripped[0]
        if first in "#;":
            parsed.comments.append(Comment(path, number, stripped, first, indent + 1))
            continue
        body = stripped
        ignore = False
        offset = indent
        if body.startswith("-"):
            ignore = True
            body = body[1:]
            offset += 1
        eq = body.find("=")
        if eq < 0:
            key = body.strip()
            if ignore and key and not any(ch.isspace() for ch in key):
                parsed.exclusions.append(Exclusion(path, number, normalize_key(key), offset + 1))
            else:
                parsed.not_assignments.append(NotAssignment(path, number, stripped, indent + 1))
            continue
        raw_key_part = body[:eq]
        raw_key = raw_key_part.strip()
        key_col = offset + (len(raw_key_part) - len(raw_key_part.lstrip())) + 1
        value_part = body[eq + 1 :]
        value = value_part.strip()
        value_col = offset + eq + 1 + (len(value_part) - len(value_part.lstrip())) + 1
        parsed.assignments.append(
            Assignment(
                path=path,
                line=number,
                key=normalize_key(raw_key),
                raw_key=raw_key,
                value=value,
                column=key_col,
                value_column=value_col,
                ignore_failure=ignore,
            )
        )
    return parsed
