"""Render a DoctorReport: a text report grouped by area (worst first) and a Nagios line.

Pure: report in, string out. Colour comes from rich only when asked for (a terminal).
"""

from __future__ import annotations

from hostnet.checks.runner import AREAS, DoctorReport, NamespaceReport, area
from hostnet.findings import Finding, Severity, summary, worst
from hostnet.model.conntrack import USAGE_CRITICAL, USAGE_WARNING

NAGIOS_STATES = ("OK", "WARNING", "CRITICAL", "UNKNOWN")
_TAG = {Severity.ERROR: "ERROR", Severity.WARNING: "WARN ", Severity.INFO: "info "}
_STYLE = {Severity.ERROR: "bold red", Severity.WARNING: "bold yellow", Severity.INFO: "cyan"}


def _counts(findings: list[Finding]) -> str:
    c = summary(findings)
    parts = [f"{c[k]} {k}{'s' if c[k] != 1 and k != 'info' else ''}"
             for k in ("error", "warning", "info") if c[k]]
    return ", ".join(parts) if parts else "no findings"


def verdict(report: DoctorReport) -> str:
    findings = report.findings
    level = worst(findings)
    if not report.readable:
        head = "UNKNOWN: nothing could be read"
    elif level is Severity.ERROR:
        head = "PROBLEMS"
    elif level is Severity.WARNING:
        head = "WARNINGS"
    else:
        head = "HEALTHY"
    where = (f"{len(report.namespaces)} namespaces" if report.several else
             (f"namespace {report.namespaces[0].name}" if report.namespaces
              and report.namespaces[0].name else "this host"))
    return f"hostnet doctor: {head} - {_counts(findings)} on {where}"


def _role_line(ns: NamespaceReport) -> str:
    how = "" if ns.role_given else "recommended "
    return f"role: {ns.role} ({how}because {ns.role_reason})" if not ns.role_given else (
        f"role: {ns.role} ({ns.role_reason})")


def _section_order(findings: list[Finding]) -> list[tuple[str, list[Finding]]]:
    groups: dict[str, list[Finding]] = {}
    for f in findings:
        groups.setdefault(area(f.code), []).append(f)
    known = list(AREAS.values())
    for items in groups.values():
        items.sort(key=lambda f: (-int(f.severity), f.code, f.key or ""))
    return sorted(groups.items(), key=lambda kv: (-int(kv[1][0].severity),
                                                   known.index(kv[0]) if kv[0] in known else 99))


def _evidence(f: Finding) -> str:
    parts = []
    for k, v in f.evidence.items():
        if k in ("namespace", "sizing_steps", "composition", "examples"):
            continue
        if isinstance(v, list) and v and isinstance(v[0], dict):
            v = ", ".join(str(d.get("interface", d.get("chain", "?"))) for d in v)
        parts.append(f"{k}={v}")
    text = ", ".join(parts)
    return text if len(text) <= 600 else text[:597] + "..."


def render_text(report: DoctorReport, *, colour: bool = False, verbose: bool = True) -> str:
    lines: list[tuple[str, str | None]] = [(verdict(report), "bold")]
    for ns in report.namespaces:
        lines.append(("", None))
        if report.several:
            lines.append((f"== namespace {ns.label}: {_counts(ns.findings)}", "bold"))
        if ns.readable:  # no role guessed from nothing
            lines.append((_role_line(ns), "dim"))
        if not ns.findings:
            lines.append(("  nothing to report", None))
        for name, items in _section_order(ns.findings):
            lines.append(("", None))
            lines.append((f"{name} ({_counts(items)})", "bold underline"))
            for f in items:
                lines.append((f"  {_TAG[f.severity]} {f.code} {f.name}: {f.message}",
                              _STYLE[f.severity]))
                if verbose and f.evidence:
                    lines.append((f"        seen: {_evidence(f)}", "dim"))
                if f.suggestion:
                    lines.append(("        fix:", None))
                    lines.extend((f"          {s}", "green") for s in f.suggestion.splitlines())
    unreadable = report.unreadable
    if unreadable:
        lines.append(("", None))
        lines.append(("Could not read (run as root for a complete report):", "bold"))
        lines.extend((f"  - {u}", "dim") for u in unreadable)
    if not colour:
        return "\n".join(text for text, _ in lines) + "\n"
    from rich.console import Console
    from rich.text import Text

    console = Console(force_terminal=True, highlight=False, soft_wrap=True, width=200)
    with console.capture() as cap:
        for text, style in lines:
            console.print(Text(text, style=style or ""))
    return cap.get()


def perf_label(label: str) -> str:
    """A perfdata label quoted as the Nagios plugin guidelines say: in single quotes, a quote
    inside doubled; '=' (never allowed in a label) and control characters become '_'."""
    clean = "".join("_" if ch == "=" or ord(ch) < 32 else ch for ch in label)
    return "'" + clean.replace("'", "''") + "'"


def _perfdata(ns: NamespaceReport, prefix: str) -> list[str]:
    out: list[str] = []
    ct = ns.conntrack
    if ct is None:
        return out
    usage, drops = ct.usage, ct.counter("drop")
    if usage is not None:
        out.append(f"{perf_label(prefix + 'conntrack_usage')}={usage * 100:.1f}%;"
                   f"{USAGE_WARNING * 100:g};{USAGE_CRITICAL * 100:g};0;100")
    if ct.count is not None:
        out.append(f"{perf_label(prefix + 'conntrack_entries')}={ct.count};;;0;"
                   f"{ct.max if ct.max is not None else ''}")
    if drops is not None:
        out.append(f"{perf_label(prefix + 'drops')}={drops}c")
    return out


def _plain(text: str) -> str:
    """Status text on one line without '|' (which starts the perfdata)."""
    return " ".join(text.replace("|", "/").split())


def nagios_unknown(message: str) -> tuple[int, str]:
    """(3, line) for a run that could not check anything: bad options, unreadable input."""
    return 3, f"HOSTNET UNKNOWN - {_plain(message)}"


def nagios(report: DoctorReport) -> tuple[int, str]:
    """(exit code, status line): 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN."""
    if not report.readable:
        state = 3
        text = "nothing could be read: " + "; ".join(report.unreadable[:3])
    else:
        level = worst(report.findings)
        state = {Severity.ERROR: 2, Severity.WARNING: 1}.get(level, 0) if level else 0
        top = sorted((f for f in report.findings if f.severity >= Severity.WARNING),
                     key=lambda f: -int(f.severity))
        text = _counts(report.findings)
        if top:
            text += ": " + "; ".join(f"{f.code} {f.name}" for f in top[:3])
    perf: list[str] = []
    for ns in report.namespaces:
        perf.extend(_perfdata(ns, f"{ns.label}_" if report.several else ""))
    if report.skipped:
        n = len(report.skipped)
        text += (f"; {n} namespace{'s' if n != 1 else ''} skipped (not checked: "
                 f"{', '.join(report.skipped[:3])}{', ...' if n > 3 else ''})")
        perf.append(f"{perf_label('namespaces_skipped')}={n}")
    line = f"HOSTNET {NAGIOS_STATES[state]} - {_plain(text)}"
    if perf:
        line += " | " + " ".join(perf)
    return state, line
