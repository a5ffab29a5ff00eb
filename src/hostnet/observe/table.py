"""Open a conntrack table to stream: a saved dump, a snapshot's copy, or the live table."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from hostnet.host.conntrack_source import open_file, open_table
from hostnet.observe.roots import open_root


@contextmanager
def conntrack_table(
    file_path: str | None, root_path: str | None, netns: str | None, source: str = "auto"
) -> Iterator[tuple[str, str, Iterator[bytes]]]:
    """(kind, where, chunks): ``file_path`` (``-`` for stdin) wins over ``root_path``; the live
    table is read inside ``netns`` (``source``: auto, proc or netlink)."""
    with ExitStack() as stack:
        if file_path is not None:
            table = stack.enter_context(open_file(file_path))
        else:
            root = stack.enter_context(open_root(root_path, netns))
            table = stack.enter_context(open_table(root, source))
        where = table.where + (f" (netns {netns})" if netns else "")
        yield table.kind, where, table.chunks
