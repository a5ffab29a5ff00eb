"""The ``hostnet watch`` screen: plain data in, a rich renderable out (pure).

Every line is built as one :class:`rich.text.Text`, cut to the terminal width and never
wrapped, and the number of lines is budgeted against the terminal height, so the screen fits
an 80x24 SSH session exactly whatever the data (long namespace names, many findings, many
namespaces).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from hostnet.conntrack.sampler import human_rate, sparkline
from hostnet.findings import Finding, Severity
from hostnet.model.conntrack import USAGE_CRITICAL, USAGE_WARNING

if TYPE_CHECKING:
    from rich.console import RenderableType
    from rich.text import Text

WARN_USAGE = USAGE_WARNING
ERROR_USAGE = USAGE_CRITICAL
LABEL_WIDTH = 16


@dataclass(frozen=True, slots=True)
class TopView:
    """The biggest sources of one namespace's table, as last read."""

    rows: tuple[tuple[str, int], ...]
    entries: int  # entries the walk read
    age: float  # seconds since the walk


@dataclass(frozen=True, slots=True)
class NamespaceView:
    label: str
    entries: int | None
    limit: int | None
    peak: int = 0
    growth: float | None = None  # entries per second, signed
    rates: dict[str, float] = field(default_factory=dict)
    history: tuple[float, ...] = ()  # entries at each reading, oldest first
    history_seconds: float = 0.0  # time the history covers
    top: TopView | None = None
    top_note: str = ""  # why there is no (fresh) top list
    gone: bool = False

    @property
    def usage(self) -> float | None:
        if self.entries is None or not self.limit:
            return None
        return self.entries / self.limit


@dataclass(frozen=True, slots=True)
class WatchView:
    namespaces: tuple[NamespaceView, ...]
    findings: tuple[Finding, ...] = ()
    interval: float = 1.0
    clock: str = ""
    status: str = ""  # one-line message (e.g. "reading the table ...")
    keys: str = "q quit  t top sources now"


def _style(usage: float | None) -> str:
    if usage is None:
        return "dim"
    if usage >= ERROR_USAGE:
        return "bold red"
    if usage >= WARN_USAGE:
        return "yellow"
    return "green"


def _num(value: int | None) -> str:
    return "?" if value is None else f"{value:,}"


def _cut(text: str, width: int) -> str:
    if width <= 0:
        return ""
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def _duration(seconds: float) -> str:
    if seconds >= 120:
        return f"{seconds / 60:.0f}m"
    return f"{seconds:.0f}s"


def usage_line(ns: NamespaceView, width: int) -> Text:
    """``NAME  [bar]  count/max  pct``: the bar takes whatever width is left."""
    from rich.text import Text

    usage = ns.usage
    label = _cut(ns.label, LABEL_WIDTH).ljust(LABEL_WIDTH)
    if ns.gone:
        return Text(_cut(f"{label} namespace gone", width), style="dim")
    figures = f" {_num(ns.entries)}/{_num(ns.limit)}"
    pct = f" {usage:6.1%}" if usage is not None else "      ?"
    bar_width = width - len(label) - len(figures) - len(pct) - 3
    line = Text(label, style="bold")
    if bar_width >= 4:
        filled = 0 if usage is None else min(round(usage * bar_width), bar_width)
        line.append(" ")
        line.append("█" * filled, style=_style(usage))
        line.append("░" * (bar_width - filled), style="dim")
        line.append(" ")
    line.append(figures)
    line.append(pct, style=_style(usage))
    line.truncate(width, overflow="ellipsis")
    return line


def rates_line(ns: NamespaceView, width: int) -> Text:
    """Sparkline of the table size, then growth and the counters that matter."""
    from rich.text import Text

    if ns.gone:
        return Text("")
    drop = ns.rates.get("drop")
    parts = [
        f"{ns.growth:+.0f}/s" if ns.growth is not None else "-",
        f"drop {human_rate(drop)}",
        f"early {human_rate(ns.rates.get('early_drop'))}",
        f"fail {human_rate(ns.rates.get('insert_failed'))}",
    ]
    figures = "  ".join(parts)
    span = f" {_duration(ns.history_seconds)}" if ns.history_seconds else ""
    spark_width = width - 2 - len(figures) - len(span) - 2
    line = Text("  ")
    if spark_width >= 8:
        line.append(sparkline(ns.history, spark_width, ceiling=max(ns.history, default=0)
                              or None), style=_style(ns.usage))
        line.append(span, style="dim")
        line.append("  ")
    line.append(figures, style="bold red" if drop else "")
    line.truncate(width, overflow="ellipsis")
    return line


