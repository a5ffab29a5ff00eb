"""Stream the conntrack table as byte blocks: /proc/net/nf_conntrack or ``conntrack -L``.

The /proc file exists only with CONFIG_NF_CONNTRACK_PROCFS; ``conntrack -L`` talks netlink
and works everywhere conntrack-tools is installed. Measured on kernel 6.18 at 1,000,000
entries (bench/results/conntrack_top.md) the /proc file reads about twice as fast, so
``auto`` prefers it and falls back to ``conntrack -L``.

Both are read in big binary chunks. Descriptors are opened in the calling thread, so a
namespace entered with
:func:`hostnet.host.netns.entered` applies to them (a /proc/net file and a child process
both keep the namespace they were opened in).
"""

from __future__ import annotations

import gzip
import os
import stat
import subprocess
import sys
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import BinaryIO

from hostnet.errors import CommandError, InputError, PermissionDenied
from hostnet.host.commands import which
from hostnet.host.root import Root

PROC_TABLE = "proc/net/nf_conntrack"
#: read size: on 6.18, 64 KiB reads of the /proc file beat 256 KiB-4 MiB reads by ~25%
CHUNK = 1 << 16
SOURCES = ("auto", "proc", "netlink")


@dataclass
class Table:
    """An open table: ``chunks`` yields bytes (whole lines are not guaranteed per chunk;
    :func:`hostnet.conntrack.table.blocks` regroups them). ``kind`` says where it comes from:
    ``proc``, ``netlink`` (``conntrack -L``), ``file`` or ``stdin``."""

    kind: str
    where: str
    chunks: Iterator[bytes]


def read_chunks(fd: int, size: int = CHUNK) -> Iterator[bytes]:
    """Read ``fd`` to its end in big chunks (a reader thread was measured slower: 2.77 s
    against 2.31 s at 1M entries, bench/results/conntrack_top.md)."""
    while True:
        data = os.read(fd, size)
        if not data:
            return
        yield data


def _open_proc(root: Root) -> int | None:
    path = root.file(PROC_TABLE)
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except PermissionError:
        raise PermissionDenied(
            f"cannot read {path}", hint="the conntrack table is readable by root only"
        ) from None


@contextmanager
def _proc_table(root: Root, fd: int) -> Iterator[Table]:
    try:
        yield Table("proc", str(root.file(PROC_TABLE)), read_chunks(fd))
    finally:
        os.close(fd)


@contextmanager
def _netlink_table() -> Iterator[Table]:
    exe = which("conntrack")
    if exe is None:
        raise CommandError(
            "conntrack: command not found",
            hint="install conntrack-tools (apt-get install conntrack), or read a saved table "
            "with --file",
        )
    proc = subprocess.Popen(
        [exe, "-L"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0
    )
    assert proc.stdout is not None and proc.stderr is not None
    err = proc.stderr

    def chunks() -> Iterator[bytes]:
        assert proc.stdout is not None
        yield from read_chunks(proc.stdout.fileno())
        # a full table has been read: the exit status tells whether it was complete
        code = proc.wait()
        message = err.read().decode("utf-8", "replace").strip()
        if code != 0:
            raise CommandError(
                f"conntrack -L failed (exit {code}): {message}",
                hint="run as root; the nf_conntrack_netlink module must be available",
            )

    try:
        yield Table("netlink", "conntrack -L", chunks())
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stdout.close()
        err.close()


@contextmanager
def open_table(root: Root, source: str = "auto") -> Iterator[Table]:
    """Open the conntrack table of ``root`` (the live host in the current namespace, or a
    snapshot/fixture tree).

    ``source``: ``proc`` (the /proc file), ``netlink`` (``conntrack -L``, live host only) or
    ``auto`` (the /proc file, else ``conntrack -L`` on a live host). Raises InputError when
    there is no table to read.
    """
    if source not in SOURCES:
        raise InputError(f"unknown table source {source!r}", hint=f"use one of {SOURCES}")
    if source in ("auto", "proc"):
        fd = _open_proc(root)
        if fd is not None:
            with _proc_table(root, fd) as table:
                yield table
            return
        if source == "proc" or not root.is_live:
            hint = (
                "the kernel needs CONFIG_NF_CONNTRACK_PROCFS and the nf_conntrack module; "
                "try --source netlink"
                if root.is_live
                else "collect the snapshot with the conntrack table, or use --file"
            )
            raise InputError(f"{root.file(PROC_TABLE)}: no conntrack table", hint=hint)
    if not root.is_live:
        raise InputError(
            "--source netlink reads the live host, not a snapshot",
            hint="drop --source or use --file with a saved 'conntrack -L' output",
        )
    with _netlink_table() as table:
        yield table


def _guarded(chunks: Iterator[bytes], path: str) -> Iterator[bytes]:
    """Read errors (EIO from /proc/self/mem, a damaged .gz) as InputError naming the file."""
    try:
        yield from chunks
    except (EOFError, zlib.error, gzip.BadGzipFile):
        raise InputError(f"{path}: the gzip data is truncated or corrupted") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None


@contextmanager
def open_file(path: str) -> Iterator[Table]:
    """A saved table (/proc copy or ``conntrack -L`` output); ``-`` is standard input.
    Regular files and pipes only: a directory, a device or a socket is refused."""
    if path == "-":
        stdin = sys.stdin.buffer
        yield Table("stdin", "<stdin>", _guarded(iter(lambda: stdin.read(CHUNK), b""), "<stdin>"))
        return
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file", hint="pass a saved table or '-'") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory", hint="use --root for a tree") from None
    except PermissionError:
        raise PermissionDenied(f"{path}: permission denied") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot open ({exc.strerror or exc})") from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise InputError(f"{path}: is a directory; --file reads a saved table, "
                             "--root a tree")
        if not (stat.S_ISREG(mode) or stat.S_ISFIFO(mode)):
            raise InputError(f"{path}: not a regular file or a pipe; --file reads a saved "
                             "table ('-' for standard input)")
        os.set_blocking(fd, True)
        fh: BinaryIO = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with fh:
        if path.endswith(".gz"):
            with gzip.open(fh) as gz:
                yield Table("file", path, _guarded(iter(lambda: gz.read(CHUNK), b""), path))
            return
        yield Table("file", path, _guarded(read_chunks(fh.fileno()), path))
