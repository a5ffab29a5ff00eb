"""Observe one network namespace into a NetnsState (the caller has entered it).

Every file and command comes from :mod:`hostnet.observe.registry`; only what the caller asks
for explicitly (counter sampling over an interval, the table composition) costs more than a
few milliseconds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from hostnet.conntrack.stats import (
    StatsFormatError,
    parse_conntrack_s,
    parse_stats,
    slab_entry_bytes,
)
from hostnet.errors import HostnetError
from hostnet.host.root import Root
from hostnet.model.conntrack import (
    USAGE_WARNING,
    Composition,
    ConntrackStats,
    Reading,
    counter_rates,
    merge_peak,
)
from hostnet.model.firewall import Ruleset
from hostnet.model.host import ConntrackView, NetnsState
from hostnet.model.net import Family, Interface, Listener, Network, Route
from hostnet.model.reads import Command
from hostnet.model.sysctl import SysctlRead, SysctlState
from hostnet.observe import registry as reg
from hostnet.observe.parse_net import (
    parse_ip_addr_json,
    parse_ip_route_json,
    parse_ipv6_route,
    parse_proc_net_sockets,
    parse_proc_route,
    parse_snmp_forwarded,
)
from hostnet.observe.parse_rules import (
    made_by_nft,
    merge,
    parse_iptables_save,
    parse_nft_json,
)
from hostnet.observe.vm import observe_vm

NOT_DEVICES = frozenset({"all", "default"})


@dataclass(frozen=True, slots=True)
class Want:
    """What the caller asks observe to do beyond the cheap reads."""

    #: Walk the conntrack table when it is at least ``composition_at`` full.
    composition: bool = True
    #: Usage (0..1) from which the table is walked (role labs walk small tables: 0).
    composition_at: float = USAGE_WARNING
    #: Scan the kernel log (host-wide, once).
    log: bool = True
    #: Sample the counters for this many seconds to measure rates.
    interval: float | None = None
    #: Where earlier counter readings are kept (read here; the caller writes them).
    history_dir: Path | None = None
    #: hostnet.toml whose [[vm]] entries the VM checks judge (None: /etc/hostnet/hostnet.toml
    #: under the root when it exists; see hostnet.observe.vm).
    vm_config: Path | None = None


@dataclass
class _Notes:
    items: list[str] = field(default_factory=list)

    def add(self, text: str) -> None:
        if text not in self.items:
            self.items.append(text)


def command(root: Root, cmd: Command, timeout: float = 10.0) -> str | None:
    """A registry command's output (live: run it; snapshot: what collect stored)."""
    out = root.command_output(cmd.name, list(cmd.argv), timeout=timeout)
    if out is None and not root.is_live:
        for old in cmd.legacy:
            out = root.read_text(f".hostnet/commands/{old}")
            if out is not None:
                break
    return out


def _sysctls(root: Root, notes: _Notes) -> tuple[dict[str, SysctlRead], dict[str, tuple[str, ...]]]:
    out: dict[str, SysctlRead] = {}
    for key in reg.scalar_keys():
        out[key] = root.sysctl(key)
    conf: dict[str, tuple[str, ...]] = {}
    for family, leaves in reg.CONF_LEAVES.items():
        names = [i for i in root.listdir(f"proc/sys/net/{family}/conf") if i not in NOT_DEVICES]
        conf[family] = tuple(names)
        for iface in ["all", "default", *names]:
            for leaf in leaves:
                key = f"net.{family}.conf.{iface.replace('.', '/')}.{leaf}"
                out[key] = root.sysctl(key)
    for read in out.values():
        if read.state is SysctlState.DENIED:
            notes.add(f"sysctl {read.key} (permission denied)")
    return out, conf


