"""``hostnet conntrack top``: who fills the conntrack table."""

from __future__ import annotations

import json

import click

from hostnet.cli.common import format_option, netns_option, root_option
from hostnet.errors import UsageError


@click.command("top")
@click.option(
    "--by", "by", default="src", show_default=True, metavar="FIELD[,FIELD...]",
    help="Group by src, dst, sport, dport, proto, state, zone, mark, l3; addresses take a "
    "prefix: src/24 (IPv4 /24), src/64 (IPv6 /64), src/24/64 (both); a comma makes a "
    "composite key (dst,dport).",
)
@click.option("-n", "--limit", type=click.IntRange(min=0), default=10, show_default=True,
              help="Show the N biggest groups and sum the rest as 'others' (0: all).")
@click.option("--proto", default=None, help="Only this protocol (tcp, udp, icmp ...).")
@click.option("--state", default=None, help="Only this state (ESTABLISHED, SYN_SENT ...).")
@click.option("--assured", is_flag=True, help="Only entries flagged ASSURED.")
@click.option("--unreplied", is_flag=True, help="Only entries that never saw a reply.")
@click.option("--src", "src_net", metavar="NET", default=None,
              help="Only original sources in NET.")
@click.option("--dst", "dst_net", metavar="NET", default=None,
              help="Only original destinations in NET.")
@click.option("--dport", type=click.IntRange(0, 65535), default=None,
              help="Only this original destination port.")
@click.option("--file", "file_path", metavar="PATH", default=None,
              help="Read a saved /proc/net/nf_conntrack or 'conntrack -L' output ('-': stdin).")
@click.option("--source", type=click.Choice(["auto", "proc", "netlink"]), default="auto",
              show_default=True,
              help="Live table: the /proc file, 'conntrack -L' (netlink), or auto.")
@root_option
@netns_option
@format_option("text", "json")
def top(
    by: str, limit: int, proto: str | None, state: str | None, assured: bool,
    unreplied: bool, src_net: str | None, dst_net: str | None, dport: int | None,
    file_path: str | None, source: str, root_path: str | None, netns: str | None, fmt: str,
) -> int:
    """Group conntrack entries by a field and show the biggest groups with their share."""
    from hostnet.conntrack.table import blocks
    from hostnet.conntrack.top import Filters, TopCounter, parse_by, parse_network

    try:
        key = parse_by(by)
        filters = Filters(
            proto=proto, state=state, assured=assured, unreplied=unreplied,
            src=parse_network(src_net) if src_net else None,
            dst=parse_network(dst_net) if dst_net else None,
            dport=dport,
        )
    except ValueError as exc:
        raise UsageError(str(exc), hint="see 'hostnet conntrack top --help'") from None
    if file_path is not None and (root_path is not None or netns is not None):
        raise UsageError(
            "--file reads a saved table; it does not combine with --root or --netns",
            hint="pick one input",
        )
    counter = TopCounter(key, filters)
    from hostnet.observe.table import conntrack_table

    with conntrack_table(file_path, root_path, netns, source) as (kind, where, chunks):
        for block in blocks(chunks):
            counter.feed(block)
    result = counter.result(limit)
    if file_path is not None and result.entries == 0 and result.skipped:
        from hostnet.errors import InputError

        raise InputError(
            f"{'standard input' if file_path == '-' else file_path}: no line looked like a "
            f"conntrack entry ({result.skipped} lines read); --file takes a saved "
            "/proc/net/nf_conntrack or 'conntrack -L' output")
    if fmt == "json":
        out = result.to_dict()
        out["source"] = {"kind": kind, "where": where}
        click.echo(json.dumps(out, indent=2))
    else:
        click.echo(render_text(result, f"{kind}: {where}"))
    return 0


def render_text(result: object, where: str) -> str:
    """A plain aligned table (no colour, so it pipes and diffs cleanly)."""
    from hostnet.conntrack.top import Top

    assert isinstance(result, Top)
    cols = list(result.columns)
    rows = [[str(v) for v in g.key] + [str(g.count), f"{g.share * 100:.1f}%"]
            for g in result.groups]
    if result.others_groups:
        share = result.others_count / result.matched if result.matched else 0.0
        label = f"others ({result.others_groups} groups)"
        rows.append([label] + [""] * (len(cols) - 1)
                    + [str(result.others_count), f"{share * 100:.1f}%"])
    header = [c.upper() for c in cols] + ["COUNT", "SHARE"]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = []
    for r in [header, *rows]:
        left = "  ".join(v.ljust(w) for v, w in zip(r[: len(cols)], widths, strict=False))
        right = "  ".join(v.rjust(w) for v, w in zip(r[len(cols):], widths[len(cols):],
                                                      strict=True))
        lines.append(f"{left}  {right}".rstrip())
    summary = f"{result.matched} entries"
    if result.matched != result.entries:
        summary += f" matched of {result.entries}"
    summary += f" in {result.distinct} groups ({where})"
    if result.skipped:
        summary += f"; {result.skipped} unreadable lines skipped"
    lines.append(summary)
    return "\n".join(lines)
