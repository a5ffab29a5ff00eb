"""Which host to read: the live one (optionally inside a named namespace), a host tree, or a
snapshot. cli/ opens roots through here, never through host/ directly."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from hostnet.errors import UsageError
from hostnet.host.root import Root

__all__ = ["Root", "check_namespaces", "named_namespaces", "open_root"]


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


def named_namespaces() -> list[str]:
    """Every namespace ``ip netns`` knows, sorted."""
    from hostnet.host.netns import list_named

    return list_named()


def check_namespaces(names: list[str]) -> None:
    """Fail now on a namespace that cannot be entered (a typo), before serving anything."""
    from hostnet.host.netns import entered

    for name in names:
        with entered(name):
            pass