def _ruleset(root: Root, notes: _Notes) -> Ruleset:
    rules = Ruleset()
    nft = command(root, reg.NFT_RULESET)
    if nft is not None:
        try:
            rules = parse_nft_json(nft)
        except (ValueError, AttributeError, TypeError) as exc:
            notes.add(f"nft -j list ruleset: not the JSON expected ({exc})")
    legacy_read = False
    if not rules.nat:
        ipt = command(root, reg.IPTABLES)
        if ipt is not None:
            got = parse_iptables_save(ipt)
            if made_by_nft(ipt) and rules.sources:
                got = replace(got, chains=())  # the same nftables chains nft listed
            legacy_read = not made_by_nft(ipt)
            rules = merge(rules, got)
    if not legacy_read:  # iptables-save is iptables-nft here (or was not read): ask legacy
        for cmd, family in ((reg.IPTABLES_LEGACY, "ipv4"), (reg.IP6TABLES_LEGACY, "ipv6")):
            text = command(root, cmd)
            if text and text.strip():
                rules = merge(rules, parse_iptables_save(text, family, cmd.argv[0]))
    if not rules.sources:
        notes.add("NAT rules: neither 'nft -j list ruleset' nor 'iptables-save' could be read "
                  "(they need root / CAP_NET_ADMIN, or are not installed)")
    return rules


def _network(root: Root) -> Network:
    interfaces: list[Interface] = []
    source = ""
    text = command(root, reg.IP_ADDR)
    if text:
        try:
            interfaces = parse_ip_addr_json(text)
            source = " ".join(reg.IP_ADDR.argv)
        except (ValueError, AttributeError, TypeError):
            interfaces = []
    if not interfaces:
        names = [i for i in root.listdir("proc/sys/net/ipv4/conf") if i not in NOT_DEVICES]
        interfaces = [Interface(n, root.interface_kind(n)) for n in names]
        source = "sysfs"
    routes: list[Route] = []
    known = False
    text = command(root, reg.IP_ROUTE)
    if text:
        try:
            routes = parse_ip_route_json(text, Family.IPV4)
            known = True
        except (ValueError, AttributeError, TypeError):
            routes = []
    if not known:
        try:
            proc = root.read_text("proc/net/route")
        except PermissionError:
            proc = None
        if proc is not None:
            routes = parse_proc_route(proc)
            known = True
    try:
        v6 = root.read_text("proc/net/ipv6_route")
    except PermissionError:
        v6 = None
    if v6 is not None:
        routes.extend(parse_ipv6_route(v6))
    try:
        snmp = root.read_text("proc/net/snmp")
    except PermissionError:
        snmp = None
    return Network(interfaces=tuple(interfaces), routes=tuple(routes), source=source,
                   routes_known=known, ipv6_routes_known=v6 is not None,
                   forwarded=parse_snmp_forwarded(snmp) if snmp is not None else None)


def _listeners(root: Root, notes: _Notes) -> tuple[Listener, ...]:
    out: list[Listener] = []
    for name in ("tcp", "tcp6", "udp", "udp6"):
        try:
            text = root.read_text(f"proc/net/{name}")
        except PermissionError:
            notes.add(f"/proc/net/{name} (permission denied)")
            continue
        if text is not None:
            out.extend(parse_proc_net_sockets(text, name.rstrip("6")))
    return tuple(out)


def read_stats(root: Root, notes: _Notes | None = None) -> tuple[ConntrackStats | None, str]:
    """The conntrack stat counters: /proc/net/stat/nf_conntrack, else ``conntrack -S``."""
    text = root.read_text("proc/net/stat/nf_conntrack")
    if text is not None:
        try:
            return parse_stats(text), "/proc/net/stat/nf_conntrack"
        except StatsFormatError as exc:
            if notes is not None:
                notes.add(f"/proc/net/stat/nf_conntrack: {exc}")
    out = command(root, reg.CONNTRACK_S)
    if out is not None:
        try:
            return parse_conntrack_s(out), "conntrack -S"
        except StatsFormatError as exc:
            if notes is not None:
                notes.add(f"conntrack -S: {exc}")
    return None, ""


