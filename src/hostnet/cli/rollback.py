"""``hostnet rollback``, ``hostnet confirm`` and ``hostnet history``."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from hostnet.errors import UsageError
from hostnet.state.hostio import norm

if TYPE_CHECKING:
    from hostnet.state.hostio import HostIO


def _io(gen_root: str, gen_live: bool, root_dir: str | None) -> HostIO:
    from hostnet.state.hostio import HostIO

    return HostIO(Path(root_dir) if root_dir else Path(gen_root), live=gen_live)


@click.command()
@click.argument("gen_id", metavar="[ID]", required=False, type=int)
@click.option("--netns", metavar="NAME", default=None,
              help="Roll back a generation applied with --netns NAME.")
@click.option("--root", "root_dir", metavar="DIR", default=None,
              help="Restore the files in this tree (default: where apply wrote them).")
@click.option("--state-dir", metavar="DIR", default=None,
              help="Journal directory (default /var/lib/hostnet).")
@click.option("--yes", "-y", is_flag=True, help="Do not ask.")
@click.option("--force", is_flag=True,
              help="Also restore values and files changed by someone else since (drift).")
@click.option("--unconfirmed", is_flag=True,
              help="Only if not confirmed (the armed revert; at boot: every unconfirmed "
                   "generation). Implies --yes.")
@click.option("--at", "at", type=float, default=None, hidden=True,
              help="Wait until this time (epoch seconds) first (the detached reverter).")
@click.option("--ready-fd", "ready_fd", type=int, default=None, hidden=True,
              help="Write 'ready' to this file descriptor once armed (the detached reverter).")
def rollback(gen_id: int | None, netns: str | None, root_dir: str | None,
             state_dir: str | None, yes: bool, force: bool, unconfirmed: bool,
             at: float | None, ready_fd: int | None) -> int:
    """Restore the live values, files, NAT table and VM links of a journal entry (the latest
    without ID).

    Three-way: a value or file still as hostnet left it is restored; one already back is
    left; one changed by someone else since is drift: reported and left alone unless
    --force. Exit 0 restored, 1 drift left in place, 2 nothing to roll back or bad usage.
    """
    from hostnet.observe.roots import open_root
    from hostnet.state.journal import Journal
    from hostnet.state.rollback import pick, preview, state_dir_of
    from hostnet.state.rollback import rollback as run
    from hostnet.state.rollback import unconfirmed as revert

    journal = Journal(state_dir_of(state_dir), netns)
    if unconfirmed:
        if force:
            raise UsageError("--unconfirmed does not take --force")
        with open_root(None, netns):
            gen = journal.load(gen_id) if gen_id is not None else journal.latest()
            if gen is None:
                click.echo("No generations.")
                return 0
            io = _io(gen.root, gen.live, root_dir)
            if ready_fd is not None:  # armed: apply may go on
                when = f", reverting at {time.strftime('%H:%M:%S', time.localtime(at))}" \
                    if at else ""
                click.echo(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} armed for generation "
                           f"{gen.id}{when}")
                os.write(ready_fd, b"ready\n")
                os.close(ready_fd)
            done = revert(journal, io, gen_id, at)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
        for rb in done:
            click.echo(f"{stamp} generation {rb.generation.id}: {rb.generation.status}")
            for u in rb.undone:
                click.echo(f"  {u.outcome.value}: {u.target}: {u.message}")
        if not done:
            click.echo(f"{stamp} nothing to revert (confirmed or already rolled back)")
        return 0
    if at is not None:
        raise UsageError("--at goes with --unconfirmed")
    with open_root(None, netns):
        gen = pick(journal, gen_id)
        io = _io(gen.root, gen.live, root_dir)
        lines = preview(gen, io)
        click.echo(f"Roll back generation {gen.id} ({gen.status}, "
                   f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(gen.created))}):")
        for line in lines:
            click.echo(f"  {line}")
        if not yes:
            import sys

            if not sys.stdin.isatty():
                raise UsageError("rollback asks first and stdin is not a terminal",
                                 hint="pass --yes")
            if not click.confirm("Roll back?", default=False):
                return 1
        result = run(journal, io, gen.id, force=force)
    drift = [u for u in result.undone if u.outcome.value == "drift"]
    for u in result.undone:
        click.echo(f"  {u.outcome.value}: {u.target}: {u.message}")
    click.echo(f"Generation {gen.id}: {result.generation.status}.")
    if drift:
        click.echo(f"{len(drift)} item(s) changed since hostnet wrote them were left alone; "
                   "--force restores them.")
        return 1
    return 0


@click.command()
@click.option("--netns", metavar="NAME", default=None, help="The namespace applied with --netns.")
@click.option("--state-dir", metavar="DIR", default=None,
              help="Journal directory (default /var/lib/hostnet).")
def confirm(netns: str | None, state_dir: str | None) -> int:
    """Keep the changes of the last 'hostnet apply --confirm-within' and disarm its revert.

    Run it from a NEW connection: that proves the host is still reachable after the change.
    Exit 0 confirmed, 2 nothing waits for confirmation.
    """
    from hostnet.state.journal import Journal
    from hostnet.state.rollback import confirm as run
    from hostnet.state.rollback import state_dir_of

    gen = run(Journal(state_dir_of(state_dir), netns))
    click.echo(f"Generation {gen.id} confirmed: its changes stay.")
    return 0


@click.command()
@click.option("--netns", metavar="NAME", default=None, help="The namespace applied with --netns.")
@click.option("--state-dir", metavar="DIR", default=None,
              help="Journal directory (default /var/lib/hostnet).")
@click.option("--format", "fmt", type=click.Choice(("text", "json")), default="text",
              show_default=True, help="Output format.")
def history(netns: str | None, state_dir: str | None, fmt: str) -> int:
    """List the journal's generations (one per apply) with what each changed."""
    from hostnet.state.journal import Journal
    from hostnet.state.rollback import history as run
    from hostnet.state.rollback import state_dir_of

    entries = run(Journal(state_dir_of(state_dir), netns))
    if fmt == "json":
        click.echo(json.dumps({"version": 1, "netns": netns, "generations": entries}, indent=2))
        return 0
    if not entries:
        click.echo("No generations.")
    for e in entries:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e["created"]))
        click.echo(f"{e['id']:>4}  {stamp}  {e['status']:<11}  {len(e['changes'])} change(s)"
                   f"  {e['config']}")
        for c in e["changes"]:
            if c["kind"] == "sysctl":
                what = f"{c['key']}: {norm(c['old'])} -> {norm(c['new'])}"
            elif c["kind"] == "iptables-nat":
                what = f"{c['family']} HOSTNET-* chains: {'remove' if c['remove'] else 'load'}"
            elif c["kind"] == "nft-table":
                what = f"table inet hostnet: {c['action']}"
            elif c["kind"] in ("vm-link", "nat-link"):
                what = f"{c['vm'] or 'host'}: {c['text']}"
            else:
                what = str(c.get("path", c["kind"]))
            click.echo(f"        {what}")
    return 0
