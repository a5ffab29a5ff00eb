"""``hostnet plan`` and ``hostnet apply``: make the host match hostnet.toml."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from hostnet.errors import UsageError

F = TypeVar("F", bound=Callable[..., Any])
EFFECT_TEXT = {"live": "live now", "boot": "file only: next boot",
               "module-load": "file only: next module load"}


def state_options(f: F) -> F:
    """--config, --netns, --root, --state-dir (shared by plan and apply)."""
    f = click.option("--state-dir", metavar="DIR", default=None,
                     help="Journal and lock directory (default /var/lib/hostnet).")(f)
    f = click.option("--root", "root_dir", metavar="DIR", default=None,
                     help="Write only the persistent files, into this tree (image builds); "
                          "with --netns also the live values of that namespace.")(f)
    f = click.option("--netns", metavar="NAME", default=None,
                     help="Change only this network namespace's live values (no files unless "
                          "--root); its journal is kept apart.")(f)
    f = click.option("--config", "config", metavar="FILE", default=None,
                     help="The desired state (default /etc/hostnet/hostnet.toml).")(f)
    return f


def config_path(option: str | None) -> Path:
    from hostnet.state.prepare import DEFAULT_CONFIG

    return Path(option) if option else DEFAULT_CONFIG


def _short(value: Any) -> str:
    return "(none)" if value is None else str(value).replace("\t", " ")


def render_text(plan: Any, where: str) -> str:
    lines: list[str] = []
    changes = [s.change() for s in plan.steps]
    if not changes:
        lines.append(f"Nothing to do: {where} already matches the config.")
    else:
        lines.append(f"Plan for {where}: {len(changes)} change{'s' if len(changes) > 1 else ''}")
    for c in changes:
        effect = EFFECT_TEXT.get(c["effect"], c["effect"])
        if c["kind"] == "sysctl":
            lines.append(f"  {c['key']}: {_short(c['old'])} -> {c['new']}  [{effect}]  "
                         f"{c['reason']}")
        elif c["kind"] == "file":
            verb = "rewrite" if c["old_digest"] else "create"
            lines.append(f"  {c['path']}: {verb}  [{effect}]")
            for e in c["entries"]:
                lines.append(f"      {e['key']}: {_short(e['old'])} -> {e['new']}  {e['reason']}")
        elif c["kind"] == "vm-link":
            lines.append(f"  vm {c['vm'] or 'host'}: {c['text']}  [{effect}]  {c['reason']}")
        elif c["kind"] == "nat-link":
            lines.append(f"  {c['vm']}: {c['text']}  [{effect}]  {c['reason']}")
        elif c["kind"] == "iptables-nat":
            tool = "ip6tables" if c["family"] == "ipv6" else "iptables"
            rules = sum(c["chains"].values())
            what = "remove HOSTNET-* chains" if c["remove"] else (
                f"load {rules} rule(s) in {len(c['chains'])} HOSTNET-* chains")
            lines.append(f"  {tool}: {what}  [{effect}]  {c['reason']}")
        elif c["kind"] == "nft-table":
            what = {"remove": "remove", "create": "create", "replace": "replace"}[c["action"]]
            ports = "" if c["action"] == "remove" else f" ({c['forwards']} forwarded port(s))"
            lines.append(f"  table inet hostnet: {what}{ports}  [{effect}]  {c['reason']}")
            for t in c["clear_conntrack"]:
                lines.append(f"      conntrack entries of {t}: deleted (changed or removed)")
        else:
            lines.append(f"  {c['kind']}: {c.get('reason', '')}  [{effect}]")
    lines += [f"warning: {w}" for w in plan.warnings]
    lines += [f"note: {n}" for n in plan.notes]
    return "\n".join(lines) + "\n"


def _where(netns: str | None, root_dir: str | None) -> str:
    if netns and root_dir:
        return f"namespace {netns} (live values) and {root_dir} (files)"
    if netns:
        return f"namespace {netns} (live values only)"
    if root_dir:
        return f"{root_dir} (files only)"
    return "this host (live values and /etc files)"


def _interrupted(state_dir: Path, netns: str | None) -> list[int]:
    from hostnet.state.journal import Journal

    try:
        return [g.id for g in Journal(state_dir, netns).all() if g.status == "applying"]
    except Exception:  # history problems are reported by apply and rollback, not plan
        return []


@click.command()
@state_options
@click.option("--format", "fmt", type=click.Choice(("text", "json")), default="text",
              show_default=True, help="Output format.")
def plan(config: str | None, netns: str | None, root_dir: str | None, state_dir: str | None,
         fmt: str) -> int:
    """Show what 'hostnet apply' would change: one line per change with the old value, the
    new value, the reason (config line or role rule) and how it takes effect (live now, or
    file only: on next boot / module load), the NAT table of [nat] and the VM link changes of
    [[vm]] entries.
    Changes nothing.

    Exit 0 with a plan (also an empty one), 2 when the config is invalid or asks for what
    this kernel cannot do.
    """
    from hostnet.observe.roots import open_root
    from hostnet.state.prepare import prepare
    from hostnet.state.rollback import state_dir_of

    with open_root(None, netns):
        prepared = prepare(config_path(config), netns=netns,
                           root_dir=Path(root_dir) if root_dir else None)
    stuck = _interrupted(state_dir_of(state_dir), netns)
    result = prepared.plan
    if stuck:
        from dataclasses import replace

        result = replace(result, notes=(*result.notes, (
            f"generation {stuck[-1]} was interrupted: apply or rollback first puts its "
            "values back, so the plan may change")))
    if fmt == "json":
        click.echo(json.dumps(result.to_json(), indent=2))
    else:
        click.echo(render_text(result, _where(netns, root_dir)), nl=False)
    return 0


def parse_within(text: str | None) -> float | None:
    if text is None:
        return None
    from hostnet.config.schema import parse_duration

    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise UsageError(f"--confirm-within {text!r}: {exc}",
                         hint="give a duration such as 120s or 5m") from None
    if seconds < 2:
        raise UsageError("--confirm-within must be at least 2s",
                         hint="leave time to open a new connection and confirm")
    return float(seconds)


@click.command()
@state_options
@click.option("--yes", "-y", is_flag=True, help="Do not ask before applying.")
@click.option("--confirm-within", "within", metavar="DURATION", default=None,
              help="Revert automatically unless 'hostnet confirm' runs within DURATION "
                   "(e.g. 120s); the revert survives the session dying.")
def apply(config: str | None, netns: str | None, root_dir: str | None, state_dir: str | None,
          yes: bool, within: str | None) -> int:
    """Make the host match the config, as one transaction.

    Writes a journal of every value and file it replaces (fsynced, under --state-dir), then
    live values, then /etc/sysctl.d/90-hostnet.conf and /etc/modprobe.d/hostnet.conf, then
    reads every value back. If a step fails, everything already changed is put back. A second
    apply changes nothing. 'hostnet rollback' undoes it; 'hostnet history' lists applies.

    The [nat] table is loaded as one nft transaction (table inet hostnet only) with what it
    needs (ip_forward, a proxy entry and /32 route per 1:1 address); afterwards the conntrack
    entries of forwards whose target or allowlist changed are deleted, and only those.

    [[vm]] entries are applied too (after their sysctls, such as ip_forward): the tap, its
    gateway address, a /32 or /128 route per VM address and a proxy entry per address on the
    uplink, each journaled with what was there before and undone by rollback (only what
    this apply created or changed).

    With --confirm-within the revert is armed before the first change (a systemd timer, or a
    detached process in its own session) and happens unless 'hostnet confirm' is run, from a
    new connection, in time. Exit 0 applied (or nothing to do), 1 a step failed (undone),
    2 invalid config or usage.
    """
    from hostnet.observe.roots import open_root
    from hostnet.state.hostio import HostIO
    from hostnet.state.prepare import prepare
    from hostnet.state.rollback import state_dir_of
    from hostnet.state.transaction import apply as run

    seconds = parse_within(within)
    if not yes and not sys.stdin.isatty():
        raise UsageError("apply asks before changing anything and stdin is not a terminal",
                         hint="review 'hostnet plan' and pass --yes")
    path = config_path(config)
    sdir = state_dir_of(state_dir)
    where = _where(netns, root_dir)

    def make() -> Any:
        return prepare(path, netns=netns, root_dir=Path(root_dir) if root_dir else None).plan

    def approve(p: Any, recovered: list[Any]) -> bool:
        for gen in recovered:
            click.echo(f"Generation {gen.id} had been interrupted; its changes were put back "
                       f"({gen.status}).")
        click.echo(render_text(p, where), nl=False)
        return yes or click.confirm("Apply these changes?", default=False)

    with open_root(None, netns):
        io = HostIO(Path(root_dir) if root_dir else Path("/"),
                    live=root_dir is None or netns is not None)
        result = run(make, io, state_dir=sdir, netns=netns, config=str(path), approve=approve,
                     confirm_within=seconds, root_arg=root_dir)
    gen = result.generation
    if gen is None:
        if result.plan is not None and not result.plan.empty:
            click.echo("Nothing applied.")
            return 1
        if result.plan is not None:
            for old in result.recovered:
                click.echo(f"Generation {old.id} had been interrupted; its changes were put "
                           f"back ({old.status}).")
            click.echo(render_text(result.plan, where), nl=False)
        return 0
    click.echo(f"Applied generation {gen.id}: {len(gen.changes)} change(s), all read back.")
    if result.plan is not None:
        from hostnet.state.nat_step import cleared_report

        for line in cleared_report(result.plan.steps):
            click.echo(line)
    ns_opt = f" --netns {netns}" if netns else ""
    sd_opt = f" --state-dir {state_dir}" if state_dir else ""
    if gen.deadline is not None:
        when = time.strftime("%H:%M:%S %Z", time.localtime(gen.deadline))
        click.echo(f"Confirm from a NEW connection within {within}: "
                   f"hostnet confirm{ns_opt}{sd_opt}")
        click.echo(f"Without it, everything is reverted at {when} ({gen.reverter}).")
    else:
        click.echo(f"Undo with: hostnet rollback{ns_opt}{sd_opt}")
    return 0
