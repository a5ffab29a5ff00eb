"""Tuning checks for ``hostnet doctor`` (codes TN1xx): queues, buffers, TIME_WAIT, keepalive,
the ephemeral port range and pid_max.

The port-range checks follow net/ipv4/sysctl_net_ipv4.c (ipv4_local_port_range): two numbers,
low <= high, low not below ip_unprivileged_port_start; the kernel prefers the two ends to
differ in parity (connect() walks even/odd halves of the range).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from hostnet.checks.base import Subject
from hostnet.checks.roles import expectation_findings
from hostnet.findings import Finding, Rule, Severity
from hostnet.model.net import Listener
from hostnet.sysctl import invariants as inv

BACKLOG = Rule("TN101", "listen-backlog-small", Severity.WARNING,
               "Accept or SYN queues are short for a server")
BUFFER_ORDER = Rule("TN102", "tcp-buffer-order", Severity.WARNING,
                    "tcp_rmem/tcp_wmem are not min <= default <= max")
BUFFER_CAP = Rule("TN103", "buffer-cap-below-default", Severity.INFO,
                  "rmem_max/wmem_max are below the TCP default buffer")
NETDEV_BACKLOG = Rule("TN104", "netdev-backlog-small", Severity.INFO,
                      "The per-CPU input queue is short for a router")
TIME_WAIT = Rule("TN105", "time-wait-limits", Severity.WARNING,
                 "TIME_WAIT handling is restricted more than it should be")
KEEPALIVE = Rule("TN106", "keepalive-slow", Severity.INFO,
                 "Dead peers are noticed late (TCP keepalive)")
FIN_TIMEOUT = Rule("TN107", "fin-timeout-long", Severity.INFO,
                   "Orphaned connections linger in FIN-WAIT-2")
PORT_RANGE_INVALID = Rule("TN108", "port-range-invalid", Severity.ERROR,
                          "ip_local_port_range is not a valid low <= high range")
PORT_RANGE_PARITY = Rule("TN109", "port-range-parity", Severity.INFO,
                         "Both ends of ip_local_port_range have the same parity")
PORT_RANGE_OVERLAP = Rule("TN110", "port-range-overlaps-service", Severity.WARNING,
                          "A listening service's port lies inside the ephemeral port range")
PORT_RANGE_SMALL = Rule("TN111", "port-range-small", Severity.WARNING,
                        "Too few ephemeral ports for the role")
PID_MAX = Rule("TN112", "pid-max-lowered", Severity.WARNING,
               "kernel.pid_max is below the kernel's default")

_RULES = {r.code: r for r in (BACKLOG, NETDEV_BACKLOG, TIME_WAIT, KEEPALIVE, FIN_TIMEOUT)}
PID_MAX_LIMIT = 4194304


def _ints(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(p) for p in text.split()]
    except ValueError:
        return None


def parse_reserved(text: str | None) -> list[tuple[int, int]]:
    """``ip_local_reserved_ports``: ``8080,9000-9010`` -> [(8080, 8080), (9000, 9010)]."""
    out: list[tuple[int, int]] = []
    for part in (text or "").replace(" ", "").split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        try:
            out.append((int(lo), int(hi or lo)))
        except ValueError:
            continue
    return out


def _reserved(port: int, reserved: Iterable[tuple[int, int]]) -> bool:
    return any(lo <= port <= hi for lo, hi in reserved)


@dataclass(frozen=True, slots=True)
class PortView:
    range_text: str | None
    reserved_text: str | None
    unprivileged_start: int | None
    listening: tuple[Listener, ...]
    role: str
    ports_min: int


def evaluate_ports(v: PortView) -> list[Finding]:
    """TN108/TN109/TN111 come from one invariant check (hostnet.sysctl.invariants), so every
    finding on the key proposes the same value, which satisfies all of them at once."""
    key = "net.ipv4.ip_local_port_range"
    reserved = parse_reserved(v.reserved_text)
    check = inv.check_port_range(v.range_text, unprivileged_start=v.unprivileged_start,
                                 minimum=v.ports_min, reserved=reserved)
    if check is None:
        return []
    start = check.unprivileged_start
    fix = f"{key} = {check.proposed_text}" if check.proposed is not None else None
    ev = {key: v.range_text, "net.ipv4.ip_unprivileged_port_start": v.unprivileged_start}
    if any(p.refused for p in check.problems):
        return [PORT_RANGE_INVALID.finding(
            f"ip_local_port_range is {v.range_text!r}: it must be two ports low <= high, "
            f"between {start} (ip_unprivileged_port_start) and 65535; the kernel refuses "
            "anything else, so this value cannot have been applied",
            key=key, evidence=ev, suggestion=fix)]
    assert check.low is not None and check.high is not None
    low, high = check.low, check.high
    out: list[Finding] = []
    if check.has(inv.PortProblem.SAME_PARITY):
        out.append(PORT_RANGE_PARITY.finding(
            f"ip_local_port_range {low} {high}: both ends are {'even' if low % 2 == 0 else 'odd'}."
            " connect() searches even ports first and leaves odd ones to bind(); the kernel "
            "prefers ends of different parity so both halves are the same size",
            key=key, evidence=ev, suggestion=fix))
    clashing = sorted({(x.proto, x.port) for x in v.listening
                       if low <= x.port <= high and not _reserved(x.port, reserved)})
    if clashing:
        ports = sorted({p for _, p in clashing})
        shown = ", ".join(f"{p}/{n}" for p, n in clashing[:8])
        current = v.reserved_text.strip() if v.reserved_text else ""
        new = ",".join(filter(None, [current, *map(str, ports)]))
        out.append(PORT_RANGE_OVERLAP.finding(
            f"listening on {shown}, inside the ephemeral range {low}-{high}: after a restart "
            "the service can fail to bind because an outgoing connection took its port. "
            "Reserve the ports (or move the service)",
            key=key, evidence={**ev, "net.ipv4.ip_local_reserved_ports": v.reserved_text,
                               "listening_in_range": [f"{p}/{n}" for p, n in clashing]},
            suggestion=f"net.ipv4.ip_local_reserved_ports = {new}"))
    if check.has(inv.PortProblem.TOO_SMALL):
        out.append(PORT_RANGE_SMALL.finding(
            f"only {check.usable} ephemeral ports ({low}-{high} minus reserved): a {v.role} "
            "making many outgoing connections to one destination runs out (EADDRNOTAVAIL) "
            f"beyond that many in TIME_WAIT; it should have at least {v.ports_min}",
            key=key, evidence={**ev, "usable_ports": check.usable,
                               "role_minimum": v.ports_min},
            suggestion=fix))
    return out


def evaluate_buffers(rmem_max: int | None, wmem_max: int | None, tcp_rmem: str | None,
                     tcp_wmem: str | None) -> list[Finding]:
    out: list[Finding] = []
    for name, triple, cap_name, cap in (("tcp_rmem", tcp_rmem, "rmem_max", rmem_max),
                                        ("tcp_wmem", tcp_wmem, "wmem_max", wmem_max)):
        nums = _ints(triple)
        key = f"net.ipv4.{name}"
        if nums is None or len(nums) != 3:
            continue
        lo, default, hi = nums
        order = inv.check_triple_order(key, triple)
        if order is not None:
            out.append(BUFFER_ORDER.finding(
                f"{key} is {lo} {default} {hi}: the kernel does not check the order, and a "
                "default above the maximum (or a minimum above the default) makes autotuning "
                "start from or clamp to the wrong size",
                key=key, evidence={key: triple},
                suggestion=f"{key} = {order.proposed_text}"))
        elif cap is not None and cap < default:
            ckey = f"net.core.{cap_name}"
            out.append(BUFFER_CAP.finding(
                f"{ckey} is {cap}, below the TCP default buffer {default} ({key}): programs "
                "that size their buffers with setsockopt get less than they would have had "
                "without asking, and lose autotuning",
                key=ckey, evidence={ckey: cap, key: triple},
                suggestion=f"{ckey} = {hi}"))
    return out


def pid_max_default(cpus: int) -> int:
    return min(PID_MAX_LIMIT, max(32768, 1024 * cpus))


def evaluate_pid_max(pid_max: int | None, cpus: int) -> list[Finding]:
    if pid_max is None:
        return []
    default = pid_max_default(cpus)
    if pid_max >= default:
        return []
    return [PID_MAX.finding(
        f"kernel.pid_max is {pid_max}, below the kernel's default {default} "
        f"(max(32768, 1024 x {cpus} CPUs)): busy hosts run out of process and thread IDs and "
        "fork() fails with EAGAIN",
        key="kernel.pid_max", evidence={"kernel.pid_max": pid_max, "cpus": cpus,
                                        "default": default},
        suggestion=f"kernel.pid_max = {default}")]


def check_expectations(s: Subject) -> Iterator[Finding]:
    yield from expectation_findings(s, _RULES)


def check_buffers(s: Subject) -> list[Finding]:
    ns = s.ns
    return evaluate_buffers(ns.integer("net.core.rmem_max"), ns.integer("net.core.wmem_max"),
                            ns.value("net.ipv4.tcp_rmem"), ns.value("net.ipv4.tcp_wmem"))


def check_ports(s: Subject) -> list[Finding]:
    ns = s.ns
    return evaluate_ports(PortView(
        range_text=ns.value("net.ipv4.ip_local_port_range"),
        reserved_text=ns.value("net.ipv4.ip_local_reserved_ports"),
        unprivileged_start=ns.integer("net.ipv4.ip_unprivileged_port_start"),
        listening=ns.listeners, role=s.role_name, ports_min=s.role.local_ports_min))


def check_pid_max(s: Subject) -> list[Finding]:
    if s.ns.is_child:
        return []  # host-wide: reported for the initial namespace only
    return evaluate_pid_max(s.ns.integer("kernel.pid_max"), s.host.kernel.cpus)


CHECKS = (check_expectations, check_buffers, check_ports, check_pid_max)
