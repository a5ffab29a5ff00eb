"""Render findings as text, json, sarif or GitHub annotations (pure: findings -> str)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from hostnet import __version__
from hostnet.findings import Finding, Severity, summary

FORMATS = ("text", "json", "sarif", "github")

_COLOURS = {Severity.ERROR: "\x1b[1;31m", Severity.WARNING: "\x1b[1;33m", Severity.INFO: "\x1b[36m"}
_RESET = "\x1b[0m"
_DIM = "\x1b[2m"


def location(f: Finding) -> str:
    if not f.path:
        return f.key or "-"
    out = f.path
    if f.line:
        out += f":{f.line}"
        if f.column:
            out += f":{f.column}"
    return out


def render_text(findings: Sequence[Finding], *, colour: bool = False, verbose: bool = False) -> str:
    lines: list[str] = []
    for f in findings:
        sev = str(f.severity)
        if colour:
            sev = f"{_COLOURS[f.severity]}{sev}{_RESET}"
        lines.append(f"{location(f)}: {sev} {f.code} [{f.name}] {f.message}")
        if f.suggestion:
            fix = f"    fix: {f.suggestion}"
            lines.append(f"{_DIM}{fix}{_RESET}" if colour else fix)
        if verbose and f.evidence:
            seen = ", ".join(f"{k}={v}" for k, v in f.evidence.items())
            lines.append(f"    seen: {seen}")
    counts = summary(findings)
    total = sum(counts.values())
    if total:
        lines.append(
            f"{total} finding{'s' if total != 1 else ''}: "
            f"{counts['error']} error, {counts['warning']} warning, {counts['info']} info"
        )
    else:
        lines.append("no findings")
    return "\n".join(lines) + "\n"


def json_document(findings: Sequence[Finding], **extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "version": 1,
        "findings": [f.to_dict() for f in findings],
        "summary": summary(findings),
    }
    doc.update(extra)
    return doc


def render_json(findings: Sequence[Finding], **extra: Any) -> str:
    return json.dumps(json_document(findings, **extra), indent=2, sort_keys=False) + "\n"


_SARIF_LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}


def render_sarif(findings: Sequence[Finding]) -> str:
    from hostnet.rules import all_rules

    rules = all_rules()
    used = sorted({f.code for f in findings})
    rule_index = {code: i for i, code in enumerate(used)}
    results = []
    for f in findings:
        result: dict[str, Any] = {
            "ruleId": f.code,
            "ruleIndex": rule_index[f.code],
            "level": _SARIF_LEVEL[f.severity],
            "message": {"text": f.message + (f" Fix: {f.suggestion}" if f.suggestion else "")},
        }
        if f.path:
            region: dict[str, int] = {}
            if f.line:
                region["startLine"] = f.line
                if f.column:
                    region["startColumn"] = f.column
            loc: dict[str, Any] = {"artifactLocation": {"uri": f.path.lstrip("/")}}
            if region:
                loc["region"] = region
            result["locations"] = [{"physicalLocation": loc}]
        elif f.key:
            result["locations"] = [{"logicalLocations": [{"name": f.key, "kind": "variable"}]}]
        results.append(result)
    driver_rules = []
    for code in used:
        rule = rules.get(code)
        driver_rules.append(
            {
                "id": code,
                "name": rule.name if rule else code,
                "shortDescription": {"text": rule.summary if rule else code},
                "defaultConfiguration": {
                    "level": _SARIF_LEVEL[rule.severity] if rule else "warning"
                },
            }
        )
    doc = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "hostnet",
                        "version": __version__,
                        "rules": driver_rules,
                    }
                },
                "results": results,
            }
        ],
    }
    return json.dumps(doc, indent=2) + "\n"


def _gh_escape(text: str, *, prop: bool = False) -> str:
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    if prop:
        text = text.replace(":", "%3A").replace(",", "%2C")
    return text


_GH_LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "notice"}


def render_github(findings: Sequence[Finding]) -> str:
    lines = []
    for f in findings:
        props = []
        if f.path:
            props.append(f"file={_gh_escape(f.path, prop=True)}")
        if f.line:
            props.append(f"line={f.line}")
        if f.column:
            props.append(f"col={f.column}")
        props.append(f"title={_gh_escape(f'{f.code} {f.name}', prop=True)}")
        msg = f.message + (f" Fix: {f.suggestion}" if f.suggestion else "")
        lines.append(f"::{_GH_LEVEL[f.severity]} {','.join(props)}::{_gh_escape(msg)}")
    return "\n".join(lines) + ("\n" if lines else "")


def render(fmt: str, findings: Sequence[Finding], *, colour: bool = False, **extra: Any) -> str:
    if fmt == "text":
        return render_text(findings, colour=colour)
    if fmt == "json":
        return render_json(findings, **extra)
    if fmt == "sarif":
        return render_sarif(findings)
    if fmt == "github":
        return render_github(findings)
    raise ValueError(f"unknown format {fmt!r}")
