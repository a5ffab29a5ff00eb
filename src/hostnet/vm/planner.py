"""Pure planner: desired VM links + what one namespace shows -> the steps that make it match.

Nothing is planned for what is already in place, so a second ``up`` (or a watcher pass on a
healthy host) has an empty plan. Routed mode never turns on proxy_arp: each VM address gets
its own proxy neighbour entry on the uplink, so the host answers ARP/NDP for exactly those.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field

from hostnet.errors import InputError
from hostnet.model.vm import IPAddress, LinkSnapshot, Mode, ObservedLink, VmLink
from hostnet.vm.steps import (
    AddAddress,
    AddProxy,
    AddRoute,
    CreateTap,
    SetMaster,
    SetMtu,
    SetSysctl,
    SetUp,
    Step,
)

DEFAULT_MTU = 1500


class VmPlanError(InputError):
    """The configuration cannot be realised on this host (a name taken by another kind of
    link, no address to use as gateway)."""


@dataclass(frozen=True)
class VmPlan:
    netns: str | None
    steps: tuple[Step, ...] = ()
    waiting: tuple[str, ...] = field(default=())  # VMs whose tap is missing (not created)

    @property
    def empty(self) -> bool:
        return not self.steps


def sysctl_ifname(link: str) -> str:
    """An interface name as a sysctl key component (dots in names become ``/``)."""
    return link.replace(".", "/")


def gateway_v4(vm: VmLink, snap: LinkSnapshot) -> ipaddress.IPv4Interface:
    """The IPv4 address (with prefix) the tap carries for this VM."""
    if vm.gateway is not None:
        return vm.gateway
    if vm.uplink is None:
        raise VmPlanError(f"vm {vm.name}: no gateway configured and no uplink to take it from")
    primary = snap.primary_v4(vm.uplink)
    if primary is None:
        raise VmPlanError(
            f"vm {vm.name} ({vm.where}): uplink {vm.uplink} has no IPv4 address to use as the "
            "VM's gateway",
            hint='set gateway = "ADDRESS" in the [[vm]] entry',
        )
    return ipaddress.IPv4Interface(f"{primary}/32")


def _check_tap(vm: VmLink, obs: ObservedLink) -> None:
    if obs.tun is None or not obs.tun.tap:
        what = "a tun device" if obs.tun is not None else f"a {obs.kind or 'physical'} link"
        raise VmPlanError(
            f"vm {vm.name} ({vm.where}): {vm.tap} exists and is {what}, not a tap",
            hint=f"rename the VM's tap or remove {vm.tap} ('ip link del {vm.tap}')",
        )


def plan_vm(vm: VmLink, snap: LinkSnapshot, *, create_taps: bool = True) -> list[Step] | None:
    """Steps for one VM's own link, addresses, routes and proxy entries; None when its tap is
    missing and ``create_taps`` is off (the hypervisor will bring it back)."""
    obs = snap.links.get(vm.tap)
    steps: list[Step] = []
    fresh = obs is None
    where = f"vm {vm.name}" + (f" ({vm.where})" if vm.where else "")
    if obs is None:
        if not create_taps:
            return None
        steps.append(CreateTap(vm.name, f"{where}: tap missing", vm.tap, vm.uid, vm.gid,
                               vm.multi_queue, vm.vnet_hdr))
    else:
        _check_tap(vm, obs)
    mtu_now = DEFAULT_MTU if obs is None else obs.mtu
    if vm.mtu is not None and mtu_now != vm.mtu:
        steps.append(SetMtu(vm.name, f"{where}: mtu", vm.tap, vm.mtu, mtu_now))
    if vm.mode is Mode.BRIDGE:
        master_now = None if obs is None else obs.master
        if master_now != vm.bridge:
            steps.append(SetMaster(vm.name, f"{where}: bridge", vm.tap, vm.bridge, master_now))
    if obs is None or not obs.up:
        steps.append(SetUp(vm.name, f"{where}: tap down", vm.tap))
    have = set() if fresh else {(a.address, a.prefixlen) for a in snap.addresses_on(vm.tap)}
    wanted: list[ipaddress.IPv4Interface | ipaddress.IPv6Interface] = []
    if vm.mode is Mode.ROUTED:
        if vm.v4:
            wanted.append(gateway_v4(vm, snap))
        if vm.v6:
            wanted.append(vm.gateway6)
    elif vm.mode is Mode.NAT and vm.gateway is not None:
        wanted.append(vm.gateway)
    for iface in wanted:
        if (iface.ip, iface.network.prefixlen) not in have:
            steps.append(AddAddress(vm.name, f"{where}: gateway address", vm.tap,
                                    str(iface.ip), iface.network.prefixlen))
    if vm.mode is Mode.ROUTED:
        steps.extend(_routes_and_proxies(vm, snap, fresh, where))
    return steps


def _routes_and_proxies(vm: VmLink, snap: LinkSnapshot, fresh: bool, where: str) -> list[Step]:
    steps: list[Step] = []
    for addr in vm.addresses:
        host = 32 if addr.version == 4 else 128
        route = snap.route_to(addr)
        if fresh or route is None or route.link != vm.tap:
            old = route.link if route is not None and route.link != vm.tap else None
            why = "route points elsewhere" if old else "route to the VM"
            steps.append(AddRoute(vm.name, f"{where}: {why}", str(addr), host, vm.tap, old))
    assert vm.uplink is not None
    for addr in vm.addresses:
        if not snap.has_proxy(addr, vm.uplink):
            steps.append(AddProxy(vm.name, f"{where}: answer for the VM on {vm.uplink}",
                                  str(addr), vm.uplink))
    return steps


def _sysctl(steps: list[Step], seen: set[str], key: str, want: int, now: int | None,
            reason: str) -> None:
    if key in seen:
        return
    seen.add(key)
    if now != want:
        steps.append(SetSysctl("", reason, key, want, now))


def plan_host(vms: Sequence[VmLink], snap: LinkSnapshot) -> list[Step]:
    """Shared settings: forwarding, and per uplink proxy_ndp (and accept_ra=2 so the uplink
    keeps its router advertisements once IPv6 forwarding is on). Never proxy_arp."""
    steps: list[Step] = []
    seen: set[str] = set()
    for vm in vms:
        routes_v4 = vm.mode is Mode.NAT or (vm.mode is Mode.ROUTED and bool(vm.v4))
        if routes_v4:
            _sysctl(steps, seen, "net.ipv4.ip_forward", 1, snap.ip_forward,
                    f"vm {vm.name}: the host routes the VM's IPv4 traffic")
        if vm.mode is Mode.ROUTED and vm.v6:
            _sysctl(steps, seen, "net.ipv6.conf.all.forwarding", 1, snap.ipv6_forwarding,
                    f"vm {vm.name}: the host routes the VM's IPv6 traffic")
            assert vm.uplink is not None
            up = snap.links.get(vm.uplink)
            name = sysctl_ifname(vm.uplink)
            _sysctl(steps, seen, f"net.ipv6.conf.{name}.proxy_ndp", 1,
                    None if up is None else up.proxy_ndp,
                    f"vm {vm.name}: {vm.uplink} answers neighbour solicitations for the "
                    "proxy entries")
            if up is not None and up.accept_ra == 1:
                _sysctl(steps, seen, f"net.ipv6.conf.{name}.accept_ra", 2, 1,
                        f"vm {vm.name}: keep router advertisements on {vm.uplink} with "
                        "forwarding on")
    return steps


def host_problems(vms: Sequence[VmLink], snap: LinkSnapshot) -> list[str]:
    """Uplinks and bridges that do not exist, VM addresses the host itself carries."""
    out: list[str] = []
    host: dict[IPAddress, str] = {a.address: a.link for a in snap.addresses}
    taps = {vm.tap for vm in vms}
    for vm in vms:
        at = f"{vm.where}: vm {vm.name}" if vm.where else f"vm {vm.name}"
        for what, name in (("uplink", vm.uplink), ("bridge", vm.bridge)):
            if name and name not in snap.links:
                others = sorted(n for n in snap.links if n not in taps)
                known = ", ".join(others[:12]) + (", ..." if len(others) > 12 else "")
                out.append(f"{at}: {what} {name} does not exist (links here: {known or 'none'})")
        for addr in vm.addresses:
            link = host.get(addr)
            if link is not None and link != vm.tap:
                out.append(f"{at}: address {addr} is already on the host's {link}; a VM "
                           "address must not be one of the host's")
    return out


def plan(vms: Sequence[VmLink], snap: LinkSnapshot, *, create_taps: bool = True) -> VmPlan:
    """The whole plan for these VMs: shared settings first, then each VM in order
    (VmPlanError when an uplink or bridge is missing or a VM address is the host's)."""
    problems = host_problems(vms, snap)
    if problems:
        raise VmPlanError("\n".join(problems), hint="fix the [[vm]] entries or the host")
    steps = plan_host(vms, snap)
    waiting: list[str] = []
    for vm in vms:
        own = plan_vm(vm, snap, create_taps=create_taps)
        if own is None:
            waiting.append(vm.name)
            continue
        steps.extend(own)
    return VmPlan(snap.netns, tuple(steps), tuple(waiting))


def missing_by_vm(plan_: VmPlan) -> dict[str, list[str]]:
    """What each VM lacks, as the plan's step descriptions (for logs and ``vm list``)."""
    out: dict[str, list[str]] = {}
    for step in plan_.steps:
        out.setdefault(step.vm, []).append(step.describe())
    return out


def vm_addresses(vms: Sequence[VmLink]) -> dict[IPAddress, str]:
    return {a: vm.name for vm in vms for a in vm.addresses}
