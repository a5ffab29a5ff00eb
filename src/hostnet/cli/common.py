"""Options and helpers shared by the read-only commands."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from hostnet.observe.roots import open_root

__all__ = ["format_option", "netns_option", "open_root", "root_option", "use_colour"]

F = TypeVar("F", bound=Callable[..., Any])


def root_option(f: F) -> F:
    return click.option(
        "--root",
        "root_path",
        metavar="DIR|FILE.tar.gz",
        default=None,
        help="Read a 'hostnet collect' snapshot (FILE.tar.gz, or a directory unpacked from one) "
        "or a host tree with proc/sys instead of the live host; anything else is refused.",
    )(f)


def netns_option(f: F) -> F:
    return click.option(
        "--netns",
        "netns",
        metavar="NAME",
        default=None,
        help="Read inside the named network namespace (as 'ip netns' names it; needs root).",
    )(f)


def format_option(*choices: str, default: str = "text") -> Callable[[F], F]:
    def deco(f: F) -> F:
        return click.option(
            "--format",
            "fmt",
            type=click.Choice(choices),
            default=default,
            show_default=True,
            help="Output format.",
        )(f)

    return deco


def use_colour(stream: Any = None) -> bool:
    stream = stream or sys.stdout
    import os

    if os.environ.get("NO_COLOR"):
        return False
    return bool(getattr(stream, "isatty", lambda: False)())
