"""The only code that turns host reads into a HostState.

    from hostnet.observe import observe, Want
    state = observe(Root("/"), netns=[None, "blue"], want=Want(composition=False))

``netns`` names namespaces to enter (None: the one we run in); a snapshot or fixture tree is
one namespace. Expensive parts are asked for in ``want``. Namespaces that cannot be entered
are listed in ``HostState.skipped`` when ``skip_denied`` is set, otherwise the error is
raised.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from datetime import datetime

from hostnet.errors import HostnetError, PermissionDenied, UsageError
from hostnet.host.root import META_FILE, Root
from hostnet.model.host import HostState, KernelInfo, NetnsState
from hostnet.observe.netns import Want, observe_namespace

__all__ = ["Want", "observe", "observe_kernel"]


def boot_time(root: Root) -> float | None:
    """btime of /proc/stat: when the machine booted (epoch seconds)."""
    try:
        text = root.read_text("proc/stat")
    except PermissionError:
        return None
    for line in (text or "").splitlines():
        if line.startswith("btime "):
            value = line.split()[1]
            return float(value) if value.isdigit() else None
    return None


def observed_at(root: Root) -> float | None:
    """Now on the live host; a snapshot's collection time (meta.json), if it has one."""
    if root.is_live:
        return time.time()
    try:
        meta = json.loads(root.read_text(META_FILE) or "{}")
        stamp = meta.get("time") if isinstance(meta, dict) else None
        return datetime.strptime(str(stamp), "%Y-%m-%dT%H:%M:%S%z").timestamp()
    except (ValueError, PermissionError, TypeError):
        return None


def observe_kernel(root: Root) -> KernelInfo:
    return KernelInfo(release=root.osrelease,
                      version=root.kernel_version if root.osrelease else (6, 0, 0),
                      mem_total=root.mem_total, cpus=root.cpu_count,
                      boot_time=boot_time(root), observed_at=observed_at(root))


def _snapshot_netns(root: Root) -> str | None:
    if root.is_live:
        return None
    try:
        meta = json.loads(root.read_text(META_FILE) or "{}")
    except (ValueError, PermissionError):
        return None
    name = meta.get("netns") if isinstance(meta, dict) else None
    return str(name) if name else None


def observe(root: Root | None = None, *, netns: Sequence[str | None] = (None,),
            want: Want | None = None, skip_denied: bool = False) -> HostState:
    want = want or Want()
    base = root or Root("/")
    if not base.is_live and any(n is not None for n in netns):
        raise UsageError("a snapshot or fixture tree is one namespace: --netns does not apply",
                         hint="collect each namespace with 'hostnet collect --netns NAME'")
    from hostnet.host.netns import entered, netns_inode

    namespaces: list[NetnsState] = []
    skipped: list[tuple[str, str]] = []
    names: dict[int, str] = {}
    if base.is_live:
        from hostnet.host.kernlog import namespace_inodes

        names = namespace_inodes()
    for name in netns:
        if name is None:
            inode = netns_inode() if base.is_live else None
            namespaces.append(observe_namespace(base, None, want, inode=inode,
                                                snapshot_of=_snapshot_netns(base)))
            continue
        try:
            with entered(name):
                created = _created(name)
                namespaces.append(observe_namespace(Root("/"), name, want, inode=netns_inode(),
                                                    created=created))
        except (PermissionDenied, HostnetError) as exc:
            if not skip_denied or isinstance(exc, UsageError):
                raise
            skipped.append((name, exc.message))
    log = None
    if want.log:
        from hostnet.host.kernlog import scan_all

        log = scan_all(base)
    return HostState(kernel=observe_kernel(base), namespaces=tuple(namespaces),
                     live=base.is_live, log=log, namespace_names=names,
                     skipped=tuple(skipped))


def _created(name: str) -> float | None:
    try:
        return os.stat(os.path.join("/run/netns", name)).st_mtime
    except OSError:
        return None
