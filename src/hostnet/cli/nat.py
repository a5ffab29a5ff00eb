"""``hostnet nat``: compile the [nat] table to nftables or iptables-restore text, and explain
what the router does to one packet."""

from __future__ import annotations

import ipaddress
import json
import re
from typing import TYPE_CHECKING

import click

from hostnet.errors import InputError, UsageError

if TYPE_CHECKING:
    from hostnet.config.nat import LoadedNat
    from hostnet.nat.router import Router

DEFAULT_CONFIG = "/etc/hostnet/hostnet.toml"


@click.group()
def nat() -> None:
    """NAT and port forwarding: compile the [nat] table of hostnet.toml, explain a packet.

    \b
    [nat]
    backend = "nftables"            # or "iptables"
    [[nat.masquerade]]              # LAN -> internet
    source = ["198.51.100.0/24"]
    out = "wan0"                    # snat_to = "ADDR" for a static address
    [[nat.forward]]                 # port forward with a source allowlist
    in = "wan0"
    proto = "tcp"                   # or "udp"
    port = 3389                     # or "8000-8100"
    to = "198.51.100.20"            # or "198.51.100.20:13389", "[2001:db8::20]:22"
    allow = ["203.0.113.50", "192.0.2.0/28"]   # absent = anyone
    hairpin = true                  # LAN hosts may use the public address too
    [[nat.one_to_one]]              # a public address for a host behind the router
    public = "203.0.113.11"
    private = "198.51.100.11"
    arp = "proxy"                   # or "none"; out = "IFACE" when not the masquerade out
    [[nat.notrack]]                 # a stateless service of this host: no conntrack
    proto = "udp"
    port = 53
    """


def _load(config: str) -> LoadedNat:
    from hostnet.config.nat import load_nat

    loaded = load_nat(config)
    for w in loaded.warnings:
        click.echo(f"hostnet: warning: {w.render(config)}", err=True)
    return loaded


def _connected(loaded: LoadedNat, router: Router, config: str) -> None:
    from hostnet.config.nat_validate import check_connected

    problems = check_connected(loaded.config, router.ifaces)
    for p in problems:
        if p.severity != "error":
            click.echo(f"hostnet: warning: {p.render(config)}", err=True)
    errors = [p.render(config) for p in problems if p.severity == "error"]
    if errors:
        raise InputError("\n".join(errors), hint="fix 'to'/'private' or the interfaces")


@nat.command("compile")
@click.option("--config", "config", default=DEFAULT_CONFIG, show_default=True,
              metavar="FILE", help="hostnet.toml (or any TOML file with a [nat] table).")
@click.option("--backend", type=click.Choice(["nftables", "iptables"]), default=None,
              help="Output format; default: nat.backend of the file.")
@click.option("--netns", default=None, metavar="NAME",
              help="Also check the forwards against the interfaces of this namespace.")
def compile_cmd(config: str, backend: str | None, netns: str | None) -> int:
    """Print the ruleset: one 'nft -f' file that replaces table inet hostnet atomically
    (checked with 'nft -c -f FILE' first), or iptables-restore --noflush text.

    Forwards and allowlists become sets and maps, so the rules stay a fixed handful however
    many forwards there are; set elements name the config line they came from.
    """
    from hostnet.nat.compile import compile_table

    loaded = _load(config)
    if netns is not None:
        from hostnet.state.nat_table import read_router

        _connected(loaded, read_router(netns), config)
    chosen = backend or loaded.config.backend.value
    if chosen == "iptables":
        from hostnet.nat.iptables import render as render_ipt

        click.echo(render_ipt(loaded.config), nl=False)
    else:
        from hostnet.nat.nftables import render

        click.echo(render(compile_table(loaded.config)), nl=False)
    return 0


def _endpoint(text: str, opt: str, need_port: bool) -> tuple[ipaddress.IPv4Address |
                                                            ipaddress.IPv6Address, int | None]:
    m = re.fullmatch(r"\[([^\]]+)\](?::(\d+))?|([^:\[\]]+)(?::(\d+))?|([0-9a-fA-F:]+)", text)
    if m is None:
        raise UsageError(f"{opt} {text!r}: expected ADDR[:PORT] (IPv6: [ADDR]:PORT)")
    addr_text = m.group(1) or m.group(3) or m.group(5)
    port_text = m.group(2) or m.group(4)
    try:
        addr = ipaddress.ip_address(addr_text)
    except ValueError:
        raise UsageError(f"{opt} {text!r}: {addr_text!r} is not an IP address") from None
    port = int(port_text) if port_text else None
    if port is not None and not 1 <= port <= 65535:
        raise UsageError(f"{opt} {text!r}: port out of range 1-65535")
    if need_port and port is None:
        raise UsageError(f"{opt} {text!r}: a port is needed for tcp and udp (ADDR:PORT)")
    return addr, port


