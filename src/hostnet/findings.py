"""The findings model shared by every rule family (see DESIGN.md, Findings)."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any


class Severity(enum.IntEnum):
    INFO = 0
    WARNING = 1
    ERROR = 2

    def __str__(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Severity:
        try:
            return cls[text.upper()]
        except KeyError:
            raise ValueError(f"unknown severity {text!r} (error, warning, info)") from None


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule: a stable code, a kebab-case name, a default severity and a one-line summary.

    Its documentation page lives in ``hostnet/knowledge/rules/<code>.md``.
    """

    code: str
    name: str
    severity: Severity
    summary: str

    @property
    def docs(self) -> str:
        return f"hostnet explain {self.code}"

    def finding(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        column: int | None = None,
        key: str | None = None,
        evidence: dict[str, Any] | None = None,
        suggestion: str | None = None,
        severity: Severity | None = None,
    ) -> Finding:
        return Finding(
            code=self.code,
            name=self.name,
            severity=self.severity if severity is None else severity,
            message=message,
            path=path,
            line=line,
            column=column,
            key=key,
            evidence=dict(evidence or {}),
            suggestion=suggestion,
            docs=self.docs,
        )


@dataclass(frozen=True, slots=True)
class Finding:
    code: str
    name: str
    severity: Severity
    message: str
    path: str | None = None
    line: int | None = None
    column: int | None = None
    key: str | None = None
    evidence: dict[str, Any] = field(default_factory=dict)
    suggestion: str | None = None
    docs: str | None = None

    def sort_key(self) -> tuple[str, int, str, str]:
        return (self.path or "", self.line or 0, self.code, self.key or "")

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "name": self.name,
            "severity": str(self.severity),
            "path": self.path,
            "line": self.line,
            "column": self.column,
            "key": self.key,
            "message": self.message,
            "evidence": self.evidence,
            "suggestion": self.suggestion,
            "docs": self.docs,
        }


def normalize(findings: Iterable[Finding]) -> list[Finding]:
    """Sort by (path, line, code) and drop exact repeats of (path, line, code, key, message)."""
    seen: set[tuple[Any, ...]] = set()
    out: list[Finding] = []
    for f in sorted(findings, key=Finding.sort_key):
        ident = (f.path, f.line, f.code, f.key, f.message)
        if ident in seen:
            continue
        seen.add(ident)
        out.append(f)
    return out


def summary(findings: Iterable[Finding]) -> dict[str, int]:
    counts = {"error": 0, "warning": 0, "info": 0}
    for f in findings:
        counts[str(f.severity)] += 1
    return counts


def worst(findings: Iterable[Finding]) -> Severity | None:
    level: Severity | None = None
    for f in findings:
        if level is None or f.severity > level:
            level = f.severity
    return level
