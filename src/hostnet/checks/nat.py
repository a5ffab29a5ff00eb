"""NAT and forwarding consistency for ``hostnet doctor`` (codes NT1xx).

* NAT rules (nftables or iptables) that rewrite routed traffic while IPv4 forwarding is off;
* forwarding on where the role says the host should not route (a server, a desktop);
* forwarding off on a router (from the role profile);
* proxy ARP answering for addresses on interfaces where no routed VM needs it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

from hostnet.checks.base import Subject
from hostnet.checks.interfaces import ConfTable, conf_table
from hostnet.checks.roles import expectation_findings
from hostnet.findings import Finding, Rule, Severity
from hostnet.model.firewall import NatRule
from hostnet.model.net import VM_KINDS

NAT_NO_FORWARD = Rule("NT101", "nat-without-forwarding", Severity.ERROR,
                      "NAT rules rewrite routed traffic but IPv4 forwarding is off")
FORWARDING_ON = Rule("NT102", "unexpected-forwarding", Severity.WARNING,
                     "The host forwards packets although its role should not route")
PROXY_ARP = Rule("NT103", "proxy-arp-unneeded", Severity.WARNING,
                 "Proxy ARP is on where no routed VM or container needs it")
ROUTER_NO_FORWARD = Rule("NT104", "router-not-forwarding", Severity.ERROR,
                         "A router's IPv4 forwarding is off")

_RULES = {r.code: r for r in (ROUTER_NO_FORWARD,)}


def evaluate_nat_forwarding(rules: Sequence[NatRule], ip_forward: int | None) -> list[Finding]:
    routed = [r for r in rules if r.routed and r.family in ("ip", "inet", "ipv4")]
    if ip_forward != 0 or not routed:
        return []
    shown = "; ".join(r.describe() for r in routed[:4])
    return [NAT_NO_FORWARD.finding(
        f"NAT rules are loaded ({shown}) but net.ipv4.ip_forward is 0: packets from the "
        "networks they translate are dropped before they reach the NAT, so the rules do "
        "nothing (unless they only rewrite this host's own traffic). Turn forwarding on, or "
        "remove the rules if this host is not meant to route",
        key="net.ipv4.ip_forward",
        evidence={"net.ipv4.ip_forward": ip_forward,
                  "nat_rules": [r.describe() for r in routed]},
        suggestion="net.ipv4.ip_forward = 1",
    )]


def evaluate_forwarding_role(role: str, ip_forward: int | None, ipv6_forward: int | None,
                             want: str) -> list[Finding]:
    if want != "off":
        return []
    out: list[Finding] = []
    sev = Severity.WARNING if role == "server" else Severity.INFO
    for key, value in (("net.ipv4.ip_forward", ip_forward),
                       ("net.ipv6.conf.all.forwarding", ipv6_forward)):
        if value:
            out.append(FORWARDING_ON.finding(
                f"{key} is {value} on a {role}: the host routes packets between its "
                "interfaces, so anything that can reach it can use it as a path into the "
                "other networks unless the forward chain drops it; it also turns off "
                "accepting router advertisements on IPv6",
                key=key, severity=sev, evidence={key: value, "role": role},
                suggestion=f"{key} = 0"))
    return out


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
    return evaluate_nat_forwarding(s.ns.ruleset.nat, s.ns.integer("net.ipv4.ip_forward"))


def check_forwarding_role(s: Subject) -> list[Finding]:
    return evaluate_forwarding_role(s.role_name, s.ns.integer("net.ipv4.ip_forward"),
                                    s.ns.integer("net.ipv6.conf.all.forwarding"),
                                    str(s.role.iface("forwarding", "any")))


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
          check_proxy_arp)
