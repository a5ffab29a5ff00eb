"""VM networking checks for ``hostnet doctor`` (codes VM1xx), pure functions of
:class:`hostnet.model.vm.VmCheckInput` (the configured VMs, /dev/net/tun, one namespace's
links):

* VM101 /dev/net/tun missing or not openable by a VM's owner;
* VM102 a tap owned by another user or group than its [[vm]] entry says;
* VM103 proxy_arp=1 on a routed VM's uplink (or on all);
* VM104 a routed VM's address has no route via its tap (the tap is missing or the route
  points elsewhere);
* VM105 forwarding off while routed or NAT VMs need it.

The doctor runs them through :func:`check_vm` on the namespace's VM part
(``NetnsState.vm``, observed by hostnet.observe.vm when a hostnet.toml with ``[[vm]]`` is
given with ``--config`` or found at /etc/hostnet/hostnet.toml); ``hostnet vm list`` calls
:func:`evaluate` directly.
"""

from __future__ import annotations

from hostnet.checks.base import Subject
from hostnet.findings import Finding, Rule, Severity
from hostnet.model.vm import Mode, VmCheckInput, VmLink

TUN_UNUSABLE = Rule("VM101", "tun-device-unusable", Severity.ERROR,
                    "/dev/net/tun is missing or the VM's owner cannot open it")
TAP_OWNER = Rule("VM102", "tap-owner-mismatch", Severity.ERROR,
                 "A tap is owned by another user or group than its [[vm]] entry says")
UPLINK_PROXY_ARP = Rule("VM103", "uplink-proxy-arp", Severity.WARNING,
                        "proxy_arp=1 on a VM uplink answers ARP for far more than the VMs")
ROUTE_MISSING_TAP = Rule("VM104", "vm-route-missing-tap", Severity.ERROR,
                         "A routed VM address has no route via its tap")
FORWARDING_OFF = Rule("VM105", "vm-forwarding-off", Severity.ERROR,
                      "Forwarding is off although routed or NAT VMs need it")

UDEV_RULE = "contrib/udev/60-hostnet-tun.rules"


def check_tun(data: VmCheckInput) -> list[Finding]:
    tun = data.tun
    if not data.vms:
        return []
    if not tun.exists or not tun.is_tun:
        what = "is missing" if not tun.exists else (
            f"is not the tun character device 10:200 (found {tun.major}:{tun.minor})"
            if tun.is_char else "is not a character device")
        return [TUN_UNUSABLE.finding(
            f"{tun.path} {what}: no tap can be created or opened, so no VM gets a network "
            "link. Load the tun driver (modprobe tun; built in on most kernels) and let "
            "udev create the node",
            path=tun.path, evidence={"exists": tun.exists, "major": tun.major,
                                     "minor": tun.minor},
            suggestion="modprobe tun")]
    out: list[Finding] = []
    for vm in data.vms:
        if tun.openable_by(vm.uid, vm.owner_gids):
            continue
        who = vm.owner_name or str(vm.uid)
        out.append(TUN_UNUSABLE.finding(
            f"{tun.path} is mode {tun.mode:04o} owner {tun.uid}:{tun.gid}: user {who} "
            f"(vm {vm.name}) cannot open it read-write, so QEMU running as {who} cannot "
            f"attach to {vm.tap}. Do not chmod the node (udev resets it at boot and on "
            f"change); install the udev rule {UDEV_RULE}, which gives the group kvm "
            "read-write access, and put the VM user in that group",
            path=tun.path, key=vm.name,
            evidence={"mode": f"{tun.mode:04o}", "uid": tun.uid, "gid": tun.gid,
                      "owner_uid": vm.uid, "owner_gids": list(vm.owner_gids)},
            suggestion=f'KERNEL=="tun", GROUP="kvm", MODE="0660"  # {UDEV_RULE}'))
    return out


def check_tap_owner(data: VmCheckInput) -> list[Finding]:
    out: list[Finding] = []
    for vm in data.vms:
        link = data.links.links.get(vm.tap)
        if link is None or link.tun is None:
            continue
        tun = link.tun
        wrong_user = tun.owner != vm.uid
        wrong_group = vm.gid is not None and tun.group != vm.gid
        if not (wrong_user or wrong_group):
            continue
        have = f"owner {tun.owner if tun.owner is not None else 'none'}" + (
            f" group {tun.group if tun.group is not None else 'none'}")
        want = f"owner {vm.uid}" + (f" group {vm.gid}" if vm.gid is not None else "")
        out.append(TAP_OWNER.finding(
            f"{vm.tap} (vm {vm.name}) has {have}, the config says {want}: QEMU running as "
            f"{vm.owner_name or vm.uid} gets EPERM when it attaches. The tap's owner is set "
            "when it is created; delete it while the VM is stopped and let 'hostnet vm up' "
            "create it again",
            key=vm.tap, path=vm.source or None, line=vm.line,
            evidence={"owner": tun.owner, "group": tun.group, "want_owner": vm.uid,
                      "want_group": vm.gid},
            suggestion=f"ip link del {vm.tap} && hostnet vm up {vm.name}"))
    return out


