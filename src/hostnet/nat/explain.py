"""Walk one packet through the hooks the way the kernel does, on the IR of our table (pure).

Order (netfilter, IPv4 and IPv6 alike): prerouting (raw -300, conntrack -200, dstnat -100,
filter 0), routing decision (local -> input, else forward), input or forward filter, then
postrouting (srcnat 100). Packets of the router itself: output (raw, conntrack, nat -100,
filter), re-route, postrouting. NAT chains see only new flows; untracked packets get no
conntrack entry and therefore no NAT. Other tables' base chains are listed on each hook in
priority order with what their verdicts can do; their rules are not evaluated here.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from hostnet.model import nat as m
from hostnet.nat import ir
from hostnet.nat.nftables import rule_text
from hostnet.nat.router import Router
from hostnet.nat.ruleset import BaseChain, notes

PROTOS = ("tcp", "udp", "icmp")


@dataclass(frozen=True)
class Packet:
    src: m.IPAddress
    dst: m.IPAddress
    proto: str  # tcp, udp, icmp
    sport: int | None = None
    dport: int | None = None
    iif: str | None = None  # None: sent by the router itself
    state: str = "new"  # new or established


@dataclass(frozen=True)
class Step:
    phase: str
    text: str
    table: str | None = None
    chain: str | None = None
    priority: int | None = None
    rule: str | None = None
    origin: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass(frozen=True)
class Result:
    verdict: str  # delivered, dropped, rejected
    delivered_to: str | None
    reason: str
    source_seen: str | None
    conntrack: str
    steps: tuple[Step, ...]
    translated: bool = False
    caveats: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"version": 1, "verdict": self.verdict, "delivered_to": self.delivered_to,
                "source_seen": self.source_seen, "reason": self.reason,
                "conntrack": self.conntrack, "caveats": list(self.caveats),
                "steps": [s.to_json() for s in self.steps]}


def endpoint(addr: m.IPAddress, port: int | None) -> str:
    text = str(addr) if addr.version == 4 else f"[{addr}]"
    return text if port is None else f"{text}:{port}"


@dataclass
class _Ctx:
    src: m.IPAddress
    dst: m.IPAddress
    sport: int | None
    dport: int | None
    proto: str
    iif: str | None
    oif: str | None = None
    ct: str = "new"  # new, established, untracked
    dnat: bool = False
    snat: bool = False
    orig: tuple[m.IPAddress, int | None, m.IPAddress, int | None] | None = None
    steps: list[Step] = field(default_factory=list)
    caveats: list[str] = field(default_factory=list)


def _field(ctx: _Ctx, f: ir.Field) -> Any:
    fam4 = ctx.dst.version == 4
    assert ctx.orig is not None
    if f is ir.Field.IIFNAME:
        return ctx.iif or ""
    if f is ir.Field.OIFNAME:
        return ctx.oif or ""
    if f is ir.Field.L4PROTO:
        return m.Proto(ctx.proto) if ctx.proto in ("tcp", "udp") else ctx.proto
    if f is ir.Field.DPORT:
        return ctx.dport
    if f is ir.Field.SPORT:
        return ctx.sport
    if f in (ir.Field.SADDR4, ir.Field.SADDR6):
        return ctx.src if fam4 == (f is ir.Field.SADDR4) else None
    if f in (ir.Field.DADDR4, ir.Field.DADDR6):
        return ctx.dst if fam4 == (f is ir.Field.DADDR4) else None
    if f is ir.Field.CT_ORIG_DPORT:
        return ctx.orig[3]
    want4 = f is ir.Field.CT_ORIG_SADDR4
    return ctx.orig[0] if (ctx.orig[0].version == 4) == want4 else None


def _component(want: ir.Value, got: Any) -> bool:
    if got is None:
        return False
    if isinstance(want, m.PortRange):
        return isinstance(got, int) and got in want
    if isinstance(want, ipaddress.IPv4Network | ipaddress.IPv6Network):
        return isinstance(got, ipaddress.IPv4Address | ipaddress.IPv6Address) and \
            got.version == want.version and got in want
    return bool(want == got)


def lookup(table: ir.Table, set_name: str, values: Sequence[Any]) -> ir.Element | None:
    """The element of the set or map that the values hit (first one), or None."""
    for e in table.set(set_name).elements:
        if all(_component(w, g) for w, g in zip(e.key, values, strict=True)):
            return e
    return None


def _match(
    table: ir.Table, router: Router, ctx: _Ctx, x: ir.Match
) -> tuple[bool, ir.Element | None]:
    if isinstance(x, ir.Lookup):
        try:
            e = lookup(table, x.set_name, [_field(ctx, f) for f in x.key])
        except KeyError:
            return x.negate, None
        return (e is None) if x.negate else (e is not None), e
    if isinstance(x, ir.FibLocal):
        hit = (router.on_iface(ctx.dst) == ctx.iif) if x.on_iif else router.local(ctx.dst)
        return hit != x.negate, None
    if isinstance(x, ir.CtStateNew):
        return ctx.ct == "new", None
    if isinstance(x, ir.CtDnat):
        return (ctx.dnat and ctx.ct != "untracked") != x.negate, None
    if isinstance(x, ir.FamilyIs):
        return ctx.dst.version == x.family.value, None
    if isinstance(x, ir.ProtoIn):
        return ctx.proto in {p.value for p in x.protos}, None
    loop = ctx.dst.is_loopback
    return ctx.dst.version == x.family.value and not loop, None


def _run_chain(table: ir.Table, router: Router, ctx: _Ctx, chain: ir.Chain, hook: ir.Hook,
               via: m.Origin | None = None) -> tuple[str, str | None]:
    """Evaluate one of our chains. Returns ("drop", reason), ("accept", None) when a
    verdict or a NAT statement ends the base chain, or ("next", None) when the chain runs
    out (a base chain then applies its policy, a jumped-to chain returns)."""
    where: dict[str, Any] = {"table": f"{ir.TABLE_FAMILY} {ir.TABLE_NAME}",
                             "chain": chain.name,
                             "priority": chain.priority if chain.hook else None}
    if chain.hook is not None and chain.type is ir.ChainType.NAT and ctx.ct == "untracked":
        ctx.steps.append(Step(hook.value, "nat chain skipped: untracked packets are never "
                              "NATed", **where))
        return "next", None
    if chain.hook is not None and chain.type is ir.ChainType.NAT and ctx.ct == "established":
        ctx.steps.append(Step(hook.value, "established: NAT chains are not consulted; the "
                              "translation the entry got from its first packet applies:",
                              **where))
    for rule in chain.rules:
        origin: m.Origin | None = via
        ok = True
        for x in rule.matches:
            hit, e = _match(table, router, ctx, x)
            if not hit:
                ok = False
                break
            if e is not None and e.origin is not None:
                origin = origin or e.origin
        if not ok:
            continue
        act = rule.action
        label = origin.label if origin else None
        text = rule_text(rule)
        if isinstance(act, ir.Verdict):
            ctx.steps.append(Step(hook.value, f"rule matched: {act.value}", rule=text,
                                  origin=label, **where))
            if act is ir.Verdict.DROP:
                tail = f" {origin.path}" if origin and rule.reason.endswith(" of") else ""
                return "drop", (rule.reason or "dropped") + tail
            return "accept", None
        if isinstance(act, ir.Notrack):
            ctx.ct = "untracked"
            ctx.steps.append(Step(hook.value, "notrack: no conntrack entry, no NAT", rule=text,
                                  origin=label, **where))
            continue
        if isinstance(act, ir.Vmap):
            e = lookup(table, act.map_name, [_field(ctx, f) for f in act.key])
            if e is None or not isinstance(e.value[0], ir.Jump):
                continue
            target = e.value[0].chain
            ctx.steps.append(Step(hook.value, f"{rule.reason}: jump {target}", rule=text,
                                  origin=e.origin.label if e.origin else label, **where))
            kind, reason = _run_chain(table, router, ctx, table.chain(target), hook,
                                      e.origin or origin)
            if kind != "next":
                return kind, reason
            continue
        if isinstance(act, ir.Dnat | ir.Snat):
            e = lookup(table, act.map_name, [_field(ctx, f) for f in act.key])
            if e is None:
                continue  # a map miss ends the rule without a translation
            label = e.origin.label if e.origin else label
            addr = e.value[0]
            port = e.value[1] if len(e.value) > 1 else None
            assert isinstance(addr, ipaddress.IPv4Address | ipaddress.IPv6Address)
            if isinstance(act, ir.Dnat):
                ctx.dst, ctx.dnat = addr, True
                if isinstance(port, int):
                    ctx.dport = port
                said = f"{rule.reason}: destination becomes {endpoint(ctx.dst, ctx.dport)}"
            else:
                ctx.src, ctx.snat = addr, True
                said = f"{rule.reason}: source becomes {ctx.src}"
            ctx.steps.append(Step(hook.value, said, rule=text, origin=label, **where))
            return "accept", None
        if isinstance(act, ir.Masquerade):
            new = router.address_on(ctx.oif or "", ctx.src.version)
            if new is None:
                return "drop", f"masquerade: {ctx.oif} has no address"
            ctx.src, ctx.snat = new, True
            ctx.steps.append(Step(hook.value, f"{rule.reason}: source becomes {new} "
                                  f"(the address of {ctx.oif})", rule=text, origin=label,
                                  **where))
            return "accept", None
    if chain.hook is not None:
        ctx.steps.append(Step(hook.value, f"no rule matched: policy {chain.policy.value}",
                              **where))
    else:
        ctx.steps.append(Step(hook.value, "no rule matched: return", **where))
    return "next", None


def _hook(table: ir.Table, router: Router, ctx: _Ctx, hook: ir.Hook,
          others: Sequence[BaseChain]) -> str | None:
    fam = "ip" if ctx.dst.version == 4 else "ip6"
    ours = [c for c in table.chains if c.hook is hook]
    items: list[tuple[int, int, Any]] = [(c.priority, 1, c) for c in ours]
    items += [(o.priority, 2, o) for o in others if o.hook == hook.value
              and o.family in ("inet", fam) and (o.family, o.table) != ("inet", "hostnet")]
    if hook in (ir.Hook.PREROUTING, ir.Hook.OUTPUT):
        items.append((ir.CONNTRACK_PRIORITY, 0, None))
    for prio, kind, obj in sorted(items, key=lambda t: (t[0], t[1])):
        if obj is None:
            ctx.steps.append(Step(hook.value, _conntrack_text(ctx), priority=prio))
        elif kind == 1:
            verdict, reason = _run_chain(table, router, ctx, obj, hook)
            if verdict == "drop":
                return reason
        else:
            near = min(ours, key=lambda c: abs(c.priority - obj.priority), default=None)
            said = notes(obj, near) if near else []
            if obj.policy == "drop" or obj.can("drop") or obj.can("reject"):
                ctx.caveats.append(f"{obj.where} ({hook.value}, priority {obj.priority}) can "
                                   "drop it: a drop in any table wins")
            ctx.steps.append(Step(hook.value, f"{obj.type} chain of another table, policy "
                                  f"{obj.policy}, {len(obj.rules)} rule(s), not evaluated: "
                                  + "; ".join(said), table=f"{obj.family} {obj.table}",
                                  chain=obj.name, priority=obj.priority))
    return None


def _conntrack_text(ctx: _Ctx) -> str:
    if ctx.ct == "untracked":
        return "conntrack: untracked, no entry is created"
    if ctx.ct == "established":
        return "conntrack: assumed established (an entry exists)"
    return "conntrack: new flow, an entry is created"


def _entry(ctx: _Ctx, p: Packet) -> str:
    if ctx.ct == "untracked":
        return "none (untracked)"
    orig = f"{ctx.proto} {endpoint(p.src, p.sport)} -> {endpoint(p.dst, p.dport)}"
    reply = f"{endpoint(ctx.dst, ctx.dport)} -> {endpoint(ctx.src, p.sport)}"
    return f"original {orig}, reply {reply}"


def explain(table: ir.Table, cfg: m.NatConfig, router: Router, p: Packet,
            others: Sequence[BaseChain] = ()) -> Result:
    """The path of ``p`` through the router, step by step, and the verdict."""
    ctx = _Ctx(p.src, p.dst, p.sport, p.dport, p.proto, p.iif, ct=p.state)
    ctx.orig = (p.src, p.sport, p.dst, p.dport)
    steps = ctx.steps

    def done(verdict: str, reason: str, to: str | None = None) -> Result:
        seen = str(ctx.src) if verdict == "delivered" else None
        steps.append(Step("verdict", f"{verdict}: {reason}"))
        return Result(verdict, to, reason, seen, _entry(ctx, p) if verdict == "delivered"
                      else ("none" if ctx.ct != "untracked" else "none (untracked)"),
                      tuple(steps), ctx.dnat or ctx.snat, tuple(ctx.caveats))

    if p.iif is None:
        steps.append(Step("origin", f"sent by the router itself from {endpoint(p.src, p.sport)}"))
        hooks = [ir.Hook.OUTPUT]
    else:
        addrs = ", ".join(str(a) for a in router.ifaces.get(p.iif, ())) or "no addresses known"
        steps.append(Step("ingress", f"arrives on {p.iif} ({addrs}) from "
                          f"{endpoint(p.src, p.sport)} to {endpoint(p.dst, p.dport)} {p.proto}"))
        neigh = _neighbour(cfg, router, p)
        steps.append(Step("neighbour", neigh[1]))
        if not neigh[0]:
            return done("dropped", neigh[1])
        hooks = [ir.Hook.PREROUTING]
    reason = _hook(table, router, ctx, hooks[0], others)
    if reason:
        return done("dropped", reason)
    if router.local(ctx.dst):
        if p.iif is None:  # local to local: stays on lo
            steps.append(Step("route", f"{ctx.dst} is local: delivered over lo"))
        else:
            steps.append(Step("route", f"{ctx.dst} is a local address: input"))
            bad = _input_checks(router, ctx)
            if bad:
                return done("dropped", bad)
            reason = _hook(table, router, ctx, ir.Hook.INPUT, others)
            if reason:
                return done("dropped", reason)
        return done("delivered", f"delivered to the router itself at "
                    f"{endpoint(ctx.dst, ctx.dport)} (a socket must listen there)",
                    endpoint(ctx.dst, ctx.dport))
    ctx.oif = router.route(ctx.dst)
    if ctx.oif is None:
        steps.append(Step("route", f"no route to {ctx.dst}"))
        return done("dropped", f"no route to {ctx.dst}")
    steps.append(Step("route", f"{ctx.dst} is routed out of {ctx.oif}"))
    if p.iif is not None:
        bad = _input_checks(router, ctx)
        if bad:
            return done("dropped", bad)
        reason = _hook(table, router, ctx, ir.Hook.FORWARD, others)
        if reason:
            return done("dropped", reason)
    reason = _hook(table, router, ctx, ir.Hook.POSTROUTING, others)
    if reason:
        return done("dropped", reason)
    to = endpoint(ctx.dst, ctx.dport)
    return done("delivered", f"sent out of {ctx.oif} to {to} with source {ctx.src}", to)


def _neighbour(cfg: m.NatConfig, router: Router, p: Packet) -> tuple[bool, str]:
    assert p.iif is not None
    word = "ARP" if p.dst.version == 4 else "neighbour discovery"
    if router.on_iface(p.dst) == p.iif:
        return True, f"{word}: the router answers for its own address {p.dst} on {p.iif}"
    for i, o in enumerate(cfg.one_to_one):
        if o.public == p.dst and o.arp is m.ArpMode.PROXY and cfg.one_to_one_out(o) == p.iif:
            return True, (f"{word}: the proxy neighbour entry for {p.dst} on {p.iif} answers "
                          f"(nat.one_to_one[{i}], {o.origin.label})")
    for a in router.ifaces.get(p.iif, ()):
        if a.version == p.dst.version and p.dst in a.network and a.network.prefixlen < \
                a.max_prefixlen:
            if router.local(p.dst):
                return True, f"{word}: {p.dst} is the router's (on another interface)"
            return False, (f"{p.dst} is on {p.iif}'s own link and the router does not answer "
                           f"{word} for it: the packet never reaches the router")
    return True, f"{p.dst} is not on {p.iif}'s link: the sender uses the router as gateway"


def _input_checks(router: Router, ctx: _Ctx) -> str | None:
    """Routing-time checks of a received packet: martian loopback, rp_filter."""
    assert ctx.iif is not None
    if ctx.dst.is_loopback and ctx.dst.version == 4 and not router.route_localnet.get(ctx.iif):
        return (f"martian destination {ctx.dst} arriving on {ctx.iif}: a forward to "
                f"127.0.0.0/8 needs net.ipv4.conf.{ctx.iif}.route_localnet = 1")
    mode = router.rp(ctx.iif)
    back = router.route(ctx.src)
    ctx.steps.append(Step("rp_filter", f"rp_filter={mode} on {ctx.iif}: the route back to "
                          f"{ctx.src} leaves via {back or 'nothing'}"))
    if ctx.src.version == 4 and mode == 1 and back != ctx.iif:
        return f"rp_filter (strict) drops it: the route back to {ctx.src} is not via {ctx.iif}"
    if ctx.src.version == 4 and mode == 2 and back is None:
        return f"rp_filter (loose) drops it: no route back to {ctx.src}"
    return None


def with_state(p: Packet, state: str) -> Packet:
    return replace(p, state=state)
