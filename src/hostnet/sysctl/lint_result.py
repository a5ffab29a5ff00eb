"""What a lint run produces: findings, the edits --fix would make, notes about whole files."""

from __future__ import annotations

from dataclasses import dataclass, field

from hostnet.findings import Finding, Rule
from hostnet.sysctl.parser import Assignment


@dataclass(frozen=True, slots=True)
class Edit:
    """A change --fix makes: replace ``line`` of ``path`` with ``lines`` (empty: delete)."""

    path: str
    line: int
    lines: tuple[str, ...]


@dataclass
class LintResult:
    findings: list[Finding] = field(default_factory=list)
    edits: list[Edit] = field(default_factory=list)
    #: final effective value of each key after all files (key -> assignment that wins)
    effective: dict[str, Assignment] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FileNote:
    """Something about a whole file found while discovering files (masked, not read...)."""

    rule: Rule
    path: str
    message: str
    suggestion: str | None = None