def _conntrack(root: Root, sysctl: dict[str, SysctlRead], name: str | None, want: Want,
               notes: _Notes, inode: int | None) -> ConntrackView | None:
    def first(*keys: str) -> int | None:
        from hostnet.model.sysctl import first_int

        for key in keys:
            v = first_int(sysctl[key].value) if sysctl[key].ok else None
            if v is not None:
                return v
        return None

    count = first("net.netfilter.nf_conntrack_count", "net.ipv4.netfilter.ip_conntrack_count")
    limit = first("net.netfilter.nf_conntrack_max", "net.nf_conntrack_max",
                  "net.ipv4.netfilter.ip_conntrack_max")
    buckets = first("net.netfilter.nf_conntrack_buckets",
                    "net.ipv4.netfilter.ip_conntrack_buckets")
    if buckets is None:
        param = root.module_params("nf_conntrack").get("hashsize")
        buckets = int(param) if param and param.isdigit() else None
    stats, source = read_stats(root, notes)
    if count is None and limit is None and stats is None:
        return None
    if count is None and stats is not None and stats.entries:
        count = stats.entries
    writable = root.sysctl_writable("net.netfilter.nf_conntrack_max")
    try:
        slab = root.read_text("proc/slabinfo")
    except PermissionError:
        slab = None  # root only: the sizing then assumes a typical entry size
    entry_bytes = slab_entry_bytes(slab) if slab else None
    rates: dict[str, float] | None = None
    rate_seconds: float | None = None
    rate_source: str | None = None
    if stats is not None and want.interval:
        time.sleep(want.interval)
        again, _ = read_stats(root)
        if again is not None:
            rates = counter_rates(stats.counters, again.counters, want.interval)
            rate_seconds, rate_source = want.interval, "interval"
            stats = again
            now_count = root.sysctl_int("net.netfilter.nf_conntrack_count")
            if now_count is not None:
                count = now_count
    previous: Reading | None = None
    now: Reading | None = None
    peak = count or 0
    age: float | None = None
    if want.history_dir is not None and stats is not None:
        from hostnet.host import history

        previous = history.load(want.history_dir, name, inode)
        now = Reading(time=time.time(), count=count or 0, counters=dict(stats.counters),
                      limit=limit, buckets=buckets, netns=name, inode=inode)
        if previous is not None:
            age = round(now.time - previous.time, 1)
            if rates is None and now.time > previous.time:
                rates = counter_rates(previous.counters, now.counters, now.time - previous.time)
                rate_seconds, rate_source = now.time - previous.time, "previous run"
        now = merge_peak(previous, now)
        peak = now.peak
    return ConntrackView(
        count=count, max=limit, buckets=buckets, stats=stats, stats_source=source,
        rates=rates, rate_seconds=rate_seconds, rate_source=rate_source, previous=previous,
        now=now, peak=peak, child_namespace=name is not None or writable is False,
        entry_bytes=entry_bytes, previous_age_s=age)


def own_addresses(network: Network) -> frozenset[str] | None:
    """The namespace's own addresses (None when the interface list had none: unknown)."""
    found = frozenset(str(a.address) for i in network.interfaces for a in i.addresses)
    return found or None


def _composition(root: Root, notes: _Notes, network: Network) -> Composition | None:
    from hostnet.conntrack.top import composition
    from hostnet.host.conntrack_source import open_table

    try:
        with open_table(root) as table:
            return composition(table.chunks, limit=5, own=own_addresses(network))
    except HostnetError as exc:
        notes.add(f"conntrack table: {exc.message}")
        return None


def observe_namespace(root: Root, name: str | None, want: Want, *,
                      inode: int | None = None, created: float | None = None,
                      snapshot_of: str | None = None) -> NetnsState:
    notes = _Notes()
    # the commands every run needs, side by side (about 3 ms each when run in turn)
    root.prefetch([(c.name, list(c.argv)) for c in (
        reg.NFT_RULESET, reg.IPTABLES, reg.IPTABLES_LEGACY, reg.IP6TABLES_LEGACY, reg.IP_ADDR,
        reg.IP_ROUTE)])
    sysctl, conf = _sysctls(root, notes)
    ruleset = _ruleset(root, notes)
    ct = _conntrack(root, sysctl, name, want, notes, inode)
    network = _network(root)
    comp = None
    if want.composition and ct is not None and ct.usage is not None and \
            ct.usage >= want.composition_at:
        comp = _composition(root, notes, network)
    if not sysctl["net.ipv4.conf.all.rp_filter"].ok:
        notes.add("net.ipv4.conf.*: per-interface IPv4 settings not readable")
    listeners = _listeners(root, notes)
    vm = observe_vm(root, want.vm_config, notes.items)
    forward = sysctl["net.ipv4.ip_forward"]
    readable = bool(root.osrelease) or forward.ok
    return NetnsState(
        name=name, sysctl=sysctl, conf_interfaces=conf, network=network, listeners=listeners,
        ruleset=ruleset, conntrack=ct, composition=comp,
        ipv6=root.exists("proc/sys/net/ipv6"), inode=inode, created=created,
        snapshot_of=snapshot_of, unreadable=tuple(notes.items), readable=readable, vm=vm)
