"""Load, replace and restore ``table inet hostnet`` in a network namespace; clear conntrack
entries of changed forwards; read what explain and validation need from the namespace.

Plain functions with typed results, for the apply transaction to call. Every load is checked
with ``nft -c -f`` first and runs as one ``nft -f`` transaction; the table's previous text
(``nft list table inet hostnet``) is captured so :func:`restore` can put it back exactly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from hostnet.errors import CommandError
from hostnet.host.commands import run
from hostnet.host.netns import entered
from hostnet.nat import ir
from hostnet.nat.live import Translation
from hostnet.nat.nftables import restore_text
from hostnet.nat.router import Router, parse_addresses, parse_default_routes

LIST_ARGV = ["nft", "list", "table", ir.TABLE_FAMILY, ir.TABLE_NAME]


@dataclass(frozen=True)
class LoadResult:
    previous: str | None  # the table before, exactly as nft listed it (None: there was none)
    current: str  # the table after
    changed: bool


@dataclass(frozen=True)
class ConntrackCleared:
    deleted: int
    per_translation: tuple[tuple[str, int], ...]  # (what it translated, entries deleted)


def read_table(netns: str | None = None) -> str | None:
    """The current table as ``nft list table inet hostnet`` prints it, or None if absent."""
    with entered(netns):
        proc = run(LIST_ARGV, check=False)
    if proc.returncode != 0:
        if "No such file or directory" in proc.stderr or "does not exist" in proc.stderr:
            return None
        raise CommandError(f"{' '.join(LIST_ARGV)} failed: {proc.stderr.strip()}")
    return proc.stdout


def check(text: str, netns: str | None = None) -> None:
    """``nft -c -f -``: raise CommandError (with nft's message) when the kernel would refuse."""
    with entered(netns):
        proc = run(["nft", "-c", "-f", "-"], input=text, check=False, timeout=120)
    if proc.returncode != 0:
        raise CommandError(f"nft -c refused the NAT table: {proc.stderr.strip()}",
                           hint="nothing was changed; this is a bug if the config loaded")


def _load(text: str, netns: str | None) -> None:
    check(text, netns)
    with entered(netns):
        proc = run(["nft", "-f", "-"], input=text, check=False, timeout=120)
    if proc.returncode != 0:
        raise CommandError(f"nft -f failed (the transaction was not applied): "
                           f"{proc.stderr.strip()}")


def replace(text: str, netns: str | None = None, *, read_back: bool = True,
            previous: str | bool | None = True) -> LoadResult:
    """Replace the table with ``text`` (a compiled file, see nftables.render) atomically.

    ``previous=True`` captures the table before (for rollback); pass the captured text (or
    None) when the caller already has it. ``read_back=False`` skips listing the new table
    (``current`` is then empty and ``changed`` compares nothing but says True)."""
    before = read_table(netns) if previous is True else previous
    assert before is None or isinstance(before, str)
    _load(text, netns)
    if not read_back:
        return LoadResult(before, "", True)
    current = read_table(netns) or ""
    return LoadResult(before, current, before != current)


def restore(previous: str | None, netns: str | None = None) -> LoadResult:
    """Put back ``previous`` (a captured listing) exactly; None removes the table."""
    before = read_table(netns)
    _load(restore_text(previous), netns)
    current = read_table(netns)
    return LoadResult(before, current or "", before != current)


_DELETED = re.compile(r"(\d+) flow entries have been deleted")


def clear_translations(gone: list[Translation], netns: str | None = None) -> ConntrackCleared:
    """Delete the conntrack entries these (changed or removed) translations made: original
    destination port the public port, reply source its target address and port. Entries of
    other forwards are left alone.

    One ``conntrack -L`` per address family finds them, then one ``conntrack -D`` of the
    exact original tuple per entry found: the cost follows the flows to delete, not the
    number of forwards (a rollback of 10,000 forwards with no flows is one listing)."""
    import ipaddress

    from hostnet.conntrack.table import parse_lines

    wanted: dict[tuple[str, int, object, int], Translation] = {
        (t.proto, t.port, t.target(), t.to_port): t for t in gone}
    counts = dict.fromkeys(gone, 0)
    for family in sorted({t.family for t in gone}):
        l3 = "ipv4" if family == 4 else "ipv6"
        with entered(netns):
            listing = run(["conntrack", "-L", "-f", l3], check=False, timeout=120)
        if listing.returncode != 0:
            raise CommandError(f"conntrack -L -f {l3} failed: {listing.stderr.strip()}")
        for e in parse_lines(listing.stdout.splitlines()):
            if e.dport is None or e.reply_sport is None or e.sport is None:
                continue
            t = wanted.get((e.proto, e.dport, ipaddress.ip_address(e.reply_src),
                            e.reply_sport))
            if t is None:
                continue
            argv = ["conntrack", "-D", "-f", l3, "-p", e.proto, "-s", e.src, "-d", e.dst,
                    "--sport", str(e.sport), "--dport", str(e.dport)]
            with entered(netns):
                proc = run(argv, check=False)
            found = _DELETED.search(proc.stderr + proc.stdout)
            if proc.returncode not in (0, 1) or found is None:
                raise CommandError(f"{' '.join(argv)} failed: {proc.stderr.strip()}")
            counts[t] += int(found.group(1))
    per = tuple((t.describe(), counts[t]) for t in gone)
    return ConntrackCleared(sum(counts.values()), per)


def read_table_json(netns: str | None = None) -> str:
    """``nft -j list table inet hostnet`` ('' when there is no such table)."""
    argv = ["nft", "-j", *LIST_ARGV[1:]]
    with entered(netns):
        proc = run(argv, check=False, timeout=60)
    if proc.returncode != 0:
        if "No such file or directory" in proc.stderr or "does not exist" in proc.stderr:
            return ""
        raise CommandError(f"{' '.join(argv)} failed: {proc.stderr.strip()}")
    return proc.stdout


def read_ruleset_json(netns: str | None = None) -> str:
    """``nft -j list ruleset`` (every table, for the coexistence report)."""
    with entered(netns):
        return run(["nft", "-j", "list", "ruleset"], timeout=60).stdout


def read_router(netns: str | None = None) -> Router:
    """Interface addresses, default routes and rp_filter values of the namespace."""
    with entered(netns):
        addrs = parse_addresses(run(["ip", "-j", "addr", "show"]).stdout)
        routes = parse_default_routes(run(["ip", "-j", "route", "show", "default"]).stdout,
                                      run(["ip", "-j", "-6", "route", "show", "default"]).stdout)
        rp: dict[str, int] = {}
        for name in ["all", *addrs]:
            try:
                with open(f"/proc/sys/net/ipv4/conf/{name}/rp_filter") as fh:
                    rp[name] = int(fh.read().strip() or 0)
            except (OSError, ValueError):
                continue
        localnet: dict[str, bool] = {}
        for name in addrs:
            try:
                with open(f"/proc/sys/net/ipv4/conf/{name}/route_localnet") as fh:
                    localnet[name] = fh.read().strip() == "1"
            except OSError:
                continue
    return Router(addrs, routes, rp, localnet)
