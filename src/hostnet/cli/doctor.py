"""``hostnet doctor``: diagnose the live host, its namespaces, or a snapshot."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NoReturn

import click

from hostnet.cli.common import root_option, use_colour
from hostnet.errors import HostnetError, UsageError

ROLES = ("server", "nat-router", "vm-host", "desktop")
FORMATS = ("text", "json", "sarif")


def parse_interval(text: str | None) -> float | None:
    """``5s``, ``500ms``, ``1m`` or a plain number of seconds; None or 0 for no sampling."""
    if text is None:
        return None
    raw = text.strip().lower()
    scale = 1.0
    for suffix, factor in (("ms", 0.001), ("s", 1.0), ("m", 60.0)):
        if raw.endswith(suffix):
            raw, scale = raw[: -len(suffix)], factor
            break
    try:
        value = float(raw) * scale
    except ValueError:
        raise UsageError(f"--interval {text!r}: not a duration",
                         hint="give seconds, e.g. --interval 5s or --interval 500ms") from None
    if value < 0 or value > 3600:
        raise UsageError(f"--interval {text!r}: must be between 0 and 1 hour")
    return value or None


def _state_dir(option: str | None, live: bool) -> Path | None:
    if option is not None:
        return Path(option)
    if not live or os.geteuid() != 0:
        return None
    from hostnet.state.history import DEFAULT_STATE_DIR

    return DEFAULT_STATE_DIR


def _nagios_unknown(message: str) -> NoReturn:
    """Print the Nagios UNKNOWN line for a failure and stop with exit 3."""
    from hostnet.render.doctor import nagios_unknown

    code, line = nagios_unknown(message)
    click.echo(line)
    raise click.exceptions.Exit(code)


class DoctorCommand(click.Command):
    """With --nagios every failure is a plugin result: bad options (click's usage errors),
    unreadable input and bugs print ``HOSTNET UNKNOWN - ...`` and exit 3."""

    def make_context(self, info_name: str | None, args: list[str],
                     parent: click.Context | None = None, **extra: Any) -> click.Context:
        wants_nagios = "--nagios" in args
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as exc:
            if wants_nagios:
                _nagios_unknown(f"usage: {exc.format_message()}")
            raise

    def invoke(self, ctx: click.Context) -> Any:
        if not ctx.params.get("nagios"):
            return super().invoke(ctx)
        try:
            return super().invoke(ctx)
        except click.exceptions.Exit:
            raise
        except HostnetError as exc:
            _nagios_unknown(exc.message)
        except click.ClickException as exc:
            _nagios_unknown(exc.format_message())
        except Exception as exc:  # a bug still gives a plugin answer, not a traceback
            _nagios_unknown(f"internal error: {type(exc).__name__}: {exc}")


@click.command(cls=DoctorCommand)
@click.option("--role", type=click.Choice(ROLES), default=None,
              help="Judge the host as this role (default: recommend one from what it shows).")
@click.option("--netns", "netns", metavar="NAME", multiple=True,
              help="Check inside this named network namespace (repeatable; needs root).")
@click.option("--all-netns", is_flag=True,
              help="Check this namespace and every named one ('ip netns list').")
@root_option
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True,
              help="Output format.")
@click.option("--nagios", is_flag=True,
              help="Print one Nagios status line with perfdata; exit 0/1/2/3.")
@click.option("--interval", metavar="DURATION", default=None,
              help="Sample conntrack counters for this long to measure drop rates (e.g. 5s).")
@click.option("--no-composition", is_flag=True,
              help="Skip the slow parts: conntrack table walk and kernel log scan.")
@click.option("--fail-on", type=click.Choice(("error", "warning", "info")), default="error",
              show_default=True, help="Exit 1 when a finding has this severity or worse.")
@click.option("--state-dir", metavar="DIR", default=None,
              help="Keep counter readings here for rates between runs "
                   "(default as root: /var/lib/hostnet; otherwise none).")
@click.option("--fix-config", "fix_config", is_flag=True,
              help="Print the findings' fixes as a hostnet.toml snippet instead of the report.")
@click.option("--config", "config", metavar="FILE", default=None,
              help="hostnet.toml whose [[vm]] entries the VM checks (VM101-VM105) judge "
                   "(default: /etc/hostnet/hostnet.toml when it exists).")
def doctor(
    role: str | None,
    netns: tuple[str, ...],
    all_netns: bool,
    root_path: str | None,
    fmt: str,
    nagios: bool,
    interval: str | None,
    no_composition: bool,
    fail_on: str,
    state_dir: str | None,
    fix_config: bool = False,
    config: str | None = None,
) -> int:
    """Diagnose the network side of the kernel: conntrack, hardening, tuning, NAT/forwarding
    and IPv6, judged against a role (server, nat-router, vm-host, desktop).

    Without --role the doctor recommends the role the host looks like and says why. Works as
    a normal user with what it can read and lists what it could not. Exit codes: 0 nothing at
    or above --fail-on, 1 findings, 2 bad usage or nothing readable; with --nagios 0 OK,
    1 WARNING, 2 CRITICAL, 3 UNKNOWN (also for bad options and unreadable input).

    --root takes a .tar.gz from 'hostnet collect', a directory unpacked from one (it has
    .hostnet/meta.json) or a host tree with proc/sys (a fixture tree, a mounted disk);
    anything else, and a truncated or incomplete snapshot, is refused with exit 2. A
    snapshot of 'collect --netns NAME' is reported as namespace NAME.

    VM networking (VM101-VM105) is judged when a hostnet.toml with [[vm]] entries is given
    with --config or found at /etc/hostnet/hostnet.toml (under --root: VM links are read over
    netlink, so a snapshot only says they were not checked).
    """
    from hostnet.findings import Severity
    from hostnet.service.doctor import run

    if all_netns and netns:
        raise UsageError("--netns and --all-netns do not go together", hint="use one of them")
    if root_path is not None and (netns or all_netns):
        raise UsageError("--netns/--all-netns read the live host; a snapshot is one namespace",
                         hint="drop --root, or collect each namespace with 'hostnet collect'")
    seconds = parse_interval(interval)
    vm_config = None
    if config is not None:
        from pathlib import Path

        vm_config = Path(config)
        if not vm_config.is_file():
            raise UsageError(f"--config {config}: no such file",
                             hint="give the hostnet.toml with the [[vm]] entries")
    targets: list[str | None]
    if all_netns:
        from hostnet.observe.roots import named_namespaces

        targets = [None, *named_namespaces()]
    elif netns:
        targets = list(netns)
    else:
        targets = [None]
    if root_path is not None:
        from hostnet.observe.roots import open_root

        with open_root(root_path) as root:
            report = run(root, role=role, composition=not no_composition, interval=seconds,
                         state_dir=_state_dir(state_dir, False), config=vm_config)
    else:
        report = run(None, role=role, netns=targets, composition=not no_composition,
                     interval=seconds, state_dir=_state_dir(state_dir, True),
                     skip_denied=all_netns, config=vm_config)
    if fix_config:
        from hostnet.config.starter import fix_config as snippet

        click.echo(snippet((f.code, f.message, f.suggestion) for f in report.findings), nl=False)
        return 0
    if nagios:
        from hostnet.render.doctor import nagios as nagios_line

        code, line = nagios_line(report)
        click.echo(line)
        return code
    if fmt == "json":
        from hostnet.render.findings import render_json

        click.echo(render_json(report.findings, **report.json_extra()), nl=False)
    elif fmt == "sarif":
        from hostnet.render.findings import render_sarif

        click.echo(render_sarif(report.findings), nl=False)
    else:
        from hostnet.render.doctor import render_text

        click.echo(render_text(report, colour=use_colour()), nl=False)
    if not report.readable:
        return 2
    threshold = Severity.parse(fail_on)
    return 1 if any(f.severity >= threshold for f in report.findings) else 0
