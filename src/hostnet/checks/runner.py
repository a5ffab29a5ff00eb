"""Run the doctor's check modules over one or more network namespaces.

Library entry point (used by ``hostnet doctor`` and the Prometheus exporter)::

    from hostnet.checks.runner import run
    report = run(root=None, netns=[None, "blue"], composition=False)
    report.findings        # every finding; evidence["namespace"] says where
    report.namespaces[0].facts["conntrack_usage"]

``run`` arguments:

``root``         a :class:`~hostnet.host.root.Root` (fixture tree or unpacked snapshot), or None
                 for the live host. A snapshot is one namespace: ``netns`` must then be (None,).
``role``         force a role (server, nat-router, vm-host, desktop); None recommends one per
                 namespace from what it shows (:func:`hostnet.checks.roles.recommend`).
``netns``        namespaces to check: None is the namespace we run in, a name is entered with
                 setns (root only).
``modules``      check modules to run (default: conntrack, hardening, tuning, nat, ipv6).
``composition``  False skips the expensive parts (conntrack table walk, kernel log scan).
``interval``     seconds to sample conntrack counters for rates; ``state_dir`` keeps readings.
``skip_denied``  with several namespaces, note one that cannot be entered instead of failing.

Each namespace gets its own :class:`Context`; a check that hits a permission error or a failed
command is noted in ``unreadable`` and the others still run.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hostnet.checks.context import Context
from hostnet.errors import HostnetError, PermissionDenied, UsageError
from hostnet.findings import Finding, Severity, normalize, summary, worst
from hostnet.host.root import Root

DEFAULT_MODULES: tuple[str, ...] = (
    "hostnet.checks.conntrack",
    "hostnet.checks.hardening",
    "hostnet.checks.tuning",
    "hostnet.checks.nat",
    "hostnet.checks.ipv6",
)
#: Area of each code family, in the order the text report lists them.
AREAS: dict[str, str] = {
    "CT": "Conntrack",
    "HD": "Hardening",
    "TN": "Tuning",
    "NT": "NAT/forwarding",
    "V6": "IPv6",
    "VM": "VM networking",
}
INITIAL = "initial"


def area(code: str) -> str:
    return AREAS.get(code[:2], "Other")


@dataclass
class NamespaceReport:
    name: str | None  # None: the namespace we ran in (the initial one on a normal host)
    role: str
    role_reason: str
    role_given: bool
    findings: list[Finding] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)
    unreadable: list[str] = field(default_factory=list)
    readable: bool = True

    @property
    def label(self) -> str:
        return self.name or INITIAL


@dataclass
class DoctorReport:
    namespaces: list[NamespaceReport] = field(default_factory=list)
    #: Problems outside any one namespace (a namespace that could not be entered).
    notes: list[str] = field(default_factory=list)

    @property
    def several(self) -> bool:
        return len(self.namespaces) > 1

    @property
    def findings(self) -> list[Finding]:
        return [f for ns in self.namespaces for f in ns.findings]

    @property
    def unreadable(self) -> list[str]:
        out = list(self.notes)
        for ns in self.namespaces:
            prefix = f"[{ns.label}] " if self.several else ""
            out.extend(prefix + u for u in ns.unreadable)
        return out

    @property
    def readable(self) -> bool:
        return any(ns.readable for ns in self.namespaces)

    def worst(self) -> Severity | None:
        return worst(self.findings)

    def summary(self) -> dict[str, int]:
        return summary(self.findings)

    def json_extra(self) -> dict[str, Any]:
        """The doctor's additions to the DESIGN.md JSON document."""
        if self.several:
            return {
                "role": {ns.label: ns.role for ns in self.namespaces},
                "role_reason": {ns.label: ns.role_reason for ns in self.namespaces},
                "facts": {ns.label: ns.facts for ns in self.namespaces},
                "namespaces": [ns.label for ns in self.namespaces],
                "unreadable": self.unreadable,
            }
        ns = self.namespaces[0] if self.namespaces else None
        return {
            "role": ns.role if ns else None,
            "role_reason": ns.role_reason if ns else None,
            "facts": ns.facts if ns else {},
            "namespace": ns.label if ns else None,
            "unreadable": self.unreadable,
        }


def _load(modules: Iterable[str]) -> list[tuple[str, Sequence[Any]]]:
    out: list[tuple[str, Sequence[Any]]] = []
    for name in modules:
        module = importlib.import_module(name)
        out.append((name, tuple(getattr(module, "CHECKS", ()))))
    return out


def _public(facts: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in facts.items() if not k.startswith("_")}


def check_namespace(
    root: Root,
    *,
    name: str | None = None,
    role: str | None = None,
    modules: Sequence[str] = DEFAULT_MODULES,
    composition: bool = True,
    interval: float | None = None,
    state_dir: Path | None = None,
) -> NamespaceReport:
    """Run the checks on ``root`` as it is now (the caller has entered the namespace)."""
    from hostnet.checks.roles import recommend_for

    ctx = Context(root, netns=name, state_dir=state_dir, interval=interval,
                  composition=composition)
    recommended, reason = recommend_for(ctx)
    chosen = role or recommended
    if role is not None:
        reason = (f"given with --role (the host looks like a {recommended}: {reason})"
                  if role != recommended else f"given with --role; {reason}")
    ctx.role = chosen
    ctx.fact("role_recommended", recommended)
    findings: list[Finding] = []
    for mod_name, checks in _load(modules):
        for check in checks:
            try:
                findings.extend(check(ctx))
            except PermissionError as exc:
                ctx.unreadable.append(
                    f"{mod_name}.{check.__name__}: permission denied ({exc.filename or exc})")
            except HostnetError as exc:
                ctx.unreadable.append(f"{mod_name}.{check.__name__}: {exc.message}")
    ordered = normalize(findings)
    if name is not None:
        ordered = [_tag(f, name) for f in ordered]
    readable = bool(root.osrelease) or ctx.sysctl("net.ipv4.ip_forward") is not None
    return NamespaceReport(name=name, role=chosen, role_reason=reason, role_given=role is not None,
                           findings=ordered, facts=_public(ctx.facts),
                           unreadable=list(dict.fromkeys(ctx.unreadable)), readable=readable)


def _tag(f: Finding, name: str) -> Finding:
    from dataclasses import replace

    return replace(f, evidence={"namespace": name, **f.evidence})


def run(
    root: Root | None = None,
    *,
    role: str | None = None,
    netns: Sequence[str | None] = (None,),
    modules: Sequence[str] = DEFAULT_MODULES,
    composition: bool = True,
    interval: float | None = None,
    state_dir: Path | None = None,
    skip_denied: bool = False,
) -> DoctorReport:
    """Check every namespace in ``netns`` (see the module docstring)."""
    if root is not None and not root.is_live and any(n is not None for n in netns):
        raise UsageError("a snapshot or fixture tree is one namespace: --netns does not apply",
                         hint="collect each namespace with 'hostnet collect --netns NAME'")
    report = DoctorReport()
    for name in netns:
        if name is None:
            report.namespaces.append(check_namespace(
                root or Root("/"), name=None, role=role, modules=modules,
                composition=composition, interval=interval, state_dir=state_dir))
            continue
        from hostnet.host.netns import entered

        try:
            with entered(name):
                report.namespaces.append(check_namespace(
                    Root("/"), name=name, role=role, modules=modules, composition=composition,
                    interval=interval, state_dir=state_dir))
        except (PermissionDenied, HostnetError) as exc:
            if not skip_denied or isinstance(exc, UsageError):
                raise
            report.notes.append(f"namespace {name}: {exc.message}")
    return report
