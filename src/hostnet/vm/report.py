"""What ``hostnet vm list`` shows for each VM link, built from the config and a snapshot
(pure), plus its text rendering."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from hostnet.model.vm import LinkSnapshot, Mode, VmLink
from hostnet.vm.planner import VmPlanError, host_problems, plan_host, plan_vm


@dataclass(frozen=True)
class VmStatus:
    vm: VmLink
    exists: bool
    is_tap: bool = False
    owner: int | None = None
    group: int | None = None
    flags: tuple[str, ...] = ()
    up: bool = False
    carrier: bool = False
    attached: int = 0
    mtu: int | None = None
    master: str | None = None
    addresses: tuple[str, ...] = ()
    routes: tuple[str, ...] = ()  # "ADDR via LINK" / "ADDR: no route"
    proxies: tuple[str, ...] = ()  # "ADDR on UPLINK" / "ADDR: no proxy entry on UPLINK"
    missing: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.missing

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.vm.name, "tap": self.vm.tap, "mode": self.vm.mode.value,
            "exists": self.exists, "is_tap": self.is_tap,
            "owner": self.owner, "group": self.group,
            "want_owner": self.vm.uid, "want_group": self.vm.gid,
            "flags": list(self.flags), "up": self.up, "carrier": self.carrier,
            "attached_queues": self.attached, "mtu": self.mtu, "master": self.master,
            "addresses": list(self.addresses), "routes": list(self.routes),
            "proxies": list(self.proxies), "missing": list(self.missing), "ok": self.ok,
        }


def status(vms: Sequence[VmLink], snap: LinkSnapshot) -> list[VmStatus]:
    problems = host_problems(vms, snap)
    shared = plan_host(vms, snap)
    out: list[VmStatus] = []
    for vm in vms:
        missing: list[str] = [p for p in problems if f"vm {vm.name}" in p]
        try:
            steps = plan_vm(vm, snap) or []
            missing += [s.describe() for s in steps]
        except VmPlanError as exc:
            missing.append(exc.message)
        missing += [s.describe() for s in shared
                    if s.reason.startswith(f"vm {vm.name}:")]
        link = snap.links.get(vm.tap)
        routes, proxies = [], []
        if vm.mode is Mode.ROUTED:
            for addr in vm.addresses:
                r = snap.route_to(addr)
                routes.append(f"{addr} via {r.link}" if r else f"{addr}: no route")
                up = vm.uplink or "?"
                proxies.append(f"{addr} on {up}" if snap.has_proxy(addr, up)
                               else f"{addr}: no proxy entry on {up}")
        if link is None:
            out.append(VmStatus(vm, False, routes=tuple(routes), proxies=tuple(proxies),
                                missing=tuple(missing)))
            continue
        tun = link.tun
        flags: list[str] = []
        if tun is not None:
            flags = ["tap" if tun.tap else "tun"] + [n for n, on in (
                ("pi", tun.pi), ("vnet_hdr", tun.vnet_hdr), ("multi_queue", tun.multi_queue),
                ("persist", tun.persist)) if on]
        out.append(VmStatus(
            vm, True, is_tap=bool(tun and tun.tap), owner=tun.owner if tun else None,
            group=tun.group if tun else None, flags=tuple(flags), up=link.up,
            carrier=link.carrier, attached=tun.queues if tun else 0, mtu=link.mtu,
            master=link.master,
            addresses=tuple(f"{a.address}/{a.prefixlen}" for a in snap.addresses_on(vm.tap)),
            routes=tuple(routes), proxies=tuple(proxies), missing=tuple(missing)))
    return out


def render_text(rows: Sequence[VmStatus]) -> str:
    lines: list[str] = []
    for r in rows:
        vm = r.vm
        state = "ok" if r.ok else "incomplete"
        lines.append(f"{vm.name}  tap {vm.tap}  {vm.mode.value}  {state}")
        if not r.exists:
            lines.append("  link: missing")
        else:
            owner = "none" if r.owner is None else str(r.owner)
            group = "none" if r.group is None else str(r.group)
            want = f" (config {vm.uid}" + (f"/{vm.gid}" if vm.gid is not None else "") + ")"
            lines.append(f"  link: {'up' if r.up else 'down'}, carrier "
                         f"{'yes' if r.carrier else 'no'}, mtu {r.mtu}, "
                         f"{r.attached} queue(s) attached"
                         + (f", bridge {r.master}" if r.master else ""))
            lines.append(f"  owner {owner} group {group}{want}; flags "
                         f"{','.join(r.flags) or 'not a tun/tap'}")
            lines.append(f"  addresses: {', '.join(r.addresses) or 'none'}")
        if r.routes:
            lines.append(f"  routes: {'; '.join(r.routes)}")
            lines.append(f"  proxy: {'; '.join(r.proxies)}")
        for m in r.missing:
            lines.append(f"  missing: {m}")
    return "\n".join(lines) if lines else "no [[vm]] entries"
