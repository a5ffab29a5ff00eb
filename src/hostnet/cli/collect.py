"""``hostnet collect``: write a snapshot for offline analysis with --root."""

from __future__ import annotations

import click

from hostnet.cli.common import netns_option


@click.command()
@click.option(
    "-o",
    "--output",
    "out",
    required=True,
    metavar="FILE.tar.gz",
    help="Where to write the snapshot.",
)
@netns_option
@click.option("--no-table", is_flag=True, help="Leave out /proc/net/nf_conntrack (can be large).")
@click.option("--config", "config", metavar="FILE", default=None,
              help="Store this hostnet.toml, whose [[vm]] entries 'doctor --root' judges "
                   "(default: /etc/hostnet/hostnet.toml when it exists).")
def collect(out: str, netns: str | None, no_table: bool, config: str | None) -> int:
    """Write a snapshot of everything hostnet reads: /proc/sys, conntrack counters and table,
    sysctl.d and modprobe.d files, kernel logs, nftables/iptables rulesets, interfaces, and
    what the VM checks read (links with their tun owners, routes, proxy neighbour entries,
    /dev/net/tun's mode and owner, accounts, the [[vm]] config: --config FILE or
    /etc/hostnet/hostnet.toml).

    Every read-only command takes it back with --root FILE.tar.gz. .hostnet/meta.json, written
    last, records the namespace (--netns), the user, how many members come before it and what
    could not be read (run as a normal user: dmesg under kernel.dmesg_restrict, nft ...); the
    doctor lists those and --root refuses an archive without it or with members missing.
    """
    from hostnet.observe.collect import collect as do_collect

    report = do_collect(out, netns=netns, table=not no_table, config=config)
    click.echo(f"wrote {report.path}: {report.files} files, {report.bytes / 1e6:.1f} MB read")
    if report.skipped:
        click.echo(
            f"{len(report.skipped)} item(s) could not be read (see .hostnet/meta.json)", err=True
        )
    return 0
