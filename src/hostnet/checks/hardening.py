"""Hardening checks for ``hostnet doctor`` (codes HD1xx).

Scalar keys (SYN cookies, ICMP, ASLR, kernel pointer and log restrictions) are compared with
the role profile (knowledge/roles.toml). Per-interface IPv4 keys (redirects, source routing,
rp_filter, log_martians) are judged on the value the kernel actually uses on each interface,
combined from conf/all and conf/IFACE the way include/linux/inetdevice.h combines them
(:mod:`hostnet.checks.interfaces`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from hostnet.checks.base import Subject
from hostnet.checks.interfaces import ConfTable, Effective, conf_key, conf_table
from hostnet.checks.roles import expectation_findings
from hostnet.findings import Finding, Rule, Severity
from hostnet.model.net import ReturnPaths

SYNCOOKIES = Rule("HD101", "syn-cookies-off", Severity.WARNING,
                  "SYN cookies are off: a SYN flood locks out legitimate clients")
SYNACK_RETRIES = Rule("HD102", "synack-retries-high", Severity.INFO,
                      "Half-open connections are retried (and kept) longer than the role needs")
ACCEPT_REDIRECTS = Rule("HD103", "accept-redirects", Severity.WARNING,
                        "An interface lets ICMP redirects rewrite its routes")
SEND_REDIRECTS = Rule("HD104", "send-redirects", Severity.INFO,
                      "A forwarding interface sends ICMP redirects")
SOURCE_ROUTE = Rule("HD106", "accept-source-route", Severity.WARNING,
                    "An interface accepts source-routed IPv4 packets")
RP_FILTER = Rule("HD107", "rp-filter", Severity.WARNING,
                 "Reverse-path filtering is off, or strict where routing is asymmetric")
LOG_MARTIANS = Rule("HD108", "log-martians-off", Severity.INFO,
                    "Packets with impossible source addresses are dropped silently")
ICMP_BROADCAST = Rule("HD109", "icmp-echo-broadcast", Severity.WARNING,
                      "The host answers pings sent to broadcast addresses")
ICMP_BOGUS = Rule("HD110", "icmp-bogus-errors-logged", Severity.INFO,
                  "Bogus ICMP error responses are logged")
ASLR = Rule("HD111", "aslr-weak", Severity.WARNING,
            "Address-space layout randomisation is off or partial")
KPTR = Rule("HD112", "kptr-restrict-off", Severity.WARNING,
            "Kernel pointers are shown to unprivileged users")
DMESG = Rule("HD113", "dmesg-restrict-off", Severity.INFO,
             "Every local user may read the kernel log")

_RULES = {r.code: r for r in (SYNCOOKIES, SYNACK_RETRIES, ICMP_BROADCAST, ICMP_BOGUS, ASLR, KPTR,
                              DMESG)}
LEAVES = ["forwarding", "accept_redirects", "secure_redirects", "shared_media", "send_redirects",
          "accept_source_route", "rp_filter", "log_martians", "proxy_arp"]


def _lines(family: str, leaf: str, value: int, ifaces: Iterable[str], *,
           all_too: bool = True, default_too: bool = True) -> str:
    keys = (["all"] if all_too else []) + (["default"] if default_too else []) + list(ifaces)
    return "\n".join(f"{conf_key(family, i, leaf)} = {value}" for i in keys)


def _ev(items: list[Effective]) -> dict[str, Any]:
    return {"interfaces": [e.evidence() for e in items]}


def _names(items: list[Effective]) -> str:
    shown = ", ".join(f"{e.iface} (all={e.all}, {e.iface}={e.own} -> {e.value})"
                      for e in items[:4])
    more = f" and {len(items) - 4} more" if len(items) > 4 else ""
    return f"{shown}{more} [{items[0].rule}]"


# -- pure evaluations on a ConfTable ------------------------------------------------------------


def evaluate_redirects(table: ConfTable, role_send: bool = False) -> list[Finding]:
    out: list[Finding] = []
    accepting = [e for e in table.each("accept_redirects") if e.value]
    if accepting:
        # secure_redirects is only consulted when shared_media is off (both combine with OR):
        # with shared_media on (the default) any unicast address on the link is accepted.
        secure = {e.iface: bool(table.effective(e.iface, "secure_redirects").value)
                  and not table.effective(e.iface, "shared_media").value for e in accepting}
        insecure = [e for e in accepting if not secure[e.iface]]
        sev = Severity.WARNING if insecure else Severity.INFO
        tail = ("and secure_redirects does not restrict them there (it is off, or shared_media "
                "is on, which makes the kernel ignore it), so any host on the link can redirect "
                "traffic through itself" if insecure else
                "secure_redirects (with shared_media off) limits them to the default gateways, "
                "which still lets a compromised gateway move traffic")
        forwarding = [e.iface for e in accepting if e.forwarding]
        plain = [e.iface for e in accepting if not e.forwarding]
        fix_lines = []
        if plain:  # OR: every one of all, default and the interface must be 0
            fix_lines.append(_lines("ipv4", "accept_redirects", 0, plain))
        if forwarding:  # AND: the interface's own 0 is enough
            fix_lines.append(_lines("ipv4", "accept_redirects", 0, forwarding, all_too=False))
        out.append(ACCEPT_REDIRECTS.finding(
            f"ICMP redirects are accepted on {_names(accepting)}: a redirect can silently "
            f"reroute this host's traffic; {tail}",
            key="net.ipv4.conf.*.accept_redirects", severity=sev,
            evidence={**_ev(accepting), "secure_redirects_in_force": secure},
            suggestion="\n".join(fix_lines),
        ))
    if not role_send:
        sending = [e for e in table.each("send_redirects") if e.value and e.forwarding]
        if sending:
            out.append(SEND_REDIRECTS.finding(
                f"forwarding interfaces send ICMP redirects: {_names(sending)}. They tell "
                "other hosts about your routing and are only useful when hosts and another "
                "router share one link",
                key="net.ipv4.conf.*.send_redirects",
                evidence=_ev(sending),
                suggestion=_lines("ipv4", "send_redirects", 0, [e.iface for e in sending]),
            ))
    return out


def evaluate_source_route(table: ConfTable) -> list[Finding]:
    bad = [e for e in table.each("accept_source_route") if e.value]
    if not bad:
        return []
    return [SOURCE_ROUTE.finding(
        f"source-routed packets are accepted on {_names(bad)}: the sender, not your routing "
        "table, picks the path, which bypasses filtering and anti-spoofing",
        key="net.ipv4.conf.*.accept_source_route", evidence=_ev(bad),
        suggestion=_lines("ipv4", "accept_source_route", 0, [], default_too=True),
    )]


def evaluate_rp_filter(table: ConfTable, want: str, role: str,
                       paths: ReturnPaths | None = None) -> list[Finding]:
    """``want``: strict, loose or any (the role's opinion); ``paths``: what the routes show.

    Strict (1) is proposed only where the routes show one way back to every source; a host
    with several (two uplinks, ECMP, a destination routed out of two devices) or whose routes
    were not read gets loose (2), which never drops a packet that has any route back. Strict
    in force where the routes show several ways back is reported.
    """
    paths = paths or ReturnPaths(False, False, (), {}, ())
    out: list[Finding] = []
    effective = table.each("rp_filter")
    off = [e for e in effective if not e.value]
    strict_ok = want == "strict" and paths.single
    ev_paths = {"return_paths": paths.describe(), "uplinks": list(paths.uplinks),
                "routes_read": paths.routes_known}
    if off:
        sev = Severity.INFO if want == "any" else Severity.WARNING
        good = 1 if strict_ok else 2
        if strict_ok:
            why = f"a {role} with {paths.describe()} wants strict (1)"
        elif want == "strict":
            why = (f"a {role} would want strict (1), but with {paths.describe()} strict could "
                   "drop requests whose replies leave by another interface: loose (2)")
        else:
            why = f"a {role} wants loose (2)"
        out.append(RP_FILTER.finding(
            f"reverse-path filtering is off on {_names(off)}: packets with spoofed source "
            f"addresses are accepted. rp_filter combines as max(all, interface); {why}",
            key="net.ipv4.conf.*.rp_filter", severity=sev, evidence={**_ev(off), **ev_paths},
            suggestion=_lines("ipv4", "rp_filter", good, [e.iface for e in off], all_too=True),
        ))
    strict = [e for e in effective if e.value == 1]
    several = len(effective) >= 2
    if strict and (paths.multiple or (not paths.known and several and want != "strict")):
        # max(all, iface): all must come down to 2 (or 0) and each interface to 2
        sure = paths.multiple
        out.append(RP_FILTER.finding(
            (f"strict reverse-path filtering on {_names(strict)} of a {role} with "
             f"{paths.describe()}: a request that arrives on one interface while the route "
             "back to its source leaves by another (asymmetric routing, several uplinks) is "
             "dropped. Use loose mode (2), which still drops sources with no route back")
            if sure else
            (f"strict reverse-path filtering on {_names(strict)} of a {role} with several "
             "interfaces, and the routes were not read: if more than one of them is an uplink, "
             "replies that come back on another interface than the route to their source "
             "are dropped; loose mode (2) is safe either way"),
            key="net.ipv4.conf.*.rp_filter", severity=None if sure else Severity.INFO,
            evidence={**_ev(strict), **ev_paths},
            suggestion=_lines("ipv4", "rp_filter", 2, [e.iface for e in strict]),
        ))
    return out


def evaluate_log_martians(table: ConfTable, want: bool) -> list[Finding]:
    if not want:
        return []
    silent = [e for e in table.each("log_martians") if not e.value]
    if not silent:
        return []
    return [LOG_MARTIANS.finding(
        f"martian packets (impossible source addresses) are dropped without a log line on "
        f"{_names(silent)}: spoofing and misrouting go unnoticed (log_martians combines as "
        "all OR interface, so all = 1 covers every interface)",
        key="net.ipv4.conf.*.log_martians", evidence=_ev(silent),
        suggestion=_lines("ipv4", "log_martians", 1, [], default_too=True),
    )]


# -- checks -------------------------------------------------------------------------------------


def check_expectations(s: Subject) -> Iterator[Finding]:
    yield from expectation_findings(s, _RULES)


def check_interfaces(s: Subject) -> list[Finding]:
    role = s.role
    table = conf_table(s.ns, "ipv4", LEAVES, s.catalogue, l3_only=True)
    if table.get("all", "rp_filter") is None:
        return []
    return [
        *evaluate_redirects(table, bool(role.iface("send_redirects", False))),
        *evaluate_source_route(table),
        *evaluate_rp_filter(table, str(role.iface("rp_filter", "any")), s.role_name,
                            s.ns.network.return_paths()),
        *evaluate_log_martians(table, bool(role.iface("log_martians", False))),
    ]


CHECKS = (check_expectations, check_interfaces)
