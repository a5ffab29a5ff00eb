"""Pure planning of ``vm down``: the undo steps for what hostnet recorded as created, limited
to what is still there as hostnet left it (a route someone re-pointed, a sysctl someone
changed since, a link hostnet did not create are left alone).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from hostnet.model.vm import LinkSnapshot
from hostnet.vm.steps import (
    AddRoute,
    CreateTap,
    DelAddress,
    DeleteLink,
    DelProxy,
    DelRoute,
    SetMaster,
    SetMtu,
    SetSysctl,
    SetUp,
    Step,
)


def merge_record(old: Sequence[Step], new: Iterable[Step]) -> list[Step]:
    """Append newly applied steps to a record; a target already recorded keeps its first
    entry (that one knows the value before hostnet)."""
    out = list(old)
    seen = {s.target for s in out}
    for step in new:
        if step.target not in seen:
            seen.add(step.target)
            out.append(step)
    return out


def _still_ours(undo: Step, snap: LinkSnapshot, sysctls: dict[str, int | None]) -> bool:
    if isinstance(undo, DeleteLink):
        link = snap.links.get(undo.link)
        return link is not None and link.tun is not None
    if isinstance(undo, DelAddress):
        want = ipaddress.ip_interface(f"{undo.address}/{undo.prefixlen}")
        return any(a.interface == want for a in snap.addresses_on(undo.link))
    if isinstance(undo, DelRoute):
        route = snap.route_to(ipaddress.ip_address(undo.dst))
        return route is not None and route.link == undo.link
    if isinstance(undo, AddRoute):  # put back a route hostnet had re-pointed
        route = snap.route_to(ipaddress.ip_address(undo.dst))
        return (undo.link in snap.links and route is not None
                and route.link == undo.old_link)
    if isinstance(undo, DelProxy):
        return snap.has_proxy(ipaddress.ip_address(undo.address), undo.link)
    if isinstance(undo, SetMtu):
        link = snap.links.get(undo.link)
        return link is not None and link.mtu == undo.old
    if isinstance(undo, SetUp):
        link = snap.links.get(undo.link)
        return link is not None and link.up != undo.up
    if isinstance(undo, SetMaster):
        link = snap.links.get(undo.link)
        return link is not None and link.master == undo.old
    if isinstance(undo, SetSysctl):
        return sysctls.get(undo.key) == undo.old
    return False


def plan_down(record: Sequence[Step], snap: LinkSnapshot,
              sysctls: dict[str, int | None] | None = None) -> list[Step]:
    """Undo steps, newest first. When hostnet created the tap, deleting it takes its
    addresses and routes along, so only the steps outside the tap are undone one by one."""
    sysctls = sysctls or {}
    created = {s.tap for s in record if isinstance(s, CreateTap)}
    out: list[Step] = []
    for step in reversed(record):
        if isinstance(step, CreateTap):
            continue  # deleted last, below
        undo = step.undo()
        if undo is None:
            continue
        link = getattr(undo, "link", None)
        on_created_tap = link in created and not isinstance(undo, DelProxy | AddRoute)
        if on_created_tap or not _still_ours(undo, snap, sysctls):
            continue
        out.append(undo)
    for step in reversed(record):
        if isinstance(step, CreateTap):
            undo = step.undo()
            if undo is not None and _still_ours(undo, snap, sysctls):
                out.append(undo)
    return out
