"""Enter named network namespaces (``ip netns`` names under /run/netns) for reading.

setns(2) changes the calling thread's namespace; /proc/sys/net and /proc/thread-self/net then
show that namespace (/proc/net follows only the main thread, so Root reads proc/net through
thread-self). ``entered`` always switches back.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from collections.abc import Iterator
from contextlib import contextmanager

from hostnet.errors import NamespaceError, PermissionDenied, UsageError

NETNS_RUN_DIR = "/run/netns"
CLONE_NEWNET = 0x40000000
#: 'ip netns' names are file names in /run/netns: NAME_MAX bytes at most.
NAME_MAX = 255
NAME_RULE = "an 'ip netns' name is a file name in /run/netns: 1-255 bytes, no '/', not . or .."


def validate_name(name: str) -> None:
    """Raise UsageError unless ``name`` can be a namespace name (see NAME_RULE)."""
    if name == "":
        raise UsageError(f"empty network namespace name ({NAME_RULE})")
    try:
        size = len(name.encode())
    except UnicodeEncodeError:
        raise UsageError(f"network namespace name {name!r} is not valid text") from None
    if size > NAME_MAX:
        raise UsageError(f"network namespace name {name[:16]!r}... is {size} bytes long "
                         f"({NAME_RULE})")
    if "/" in name or "\x00" in name or name in (".", ".."):
        raise UsageError(f"bad network namespace name {name!r} ({NAME_RULE})")


def list_named(run_dir: str = NETNS_RUN_DIR) -> list[str]:
    """Names of the namespaces ``ip netns`` knows, sorted."""
    try:
        return sorted(n for n in os.listdir(run_dir) if not n.startswith("."))
    except FileNotFoundError:
        return []


def _setns(fd: int) -> None:
    setns = getattr(os, "setns", None)
    if setns is not None:  # Python >= 3.12
        setns(fd, CLONE_NEWNET)
        return
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


@contextmanager
def entered(name: str | None, run_dir: str = NETNS_RUN_DIR) -> Iterator[None]:
    """Run the body inside network namespace ``name`` (None: stay where we are)."""
    if name is None:
        yield
        return
    validate_name(name)
    path = os.path.join(run_dir, name)
    try:
        target = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        known = ", ".join(list_named(run_dir)) or "none"
        raise NamespaceError(
            f"network namespace {name!r} not found in {run_dir}",
            hint=f"known namespaces: {known} (see 'ip netns list')",
        ) from None
    except PermissionError:
        raise PermissionDenied(
            f"cannot open network namespace {name!r}", hint="run as root to use --netns"
        ) from None
    except OSError as exc:
        raise NamespaceError(
            f"cannot open network namespace {name!r} in {run_dir}: {exc.strerror or exc}"
        ) from None
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        try:
            _setns(target)
        except PermissionError:
            raise PermissionDenied(
                f"cannot enter network namespace {name!r}", hint="run as root to use --netns"
            ) from None
        except OSError as exc:
            raise NamespaceError(f"cannot enter network namespace {name!r}: {exc}") from None
        try:
            yield
        finally:
            _setns(home)
    finally:
        os.close(target)
        os.close(home)


def netns_inode(pid: str = "thread-self") -> int | None:
    """Inode of the current namespace (kernel log lines name namespaces by it)."""
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino
    except OSError:
        return None
