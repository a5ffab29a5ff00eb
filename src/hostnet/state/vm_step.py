"""The ``[[vm]]`` links as steps of ``hostnet apply``: journaled, read back, rolled back.

:func:`add_vm_steps` (called by :func:`hostnet.state.prepare.prepare`) runs the pure VM
planner (:mod:`hostnet.vm.planner`) on what the namespace shows and appends one
:class:`VmLinkStep` per planned link change (create tap, mtu, bridge port, up, gateway
address, /32 or /128 route, proxy neighbour entry). The planner's shared sysctls
(ip_forward, IPv6 forwarding, proxy_ndp, accept_ra) become ordinary
:class:`~hostnet.state.steps.SetSysctl` steps, so they are journaled and undone like every
other value (ip_forward with the keys the kernel rewrites along with it).

A transaction runs inside the target namespace (``open_root(None, netns)``, and the same for
``rollback`` and the armed revert), so every read and write here is in the namespace the
process is in; the record names the namespace for people reading the journal.

Journal record (``record``): the planner's step (``vm.steps`` ``to_dict``) and what the
host showed before, read at journal time (``before``). ``undo`` is three-way on that and a
fresh read: still as the step left it, undone (a tap hostnet created is deleted, an address,
route or proxy entry hostnet added is removed, a changed mtu, bridge or route device is put
back); already as before, nothing; something else (someone re-pointed the route, recreated
the tap with another owner), drift, reported and left alone unless ``force``.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from hostnet.errors import PlanError
from hostnet.state.hostio import HostIO
from hostnet.state.steps import Outcome, SetSysctl, Step, Undone, register
from hostnet.vm import steps as vs

if TYPE_CHECKING:
    from pathlib import Path

    from hostnet.config.load import Loaded
    from hostnet.model.vm import LinkSnapshot
    from hostnet.state.plan import Plan

#: Keys whose write makes the kernel rewrite a subtree (journaled along, see SetSysctl).
_REWRITES = {"net.ipv4.ip_forward": "net.ipv4.conf",
             "net.ipv6.conf.all.forwarding": "net.ipv6.conf"}


#: The last snapshot read, per namespace (inode), until this process changes a link: the
#: journal records every step before the first change and the read-back follows the last, so
#: each phase reads the namespace once instead of once per step.
_CACHE: dict[int, LinkSnapshot] = {}


def _netns_inode() -> int:
    return os.stat("/proc/thread-self/ns/net").st_ino


#: What rollback changed since the cached snapshot was read: the targets it wrote (a
#: route, a proxy entry, an address, a link's mtu...) and the links it deleted.
_DIRTY: set[tuple[str, ...]] = set()
_GONE: set[str] = set()


def _links_of(step: vs.Step) -> set[str]:
    fields = ("tap", "link", "master", "old", "old_link")
    return {str(v) for f in fields if isinstance(v := getattr(step, f, None), str)}


def _snapshot(step: vs.Step | None = None) -> LinkSnapshot:
    """The namespace's links: cached, unless rollback changed ``step``'s target since."""
    from hostnet.observe.links import read_snapshot

    inode = _netns_inode()
    snap = _CACHE.get(inode)
    if snap is None or (step is not None and (
            step.target in _DIRTY or _links_of(step) & _GONE)):
        _DIRTY.clear()
        _GONE.clear()
        snap = _CACHE[inode] = read_snapshot(None)
    return snap


def _write(step: vs.Step, *, undoing: bool = False) -> None:
    """Run one planner step in the namespace we are in. Apply forgets the cached snapshot
    (the read-back must see the kernel); rollback, which judges each record on its own
    target, only marks what it touched (a record is judged on a fresh read when that is
    its target or a link it names was deleted)."""
    from hostnet.observe.links import route_socket
    from hostnet.state.links import LinkWriter

    try:
        with route_socket(None) as ipr:
            LinkWriter(ipr, None).run(step)
    finally:
        if undoing and _CACHE:
            _DIRTY.add(step.target)
            if isinstance(step, vs.DeleteLink):
                _GONE.add(step.link)
        else:
            _CACHE.clear()


def _state(step: vs.Step, snap: LinkSnapshot) -> dict[str, Any]:
    """What the host shows for the thing ``step`` touches (JSON-friendly)."""
    if isinstance(step, vs.CreateTap):
        link = snap.links.get(step.tap)
        if link is None:
            return {"exists": False}
        tun = link.tun
        return {"exists": True, "tap": bool(tun and tun.tap),
                "owner": None if tun is None else tun.owner,
                "group": None if tun is None else tun.group}
    if isinstance(step, vs.SetMtu | vs.SetMaster | vs.SetUp):
        link = snap.links.get(step.link)
        if link is None:
            return {"exists": False}
        return {"exists": True, "mtu": link.mtu, "master": link.master, "up": link.up}
    if isinstance(step, vs.AddAddress):
        want = ipaddress.ip_interface(f"{step.address}/{step.prefixlen}")
        return {"present": any(a.interface == want for a in snap.addresses_on(step.link))}
    if isinstance(step, vs.AddRoute):
        route = snap.route_to(ipaddress.ip_address(step.dst))
        return {"via": None if route is None else (route.link or "?")}
    if isinstance(step, vs.AddProxy):
        return {"present": snap.has_proxy(ipaddress.ip_address(step.address), step.link)}
    raise TypeError(f"not a VM link step: {step!r}")


def _left(step: vs.Step, now: dict[str, Any]) -> bool:
    """True when the host shows what ``step`` leaves behind."""
    if isinstance(step, vs.CreateTap):
        return bool(now.get("exists") and now.get("tap") and now.get("owner") == step.uid
                    and (step.gid is None or now.get("group") == step.gid))
    if isinstance(step, vs.SetMtu):
        return bool(now.get("exists")) and now.get("mtu") == step.mtu
    if isinstance(step, vs.SetMaster):
        return bool(now.get("exists")) and now.get("master") == step.master
    if isinstance(step, vs.SetUp):
        return bool(now.get("exists")) and now.get("up") == step.up
    if isinstance(step, vs.AddAddress | vs.AddProxy):
        return bool(now.get("present"))
    if isinstance(step, vs.AddRoute):
        return now.get("via") == step.link
    return False


def _as_before(step: vs.Step, before: dict[str, Any], now: dict[str, Any]) -> bool:
    """True when the host shows what was there before ``step`` (nothing to undo)."""
    if isinstance(step, vs.CreateTap):
        return not now.get("exists")
    if isinstance(step, vs.SetMtu | vs.SetMaster | vs.SetUp):
        if not now.get("exists"):
            return True  # the link is gone: nothing of this step is left to undo
        if not before.get("exists", True):  # on a tap this apply creates: never ran
            return not _left(step, now)
        field = {vs.SetMtu: "mtu", vs.SetMaster: "master", vs.SetUp: "up"}[type(step)]
        return bool(now.get(field) == before.get(field))
    if isinstance(step, vs.AddAddress | vs.AddProxy):
        return not now.get("present")
    if isinstance(step, vs.AddRoute):
        return now.get("via") == before.get("via")
    return False


def _undo_step(step: vs.Step, now: dict[str, Any]) -> vs.Step | None:
    """The planner step that puts back the old state from ``now`` (forced: from drift)."""
    if isinstance(step, vs.AddRoute) and now.get("via") not in (None, step.link, "?"):
        if step.old_link:  # forced: point it back where it was
            return vs.AddRoute(step.vm, f"undo: {step.reason}", step.dst, step.prefixlen,
                               step.old_link, str(now["via"]))
        return vs.DelRoute(step.vm, f"undo: {step.reason}", step.dst, step.prefixlen,
                           str(now["via"]))
    return step.undo()


@register
@dataclass(frozen=True, slots=True)
class VmLinkStep(Step):
    """One link change of a ``[[vm]]`` entry, run through :mod:`hostnet.state.links`."""

    kind: ClassVar[str] = "vm-link"
    order: ClassVar[int] = 70
    netns: str | None
    step: vs.Step
    reason: str
    effect: str = "live"

    def change(self) -> dict[str, Any]:
        return {"kind": self.kind, "netns": self.netns, "vm": self.step.vm,
                "step": self.step.to_dict(), "text": self.step.describe(),
                "reason": self.reason, "effect": self.effect}

    def text(self) -> str:
        return f"{self.label(self.step)}: {self.step.describe()}"

    @classmethod
    def label(cls, step: vs.Step) -> str:
        return f"vm {step.vm or 'host'}"

    def record(self, io: HostIO) -> dict[str, Any]:
        return {"kind": self.kind, "netns": self.netns, "step": self.step.to_dict(),
                "text": self.text(), "before": _state(self.step, _snapshot())}

    def run(self, io: HostIO) -> None:
        if not io.live:
            raise PlanError(f"{self.text()}: links are live state; --root alone writes files")
        _write(self.step)

    def verify(self, io: HostIO) -> str | None:
        now = _state(self.step, _snapshot())
        if _left(self.step, now):
            return None
        return f"{self.text()}: the kernel shows {now}"

    @classmethod
    def undo(cls, record: dict[str, Any], io: HostIO, force: bool) -> list[Undone]:
        try:
            step = vs.step_from_dict(dict(record["step"]))
        except (KeyError, TypeError, ValueError) as exc:
            return [Undone(Outcome.DRIFT, str(record.get("text")),
                           f"unreadable journal record ({exc}): left alone")]
        text = f"{cls.label(step)}: {step.describe()}"
        before: dict[str, Any] = dict(record.get("before") or {})
        now = _state(step, _snapshot(step))
        if _as_before(step, before, now):
            return [Undone(Outcome.UNCHANGED, text, "already as before")]
        left = _left(step, now)
        if not left and not force:
            return [Undone(Outcome.DRIFT, text, f"changed since (the kernel shows {now}): "
                           "left alone (--force puts the old state back)")]
        undo = _undo_step(step, now)
        if undo is None:
            return [Undone(Outcome.UNCHANGED, text, "nothing to undo")]
        _write(undo, undoing=True)
        return [Undone(Outcome.RESTORED if left else Outcome.FORCED, text, undo.describe())]


# -- planning ----------------------------------------------------------------------------


def live_sysctl(netns: str | None, key: str, old: str | None, new: str,
                reason: str) -> SetSysctl:
    """A live sysctl step a VM or the NAT table needs: forwarding keys go first and journal
    the subtree the kernel rewrites along with them."""
    prefix = _REWRITES.get(key)
    return SetSysctl(netns, key, old, new, reason, "live",
                     side_prefixes=(prefix,) if prefix else (), first=prefix is not None)


def _sysctl(netns: str | None, step: vs.SetSysctl) -> SetSysctl:
    return live_sysctl(netns, step.key, None if step.old is None else str(step.old),
                       str(step.new), step.reason)


def vm_steps(vms: list[Any], snap: LinkSnapshot, netns: str | None,
             planned: dict[str, str]) -> tuple[list[Step], list[Step]]:
    """(sysctl steps, link steps) for ``vms`` on ``snap`` (pure). ``planned``: key -> value of
    the sysctls the rest of the plan already writes (a VM sysctl it writes too is left to
    it; one it sets otherwise is a conflict)."""
    from hostnet.vm.planner import plan

    vplan = plan(vms, snap)
    sysctls: list[Step] = []
    links: list[Step] = []
    for step in vplan.steps:
        if isinstance(step, vs.SetSysctl):
            other = planned.get(step.key)
            if other is None:
                sysctls.append(_sysctl(netns, step))
            elif other.strip() != str(step.new):
                raise PlanError(f"{step.key}: the config sets {other} but {step.reason} "
                                f"(needs {step.new})",
                                hint="drop the sysctl from hostnet.toml or change the [[vm]]")
            continue
        links.append(VmLinkStep(netns, step, step.reason))
    return sysctls, links


def add_vm_steps(plan: Plan, loaded: Loaded, config: Path, *, netns: str | None,
                 live: bool) -> Plan:
    """``plan`` with the steps of the config's ``[[vm]]`` entries: their sysctls first (they
    make the kernel rewrite forwarding everywhere), their links last. Without live values
    (``--root`` alone) the VMs are left out with a warning."""
    from dataclasses import replace

    if not loaded.config.vm:
        return plan
    if not live:
        return replace(plan, warnings=(*plan.warnings, (
            f"[[vm]]: {len(loaded.config.vm)} VM(s) left out: their links are live kernel "
            "state and --root alone writes files only (apply on the host, or add --netns)")))
    from hostnet.config.vm import load_vms

    vms = load_vms(config)
    planned = {s.key: s.new for s in plan.steps if isinstance(s, SetSysctl)}
    sysctls, links = vm_steps(vms, _snapshot(), netns, planned)
    _CACHE.clear()  # the journal reads afresh (apply may wait for a yes in between)
    if not sysctls and not links:
        return plan
    return replace(plan, steps=(*sysctls, *plan.steps, *links))
