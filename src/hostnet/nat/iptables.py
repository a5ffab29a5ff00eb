"""Configuration -> ``iptables-restore --noflush`` text, for hosts without nftables (pure).

Same behaviour as the nftables table, in hostnet's own chains (``HOSTNET-*``) of the raw, nat
and filter tables; ``--noflush`` replaces only those chains (declaring a chain empties it).
iptables has no maps, so each forward and allowlist entry is a rule of its own and the cost
per new flow grows with their number; the header names the jumps from the built-in chains,
which must exist once (``iptables -C ... || iptables -I ...``). IPv6 entries follow as a
second document for ``ip6tables-restore``.
"""

from __future__ import annotations

import ipaddress

from hostnet.model import nat as m
from hostnet.nat.compile import collapse

JUMPS = (
    ("raw", "PREROUTING", "HOSTNET-RAW-PRE"), ("raw", "OUTPUT", "HOSTNET-RAW-OUT"),
    ("nat", "PREROUTING", "HOSTNET-DNAT"), ("nat", "OUTPUT", "HOSTNET-OUTPUT"),
    ("nat", "POSTROUTING", "HOSTNET-SNAT"), ("filter", "INPUT", "HOSTNET-INPUT"),
    ("filter", "FORWARD", "HOSTNET-FORWARD"),
)
CHAINS = {
    "raw": ("HOSTNET-RAW-PRE", "HOSTNET-RAW-OUT"),
    "nat": ("HOSTNET-DNAT", "HOSTNET-HAIRPIN", "HOSTNET-OUTPUT", "HOSTNET-SNAT"),
    "filter": ("HOSTNET-INPUT", "HOSTNET-INPUT-HP", "HOSTNET-FORWARD"),
}


def _c(text: str) -> str:
    return f'-m comment --comment "{text.replace(chr(34), chr(39))[:255]}"'


def _ports(proto: m.Proto, ports: m.PortRange, which: str = "dport") -> str:
    spec = str(ports.first) if ports.first == ports.last else f"{ports.first}:{ports.last}"
    return f"-p {proto.value} -m {proto.value} --{which} {spec}"


def _net(n: m.IPNetwork | m.IPAddress) -> str:
    return str(n) if isinstance(n, ipaddress.IPv4Network | ipaddress.IPv6Network) \
        else f"{n}/{n.max_prefixlen}"


def _to(f: m.Forward) -> str:
    addr = str(f.to_addr) if f.to_addr.version == 4 else f"[{f.to_addr}]"
    return addr if f.to_port is None else f"{addr}:{f.to_port}"


def _src(n: m.IPNetwork) -> str:
    return "" if n.prefixlen == 0 else f"-s {_net(n)} "


