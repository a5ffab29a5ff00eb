"""Apply exactly a finding's proposed fix inside a lab namespace.

A suggestion is applied line by line, as written:

* empty lines and comment lines (``#`` ..., including a header naming the file the lines
  belong in, such as ``# /etc/sysctl.d/90-hostnet.conf``) are skipped;
* ``key = value`` is written to /proc/sys inside the namespace (the key's dots are path
  separators; a ``/`` in it stands for a dot in an interface name, as sysctl(8) reads it);
* ``table inet hostnet { ... }`` (up to its closing brace) is loaded with ``nft -f -`` inside
  the namespace, the only table hostnet owns.

Only ``net.*`` keys are per network namespace; any other key (``kernel.*``, ``vm.*``) would
change the whole host from inside the namespace and is refused. So is anything else (a
modprobe ``options`` line, a shell command, prose such as "remove the line",
another nft table) raises :class:`NotApplicable` naming the line, so a rule whose fix cannot
be applied this way shows up as a failing proof instead of a silently skipped one. Nothing is
ever written outside a namespace created by the tests (``hn-test-*``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from tests.helpers.labs import sysctl_path
from tests.helpers.netns import PREFIX, Netns

KEY = re.compile(r"^[a-z0-9_][a-z0-9_./-]*$")
TABLE = re.compile(r"^table\s+(\S+)\s+(\S+)\s*\{")


class NotApplicable(ValueError):
    """The suggestion holds a line that is neither a sysctl assignment nor hostnet's table."""


@dataclass(frozen=True, slots=True)
class SysctlWrite:
    key: str
    value: str
    line: int

    @property
    def path(self) -> str:
        return sysctl_path(self.key)


@dataclass(frozen=True, slots=True)
class NftLoad:
    text: str
    line: int


Step = SysctlWrite | NftLoad


def parse(suggestion: str) -> list[Step]:
    """The steps of a suggestion, in order. NotApplicable on any other line."""
    steps: list[Step] = []
    lines = suggestion.split("\n")
    i = 0
    while i < len(lines):
        number, line = i + 1, lines[i].strip()
        i += 1
        if not line or line.startswith("#"):
            continue
        table = TABLE.match(line)
        if table:
            if (table.group(1), table.group(2)) != ("inet", "hostnet"):
                raise NotApplicable(
                    f"line {number}: {line!r}: only 'table inet hostnet' is hostnet's to load")
            depth, body = 0, []
            for raw in [lines[number - 1], *lines[i:]]:
                body.append(raw)
                depth += raw.count("{") - raw.count("}")
                if depth <= 0:
                    break
            if depth > 0:
                raise NotApplicable(f"line {number}: table inet hostnet is never closed")
            i = number - 1 + len(body)
            steps.append(NftLoad("\n".join(body) + "\n", number))
            continue
        key, eq, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if not eq or not KEY.match(key) or "." not in key or not value:
            raise NotApplicable(
                f"line {number}: {line!r} is neither 'key = value' nor 'table inet hostnet'")
        if not key.startswith("net."):
            # only net.* is per namespace: kernel.*, vm.*, fs.* written inside a namespace
            # change the whole host
            raise NotApplicable(f"line {number}: {key} is host-wide, not per network namespace")
        steps.append(SysctlWrite(key, value, number))
    if not steps:
        raise NotApplicable(f"nothing to apply in {suggestion!r}")
    return steps


def apply(ns: Netns, suggestion: str, *,
          before_write: Callable[[str], None] | None = None) -> list[Step]:
    """Apply every step of ``suggestion`` inside ``ns``; ``before_write(key)`` is called
    before each sysctl write (to remember the old value). Raises NotApplicable before
    changing anything when a line cannot be applied, AssertionError when the kernel refuses
    a write or the table."""
    if not isinstance(ns, Netns) or not ns.name.startswith(PREFIX):
        raise AssertionError(f"refusing to apply a fix outside a test namespace ({ns!r})")
    steps = parse(suggestion)
    for step in steps:
        if isinstance(step, SysctlWrite):
            if ns.run(["test", "-e", step.path], check=False).returncode != 0:
                raise AssertionError(f"{step.key}: no such sysctl in {ns.name} ({step.path})")
            if before_write is not None:
                before_write(step.key)
            proc = ns.run(["sh", "-c", f"printf '%s' \"$1\" > '{step.path}'", "sh", step.value],
                          check=False)
            if proc.returncode != 0:
                raise AssertionError(
                    f"the kernel refused {step.key} = {step.value} in {ns.name}: "
                    f"{proc.stderr.strip()}")
        else:
            ns.run(["nft", "-f", "-"], input=step.text)
    return steps


REMOVE = ("remove the line", "remove this line")


def apply_to_file(text: str, line: int, suggestion: str, exists: Callable[[str], bool]) -> str:
    """A sysctl file's text with a lint finding's suggestion applied to its line ``line``.

    ``remove the line`` deletes it. Sysctl lines re-value the line that sets the same key
    (the flagged line or another one); a suggested key the file does not set replaces the
    flagged line when that line's key is not a real key (``exists(key)`` is False: a typo, a
    removed key, a dotted interface, a line without '='), and is added after it otherwise
    (a real setting is never dropped). NotApplicable for any other suggestion."""
    lines = text.split("\n")
    if not 1 <= line <= len(lines):
        raise NotApplicable(f"line {line} is not in the file ({len(lines)} lines)")
    if suggestion.strip() in REMOVE:
        return "\n".join(lines[: line - 1] + lines[line:])
    steps = parse(suggestion) if not suggestion.lstrip().startswith("#") else []
    if not steps:
        comment = lines[line - 1].lstrip().startswith(("#", ";"))
        if comment and suggestion.lstrip().startswith("#") and "\n" not in suggestion.strip():
            lines[line - 1] = suggestion.strip()  # a comment line for a comment line
            return "\n".join(lines)
        raise NotApplicable(f"nothing to apply in {suggestion!r}")
    if any(isinstance(s, NftLoad) for s in steps):
        raise NotApplicable("an nft table does not belong in a sysctl file")

    def key_of(raw: str) -> str | None:
        k, eq, _ = raw.strip().lstrip("-").partition("=")
        return k.strip() if eq and not raw.lstrip().startswith(("#", ";")) else None

    flagged = key_of(lines[line - 1])
    pending: list[str] = []
    for step in steps:
        assert isinstance(step, SysctlWrite)
        new = f"{step.key} = {step.value}"
        where = [i for i, raw in enumerate(lines) if key_of(raw) == step.key]
        if where:
            lines[where[-1]] = new
        else:
            pending.append(new)
    if pending:
        if flagged is None or not exists(flagged):
            lines[line - 1: line] = pending
        else:
            lines[line:line] = pending
    return "\n".join(lines)
