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
from collections.abc import Sequence

from hostnet.errors import HostnetError, PermissionDenied, UsageError
from hostnet.host.root import META_FILE, Root
from hostnet.model.host import HostState, KernelInfo, NetnsState
from hostnet.observe.netns import Want, observe_namespace

__all__ = ["Want", "observe", "observe_kernel"]


def observe_kernel(root: Root) -> KernelInfo:
    return KernelInfo(release=root.osrelease,
                      version=root.kernel_version if root.osrelease else (6, 0, 0),
                      mem_total=root.mem_total, cpus=root.cpu_count)


def _snapshot_netns(root: Root) -> tuple[str | None, int | None]:
    """The namespace a snapshot was taken in (name, inode), from its meta.json."""
    if root.is_live:
        return None, None
    try:
        meta = json.loads(root.read_text(META_FILE) or "{}")
    except (ValueError, PermissionError):
        return None, None
    if not isinstance(meta, dict) or not meta.get("netns"):
        return None, None
    inode = meta.get("netns_inode")
    return str(meta["netns"]), inode if isinstance(inode, int) else None


def _snapshot_names(root: Root) -> dict[int, str]:
    """Named namespaces by inode when the snapshot was taken (to name log lines)."""
    try:
        meta = json.loads(root.read_text(META_FILE) or "{}")
    except (ValueError, PermissionError):
        return {}
    raw = meta.get("namespace_names") if isinstance(meta, dict) else None
    if not isinstance(raw, dict):
        return {}
    return {int(k): str(v) for k, v in raw.items() if str(k).isdigit()}


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
    if base.is_live:
        from hostnet.host.kernlog import namespace_inodes

        names = namespace_inodes()
    else:
        names = _snapshot_names(base)
    for name in netns:
        if name is None:
            snapshot_of, inode = _snapshot_netns(base)
            if base.is_live:
                inode = netns_inode()
            namespaces.append(observe_namespace(base, None, want, inode=inode,
                                                snapshot_of=snapshot_of))
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
