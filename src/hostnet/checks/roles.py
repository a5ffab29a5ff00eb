"""What the host shows about its job, and the role that fits it.

Signals (read through the Context, so snapshots answer too):

* IPv4/IPv6 forwarding (``net.ipv4.ip_forward``, ``net.ipv6.conf.all.forwarding``);
* NAT rules: ``nft -j list ruleset`` (masquerade, snat, dnat, redirect, and iptables-nft ``xt``
  targets), else ``iptables-save -t nat`` (MASQUERADE, SNAT, DNAT, REDIRECT);
* interfaces and their kinds (``ip -j -d link show``; tun/tap, bridge, veth ...);
* listening sockets from /proc/net/{tcp,tcp6,udp,udp6}.

:func:`recommend` turns them into a role and a sentence saying why (pure). The readers keep
what they found in ``ctx.facts`` (``nat_rules``, ``interfaces``, ``listening``), which both
reports it in JSON output and lets every check module reuse one reading.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from hostnet.checks.context import Context
from hostnet.checks.interfaces import NOT_DEVICES, ConfTable, read_table
from hostnet.findings import Finding, Rule

NAT_KINDS = ("masquerade", "snat", "dnat", "redirect")
_XT_TARGETS = {"MASQUERADE": "masquerade", "SNAT": "snat", "DNAT": "dnat", "REDIRECT": "redirect"}


@dataclass(frozen=True, slots=True)
class NatRule:
    kind: str  # masquerade, snat, dnat, redirect
    family: str  # ip, ip6, inet (nft) or ipv4 (iptables)
    table: str
    chain: str
    hook: str | None  # prerouting, postrouting, output, input (None: unknown)
    source: str  # "nft" or "iptables-save"

    def where(self) -> str:
        return f"table {self.family} {self.table}" if self.source == "nft" else (
            f"iptables table {self.table} chain {self.chain}")

    def describe(self) -> str:
        return f"{self.kind} in {self.where()} chain {self.chain}" if self.source == "nft" else (
            f"{self.kind} in {self.where()}")

    @property
    def routed(self) -> bool:
        """True unless the rule can only touch this host's own traffic (output chain, redirect)."""
        return self.kind != "redirect" and self.hook not in ("output", "input")


@dataclass(frozen=True, slots=True)
class Listener:
    proto: str  # tcp, udp
    port: int
    address: str  # hex as in /proc/net
    loopback: bool


# -- pure parsers ------------------------------------------------------------------------------


def _walk(node: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for k, v in node.items():
            yield k, v
            yield from _walk(v)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item)


def parse_nft_json(text: str) -> list[NatRule]:
    """NAT statements in ``nft -j list ruleset`` output. ValueError when it is not JSON."""
    doc = json.loads(text)
    items = doc.get("nftables", []) if isinstance(doc, dict) else []
    hooks: dict[tuple[str, str, str], str] = {}
    for item in items:
        chain = item.get("chain") if isinstance(item, dict) else None
        if isinstance(chain, dict) and chain.get("hook"):
            hooks[(str(chain.get("family")), str(chain.get("table")), str(chain.get("name")))] = (
                str(chain["hook"]))
    out: list[NatRule] = []
    for item in items:
        rule = item.get("rule") if isinstance(item, dict) else None
        if not isinstance(rule, dict):
            continue
        fam, table, chain = str(rule.get("family")), str(rule.get("table")), str(rule.get("chain"))
        for key, value in _walk(rule.get("expr", [])):
            kind: str | None = None
            if key in NAT_KINDS:
                kind = key
            elif key == "xt" and isinstance(value, dict):
                kind = _XT_TARGETS.get(str(value.get("name", "")).upper())
            if kind:
                hook = hooks.get((fam, table, chain))
                if hook is None and chain.upper() in ("PREROUTING", "POSTROUTING", "OUTPUT",
                                                      "INPUT"):
                    hook = chain.lower()
                out.append(NatRule(kind, fam, table, chain, hook, "nft"))
    return out


def parse_iptables_save(text: str, family: str = "ipv4") -> list[NatRule]:
    """NAT targets in ``iptables-save`` output (only the ``*nat`` table is looked at)."""
    out: list[NatRule] = []
    table = ""
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("*"):
            table = line[1:]
            continue
        if table != "nat" or not line.startswith("-A "):
            continue
        parts = line.split()
        chain = parts[1]
        if "-j" in parts:
            target = parts[parts.index("-j") + 1] if parts.index("-j") + 1 < len(parts) else ""
            kind = _XT_TARGETS.get(target.upper())
            if kind:
                hook = chain.lower() if chain in ("PREROUTING", "POSTROUTING", "OUTPUT",
                                                  "INPUT") else None
                out.append(NatRule(kind, family, "nat", chain, hook, "iptables-save"))
    return out


def _hex_loopback(addr: str) -> bool:
    if len(addr) == 8:  # IPv4, little-endian words: 0100007F is 127.0.0.1
        return addr[6:8] == "7F"
    return addr.upper() in ("00000000000000000000000001000000",
                            "0000000000000000FFFF00000100007F")


def parse_proc_net_sockets(text: str, proto: str) -> list[Listener]:
    """Listening TCP sockets (state 0A) or bound, unconnected UDP sockets (state 07)."""
    out: list[Listener] = []
    for line in text.splitlines()[1:]:
        parts = line.split()
        if len(parts) < 4 or ":" not in parts[1]:
            continue
        local, remote, state = parts[1], parts[2], parts[3]
        addr, _, port_hex = local.rpartition(":")
        try:
            port = int(port_hex, 16)
        except ValueError:
            continue
        if proto == "tcp" and state != "0A":
            continue
        if proto == "udp" and (state != "07" or remote.rpartition(":")[2] != "0000"):
            continue
        if port:
            out.append(Listener(proto, port, addr, _hex_loopback(addr)))
    return out


