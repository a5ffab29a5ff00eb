"""The ``hostnet`` command. Subcommands load lazily so ``--help`` and ``lint`` start fast.

Library exceptions are turned into messages and exit codes here and nowhere else.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any, ClassVar

import click

from hostnet import __version__
from hostnet.errors import HostnetError

#: command name -> (module, attribute, one-line help). The help is repeated here so that
#: ``hostnet --help`` does not import every command module.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "lint": ("hostnet.cli.lint", "lint", "Check sysctl configuration files for mistakes."),
    "doctor": ("hostnet.cli.doctor", "doctor", "Diagnose the live host or a snapshot."),
    "conntrack": ("hostnet.cli.conntrack", "conntrack", "Conntrack table: top, size, watch."),
    "watch": ("hostnet.cli.watch", "watch", "Live view of conntrack usage, drops and top sources."),
    "exporter": ("hostnet.cli.exporter", "exporter", "Serve Prometheus metrics."),
    "nat": ("hostnet.cli.nat", "nat", "NAT and port forwarding: compile, explain a packet."),
    "collect": ("hostnet.cli.collect", "collect", "Write a snapshot for --root analysis."),
    "rules": ("hostnet.cli.rules", "rules", "List every finding code."),
    "explain": ("hostnet.cli.rules", "explain", "Print the documentation page of a code."),
    "vm": ("hostnet.cli.vm", "vm", "VM links: taps, routes, proxy ARP/NDP, repaired on events."),
    "init": ("hostnet.cli.config", "init", "Write a commented hostnet.toml for this host's role."),
    "config": ("hostnet.cli.config", "config", "hostnet.toml tools: print its JSON Schema."),
    "plan": ("hostnet.cli.plan", "plan", "Show what apply would change to match hostnet.toml."),
    "apply": ("hostnet.cli.plan", "apply", "Make the host match hostnet.toml (one transaction)."),
    "confirm": ("hostnet.cli.rollback", "confirm", "Keep a --confirm-within apply."),
    "rollback": ("hostnet.cli.rollback", "rollback", "Undo an apply (three-way, reports drift)."),
    "history": ("hostnet.cli.rollback", "history", "List the applies in the journal."),
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported only when called (``specs``: name ->
    (module, attribute, one-line help shown in the group's --help))."""

    specs: ClassVar[dict[str, tuple[str, str, str]]] = {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.specs)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        spec = self.specs.get(cmd_name)
        if spec is None:
            return None
        command = getattr(importlib.import_module(spec[0]), spec[1])
        assert isinstance(command, click.Command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, spec[2]) for name, spec in self.specs.items()])


class _TopLevel(LazyGroup):
    specs = COMMANDS


@click.group(cls=_TopLevel, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hostnet")
def cli() -> None:
    """Keep the network side of a Linux kernel healthy.

    Lint sysctl files, diagnose conntrack exhaustion and weak settings, and watch the
    conntrack table. Exit codes: 0 clean, 1 findings at or above the failing severity,
    2 bad usage or unreadable input.
    """


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the command and exit with its code (commands return an int)."""
    try:
        code: Any = cli.main(args=argv, prog_name="hostnet", standalone_mode=False)
    except HostnetError as exc:
        click.echo(f"hostnet: error: {exc.message}", err=True)
        if exc.hint:
            click.echo(f"hostnet: hint: {exc.hint}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(2 if exc.exit_code == 1 else exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(0)
    except Exception as exc:  # a bug: say so briefly; the traceback on request
        import os

        if os.environ.get("HOSTNET_DEBUG"):
            raise
        click.echo(f"hostnet: internal error: {type(exc).__name__}: {exc}", err=True)
        click.echo(
            "hostnet: hint: run again with HOSTNET_DEBUG=1 for the traceback and report it",
            err=True,
        )
        sys.exit(70)
    sys.exit(code if isinstance(code, int) else 0)