def top_lines(namespaces: Sequence[NamespaceView], width: int, budget: int) -> list[Text]:
    """``Top sources`` heading and rows, at most ``budget`` lines."""
    from rich.text import Text

    if budget < 2:
        return []
    out = [Text(_cut("Top sources", width), style="bold underline")]
    for ns in namespaces:
        if len(out) >= budget:
            break
        if ns.gone:
            continue
        prefix = f"{_cut(ns.label, LABEL_WIDTH)}: " if len(namespaces) > 1 else ""
        if ns.top is None:
            out.append(Text(_cut(f"  {prefix}{ns.top_note or 'not read yet'}", width),
                            style="dim"))
            continue
        total = ns.top.entries or 1
        head = f"  {prefix}{ns.top.entries:,} entries read {_duration(ns.top.age)} ago"
        if ns.top_note:
            head += f" ({ns.top_note})"
        out.append(Text(_cut(head, width), style="dim"))
        for src, count in ns.top.rows:
            if len(out) >= budget:
                break
            out.append(Text(_cut(f"    {src:<39} {count:>9,} {count / total:6.1%}", width)))
    return out


_SEV_STYLE = {Severity.ERROR: "bold red", Severity.WARNING: "yellow", Severity.INFO: "cyan"}


def finding_lines(findings: Sequence[Finding], width: int, budget: int) -> list[Text]:
    """Worst first, one line each, with ``… N more`` when they do not fit."""
    from rich.text import Text

    if budget < 1:
        return []
    if not findings:
        return [Text(_cut("No conntrack findings.", width), style="green")]
    ordered = sorted(findings, key=lambda f: (-int(f.severity), f.code))
    out: list[Text] = []
    shown = ordered if len(ordered) <= budget else ordered[: budget - 1]
    for f in shown:
        line = Text()
        line.append(f"{str(f.severity).upper():<7} ", style=_SEV_STYLE[f.severity])
        line.append(f"{f.code} ", style="bold")
        line.append(f.message.replace("\n", " "))
        line.truncate(width, overflow="ellipsis")
        out.append(line)
    if len(shown) < len(ordered):
        out.append(Text(_cut(f"… {len(ordered) - len(shown)} more (hostnet doctor)", width),
                        style="dim"))
    return out


def screen_lines(view: WatchView, width: int, height: int) -> list[Text]:
    """Every line of the screen, at most ``height`` lines, none wider than ``width``."""
    from rich.text import Text

    width = max(width, 20)
    height = max(height, 4)
    header = Text()
    header.append("hostnet watch", style="bold")
    header.append(f"  conntrack  every {view.interval:g}s  {view.clock}")
    header.truncate(width, overflow="ellipsis")
    footer = Text(_cut(view.status or view.keys, width), style="reverse")
    body_height = height - 2
    lines: list[Text] = []
    # namespaces: two lines each, keep one line for "+N more" when they do not all fit
    per_ns = 2
    room = max(body_height - 4, per_ns)  # leave space for a few findings
    fits = min(len(view.namespaces), room // per_ns)
    if fits < len(view.namespaces):
        fits = max((room - 1) // per_ns, 1)
    for ns in view.namespaces[:fits]:
        lines.append(usage_line(ns, width))
        lines.append(rates_line(ns, width))
    if fits < len(view.namespaces):
        lines.append(Text(_cut(f"+{len(view.namespaces) - fits} more namespaces", width),
                          style="dim"))
    left = body_height - len(lines)
    findings_budget = max(min(len(view.findings), left // 2), 1) + 1
    top_budget = min(left - findings_budget, 1 + 7 * min(fits, 2))
    tops = top_lines(view.namespaces[:fits], width, top_budget)
    lines.extend(tops)
    left = body_height - len(lines)
    if left >= 2:
        lines.append(Text(_cut("Findings", width), style="bold underline"))
        lines.extend(finding_lines(view.findings, width, left - 1))
    lines = lines[:body_height]
    lines.extend(Text("") for _ in range(body_height - len(lines)))
    return [header, *lines, footer]


def render(view: WatchView, width: int = 80, height: int = 24) -> RenderableType:
    """The whole screen as one renderable (a Group of exactly ``height`` lines)."""
    from rich.console import Group

    return Group(*screen_lines(view, width, height))
