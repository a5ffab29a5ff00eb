"""Run the doctor's checks over an observed HostState (pure) and gather the report:
``evaluate(host, role=None) -> DoctorReport``. The I/O around it (observing the host, keeping
counter history) is in :mod:`hostnet.service.doctor`.
A check that raises is a bug: it is reported as such in ``unreadable`` and the others still
run, so one broken rule never hides the rest.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from hostnet.checks.base import Check, Subject
from hostnet.checks.facts import facts
from hostnet.checks.roles import recommend_for
from hostnet.findings import Finding, Severity, normalize, summary, worst
from hostnet.knowledge.catalogue import Catalogue
from hostnet.knowledge.catalogue import load as load_catalogue
from hostnet.knowledge.roles import load as load_role
from hostnet.model.host import ConntrackView, HostState, NetnsState

DEFAULT_MODULES: tuple[str, ...] = (
    "hostnet.checks.conntrack_table",
    "hostnet.checks.conntrack_composition",
    "hostnet.checks.conntrack_log",
    "hostnet.checks.conntrack_timeouts",
    "hostnet.checks.hardening",
    "hostnet.checks.tuning",
    "hostnet.checks.nat",
    "hostnet.checks.nat_coexist",
    "hostnet.checks.ipv6",
    "hostnet.checks.vm",
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
    #: The conntrack reading judged (for Nagios perfdata), typed.
    conntrack: ConntrackView | None = None

    @property
    def label(self) -> str:
        return self.name or INITIAL


@dataclass
class DoctorReport:
    namespaces: list[NamespaceReport] = field(default_factory=list)
    #: Problems outside any one namespace (a namespace that could not be entered).
    notes: list[str] = field(default_factory=list)
    #: Namespaces left out because they could not be entered (skip_denied).
    skipped: list[str] = field(default_factory=list)

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


def _load(modules: Iterable[str]) -> list[tuple[str, Sequence[Check]]]:
    out: list[tuple[str, Sequence[Check]]] = []
    for name in modules:
        module = importlib.import_module(name)
        out.append((name, tuple(getattr(module, "CHECKS", ()))))
    return out


def evaluate_namespace(host: HostState, ns: NetnsState, *, role: str | None = None,
                       modules: Sequence[str] = DEFAULT_MODULES,
                       catalogue: Catalogue | None = None) -> NamespaceReport:
    """Judge one observed namespace (pure)."""
    recommended, reason = recommend_for(ns)
    chosen = role or recommended
    if role is not None:
        reason = (f"given with --role (the host looks like a {recommended}: {reason})"
                  if role != recommended else f"given with --role; {reason}")
    subject = Subject(host, ns, load_role(chosen), catalogue or load_catalogue())
    findings: list[Finding] = []
    problems: list[str] = []
    for mod_name, checks in _load(modules):
        for check in checks:
            try:
                findings.extend(check(subject))
            except Exception as exc:
                problems.append(f"{mod_name}.{check.__name__}: internal error ({exc!r}); "
                                "please report it")
    ordered = normalize(findings)
    if ns.is_child:
        ordered = [_tag(f, ns.label) for f in ordered]
    return NamespaceReport(
        name=ns.name if ns.name is not None else ns.snapshot_of, role=chosen,
        role_reason=reason, role_given=role is not None, findings=ordered,
        facts=facts(host, ns, recommended, ordered),
        unreadable=list(dict.fromkeys([*ns.unreadable, *problems])), readable=ns.readable,
        conntrack=ns.conntrack)


def _tag(f: Finding, name: str) -> Finding:
    return replace(f, evidence={"namespace": name, **f.evidence})


def evaluate(host: HostState, *, role: str | None = None,
             modules: Sequence[str] = DEFAULT_MODULES) -> DoctorReport:
    """Judge every observed namespace (pure)."""
    catalogue = load_catalogue()
    report = DoctorReport(notes=[*(f"namespace {name}: {why}" for name, why in host.skipped),
                                 *host.unreadable],
                          skipped=[name for name, _ in host.skipped])
    for ns in host.namespaces:
        report.namespaces.append(evaluate_namespace(host, ns, role=role, modules=modules,
                                                    catalogue=catalogue))
    return report
