"""Conntrack timeouts against the role (code CT112).

Every timeout the kernel has (TCP states, UDP, UDP stream, ICMP, ICMPv6, generic) is compared
with the longest value the role keeps (``conntrack_timeouts`` in knowledge/roles.toml, with the
reason). No advice where conntrack is idle: no rule uses it (``Ruleset.uses_conntrack``) and
the table is empty, so the timeouts cost nothing.
"""

from __future__ import annotations

from collections.abc import Mapping

from hostnet.checks.base import Subject
from hostnet.findings import Finding, Rule, Severity
from hostnet.knowledge.roles import Role
from hostnet.model.conntrack import USAGE_WARNING

TIMEOUT_LONG = Rule("CT112", "conntrack-timeout-long", Severity.WARNING,
                    "A conntrack timeout keeps idle entries far longer than the role needs")

SYSCTL_FILE = "/etc/sysctl.d/90-hostnet.conf"
ESTABLISHED = "net.netfilter.nf_conntrack_tcp_timeout_established"
GENERIC = "net.netfilter.nf_conntrack_generic_timeout"
DAY = 86400


def _duration(seconds: int) -> str:
    if seconds >= DAY:
        return f"{seconds} s ({seconds / DAY:.1f} days)"
    if seconds >= 3600:
        return f"{seconds} s ({seconds / 3600:.1f} h)"
    return f"{seconds} s"


def evaluate_timeouts(role: Role, values: Mapping[str, int | None], usage: float | None,
                      netns: str | None, *, idle: bool = False) -> list[Finding]:
    """CT112 for every timeout in ``values`` above what ``role`` keeps (pure)."""
    if idle:
        return []
    out: list[Finding] = []
    busy = usage is not None and usage >= USAGE_WARNING
    where = f"namespace {netns}" if netns else "the initial namespace"
    order = sorted(role.conntrack_timeouts.items(),
                   key=lambda kv: (kv[0] != ESTABLISHED, kv[0] != GENERIC, kv[0]))
    for key, advice in order:
        value = values.get(key)
        if value is None or value <= advice.max:
            continue
        fix = advice.fix
        if key == ESTABLISHED:
            sev = Severity.WARNING if role.name == "nat-router" or busy else Severity.INFO
            msg = (f"nf_conntrack_tcp_timeout_established is {_duration(value)} in {where}: a "
                   f"TCP flow that vanishes without FIN/RST holds its entry that long. For a "
                   f"{role.name}, {fix} s is enough; trade-off: idle connections without "
                   f"keepalives shorter than {fix} s lose their entry (and through NAT, their "
                   "mapping) sooner")
        elif key == GENERIC:
            sev = Severity.WARNING if busy else Severity.INFO
            msg = (f"nf_conntrack_generic_timeout is {value} s in {where}: flows of protocols "
                   f"conntrack does not know (GRE without helper, ESP ...) stay that long. For "
                   f"a {role.name}, {fix} s; trade-off: tunnels idle longer than that need "
                   "keepalives")
        else:
            sev = Severity.WARNING if busy or value >= DAY else Severity.INFO
            short = key.removeprefix("net.netfilter.")
            msg = (f"{short} is {_duration(value)} in {where}, more than the {advice.max} s a "
                   f"{role.name} ever needs: {advice.reason}. Suggested {fix} s (the kernel "
                   "default)")
        out.append(TIMEOUT_LONG.finding(
            msg, key=key, severity=sev,
            evidence={"value": value, "recommended": fix, "role": role.name,
                      "namespace": netns or "initial", "reason": advice.reason},
            suggestion=f"# {SYSCTL_FILE}\n{key} = {fix}",
        ))
    return out


def check_timeouts(s: Subject) -> list[Finding]:
    ct = s.ns.conntrack
    if ct is None:
        return []
    values = {key: s.ns.integer(key) for key in s.role.conntrack_timeouts}
    idle = not s.ns.ruleset.uses_conntrack and not ct.count
    netns = s.ns.label if s.ns.is_child else None  # a snapshot of a named namespace too
    return evaluate_timeouts(s.role, values, ct.usage, netns, idle=idle)


CHECKS = (check_timeouts,)
