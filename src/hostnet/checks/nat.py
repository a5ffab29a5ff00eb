"""NAT and forwarding consistency for ``hostnet doctor`` (codes NT1xx).

* NAT rules (nftables or iptables) that rewrite routed traffic while IPv4 forwarding is off
  (a DNAT to this host's own address needs no forwarding);
* forwarding on where the role says the host should not route (a server, a desktop);
* forwarding off on a router (from the role profile);
* proxy ARP answering for addresses on interfaces where no routed VM needs it;
* an open router: forwarding on, one interface, no NAT, nothing on the forward hook drops.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hostnet.checks.base import Subject
from hostnet.checks.interfaces import ConfTable, conf_table
from hostnet.checks.roles import expectation_findings, open_router
from hostnet.findings import Finding, Rule, Severity
from hostnet.model.firewall import NatRule
from hostnet.model.net import VM_KINDS, IPAddress

NAT_NO_FORWARD = Rule("NT101", "nat-without-forwarding", Severity.ERROR,
                      "NAT rules rewrite routed traffic but IPv4 forwarding is off")
FORWARDING_ON = Rule("NT102", "unexpected-forwarding", Severity.WARNING,
                     "The host forwards packets although its role should not route")
PROXY_ARP = Rule("NT103", "proxy-arp-unneeded", Severity.WARNING,
                 "Proxy ARP is on where no routed VM or container needs it")
ROUTER_NO_FORWARD = Rule("NT104", "router-not-forwarding", Severity.ERROR,
                         "A router's IPv4 forwarding is off")
OPEN_ROUTER = Rule("NT105", "open-router", Severity.WARNING,
                   "The host routes for anyone on its only link: forwarding on, no NAT, "
                   "no forward filter")

_RULES = {r.code: r for r in (ROUTER_NO_FORWARD,)}
#: Largest range or prefix whose addresses are compared one by one with the host's own.
_ENUMERATE_MAX = 4096
#: The forward-chain fix of NT105 (hostnet's own table; nothing else is touched).
FORWARD_POLICY = (
    "# nftables (nft -f): forwarded packets are dropped unless a rule above the policy\n"
    "# accepts them; add 'accept' rules for the traffic this host should route\n"
    "table inet hostnet {\n"
    "  chain forward {\n"
    "    type filter hook forward priority filter; policy drop;\n"
    "  }\n"
    "}")


@dataclass(frozen=True, slots=True)
class Locality:
    """The host's own addresses, to tell a DNAT to this host from one to another host."""

    addresses: frozenset[IPAddress] = frozenset()
    known: bool = False

    def of(self, target: str) -> bool | None:
        """True: every address ``target`` names is this host's; False: none is; None: mixed,
        unparsable, or the addresses were not read."""
        try:
            if "-" in target:
                lo_text, hi_text = target.split("-", 1)
                lo, hi = ipaddress.ip_address(lo_text), ipaddress.ip_address(hi_text)
                if lo.version != hi.version:
                    return None
                size = int(hi) - int(lo) + 1
                first = int(lo)
                version = lo.version
            elif "/" in target:
                net = ipaddress.ip_network(target, strict=False)
                size, first, version = net.num_addresses, int(net.network_address), net.version
            else:
                addr = ipaddress.ip_address(target)
                if addr.version == 4 and addr.is_loopback:
                    return True
                if not self.known:
                    return None
                return addr in self.addresses
        except ValueError:
            return None
        if not self.known or size < 1:
            return None
        inside = sum(1 for a in self.addresses
                     if a.version == version and first <= int(a) < first + size)
        if inside == 0:
            return False
        return True if inside == size and size <= _ENUMERATE_MAX else None


def _ipv6_only(rule: NatRule) -> bool:
    return bool(rule.targets) and all(":" in t for t in rule.targets)


