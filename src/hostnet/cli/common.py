"""Options and helpers shared by the read-only commands."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import click

from hostnet.host.root import Root

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


@contextmanager
def open_root(
    root_path: str | None, netns: str | None = None, *, config_only: bool = False
) -> Iterator[Root]:
    """Yield the Root to read: a snapshot or tree (``--root``), or the live host.

    With ``netns`` the body runs inside that network namespace (live host only). A --root that
    is neither a snapshot nor a host tree is refused; ``config_only`` (lint --system) also
    accepts a tree holding only sysctl configuration.
    """
    if root_path is not None:
        if netns is not None:
            from hostnet.errors import UsageError

            raise UsageError(
                "--netns reads the live host; a snapshot is already of one namespace",
                hint="collect the namespace with 'hostnet collect --netns NAME'",
            )
        from hostnet.host.snapshot import opened

        with opened(root_path, config_only=config_only) as root:
            yield root
        return
    from hostnet.host.netns import entered

    with entered(netns):
        yield Root("/")


def use_colour(stream: Any = None) -> bool:
    stream = stream or sys.stdout
    import os

    if os.environ.get("NO_COLOR"):
        return False
    return bool(getattr(stream, "isatty", lambda: False)())
