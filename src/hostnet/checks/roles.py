"""What the host shows about its job, and the role that fits it (pure).

Signals come from the observed NetnsState: IPv4/IPv6 forwarding, NAT rules (nftables or
iptables), interface kinds (tun/tap, bridge, veth ...) and listening sockets.
:func:`recommend` turns them into a role and a sentence saying why.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from hostnet.checks.base import Subject
from hostnet.findings import Finding, Rule
from hostnet.model.firewall import NatRule
from hostnet.model.host import NetnsState
from hostnet.model.net import Listener


@dataclass(frozen=True, slots=True)
class Signals:
    ip_forward: int | None
    ipv6_forward: int | None
    nat: tuple[NatRule, ...]
    kinds: Mapping[str, str]
    listening: tuple[Listener, ...]
    #: The one interface of an open router (see :func:`open_router`), None otherwise.
    open_router: str | None = None


def open_router(ns: NetnsState) -> str | None:
    """The only interface of a namespace that routes for anyone on its link, or None.

    That is: IPv4 forwarding on, exactly one non-loopback L3 interface, no NAT rule that
    touches routed traffic, and a packet filter that was read and has nothing on the forward
    hook that can drop. With one interface there is nothing to route between: a forwarded
    packet goes back out of the link it came from, so the host is a router for its
    neighbours that nobody set up as one. None when any of this is not known.
    """
    if not ns.integer("net.ipv4.ip_forward") or not ns.ruleset.known:
        return None
    if any(r.routed for r in ns.ruleset.nat) or ns.ruleset.forward_drops_new():
        return None
    l3 = [i.name for i in ns.network.l3() if not i.loopback]
    return l3[0] if len(l3) == 1 else None


def _ports(listening: Iterable[Listener]) -> str:
    public = sorted({(x.proto, x.port) for x in listening if not x.loopback})
    return ", ".join(f"{p}/{n}" for p, n in public[:6]) + (" ..." if len(public) > 6 else "")


def recommend(s: Signals) -> tuple[str, str]:
    """The role that fits what the host shows, and why (one sentence)."""
    forwarding = bool(s.ip_forward) or bool(s.ipv6_forward)
    fwd_text = ("IPv4 forwarding on" if s.ip_forward else "IPv6 forwarding on")
    taps = sorted(n for n, k in s.kinds.items() if k in ("tap", "tun"))
    bridges = sorted(n for n, k in s.kinds.items() if k == "bridge")
    veths = sorted(n for n, k in s.kinds.items() if k == "veth")
    snat = [r for r in s.nat if r.kind in ("masquerade", "snat")]
    nat_any = [r for r in s.nat if r.routed]
    if forwarding and (taps or (bridges and veths)):
        devs = taps[:3] or [*bridges[:1], *veths[:2]]
        what = "tap/tun devices" if taps else "a bridge with veth ports"
        return "vm-host", f"{fwd_text} and {what} ({', '.join(devs)})"
    if s.ip_forward and s.open_router and not nat_any:
        ports = _ports(s.listening)
        job = (("server", f"listening on {ports}") if ports else
               ("desktop", "no services listening beyond loopback"))
        return job[0], (f"IPv4 forwarding on, but {s.open_router} is the only interface, there "
                        "is no NAT and nothing on the forward hook drops: an open router "
                        f"(NT105), not a nat-router; {job[1]}")
    if forwarding and snat:
        return "nat-router", f"{fwd_text} and a {snat[0].kind} rule in {snat[0].where()}"
    if forwarding and nat_any:
        return "nat-router", f"{fwd_text} and a {nat_any[0].kind} rule in {nat_any[0].where()}"
    if forwarding:
        return "nat-router", f"{fwd_text}: the host routes between its interfaces (no NAT seen)"
    ports = _ports(s.listening)
    if ports:
        extra = (f"; NAT rules present ({s.nat[0].describe()}) but forwarding off"
                 if nat_any else "")
        return "server", f"forwarding off and listening on {ports}{extra}"
    if nat_any:
        return "server", f"forwarding off; NAT rules present ({nat_any[0].describe()})"
    return "desktop", "forwarding off, no NAT rules and no services listening beyond loopback"


def signals(ns: NetnsState) -> Signals:
    return Signals(
        ip_forward=ns.integer("net.ipv4.ip_forward"),
        ipv6_forward=ns.integer("net.ipv6.conf.all.forwarding"),
        nat=ns.ruleset.nat,
        kinds={i.name: i.kind for i in ns.network.interfaces},
        listening=ns.listeners,
        open_router=open_router(ns),
    )


def recommend_for(ns: NetnsState) -> tuple[str, str]:
    return recommend(signals(ns))


# -- role expectations on scalar keys (shared by the HD, TN and NT modules) ---------------------


def expectation_findings(s: Subject, rules: Mapping[str, Rule]) -> Iterator[Finding]:
    """Findings for the role's scalar-key expectations whose code is one of ``rules``."""
    for key, exp in s.role.expectations.items():
        rule = rules.get(exp.code)
        if rule is None:
            continue
        spec = s.catalogue.get(key)
        if s.ns.is_child and spec is not None and not spec.netns:
            continue  # host-wide (the catalogue says): reported for the initial namespace only
        value = s.ns.integer(key)
        if value is None or exp.met(value):
            continue
        yield rule.finding(
            f"{key} is {value}; for a {s.role_name} it should be {exp.wanted()}: {exp.reason}",
            key=key, severity=exp.severity,
            evidence={key: value, "role": s.role_name, "expected": exp.wanted()},
            suggestion=f"{key} = {exp.fix}",
        )