def parse_ip_link_json(text: str) -> dict[str, str]:
    """Interface name -> kind (tap, tun, bridge, veth, dummy, loopback, ether ...)."""
    out: dict[str, str] = {}
    for link in json.loads(text):
        name = link.get("ifname")
        if not name:
            continue
        info = link.get("linkinfo") or {}
        kind = info.get("info_kind")
        if kind == "tun":
            kind = str((info.get("info_data") or {}).get("type") or "tun")
        if not kind:
            kind = "loopback" if link.get("link_type") == "loopback" else "ether"
        out[str(name)] = str(kind)
    return out


# -- readers (through the Context) ---------------------------------------------------------------


def conf_table(ctx: Context, family: str, leaves: list[str]) -> ConfTable:
    ifaces = [i for i in ctx.root.listdir(f"proc/sys/net/{family}/conf") if i not in NOT_DEVICES]
    return read_table(family, ifaces, leaves, ctx.sysctl_int)


def nat_rules(ctx: Context) -> list[NatRule]:
    """NAT rules of this namespace (read once per Context; kept in ``ctx.facts``)."""
    cached = ctx.facts.get("_nat_rules")
    if isinstance(cached, list):
        return cached
    rules: list[NatRule] = []
    nft = ctx.root.command_output("nft-ruleset.json", ["nft", "-j", "list", "ruleset"])
    sources: list[str] = []
    if nft is not None:
        try:
            rules = parse_nft_json(nft)
            sources.append("nft -j list ruleset")
        except (ValueError, AttributeError) as exc:
            ctx.unreadable.append(f"nft -j list ruleset: not the JSON expected ({exc})")
    if not rules:
        ipt = ctx.root.command_output("iptables-save.txt", ["iptables-save", "-t", "nat"])
        if ipt is not None:
            rules = parse_iptables_save(ipt)
            sources.append("iptables-save -t nat")
    if not sources:
        ctx.unreadable.append(
            "NAT rules: neither 'nft -j list ruleset' nor 'iptables-save' could be read "
            "(they need root / CAP_NET_ADMIN, or are not installed)")
    ctx.facts["_nat_rules"] = rules
    ctx.fact("nat_rules", [r.describe() for r in rules])
    ctx.fact("nat_rules_read_from", sources)
    return rules


def interface_kinds(ctx: Context) -> dict[str, str]:
    cached = ctx.facts.get("interfaces")
    if isinstance(cached, dict):
        return cached
    kinds: dict[str, str] = {}
    text = ctx.root.command_output("ip-link.json", ["ip", "-j", "-d", "link", "show"])
    if text:
        try:
            kinds = parse_ip_link_json(text)
        except (ValueError, AttributeError):
            kinds = {}
    if not kinds:
        names = [i for i in ctx.root.listdir("proc/sys/net/ipv4/conf") if i not in NOT_DEVICES]
        kinds = {n: ctx.root.interface_kind(n) for n in names}
    ctx.fact("interfaces", kinds)
    return kinds


def listeners(ctx: Context) -> list[Listener]:
    cached = ctx.facts.get("_listeners")
    if isinstance(cached, list):
        return cached
    out: list[Listener] = []
    for name in ("tcp", "tcp6", "udp", "udp6"):
        try:
            text = ctx.root.read_text(f"proc/net/{name}")
        except PermissionError:
            ctx.unreadable.append(f"/proc/net/{name} (permission denied)")
            continue
        if text is not None:
            out.extend(parse_proc_net_sockets(text, name.rstrip("6")))
    ctx.facts["_listeners"] = out
    ctx.fact("listening", sorted({f"{x.proto}/{x.port}" + (" (loopback)" if x.loopback else "")
                                  for x in out}))
    return out


# -- recommendation (pure) ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Signals:
    ip_forward: int | None
    ipv6_forward: int | None
    nat: tuple[NatRule, ...]
    kinds: Mapping[str, str]
    listening: tuple[Listener, ...]


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


def signals(ctx: Context) -> Signals:
    return Signals(
        ip_forward=ctx.sysctl_int("net.ipv4.ip_forward"),
        ipv6_forward=ctx.sysctl_int("net.ipv6.conf.all.forwarding"),
        nat=tuple(nat_rules(ctx)),
        kinds=interface_kinds(ctx),
        listening=tuple(listeners(ctx)),
    )


def recommend_for(ctx: Context) -> tuple[str, str]:
    return recommend(signals(ctx))


# -- role expectations on scalar keys (shared by the HD, TN and NT modules) ---------------------


def expectation_findings(ctx: Context, rules: Mapping[str, Rule]) -> Iterator[Finding]:
    """Findings for the role's scalar-key expectations whose code is one of ``rules``."""
    from hostnet.knowledge.roles import load

    role = load(ctx.role)
    for key, exp in role.expectations.items():
        rule = rules.get(exp.code)
        if rule is None or (ctx.netns is not None and key.startswith("kernel.")):
            continue  # kernel.* is host-wide: reported for the initial namespace only
        value = ctx.sysctl_int(key)
        if value is None or exp.met(value):
            continue
        yield rule.finding(
            f"{key} is {value}; for a {ctx.role} it should be {exp.wanted()}: {exp.reason}",
            key=key, severity=exp.severity,
            evidence={key: value, "role": ctx.role, "expected": exp.wanted()},
            suggestion=f"{key} = {exp.fix}",
        )
