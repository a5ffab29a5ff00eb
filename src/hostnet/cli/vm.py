"""``hostnet vm``: tap devices, routed public addresses and per-address proxy ARP/NDP for
VM hosts, from the ``[[vm]]`` entries of hostnet.toml."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import click

from hostnet.errors import HostnetError, UsageError

if TYPE_CHECKING:
    from hostnet.model.vm import VmLink
    from hostnet.vm.steps import Step

F = TypeVar("F", bound=Callable[..., Any])
DEFAULT_CONFIG = "/etc/hostnet/hostnet.toml"
DEFAULT_STATE_DIR = "/var/lib/hostnet"


def _common(f: F) -> F:
    f = click.option("--netns", metavar="NAME", default=None,
                     help="The host side lives in this network namespace ('ip netns' name).")(f)
    return click.option("--config", "config", metavar="FILE", default=DEFAULT_CONFIG,
                        show_default=True, help="hostnet.toml with the [[vm]] entries.")(f)


def _state_dir(f: F) -> F:
    return click.option("--state-dir", metavar="DIR", default=DEFAULT_STATE_DIR,
                        show_default=True,
                        help="Where the record of what hostnet created is kept.")(f)


def _fmt(f: F) -> F:
    return click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
                        show_default=True, help="Output format.")(f)


def _load(config: str) -> list[VmLink]:
    from hostnet.config.vm import load_vms

    return load_vms(config)


def _pick(vms: Sequence[VmLink], name: str | None, all_: bool = False) -> list[VmLink]:
    if all_ and name:
        raise UsageError("give a VM name or --all, not both")
    if all_ or name is None:
        if not all_ and name is None:
            raise UsageError("give a VM name (or --all)")
        return list(vms)
    found = [vm for vm in vms if vm.name == name]
    if not found:
        known = ", ".join(vm.name for vm in vms) or "none"
        raise UsageError(f"no [[vm]] named {name!r}", hint=f"configured VMs: {known}")
    return found


def _steps_json(steps: Sequence[Step]) -> list[dict[str, Any]]:
    return [{**s.to_dict(), "description": s.describe()} for s in steps]


@click.group("vm")
def vm() -> None:
    """VM links: taps, routes and per-address proxy ARP/NDP.

    Each [[vm]] entry of hostnet.toml names a tap, the user that opens it and, in routed
    mode, the VM's public addresses and the uplink where the provider delivers them. `up`
    creates the tap, puts the gateway address on it, adds a /32 or /128 route per address
    and one proxy neighbour entry per address on the uplink (never proxy_arp=1); a second
    `up` changes nothing. `watch` restores all of it when the tap comes back or something
    removes a part.
    """


@vm.command("up")
@click.argument("name", required=False)
@click.option("--all", "all_", is_flag=True, help="Every configured VM.")
@_common
@_state_dir
@_fmt
def up(name: str | None, all_: bool, config: str, netns: str | None, state_dir: str,
       fmt: str) -> int:
    """Create or repair the links of VM NAME (or --all)."""
    from hostnet.state.links import vm_up

    vms = _pick(_load(config), name, all_)
    result = vm_up(vms, netns, state_dir)
    if fmt == "json":
        click.echo(json.dumps({"version": 1, "netns": netns, "writes": result.writes,
                               "steps": _steps_json(result.done),
                               "waiting": list(result.plan.waiting)}, indent=2))
    elif not result.done:
        names = ", ".join(v.name for v in vms) if len(vms) <= 5 else f"{len(vms)} VMs"
        click.echo(f"nothing to do: {names} in place")
    else:
        for step in result.done:
            click.echo(f"{step.vm or 'host'}: {step.describe()}")
        click.echo(f"{len(result.done)} change(s)")
    return 0


@vm.command("down")
@click.argument("name")
@_common
@_state_dir
@_fmt
def down(name: str, config: str, netns: str | None, state_dir: str, fmt: str) -> int:
    """Remove what `up` created for VM NAME (nothing else)."""
    from hostnet.state.links import vm_down

    _pick(_load(config), name)
    result = vm_down(name, netns, state_dir)
    if fmt == "json":
        click.echo(json.dumps({"version": 1, "netns": netns, "writes": result.writes,
                               "steps": _steps_json(result.steps)}, indent=2))
    elif not result.steps:
        click.echo(f"nothing to remove for {name}")
    else:
        for step in result.steps:
            click.echo(f"{name}: {step.describe()}")
    return 0


@vm.command("list")
@_common
@_fmt
def list_(config: str, netns: str | None, fmt: str) -> int:
    """Each VM link: exists, owner, flags, up/carrier, addresses, routes, proxy entries,
    what is missing, and the VM checks (VM101-VM105) on it."""
    from hostnet.checks.vm import evaluate
    from hostnet.model.vm import VmCheckInput
    from hostnet.observe.links import read_snapshot, read_tun_node
    from hostnet.vm.report import render_text, status

    vms = _load(config)
    snap = read_snapshot(netns)
    rows = status(vms, snap)
    findings = evaluate(VmCheckInput(tuple(vms), read_tun_node("/"), snap))
    if fmt == "json":
        click.echo(json.dumps({"version": 1, "netns": netns,
                               "vms": [r.to_dict() for r in rows],
                               "findings": [f.to_dict() for f in findings]}, indent=2))
    else:
        click.echo(render_text(rows))
        for f in findings:
            click.echo(f"{f.code} {f.severity}: {f.message}")
            if f.suggestion:
                click.echo(f"  fix: {f.suggestion}")
    return 0


@vm.command("qemu-args")
@click.argument("name")
@_common
@_fmt
def qemu_args(name: str, config: str, netns: str | None, fmt: str) -> int:
    """QEMU's -netdev and -device arguments for VM NAME's tap.

    With --netns (or when the tap exists here) the tap's flags are compared: QEMU's
    queues=N needs a multi-queue tap and fails with EINVAL otherwise.
    """
    from hostnet.observe.links import read_snapshot
    from hostnet.vm.qemu import qemu_args as build
    from hostnet.vm.qemu import qemu_args_line

    (found,) = _pick(_load(config), name)
    try:
        link = read_snapshot(netns).links.get(found.tap)
    except HostnetError:
        if netns is not None:
            raise
        link = None  # not root: no check, the arguments are still right for the config
    if link is not None and link.tun is not None and link.tun.multi_queue != found.multi_queue:
        have = "multi-queue" if link.tun.multi_queue else "single-queue"
        click.echo(f"hostnet: warning: {found.tap} is a {have} tap but the config says "
                   f"multi_queue = {str(found.multi_queue).lower()}: QEMU will fail to attach "
                   f"(EINVAL); recreate it with 'ip link del {found.tap} && hostnet vm up "
                   f"{name}'", err=True)
    if fmt == "json":
        click.echo(json.dumps({"version": 1, "vm": name, "args": build(found)}))
    else:
        click.echo(qemu_args_line(found))
    return 0


@vm.command("watch")
@_common
@_state_dir
@click.option("--create-taps/--no-create-taps", default=False, show_default=True,
              help="Also recreate a missing tap (off: wait for the hypervisor to bring it).")
@click.option("--poll", type=float, default=1.0, show_default=True, metavar="SECONDS",
              help="How often to check the proxy entries (the kernel sends no events for them).")
@click.option("--full-every", type=float, default=60.0, show_default=True, metavar="SECONDS",
              help="Full dump-and-reconcile at least this often.")
def watch(config: str, netns: str | None, state_dir: str, create_taps: bool, poll: float,
          full_every: float) -> int:
    """Keep the VM links in place: repair on netlink events until SIGTERM."""
    from hostnet.service.vm_watch import WatchOptions, run

    if poll <= 0 or full_every <= 0:
        raise UsageError("--poll and --full-every must be positive")
    run(_load(config), WatchOptions(netns=netns, state_dir=state_dir, create_taps=create_taps,
                                    poll=poll, full_every=full_every))
    return 0
