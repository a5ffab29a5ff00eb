"""Configuration -> IR of ``table inet hostnet`` (pure).

Per address family the forwards, allowlists, 1:1 entries and masquerade sources become sets
and maps; a fixed handful of rules looks them up, so neither the rule count nor the work per
packet grows with the number of forwards.

Paths a new flow can take, and the rules that see it:

* from an outside interface to a forwarded port of a local address: DNAT in prerouting when
  ``iifname . l4proto . dport . saddr`` is in the allowlist; otherwise it reaches input, where
  any flow to a forwarded port that was not DNATed is dropped;
* from a LAN (not an outside interface) to a local address that is not on the ingress
  interface (the public one; ``fib daddr . iif type != local``): hairpin DNAT with the same
  allowlist, then SNAT so the server answers through the router;
* from the router itself (nat output hook) to a local address: DNAT without allowlist;
* forward filtering re-checks every DNATed new flow to a forward's target against the
  allowlist on the original source and destination port (``ct original``), and drops new
  flows from an outside interface to a LAN network that were not DNATed. Flows of other
  tables (other targets, other networks) are not touched.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable

from hostnet.model import nat as m
from hostnet.nat import ir
from hostnet.nat.ir import Field as F

COMMENT_MAX = 127  # the kernel keeps at most 128 bytes of rule userdata (NUL included)


def lines_comment(origins: Iterable[m.Origin], what: str) -> str:
    """``hostnet.toml:8,14 nat.forward: WHAT``, shortened to fit a rule comment."""
    origins = sorted(set(origins))
    if not origins:
        return what[:COMMENT_MAX]
    file = origins[0].file
    kinds = sorted({o.path.split("[")[0] for o in origins})
    lines = [str(o.line) for o in origins]
    text = f"{file}:{','.join(lines)} {'+'.join(kinds)}: {what}"
    if len(text) > COMMENT_MAX:
        text = f"{file}:{lines[0]}..{lines[-1]} ({len(lines)} entries) {'+'.join(kinds)}: {what}"
    return text[:COMMENT_MAX]


def _sfx(family: m.Family) -> str:
    return "4" if family is m.Family.V4 else "6"


def _any(family: m.Family) -> m.IPNetwork:
    if family is m.Family.V4:
        return ipaddress.IPv4Network("0.0.0.0/0")
    return ipaddress.IPv6Network("::/0")


def collapse(nets: Iterable[m.IPNetwork]) -> list[m.IPNetwork]:
    """Networks without overlaps (an interval set refuses overlapping elements)."""
    v4 = [n for n in nets if isinstance(n, ipaddress.IPv4Network)]
    v6 = [n for n in nets if isinstance(n, ipaddress.IPv6Network)]
    return [*ipaddress.collapse_addresses(v4), *ipaddress.collapse_addresses(v6)]


@functools.lru_cache(maxsize=4096)
def _collapsed(sources: tuple[m.IPNetwork, ...]) -> tuple[m.IPNetwork, ...]:
    """collapse() of one allowlist, remembered: thousands of forwards share a few lists."""
    return tuple(collapse(sources))


class _Builder:
    def __init__(self, cfg: m.NatConfig) -> None:
        self.cfg = cfg
        self.sets: list[ir.NamedSet] = []
        self.chains: dict[str, list[ir.Rule]] = {}
        self.regulars: dict[str, list[ir.Rule]] = {}

    def add_set(self, s: ir.NamedSet) -> bool:
        if s.elements:
            self.sets.append(s)
        return bool(s.elements)

    def rule(self, chain: str, rule: ir.Rule) -> None:
        self.chains.setdefault(chain, []).append(rule)

    def regular(self, chain: str, rule: ir.Rule) -> None:
        self.regulars.setdefault(chain, []).append(rule)


class _Acls:
    """Distinct allowlists of one family: each becomes an interval set ``aN_K`` of sources
    and small chains that check it, so per-forward data stays in hash maps and a packet
    costs the same number of lookups however many forwards there are."""

    def __init__(self, fam: m.Family) -> None:
        self.n = _sfx(fam)
        self.ids: dict[tuple[m.IPNetwork, ...], int] = {}
        self.origins: dict[int, list[m.Origin]] = {}

    def id(self, sources: tuple[m.IPNetwork, ...], origin: m.Origin) -> int:
        key = _collapsed(sources)
        k = self.ids.setdefault(key, len(self.ids))
        self.origins.setdefault(k, []).append(origin)
        return k

    def name(self, k: int, use: str = "") -> str:
        return f"a{self.n}_{k}{'_' + use if use else ''}"


def _forwards(b: _Builder, fam: m.Family) -> None:
    cfg, n = b.cfg, _sfx(fam)
    fwds = [f for f in cfg.forward if f.family is fam]
    if not fwds:
        return
    atype = ir.addr_type(fam)
    acls = _Acls(fam)
    dnat_map: list[ir.Element] = []
    acl_map: list[ir.Element] = []
    port_map: list[ir.Element] = []
    hp_map: list[ir.Element] = []
    check: dict[tuple[ir.Value, ...], tuple[list[m.IPNetwork], m.Origin]] = {}
    seen_port: set[tuple[m.Proto, int]] = set()
    uses: set[tuple[int, str]] = set()
    for f in fwds:
        o = f.origin
        k = acls.id(f.sources, o)
        uses.add((k, "in"))
        if f.hairpin:
            uses.add((k, "hp"))
        for port in range(f.ports.first, f.ports.last + 1):
            target = (f.to_addr, f.target_port(port))
            dnat_map.append(ir.Element((f.in_iface, f.proto, port), target, o))
            acl_map.append(ir.Element((f.in_iface, f.proto, port), (ir.Jump(acls.name(k, "in")),),
                                      o))
            if f.hairpin and (f.proto, port) not in seen_port:
                seen_port.add((f.proto, port))
                port_map.append(ir.Element((f.proto, port), target, o))
                hp_map.append(ir.Element((f.proto, port), (ir.Jump(acls.name(k, "hp")),), o))
            srcs, _ = check.setdefault((f.proto, port, *target), ([], o))
            srcs.extend(f.sources)
    check_map: list[ir.Element] = []
    for key, (srcs, o) in check.items():
        if any(src.prefixlen == 0 for src in srcs):
            continue  # open to anyone: nothing to check
        k = acls.id(tuple(srcs), o)
        uses.add((k, "fwd"))
        check_map.append(ir.Element(key, (ir.Jump(acls.name(k, "fwd")),), o))
    sa, da = ir.saddr(fam), ir.daddr(fam)
    key_in = (F.IIFNAME, F.L4PROTO, F.DPORT)
    key_port = (F.L4PROTO, F.DPORT)
    ct_key = (F.L4PROTO, F.CT_ORIG_DPORT, da, F.DPORT)
    verdict = ("verdict",)
    origins = [f.origin for f in fwds]
    hp_origins = [f.origin for f in fwds if f.hairpin]
    # one allowlist for all (the common case): check it in the rule, no dispatch map
    in_ids = sorted({k for k, use in uses if use == "in"})
    fwd_ids = sorted({k for k, use in uses if use == "fwd"})
    single_in = in_ids[0] if len(in_ids) == 1 else None
    single_fwd = fwd_ids[0] if len(fwd_ids) == 1 else None
    uses = {(k, use) for k, use in uses if not (use == "in" and single_in is not None)
            and not (use == "fwd" and single_fwd is not None)}
    b.add_set(ir.NamedSet(f"fwd{n}", key_in, tuple(dnat_map), (atype, "inet_service"),
                          about="port forwards: in interface . proto . port -> target",
                          comments=single_in is not None))
    if single_in is None:
        b.add_set(ir.NamedSet(f"fwd{n}_acl", key_in, tuple(acl_map), verdict,
                              about="port forwards: in interface . proto . port -> allowlist"))
    if b.add_set(ir.NamedSet(f"port{n}", key_port, tuple(port_map), (atype, "inet_service"),
                             about="hairpin forwards, for LAN hosts and the router itself")):
        b.rule("dnat_output", ir.Rule(
            (ir.FibLocal(), ir.NotLoopback(fam)), ir.Dnat(fam, key_port, f"port{n}"),
            lines_comment(hp_origins, "hairpin: the router's own traffic to a public address"),
            "port forward of the router's own traffic"))
    if single_fwd is None:
        b.add_set(ir.NamedSet(f"fwd{n}_check", ct_key, tuple(check_map), verdict,
                              about="proto . public port . target . port -> allowlist",
                              comments=False))
    else:
        b.add_set(ir.NamedSet(f"fwd{n}_targets", ct_key, tuple(
            ir.Element(e.key, origin=e.origin) for e in check_map),
            about="proto . public port . target . port of allowlisted forwards",
            comments=False))
    for k, sources in enumerate(acls.ids):
        b.add_set(ir.NamedSet(acls.name(k), (sa,), tuple(ir.Element((s,)) for s in sources),
                              interval=True, about="allowlist of " + ", ".join(
                                  sorted({o.path for o in acls.origins[k]}))[:100]))
        what = lines_comment(acls.origins[k], "allowlist")
        if (k, "in") in uses:
            b.regular(acls.name(k, "in"), ir.Rule(
                (ir.Lookup((sa,), acls.name(k)),), ir.Dnat(fam, key_in, f"fwd{n}"),
                what + " -> DNAT", "port forward"))
        if (k, "hp") in uses:
            b.regular(acls.name(k, "hp"), ir.Rule(
                (ir.Lookup((sa,), acls.name(k)),), ir.Dnat(fam, key_port, f"port{n}"),
                what + " -> hairpin DNAT", "hairpin port forward"))
        if (k, "fwd") in uses:
            b.regular(acls.name(k, "fwd"), ir.Rule(
                (ir.Lookup((ir.ct_orig_saddr(fam),), acls.name(k), negate=True),),
                ir.Verdict.DROP, what + ": original source not in it",
                "not in the allowlist (original source and port) of"))
    if single_in is None:
        b.rule("dnat_prerouting", ir.Rule(
            (ir.FibLocal(),), ir.Vmap(key_in, f"fwd{n}_acl"),
            lines_comment(origins, "port forwards arriving on their in interface"),
            "port forward"))
    else:
        b.rule("dnat_prerouting", ir.Rule(
            (ir.FibLocal(), ir.Lookup((sa,), acls.name(single_in))),
            ir.Dnat(fam, key_in, f"fwd{n}"),
            lines_comment(origins, "port forwards from allowlisted sources"), "port forward"))
    b.rule("filter_input", ir.Rule(
        (ir.FamilyIs(fam), ir.Lookup(key_in, f"fwd{n}"), ir.CtDnat(negate=True)),
        ir.Verdict.DROP,
        lines_comment(origins, "forwarded port, source not allowlisted"),
        "not in the allowlist of"))
    if b.add_set(ir.NamedSet(f"hairpin{n}", key_port, tuple(hp_map), verdict,
                             about="ports forwarded with hairpin -> allowlist")):
        # a plain lookup may not name a verdict map whose chains NAT (the kernel checks
        # the jumps against the hook of every chain that uses the map)
        b.add_set(ir.NamedSet(f"hairpin{n}_ports", key_port, tuple(
            ir.Element(e.key, origin=e.origin) for e in hp_map), about="hairpin ports"))
        outside = ir.Lookup((F.IIFNAME,), "outside", negate=True)
        not_on_iif = ir.FibLocal(negate=True, on_iif=True)
        b.rule("dnat_prerouting", ir.Rule(
            (outside, ir.FibLocal(), not_on_iif), ir.Vmap(key_port, f"hairpin{n}"),
            lines_comment(hp_origins, "hairpin: LAN host to a public address"),
            "hairpin port forward"))
        b.rule("filter_input", ir.Rule(
            (ir.FamilyIs(fam), outside, not_on_iif, ir.Lookup(key_port, f"hairpin{n}_ports"),
             ir.CtDnat(negate=True)),
            ir.Verdict.DROP,
            lines_comment(hp_origins, "hairpin to a forwarded port, source not allowlisted"),
            "not in the allowlist (hairpin) of"))
    if check_map and single_fwd is not None:
        b.rule("filter_forward", ir.Rule(
            (ir.ProtoIn(), ir.CtStateNew(), ir.CtDnat(), ir.Lookup(ct_key, f"fwd{n}_targets"),
             ir.Lookup((ir.ct_orig_saddr(fam),), acls.name(single_fwd), negate=True)),
            ir.Verdict.DROP,
            lines_comment(origins, "DNATed new flow to a forward target, source not allowlisted"),
            "not in the allowlist (original source and port) of"))
    elif check_map:
        b.rule("filter_forward", ir.Rule(
            (ir.ProtoIn(), ir.CtStateNew(), ir.CtDnat()), ir.Vmap(ct_key, f"fwd{n}_check"),
            lines_comment(origins, "DNATed new flow to a forward target: check its allowlist"),
            "forward target"))


def _lan_and_nat(b: _Builder, fam: m.Family) -> None:
    cfg, n = b.cfg, _sfx(fam)
    sa, da = ir.saddr(fam), ir.daddr(fam)
    lans = cfg.lan_networks(fam)
    lan_origins = [x.origin for x in cfg.masquerade] + [x.origin for x in cfg.one_to_one]
    o2o = [x for x in cfg.one_to_one if x.family is fam]
    if o2o:
        b.add_set(ir.NamedSet(f"one2one{n}", (da,), tuple(
            ir.Element((x.public,), (x.private,), x.origin) for x in o2o),
            (ir.addr_type(fam),), about="1:1 NAT: public -> private"))
        b.add_set(ir.NamedSet(f"one2one{n}_out", (F.OIFNAME, sa), tuple(
            ir.Element((cfg.one_to_one_out(x) or "", x.private), (x.public,), x.origin)
            for x in o2o), (ir.addr_type(fam),), about="1:1 NAT: out . private -> public"))
        oo = [x.origin for x in o2o]
        for chain in ("dnat_prerouting", "dnat_output"):
            b.rule(chain, ir.Rule((), ir.Dnat(fam, (da,), f"one2one{n}"),
                                  lines_comment(oo, "1:1 NAT to the private address"), "1:1 NAT"))
        b.rule("snat_postrouting", ir.Rule(
            (), ir.Snat(fam, (F.OIFNAME, sa), f"one2one{n}_out"),
            lines_comment(oo, "1:1 NAT: the private host leaves with its public address"),
            "1:1 NAT"))
    if lans:
        b.add_set(ir.NamedSet(f"lan{n}", (da,), tuple(
            ir.Element((net,)) for net in collapse(lans)), interval=True,
            about="LAN networks (masquerade sources, 1:1 private addresses)"))
        b.rule("filter_forward", ir.Rule(
            (ir.CtStateNew(), ir.CtDnat(negate=True), ir.Lookup((F.IIFNAME,), "outside"),
             ir.Lookup((da,), f"lan{n}")),
            ir.Verdict.DROP,
            lines_comment(lan_origins, "new flow from outside to the LAN that no forward allows"),
            "a new flow from an outside interface to the LAN that no forward allows"))
        if any(f.hairpin and f.family is fam for f in cfg.forward) or o2o:
            b.rule("snat_postrouting", ir.Rule(
                (ir.CtDnat(), ir.Lookup((sa,), f"lan{n}"), ir.Lookup((da,), f"lan{n}")),
                ir.Masquerade(),
                lines_comment(lan_origins, "hairpin: LAN to LAN after DNAT answers via router"),
                "hairpin SNAT"))
    snat = [(x, s) for x in cfg.masquerade if x.snat_to is not None for s in x.sources
            if m.family_of(s) is fam]
    if b.add_set(ir.NamedSet(f"snat{n}", (F.OIFNAME, sa), tuple(
            ir.Element((x.out, s), (x.snat_to,), x.origin) for x, s in snat if x.snat_to),
            (ir.addr_type(fam),), interval=True, about="static SNAT: out . source -> address")):
        b.rule("snat_postrouting", ir.Rule(
            (), ir.Snat(fam, (F.OIFNAME, sa), f"snat{n}"),
            lines_comment([x.origin for x, _ in snat], "static SNAT"), "static SNAT"))
    masq = [(x, s) for x in cfg.masquerade if x.snat_to is None for s in x.sources
            if m.family_of(s) is fam]
    if b.add_set(ir.NamedSet(f"masq{n}", (F.OIFNAME, sa), tuple(
            ir.Element((x.out, s), origin=x.origin) for x, s in masq), interval=True,
            about="masquerade: out . source")):
        b.rule("snat_postrouting", ir.Rule(
            (ir.Lookup((F.OIFNAME, sa), f"masq{n}"),), ir.Masquerade(),
            lines_comment([x.origin for x, _ in masq], "masquerade LAN to outside"),
            "masquerade"))


_CHAINS = {
    "raw_prerouting": (ir.ChainType.FILTER, ir.Hook.PREROUTING, -300),
    "raw_output": (ir.ChainType.FILTER, ir.Hook.OUTPUT, -300),
    "dnat_prerouting": (ir.ChainType.NAT, ir.Hook.PREROUTING, -100),
    "dnat_output": (ir.ChainType.NAT, ir.Hook.OUTPUT, -100),
    "filter_input": (ir.ChainType.FILTER, ir.Hook.INPUT, 0),
    "filter_forward": (ir.ChainType.FILTER, ir.Hook.FORWARD, 0),
    "snat_postrouting": (ir.ChainType.NAT, ir.Hook.POSTROUTING, 100),
}


def _needs(cfg: m.NatConfig) -> ir.Needs:
    sysctls: list[ir.Sysctl] = []
    v4 = any(f.family is m.Family.V4 and not f.to_addr.is_loopback for f in cfg.forward)
    v4 = v4 or any(o.family is m.Family.V4 for o in cfg.one_to_one)
    v4 = v4 or any(s.version == 4 for x in cfg.masquerade for s in x.sources)
    if v4:
        sysctls.append(ir.Sysctl("net.ipv4.ip_forward", "1", "NAT routes packets through"))
    if any(f.family is m.Family.V6 for f in cfg.forward) or any(
            o.family is m.Family.V6 for o in cfg.one_to_one) or any(
            s.version == 6 for x in cfg.masquerade for s in x.sources):
        sysctls.append(ir.Sysctl("net.ipv6.conf.all.forwarding", "1", "IPv6 forwards"))
    for iface in sorted({f.in_iface for f in cfg.forward if f.to_addr.version == 4
                         and f.to_addr.is_loopback}):
        sysctls.append(ir.Sysctl(f"net.ipv4.conf.{iface}.route_localnet", "1",
                                 "a forward on this interface targets 127.0.0.0/8"))
    proxies = []
    for o in cfg.one_to_one:
        out = cfg.one_to_one_out(o)
        if o.arp is m.ArpMode.PROXY and out:
            proxies.append(ir.ProxyNeighbour(o.public, out, o.private, o.origin))
            if o.family is m.Family.V6:
                sysctls.append(ir.Sysctl(f"net.ipv6.conf.{out}.proxy_ndp", "1",
                                         "answer neighbour solicitations for 1:1 addresses"))
    return ir.Needs(tuple(dict.fromkeys(sysctls)), tuple(proxies))


def compile_table(cfg: m.NatConfig) -> ir.Table:
    """The whole ``inet hostnet`` table for ``cfg``."""
    b = _Builder(cfg)
    b.add_set(ir.NamedSet("outside", (F.IIFNAME,), tuple(
        ir.Element((name,)) for name in cfg.outside_ifaces()),
        about="interfaces facing the outside (forward in, masquerade out)"))
    if b.add_set(ir.NamedSet("notrack_ports", (F.L4PROTO, F.DPORT), tuple(
            ir.Element((x.proto, x.ports), origin=x.origin) for x in cfg.notrack),
            interval=True, about="services of this host that skip conntrack")):
        oo = [x.origin for x in cfg.notrack]
        b.rule("raw_prerouting", ir.Rule(
            (ir.FibLocal(), ir.Lookup((F.L4PROTO, F.DPORT), "notrack_ports")), ir.Notrack(),
            lines_comment(oo, "no conntrack for this service"), "untracked"))
        b.rule("raw_output", ir.Rule(
            (ir.Lookup((F.L4PROTO, F.SPORT), "notrack_ports"),), ir.Notrack(),
            lines_comment(oo, "no conntrack for this service's replies"), "untracked"))
    for fam in (m.Family.V4, m.Family.V6):
        _lan_and_nat(b, fam)
        _forwards(b, fam)
    chains = []
    for name, (ctype, hook, prio) in _CHAINS.items():
        rules = b.chains.get(name)
        if rules:
            if name == "dnat_prerouting":  # 1:1 first, it covers every port of its address
                rules.sort(key=lambda r: 0 if r.reason == "1:1 NAT" else 1)
            chains.append(ir.Chain(name, ctype, hook, prio, tuple(rules)))
    for name, rules in b.regulars.items():
        ctype = ir.ChainType.NAT if not name.endswith("_fwd") else ir.ChainType.FILTER
        chains.append(ir.Chain(name, ctype, None, 0, tuple(rules)))
    return ir.Table(tuple(b.sets), tuple(chains), _needs(cfg), cfg.origin.file)
