"""The only code that turns host reads into a HostState.

    from hostnet.observe.host import observe, Want
    state = observe(Root("/"), netns=[None, "blue"], want=Want(composition=False))

``netns`` names namespaces to enter (None: the one we run in); a snapshot or fixture tree is
one namespace. Expensive parts are asked for in ``want``. Namespaces that cannot be entered
are listed in ``HostState.skipped`` when ``skip_denied`` is set, otherwise the error is
raised.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

from hostnet.errors import HostnetError, PermissionDenied, UsageError
from hostnet.host.root import Root
from hostnet.model.host import HostState, NetnsState
from hostnet.observe.kernel import observe_kernel
from hostnet.observe.netns import Want, observe_namespace

if TYPE_CHECKING:
    from hostnet.host.snapshot import SnapshotMeta

__all__ = ["Want", "observe", "observe_kernel"]


#: Files observe reads quietly when it can (they are root-only on most hosts).
ROOT_ONLY = (
    ("proc/slabinfo", "conntrack sizing assumes a typical entry size"),
    ("sys/module/nf_conntrack/parameters/hashsize", "the bucket count comes from the sysctl"),
)


def unread_sources(root: Root, meta: SnapshotMeta | None, logs: bool) -> list[str]:
    """What observe could not see and reports nowhere else: what collect could not read (a
    snapshot), root-only files, and kernel log sources (when the log is scanned)."""
    out = [f"snapshot: {item}" for item in meta.skipped] if meta is not None else []
    for rel, used in ROOT_ONLY:
        path = root.file(rel)
        if meta is None and path.exists() and not os.access(path, os.R_OK):
            out.append(f"/{rel} (permission denied: {used})")
    if logs:
        from hostnet.host.kernlog import unreadable_sources

        out.extend(unreadable_sources(root, snapshot_uid=meta.uid if meta else None))
    return out


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
    meta = None
    if not base.is_live:
        from hostnet.host.snapshot import read_meta

        meta = read_meta(base)
    if base.is_live:
        from hostnet.host.kernlog import namespace_inodes

        names = namespace_inodes()
    else:
        names = dict(meta.namespace_names) if meta is not None else {}
    for name in netns:
        if name is None:
            snapshot_of = meta.netns if meta is not None else None
            inode = netns_inode() if base.is_live else (meta.netns_inode if meta else None)
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
        from hostnet.observe.kernlog import scan_all

        log = scan_all(base)
    return HostState(kernel=observe_kernel(base), namespaces=tuple(namespaces),
                     live=base.is_live, log=log, namespace_names=names,
                     skipped=tuple(skipped),
                     unreadable=tuple(unread_sources(base, meta, want.log)))


def _created(name: str) -> float | None:
    try:
        return os.stat(os.path.join("/run/netns", name)).st_mtime
    except OSError:
        return None