def _document(cfg: m.NatConfig, fam: m.Family) -> list[str]:
    fwds = [f for f in cfg.forward if f.family is fam]
    o2o = [o for o in cfg.one_to_one if o.family is fam]
    lans = collapse(cfg.lan_networks(fam))
    outside = cfg.outside_ifaces()
    loop = "127.0.0.0/8" if fam is m.Family.V4 else "::1/128"
    rules: dict[str, list[str]] = {c: [] for cs in CHAINS.values() for c in cs}
    for n in cfg.notrack:
        lab = _c(n.origin.label)
        rules["HOSTNET-RAW-PRE"].append(f"-A HOSTNET-RAW-PRE {_ports(n.proto, n.ports)} "
                                        f"-m addrtype --dst-type LOCAL {lab} -j CT --notrack")
        rules["HOSTNET-RAW-OUT"].append(f"-A HOSTNET-RAW-OUT {_ports(n.proto, n.ports, 'sport')}"
                                        f" {lab} -j CT --notrack")
    for o in o2o:
        lab = _c(o.origin.label)
        for chain in ("HOSTNET-DNAT", "HOSTNET-OUTPUT"):
            rules[chain].append(f"-A {chain} -d {_net(o.public)} {lab} -j DNAT "
                                f"--to-destination {o.private}")
        oif = cfg.one_to_one_out(o)
        rules["HOSTNET-SNAT"].append(f"-A HOSTNET-SNAT -o {oif} -s {_net(o.private)} {lab} "
                                     f"-j SNAT --to-source {o.public}")
    seen: set[tuple[m.Proto, m.PortRange]] = set()
    for f in fwds:
        lab = _c(f.origin.label)
        p = _ports(f.proto, f.ports)
        for s in f.sources:
            rules["HOSTNET-DNAT"].append(
                f"-A HOSTNET-DNAT -i {f.in_iface} {_src(s)}{p} -m addrtype --dst-type LOCAL "
                f"{lab} -j DNAT --to-destination {_to(f)}")
            if f.hairpin:
                rules["HOSTNET-HAIRPIN"].append(f"-A HOSTNET-HAIRPIN {_src(s)}{p} {lab} -j DNAT "
                                                f"--to-destination {_to(f)}")
        if f.hairpin and (f.proto, f.ports) not in seen:
            seen.add((f.proto, f.ports))
            rules["HOSTNET-OUTPUT"].append(
                f"-A HOSTNET-OUTPUT ! -d {loop} {p} -m addrtype --dst-type LOCAL {lab} -j DNAT "
                f"--to-destination {_to(f)}")
        rules["HOSTNET-INPUT"].append(f"-A HOSTNET-INPUT -i {f.in_iface} {p} -m conntrack ! "
                                      f"--ctstate DNAT {lab} -j DROP")
        if f.hairpin:
            rules["HOSTNET-INPUT-HP"].append(f"-A HOSTNET-INPUT-HP {p} -m conntrack ! --ctstate "
                                             f"DNAT {lab} -j DROP")
        tport = f.ports if f.to_port is None else m.PortRange(f.to_port, f.to_port)
        orig = str(f.ports.first) if f.ports.size == 1 else f"{f.ports.first}:{f.ports.last}"
        match = (f"-d {_net(f.to_addr)} {_ports(f.proto, tport)} -m conntrack --ctstate NEW "
                 f"-m conntrack --ctstate DNAT --ctorigdstport {orig}")
        for s in f.sources:
            rules["HOSTNET-FORWARD"].append(f"-A HOSTNET-FORWARD {_src(s)}{match} {lab} "
                                            "-j RETURN")
        rules["HOSTNET-FORWARD"].append(f"-A HOSTNET-FORWARD {match} {lab} -j DROP")
    if rules["HOSTNET-HAIRPIN"]:
        head = [f"-A HOSTNET-HAIRPIN -i {i} -j RETURN" for i in outside]
        head.append("-A HOSTNET-HAIRPIN -m addrtype --dst-type LOCAL --limit-iface-in -j RETURN")
        rules["HOSTNET-HAIRPIN"][:0] = head
        rules["HOSTNET-DNAT"].append("-A HOSTNET-DNAT -m addrtype --dst-type LOCAL "
                                     "-j HOSTNET-HAIRPIN")
        hp = [f"-A HOSTNET-INPUT-HP -i {i} -j RETURN" for i in outside]
        hp.append("-A HOSTNET-INPUT-HP -m addrtype --dst-type LOCAL --limit-iface-in -j RETURN")
        rules["HOSTNET-INPUT-HP"][:0] = hp
        rules["HOSTNET-INPUT"].append("-A HOSTNET-INPUT -j HOSTNET-INPUT-HP")
    for iface in outside:
        for lan in lans:
            rules["HOSTNET-FORWARD"].append(
                f"-A HOSTNET-FORWARD -i {iface} -d {lan} -m conntrack --ctstate NEW -m "
                f"conntrack ! --ctstate DNAT {_c('new flow from outside to the LAN')} -j DROP")
    if any(f.hairpin for f in fwds) or o2o:
        for a in lans:
            for b in lans:
                rules["HOSTNET-SNAT"].append(f"-A HOSTNET-SNAT -s {a} -d {b} -m conntrack "
                                             f"--ctstate DNAT {_c('hairpin')} -j MASQUERADE")
    for x in cfg.masquerade:
        for s in x.sources:
            if s.version != fam.value:
                continue
            verdict = f"SNAT --to-source {x.snat_to}" if x.snat_to else "MASQUERADE"
            rules["HOSTNET-SNAT"].append(f"-A HOSTNET-SNAT -o {x.out} -s {s} "
                                         f"{_c(x.origin.label)} -j {verdict}")
    out: list[str] = []
    for table, chains in CHAINS.items():
        out.append(f"*{table}")
        out += [f":{c} - [0:0]" for c in chains]
        for c in chains:
            out += rules[c]
        out.append("COMMIT")
    return out


def render(cfg: m.NatConfig) -> str:
    """The iptables-restore text (and ip6tables-restore text when there are IPv6 entries)."""
    tool = "iptables"
    lines = [f"# hostnet NAT rules compiled from {cfg.origin.file} for "
             f"'{tool}-restore --noflush' (only HOSTNET-* chains are replaced).",
             "# Jumps that must exist once in the built-in chains:"]
    lines += [f"#   {tool} -t {t} -C {b} -j {c} || {tool} -t {t} -I {b} 1 -j {c}"
              for t, b, c in JUMPS]
    lines += _document(cfg, m.Family.V4)
    has6 = any(f.family is m.Family.V6 for f in cfg.forward) or any(
        o.family is m.Family.V6 for o in cfg.one_to_one) or any(
        s.version == 6 for x in cfg.masquerade for s in x.sources)
    if has6:
        lines.append("# ---- ip6tables-restore --noflush ----")
        lines += _document(cfg, m.Family.V6)
    return "\n".join(lines) + "\n"


def split_documents(text: str) -> tuple[str, str | None]:
    """(IPv4 text, IPv6 text or None) from :func:`render` output."""
    v4, sep, v6 = text.partition("# ---- ip6tables-restore --noflush ----\n")
    return v4, (v6 if sep else None)
