"""IPv6 checks for ``hostnet doctor`` (codes V61xx).

IPv6 does not combine conf/all with each interface the way IPv4 does: the packet path reads
the interface's own value (net/ipv6/addrconf.c, ndisc.c). Writing conf/all/forwarding or
conf/all/disable_ipv6 copies the value to every interface; conf/default only seeds new ones.

* forwarding makes an interface ignore router advertisements unless accept_ra is 2, so an
  uplink that learns its address or default route from RAs loses them;
* disable_ipv6 that differs between all, default and the interfaces (IPv6 half disabled);
* ICMPv6 redirects accepted on a non-forwarding interface.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from hostnet.checks.base import Subject
from hostnet.checks.interfaces import ConfTable, conf_key, conf_table
from hostnet.findings import Finding, Rule, Severity
from hostnet.model.net import Family

FORWARDING_IGNORES_RA = Rule("V6101", "forwarding-ignores-ra", Severity.WARNING,
                             "IPv6 forwarding makes an interface that needs RAs ignore them")
HALF_DISABLED = Rule("V6102", "ipv6-half-disabled", Severity.WARNING,
                     "disable_ipv6 differs between all, default and the interfaces")
ACCEPT_REDIRECTS6 = Rule("V6103", "accept-redirects-v6", Severity.INFO,
                         "ICMPv6 redirects may rewrite routes on a host interface")

LEAVES = ["forwarding", "accept_ra", "autoconf", "disable_ipv6", "accept_redirects"]


@dataclass(frozen=True, slots=True)
class DefaultRoute:
    device: str
    from_ra: bool


def evaluate_ra(table: ConfTable, defaults: Sequence[DefaultRoute] | None,
                ports: Collection[str] = ()) -> list[Finding]:
    """V6101. The kernel takes an RA when accept_ra is 2, or 1 and the interface does not
    forward (ipv6_accept_ra() in net/ipv6/ndisc.c reads the interface's own forwarding).
    ``ports``: bridge/bond ports and IFBs, which never process RAs themselves."""
    out: list[Finding] = []
    for iface in table.interfaces:
        if iface == "lo" or iface in ports:
            continue
        fwd, ra = table.get(iface, "forwarding"), table.get(iface, "accept_ra")
        if not fwd or ra != 1 or table.get(iface, "disable_ipv6"):
            continue
        ra_route = defaults is not None and any(d.device == iface and d.from_ra for d in defaults)
        no_default = defaults is not None and not defaults
        if not (ra_route or (no_default and table.get(iface, "autoconf"))):
            continue
        why = ("its default route came from a router advertisement and will expire" if ra_route
               else "there is no IPv6 default route at all, and the interface autoconfigures")
        key = conf_key("ipv6", iface, "accept_ra")
        out.append(FORWARDING_IGNORES_RA.finding(
            f"{iface}: IPv6 forwarding is on and accept_ra is 1, so the kernel ignores router "
            f"advertisements there; {why}. accept_ra = 2 accepts them while forwarding",
            key=key,
            evidence={conf_key("ipv6", iface, "forwarding"): fwd, key: ra,
                      conf_key("ipv6", iface, "autoconf"): table.get(iface, "autoconf"),
                      "default_routes": [f"{d.device}{' (RA)' if d.from_ra else ''}"
                                         for d in defaults or []]},
            suggestion=f"{key} = 2"))
    return out


def evaluate_disable(table: ConfTable) -> list[Finding]:
    values = {i: table.get(i, "disable_ipv6") for i in ["all", "default", *table.interfaces]}
    known = {k: v for k, v in values.items() if v is not None}
    if len(set(known.values())) <= 1:
        return []
    off = sorted(k for k, v in known.items() if v)
    on = sorted(k for k, v in known.items() if not v)
    # conf/all says what was meant (writing it is how IPv6 is switched off host-wide)
    intended = known.get("all", 1 if len(off) > len(on) else 0)
    lines = [f"{conf_key('ipv6', i, 'disable_ipv6')} = {intended}" for i in known
             if known[i] != intended]
    hint = ("interfaces created later follow 'default', and 'all' only copied its value to "
            "the interfaces that existed when it was written")
    if intended == 0 and "lo" in off:
        hint = "with lo disabled, ::1 is gone and programs that listen on or connect to it fail"
    return [HALF_DISABLED.finding(
        f"IPv6 is half disabled: disable_ipv6 = 1 on {', '.join(off)} but 0 on "
        f"{', '.join(on)}; {hint}. Decide on one value",
        key="net.ipv6.conf.*.disable_ipv6", evidence={"disable_ipv6": values},
        suggestion="\n".join(lines))]


def evaluate_redirects6(table: ConfTable, ports: Sequence[str] = ()) -> list[Finding]:
    """``ports``: interfaces that never take part in IP (bridge/bond ports, IFBs)."""
    on = [i for i in table.interfaces if i != "lo" and i not in ports
          and table.get(i, "accept_redirects")
          and not table.get(i, "forwarding") and not table.get(i, "disable_ipv6")]
    if not on:
        return []
    lines = [f"{conf_key('ipv6', i, 'accept_redirects')} = 0" for i in ["default", *on]]
    return [ACCEPT_REDIRECTS6.finding(
        f"ICMPv6 redirects are accepted on {', '.join(on[:6])}: a neighbour can move this "
        "host's traffic to another first hop (IPv6 reads the interface's own value; "
        "conf/all does not override it)",
        key="net.ipv6.conf.*.accept_redirects",
        evidence={conf_key("ipv6", i, "accept_redirects"): 1 for i in on},
        suggestion="\n".join(lines))]


def _table(s: Subject) -> ConfTable | None:
    if not s.ns.ipv6:
        return None
    return conf_table(s.ns, "ipv6", LEAVES, s.catalogue)


def check_ra(s: Subject) -> list[Finding]:
    table = _table(s)
    if table is None:
        return []
    net = s.ns.network
    defaults = ([DefaultRoute(r.device or "", r.from_ra)
                 for r in net.default_routes(Family.IPV6)]
                if net.ipv6_routes_known else None)
    ports = [n for n in table.interfaces if not net.handles_ip(n)]
    return evaluate_ra(table, defaults, ports)


def check_disable(s: Subject) -> list[Finding]:
    table = _table(s)
    return [] if table is None else evaluate_disable(table)


def check_redirects(s: Subject) -> list[Finding]:
    table = _table(s)
    if table is None:
        return []
    net = s.ns.network
    return evaluate_redirects6(table, [n for n in table.interfaces if not net.handles_ip(n)])


CHECKS = (check_ra, check_disable, check_redirects)