def _routed(data: VmCheckInput) -> list[VmLink]:
    return [vm for vm in data.vms if vm.mode is Mode.ROUTED]


def check_uplink_proxy_arp(data: VmCheckInput) -> list[Finding]:
    out: list[Finding] = []
    uplinks = sorted({vm.uplink for vm in _routed(data) if vm.uplink})
    if not uplinks:
        return []
    if data.links.all_proxy_arp:
        out.append(UPLINK_PROXY_ARP.finding(
            "net.ipv4.conf.all.proxy_arp is 1: every interface, the VM uplinks "
            f"({', '.join(uplinks)}) included, answers ARP for any address the host routes "
            "elsewhere, so the host can take over neighbours' addresses on the provider's "
            "network. Per-address proxy entries ('hostnet vm up') answer for the VMs only",
            key="net.ipv4.conf.all.proxy_arp", evidence={"value": data.links.all_proxy_arp},
            suggestion="net.ipv4.conf.all.proxy_arp = 0"))
    for up in uplinks:
        link = data.links.links.get(up)
        if link is None or not link.proxy_arp:
            continue
        key = f"net.ipv4.conf.{up.replace('.', '/')}.proxy_arp"
        out.append(UPLINK_PROXY_ARP.finding(
            f"{key} is {link.proxy_arp}: {up} answers ARP for every address routed through "
            "another interface, not only the VMs' addresses (hosts have drawn whole VLANs' "
            "traffic this way). Turn it off; 'hostnet vm up' adds one proxy neighbour entry "
            "per VM address instead",
            key=key, evidence={"value": link.proxy_arp}, suggestion=f"{key} = 0"))
    return out


def check_routes(data: VmCheckInput) -> list[Finding]:
    out: list[Finding] = []
    snap = data.links
    for vm in _routed(data):
        tap_there = vm.tap in snap.links
        for addr in vm.addresses:
            route = snap.route_to(addr)
            if route is not None and route.link == vm.tap:
                continue
            if not tap_there:
                why = f"its tap {vm.tap} does not exist, so the route via it is gone"
            elif route is None:
                why = f"there is no route to it via {vm.tap}"
            else:
                why = f"the route to it leaves by {route.link}, not {vm.tap}"
            out.append(ROUTE_MISSING_TAP.finding(
                f"vm {vm.name}: {addr}: {why}; packets for the VM are not delivered (or go "
                "back out of the uplink). The kernel removes a tap's routes with the tap; "
                "'hostnet vm watch' restores them when the tap comes back",
                key=str(addr), path=vm.source or None, line=vm.line,
                evidence={"tap": vm.tap, "tap_exists": tap_there,
                          "route_via": None if route is None else route.link},
                suggestion=f"hostnet vm up {vm.name}"))
    return out


def check_forwarding(data: VmCheckInput) -> list[Finding]:
    snap = data.links
    need4 = [vm.name for vm in data.vms
             if vm.mode is Mode.NAT or (vm.mode is Mode.ROUTED and vm.v4)]
    need6 = [vm.name for vm in _routed(data) if vm.v6]
    out: list[Finding] = []
    for key, value, names in (("net.ipv4.ip_forward", snap.ip_forward, need4),
                              ("net.ipv6.conf.all.forwarding", snap.ipv6_forwarding, need6)):
        if names and value == 0:
            out.append(FORWARDING_OFF.finding(
                f"{key} is 0 but VM(s) {', '.join(names)} are routed through this host: "
                "their packets reach the host and are dropped instead of forwarded",
                key=key, evidence={key: value, "vms": names}, suggestion=f"{key} = 1"))
    return out


def evaluate(data: VmCheckInput) -> list[Finding]:
    """Every VM check on one namespace."""
    return (check_tun(data) + check_tap_owner(data) + check_uplink_proxy_arp(data)
            + check_routes(data) + check_forwarding(data))


def check_vm(subject: Subject) -> list[Finding]:
    """The doctor's entry: every VM check on the namespace's VM part (none without VMs)."""
    data = subject.ns.vm
    return [] if data is None else evaluate(data)


CHECKS = (check_vm,)