def evaluate_nat_forwarding(rules: Sequence[NatRule], ip_forward: int | None,
                            local: Locality | None = None) -> list[Finding]:
    """NAT that needs IPv4 forwarding while it is off.

    Masquerade and SNAT act on routed traffic. A DNAT in prerouting runs before the routing
    decision: to one of this host's own addresses the packet is delivered locally and needs
    no forwarding; to another host it must be forwarded. A DNAT whose target is not a literal
    address (an empty map, a port-only iptables target), or whose locality cannot be told,
    is reported as unknown (info), never as an error.
    """
    if ip_forward != 0:
        return []
    local = local or Locality()
    needs: list[tuple[NatRule, list[str]]] = []
    unknown: list[NatRule] = []
    for rule in rules:
        if not rule.routed or rule.family not in ("ip", "inet", "ipv4") or _ipv6_only(rule):
            continue
        if rule.kind != "dnat":
            needs.append((rule, []))
            continue
        v4 = [t for t in rule.targets if ":" not in t]
        where = [local.of(t) for t in v4]
        if v4 and all(w is True for w in where):
            continue  # delivered to this host: prerouting NAT, then local input
        if v4 and any(w is False for w in where):
            needs.append((rule, [t for t, w in zip(v4, where, strict=True) if w is False]))
        else:
            unknown.append(rule)
    ev_base: dict[str, Any] = {"net.ipv4.ip_forward": ip_forward}
    if any(r.kind == "dnat" for r in rules):
        ev_base["local_addresses_known"] = local.known
    if needs:
        shown = "; ".join(r.describe() + (f" to {', '.join(t)} (not an address of this host)"
                                          if t else "") for r, t in needs[:4])
        evidence = {**ev_base, "nat_rules": [r.describe() for r, _ in needs]}
        far = sorted({t for _, ts in needs for t in ts})
        if far:
            evidence["non_local_targets"] = far
        if unknown:
            evidence["unknown_targets"] = [r.describe() for r in unknown]
        return [NAT_NO_FORWARD.finding(
            f"NAT rules are loaded ({shown}) but net.ipv4.ip_forward is 0: packets from the "
            "networks they translate are dropped before they reach the NAT, so the rules do "
            "nothing (unless they only rewrite this host's own traffic). Turn forwarding on, or "
            "remove the rules if this host is not meant to route",
            key="net.ipv4.ip_forward", evidence=evidence,
            suggestion="net.ipv4.ip_forward = 1",
        )]
    if unknown:
        shown = "; ".join(r.describe() for r in unknown[:4])
        why = ("the target is not a literal address (an empty map, a variable, a port-only target, "
               "or an iptables-nft rule seen through nft)"
               if any(not r.targets for r in unknown) else
               "this host's own addresses were not read")
        return [NAT_NO_FORWARD.finding(
            f"DNAT rules are loaded ({shown}) with net.ipv4.ip_forward = 0, and whether they "
            f"send packets to this host or to another cannot be told: {why}. To this host's "
            "own address they work as they are (prerouting NAT runs before routing); to "
            "another host they need forwarding on",
            key="net.ipv4.ip_forward", severity=Severity.INFO,
            evidence={**ev_base, "nat_rules": [r.describe() for r in unknown],
                      "targets": sorted({t for r in unknown for t in r.targets})},
        )]
    return []


def evaluate_forwarding_role(role: str, ip_forward: int | None, ipv6_forward: int | None,
                             want: str, *, skip_ipv4: bool = False) -> list[Finding]:
    """Forwarding on where the role should not route. ``skip_ipv4``: NT105 reports it."""
    if want != "off":
        return []
    out: list[Finding] = []
    sev = Severity.WARNING if role == "server" else Severity.INFO
    routes = ("so anything that can reach it can use it as a path into the other networks "
              "unless the forward chain drops it")
    for key, value, tail in (
            ("net.ipv4.ip_forward", 0 if skip_ipv4 else ip_forward,
             f"the host routes IPv4 packets between its interfaces, {routes}"),
            ("net.ipv6.conf.all.forwarding", ipv6_forward,
             f"the host routes IPv6 packets between its interfaces, {routes}; it also makes "
             "every interface whose accept_ra is 1 ignore router advertisements, so addresses "
             "and default routes learnt from them expire")):
        if value:
            out.append(FORWARDING_ON.finding(
                f"{key} is {value} on a {role}: {tail}",
                key=key, severity=sev, evidence={key: value, "role": role},
                suggestion=f"{key} = 0"))
    return out


