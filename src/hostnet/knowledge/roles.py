"""Role profiles (data in roles.toml) resolved through their ``inherits`` chains.

A role says what a host of that kind should look like: bounds on scalar sysctl keys (each with
the rule code to report, a severity and the reason), what the per-interface keys should come to,
how many ephemeral ports it needs, and the longest conntrack timeouts it should keep (CT112).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Any

from hostnet.findings import Severity

ROLES = ("server", "nat-router", "vm-host", "desktop")
OPS = ("min", "max", "equal", "not")


class RoleError(ValueError):
    """roles.toml is inconsistent (unknown parent, cycle, bad entry)."""


@dataclass(frozen=True, slots=True)
class Expectation:
    key: str
    op: str  # min, max, equal, not
    bound: int
    fix: int
    code: str
    severity: Severity
    reason: str

    def met(self, value: int) -> bool:
        if self.op == "min":
            return value >= self.bound
        if self.op == "max":
            return value <= self.bound
        if self.op == "equal":
            return value == self.bound
        return value != self.bound

    def wanted(self) -> str:
        return {"min": f">= {self.bound}", "max": f"<= {self.bound}",
                "equal": f"= {self.bound}", "not": f"not {self.bound}"}[self.op]


@dataclass(frozen=True, slots=True)
class TimeoutAdvice:
    """A conntrack timeout a role wants at most ``max`` seconds (CT112), suggesting ``fix``."""

    key: str
    max: int
    fix: int
    reason: str


@dataclass(frozen=True, slots=True)
class Role:
    name: str
    description: str
    chain: tuple[str, ...]  # this role first, then its ancestors
    expectations: dict[str, Expectation] = field(default_factory=dict)
    interfaces: dict[str, Any] = field(default_factory=dict)
    local_ports_min: int = 0
    conntrack_timeouts: dict[str, TimeoutAdvice] = field(default_factory=dict)

    def iface(self, name: str, fallback: Any = None) -> Any:
        return self.interfaces.get(name, fallback)


def _expectation(role: str, key: str, raw: dict[str, Any]) -> Expectation:
    ops = [op for op in OPS if op in raw]
    if len(ops) != 1:
        raise RoleError(f"roles.toml: {role}: {key}: give exactly one of {', '.join(OPS)}")
    op = ops[0]
    bound = int(raw[op])
    try:
        severity = Severity.parse(str(raw.get("severity", "warning")))
    except ValueError as exc:
        raise RoleError(f"roles.toml: {role}: {key}: {exc}") from None
    code = raw.get("code")
    if not isinstance(code, str) or not code:
        raise RoleError(f"roles.toml: {role}: {key}: missing code")
    return Expectation(key=key, op=op, bound=bound, fix=int(raw.get("fix", bound)), code=code,
                       severity=severity, reason=str(raw.get("reason", "")))


def _timeout(role: str, key: str, raw: dict[str, Any]) -> TimeoutAdvice:
    try:
        bound = int(raw["max"])
        fix = int(raw.get("fix", bound))
    except (KeyError, TypeError, ValueError):
        raise RoleError(f"roles.toml: {role}: conntrack_timeouts {key}: give max = SECONDS "
                        "(and optionally fix = SECONDS)") from None
    if not 0 < fix <= bound:
        raise RoleError(f"roles.toml: {role}: conntrack_timeouts {key}: fix must be between "
                        f"1 and max ({bound})")
    reason = raw.get("reason")
    if not isinstance(reason, str) or not reason:
        raise RoleError(f"roles.toml: {role}: conntrack_timeouts {key}: missing reason")
    return TimeoutAdvice(key=key, max=bound, fix=fix, reason=reason)


def resolve(data: dict[str, Any], name: str) -> Role:
    """The role ``name`` with its parents' entries folded in (pure; ``data`` is the toml)."""
    roles = data.get("roles", {})
    chain: list[str] = []
    current: str | None = name
    while current is not None:
        if current in chain:
            raise RoleError(f"roles.toml: inheritance cycle {' -> '.join([*chain, current])}")
        if current not in roles:
            known = ", ".join(sorted(roles))
            raise RoleError(f"unknown role {current!r} (known: {known})")
        chain.append(current)
        parent = roles[current].get("inherits")
        current = str(parent) if parent is not None else None
    expectations: dict[str, Expectation] = {}
    interfaces: dict[str, Any] = {}
    ports = 0
    timeouts: dict[str, TimeoutAdvice] = {}
    for role_name in reversed(chain):  # base first, the role itself last
        raw = roles[role_name]
        interfaces.update(raw.get("interfaces", {}))
        if "local_ports_min" in raw:
            ports = int(raw["local_ports_min"])
        for key, entry in raw.get("sysctl", {}).items():
            if entry.get("skip"):
                expectations.pop(key, None)
                continue
            expectations[key] = _expectation(role_name, key, entry)
        for key, entry in raw.get("conntrack_timeouts", {}).items():
            if entry.get("skip"):
                timeouts.pop(key, None)
                continue
            timeouts[key] = _timeout(role_name, key, entry)
    return Role(name=name, description=str(roles[name].get("description", "")),
                chain=tuple(chain), expectations=expectations, interfaces=interfaces,
                local_ports_min=ports, conntrack_timeouts=timeouts)


@cache
def _data() -> dict[str, Any]:
    from hostnet.knowledge.data import load_toml

    return load_toml("roles.toml")


@cache
def load(name: str) -> Role:
    """A role from the packaged roles.toml; RoleError for an unknown name."""
    return resolve(_data(), name)


def names() -> list[str]:
    """Every role defined in roles.toml (including ``base``)."""
    return sorted(_data().get("roles", {}))