@nat.command("explain")
@click.option("--from", "src", required=True, metavar="ADDR[:PORT]", help="Packet source.")
@click.option("--to", "dst", required=True, metavar="ADDR:PORT", help="Packet destination.")
@click.option("--proto", type=click.Choice(["tcp", "udp", "icmp"]), default="tcp",
              show_default=True)
@click.option("--in", "iif", default=None, metavar="IFACE",
              help="Ingress interface (default: where the route back to --from leaves; "
                   "'local' for the router's own packets).")
@click.option("--state", type=click.Choice(["new", "established"]), default="new",
              show_default=True, help="Conntrack state to assume.")
@click.option("--config", "config", default=DEFAULT_CONFIG, show_default=True, metavar="FILE")
@click.option("--live", is_flag=True,
              help="Read interfaces, routes, rp_filter and every other table from the live "
                   "host (or --netns) instead of assuming them.")
@click.option("--netns", default=None, metavar="NAME", help="Read the live state here (implies "
              "--live).")
@click.option("--addr", "addrs", multiple=True, metavar="IFACE=ADDR/PREFIX",
              help="Without --live: an address of the router (repeatable). Default: the "
                   "outside interface holds the --to address, 'lan' the first address of "
                   "each LAN network.")
@click.option("--default-out", default=None, metavar="IFACE",
              help="Without --live: the interface of the default route (default: the "
                   "masquerade out).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
def explain_cmd(src: str, dst: str, proto: str, iif: str | None, state: str, config: str,
                live: bool, netns: str | None, addrs: tuple[str, ...], default_out: str | None,
                fmt: str) -> int:
    """Walk one packet through the router in hook order: ingress, ARP, conntrack, every base
    chain of every table by priority, DNAT, route, rp_filter, forward/input filter, SNAT,
    and the verdict (exit 0 delivered, 1 dropped or rejected).

    Works from the config alone, without root: the router's addresses come from --addr.
    """
    from hostnet.nat.compile import compile_table
    from hostnet.nat.explain import Packet, explain
    from hostnet.nat.router import assume, parse_spec

    loaded = _load(config)
    cfg = loaded.config
    table = compile_table(cfg)
    saddr, sport = _endpoint(src, "--from", False)
    daddr, dport = _endpoint(dst, "--to", proto != "icmp")
    if saddr.version != daddr.version:
        raise UsageError("--from and --to must be of one address family")
    others = []
    notes: list[str] = []
    if live or netns is not None:
        from hostnet.nat.ruleset import differences, parse_ruleset
        from hostnet.state.nat_table import read_router, read_ruleset_json

        router = read_router(netns)
        _connected(loaded, router, config)
        rs = parse_ruleset(read_ruleset_json(netns))
        others = list(rs.base_chains)
        diff = differences(rs, table)
        if diff:
            notes.append("the loaded table differs from the config (" + "; ".join(diff[:5])
                         + "): explain follows the config")
    elif addrs:
        outs = cfg.outside_ifaces()
        router = parse_spec(list(addrs), default_out or (outs[0] if outs else None))
    else:
        router, said = assume(cfg, daddr)
        notes.append(said)
    if iif == "local":
        iif_name: str | None = None
    else:
        iif_name = iif or router.iface_for_source(saddr)
        if iif_name is None:
            raise UsageError(f"no interface leads back to {saddr}: name it with --in")
    res = explain(table, cfg, router,
                  Packet(saddr, daddr, proto, sport, dport, iif_name, state), others)
    if fmt == "json":
        doc = res.to_json()
        if notes:
            doc["notes"] = notes
        click.echo(json.dumps(doc, indent=2))
    else:
        for note in notes:
            click.echo(f"note: {note}")
        for i, step in enumerate(res.steps, 1):
            prio = f" prio {step.priority}" if step.priority is not None else ""
            where = f" [{step.table} {step.chain}{prio}]" if step.chain else ""
            click.echo(f"{i:2}. {step.phase:<11} {step.text}{where}")
            if step.rule:
                click.echo(f"{'':15}rule: {step.rule}")
            if step.origin:
                click.echo(f"{'':15}from: {step.origin}")
        for caveat in res.caveats:
            click.echo(f"caveat: {caveat}")
        click.echo(f"verdict: {res.verdict}" + (f" -> {res.delivered_to} (source seen: "
                                                f"{res.source_seen})" if res.delivered_to
                                                else f" ({res.reason})"))
    return 0 if res.verdict == "delivered" else 1