def evaluate_open_router(iface: str | None, *, forwarded: int | None,
                         role_routes: bool, role: str) -> list[Finding]:
    """NT105 for the interface :func:`hostnet.checks.roles.open_router` found.

    The fix turns forwarding off when nothing has been routed through the host (the kernel's
    ForwDatagrams counter is 0) and the role does not route; otherwise it adds a forward
    chain whose policy drops, which leaves the host's own traffic (input/output) alone.
    """
    if iface is None:
        return []
    off = forwarded == 0 and not role_routes
    if forwarded is None:
        seen = "whether anything routes through it is not known (/proc/net/snmp not read)"
    elif forwarded:
        seen = (f"{forwarded} datagrams have been routed through it (ForwDatagrams in "
                "/proc/net/snmp)")
    else:
        seen = "nothing has been routed through it yet (ForwDatagrams 0 in /proc/net/snmp)"
    if off:
        fix_text = ("turn forwarding off: nothing here needs it")
        suggestion = "net.ipv4.ip_forward = 0"
    else:
        reason = (f"a {role} is meant to route" if role_routes else
                  "something may rely on it")
        fix_text = (f"{reason}, so keep forwarding and drop forwarded packets in a forward "
                    "chain (the host's own traffic does not pass the forward hook); accept "
                    "what it should route above the policy")
        suggestion = FORWARD_POLICY
    return [OPEN_ROUTER.finding(
        f"net.ipv4.ip_forward is 1, {iface} is the only interface, no NAT rule is loaded and "
        "nothing on the forward hook drops: any neighbour on that link can send this host "
        "packets for other networks and it routes them back out, around whatever the real "
        f"gateway filters; {seen}. Fix: {fix_text}",
        key="net.ipv4.ip_forward",
        evidence={"net.ipv4.ip_forward": 1, "interface": iface, "forwarded_datagrams": forwarded,
                  "role": role, "fix": "forwarding-off" if off else "forward-policy"},
        suggestion=suggestion)]


def evaluate_proxy_arp(table: ConfTable, kinds: Mapping[str, str], policy: str,
                       role: str) -> list[Finding]:
    on = [e for e in table.each("proxy_arp") if e.value]
    if not on:
        return []
    vms = sorted(n for n, k in kinds.items() if k in VM_KINDS)
    if policy == "allowed" and vms:
        return []
    why = (f"a {role} has no routed VMs to answer for" if policy != "allowed" else
           "no tap, tun or veth device is present, so there is no routed VM to answer for")
    shown = ", ".join(f"{e.iface} (all={e.all}, {e.iface}={e.own})" for e in on[:5])
    lines = ["net.ipv4.conf.all.proxy_arp = 0", "net.ipv4.conf.default.proxy_arp = 0",
             *(f"net.ipv4.conf.{e.iface.replace('.', '/')}.proxy_arp = 0" for e in on)]
    return [PROXY_ARP.finding(
        f"proxy ARP is on for {shown} (combined as all OR interface): the host answers ARP "
        f"for any address it has a route to, which pulls traffic for other hosts through "
        f"itself and hides misconfigured neighbours; {why}",
        key="net.ipv4.conf.*.proxy_arp",
        evidence={"interfaces": [e.evidence() for e in on], "vm_devices": vms, "role": role},
        suggestion="\n".join(lines))]


def check_nat_forwarding(s: Subject) -> list[Finding]:
    net = s.ns.network
    local = Locality(net.local_addresses(), net.addresses_known)
    return evaluate_nat_forwarding(s.ns.ruleset.nat, s.ns.integer("net.ipv4.ip_forward"), local)


def check_forwarding_role(s: Subject) -> list[Finding]:
    return evaluate_forwarding_role(s.role_name, s.ns.integer("net.ipv4.ip_forward"),
                                    s.ns.integer("net.ipv6.conf.all.forwarding"),
                                    str(s.role.iface("forwarding", "any")),
                                    skip_ipv4=open_router(s.ns) is not None)


def check_open_router(s: Subject) -> list[Finding]:
    return evaluate_open_router(open_router(s.ns), forwarded=s.ns.network.forwarded,
                                role_routes=s.role.iface("forwarding", "any") == "on",
                                role=s.role_name)


def check_router_expectations(s: Subject) -> Iterator[Finding]:
    yield from expectation_findings(s, _RULES)


def check_proxy_arp(s: Subject) -> list[Finding]:
    table = conf_table(s.ns, "ipv4", ["proxy_arp", "forwarding"], s.catalogue)
    if table.get("all", "proxy_arp") is None:
        return []
    kinds = {i.name: i.kind for i in s.ns.network.interfaces}
    return evaluate_proxy_arp(table, kinds, str(s.role.iface("proxy_arp", "unexpected")),
                              s.role_name)


CHECKS = (check_nat_forwarding, check_forwarding_role, check_router_expectations,
          check_proxy_arp, check_open_router)
