"""The pure VM planner: every step from nothing, nothing when all is in place, only the
missing part otherwise, never proxy_arp; undo planning; steps round-trip through JSON."""

from __future__ import annotations

import ipaddress
from dataclasses import replace

import pytest

from hostnet.model.vm import (
    LinkSnapshot,
    Mode,
    ObservedAddress,
    ObservedLink,
    ObservedRoute,
    ProxyEntry,
    TunInfo,
    VmLink,
)
from hostnet.state.links import tun_ioctls
from hostnet.vm.planner import VmPlanError, host_problems, plan
from hostnet.vm.qemu import qemu_args
from hostnet.vm.steps import (
    AddAddress,
    AddProxy,
    AddRoute,
    CreateTap,
    DelAddress,
    DeleteLink,
    DelProxy,
    SetSysctl,
    SetUp,
    step_from_dict,
)
from hostnet.vm.undo import merge_record, plan_down

ip = ipaddress.ip_address
VM = VmLink(name="web1", tap="tapweb1", uid=107, gid=110, mode=Mode.ROUTED, uplink="eth0",
            addresses=(ip("203.0.113.11"), ip("2001:db8::11")))
TUN = TunInfo(tap=True, owner=107, group=110, pi=False, vnet_hdr=True, multi_queue=False,
              persist=True)
ETH0 = ObservedLink("eth0", 2, "", True, True, 1500, proxy_arp=0, proxy_ndp=0, accept_ra=1)


def bare() -> LinkSnapshot:
    return LinkSnapshot("ns", {"eth0": ETH0},
                        (ObservedAddress("eth0", ip("203.0.113.2"), 24),), (), (), 0, 0, 0)


def complete() -> LinkSnapshot:
    tap = ObservedLink("tapweb1", 5, "tun", True, False, 1500, tun=TUN)
    eth0 = replace(ETH0, proxy_ndp=1, accept_ra=2)
    return LinkSnapshot(
        "ns", {"eth0": eth0, "tapweb1": tap},
        (ObservedAddress("eth0", ip("203.0.113.2"), 24),
         ObservedAddress("tapweb1", ip("203.0.113.2"), 32),
         ObservedAddress("tapweb1", ip("fe80::1"), 64)),
        (ObservedRoute(ip("203.0.113.11"), 32, "tapweb1"),
         ObservedRoute(ip("2001:db8::11"), 128, "tapweb1")),
        (ProxyEntry(ip("203.0.113.11"), "eth0"), ProxyEntry(ip("2001:db8::11"), "eth0")),
        1, 1, 0)


def test_everything_from_nothing() -> None:
    steps = [s.describe() for s in plan([VM], bare()).steps]
    assert steps == [
        "sysctl net.ipv4.ip_forward = 1 (was 0)",
        "sysctl net.ipv6.conf.all.forwarding = 1 (was 0)",
        "sysctl net.ipv6.conf.eth0.proxy_ndp = 1 (was 0)",
        "sysctl net.ipv6.conf.eth0.accept_ra = 2 (was 1)",
        "create tap tapweb1 owner 107 group 110 flags tap,no_pi,vnet_hdr, persistent",
        "set tapweb1 up",
        "add address 203.0.113.2/32 on tapweb1",
        "add address fe80::1/64 on tapweb1",
        "route 203.0.113.11/32 dev tapweb1",
        "route 2001:db8::11/128 dev tapweb1",
        "proxy neighbour 203.0.113.11 on eth0",
        "proxy neighbour 2001:db8::11 on eth0",
    ]


def test_nothing_to_do_when_in_place() -> None:
    assert plan([VM], complete()).empty


def test_never_proxy_arp() -> None:
    for snap in (bare(), complete()):
        for step in plan([VM], snap).steps:
            assert not (isinstance(step, SetSysctl) and "proxy_arp" in step.key)


def test_only_the_missing_route_and_proxy() -> None:
    snap = complete()
    snap = replace(snap, routes=snap.routes[1:], proxies=snap.proxies[:1])
    assert [s.describe() for s in plan([VM], snap).steps] == [
        "route 203.0.113.11/32 dev tapweb1", "proxy neighbour 2001:db8::11 on eth0"]


def test_route_pointing_elsewhere_is_replaced_and_undo_restores_it() -> None:
    snap = complete()
    snap = replace(snap, routes=(ObservedRoute(ip("203.0.113.11"), 32, "eth0"),
                                 snap.routes[1]))
    (step,) = plan([VM], snap).steps
    assert isinstance(step, AddRoute) and step.old_link == "eth0"
    undo = step.undo()
    assert isinstance(undo, AddRoute) and (undo.link, undo.old_link) == ("eth0", "tapweb1")


def test_gateway_from_config_and_ipv4_only() -> None:
    vm = replace(VM, addresses=(ip("203.0.113.11"),),
                 gateway=ipaddress.IPv4Interface("203.0.113.1/32"))
    steps = plan([vm], bare()).steps
    assert [s.describe() for s in steps if isinstance(s, AddAddress)] == [
        "add address 203.0.113.1/32 on tapweb1"]
    assert not any(isinstance(s, SetSysctl) and "ipv6" in s.key for s in steps)


def test_no_gateway_available() -> None:
    snap = replace(bare(), addresses=())
    with pytest.raises(VmPlanError, match="uplink eth0 has no IPv4 address"):
        plan([VM], snap)


def test_tap_missing_waits_without_create() -> None:
    snap = complete()
    links = dict(snap.links)
    del links["tapweb1"]
    snap = replace(snap, links=links, routes=(), addresses=snap.addresses[:1])
    result = plan([VM], snap, create_taps=False)
    assert result.waiting == ("web1",) and result.empty


def test_recreated_tap_gets_addresses_routes_up() -> None:
    snap = complete()
    tap = ObservedLink("tapweb1", 9, "tun", False, False, 1500, tun=TUN)
    snap = replace(snap, links={**snap.links, "tapweb1": tap}, routes=(),
                   addresses=snap.addresses[:1])
    kinds = [type(s) for s in plan([VM], snap, create_taps=False).steps]
    assert kinds == [SetUp, AddAddress, AddAddress, AddRoute, AddRoute]


def test_name_taken_by_other_link() -> None:
    snap = complete()
    snap = replace(snap, links={**snap.links, "tapweb1": ObservedLink("tapweb1", 5, "veth",
                                                                      True, True, 1500)})
    with pytest.raises(VmPlanError, match="tapweb1 exists and is a veth link, not a tap"):
        plan([VM], snap)


def test_host_problems() -> None:
    vm = replace(VM, uplink="eth9", addresses=(ip("203.0.113.2"),))
    problems = host_problems([vm], bare())
    assert problems == [
        "vm web1: uplink eth9 does not exist (links here: eth0)",
        "vm web1: address 203.0.113.2 is already on the host's eth0; a VM address must not "
        "be one of the host's",
    ]
    with pytest.raises(VmPlanError):
        plan([vm], bare())


def test_nat_and_bridge_modes() -> None:
    nat = VmLink(name="n", tap="tapn", uid=0, gid=None, mode=Mode.NAT,
                 gateway=ipaddress.IPv4Interface("198.51.100.1/24"), mtu=9000)
    br = VmLink(name="b", tap="tapb", uid=0, gid=None, mode=Mode.BRIDGE, bridge="br0")
    snap = replace(bare(), links={**bare().links,
                                  "br0": ObservedLink("br0", 3, "bridge", True, True, 1500)})
    steps = [s.describe() for s in plan([nat, br], snap).steps]
    assert steps == [
        "sysctl net.ipv4.ip_forward = 1 (was 0)",
        "create tap tapn owner 0 flags tap,no_pi,vnet_hdr, persistent",
        "set tapn mtu 9000 (was 1500)", "set tapn up",
        "add address 198.51.100.1/24 on tapn",
        "create tap tapb owner 0 flags tap,no_pi,vnet_hdr, persistent",
        "attach tapb to bridge br0", "set tapb up",
    ]


def test_steps_round_trip_through_json() -> None:
    for step in plan([VM], bare()).steps:
        assert step_from_dict(step.to_dict()) == step
    with pytest.raises(ValueError, match="unknown step kind"):
        step_from_dict({"kind": "format-disk"})


def test_down_undoes_only_what_is_still_ours() -> None:
    record = list(plan([VM], bare()).steps)
    host = [s for s in record if s.vm == ""]
    own = [s for s in record if s.vm == "web1"]
    snap = complete()
    snap = replace(snap, proxies=snap.proxies[:1])  # someone removed one entry already
    undo = plan_down(own, snap)
    assert [type(s) for s in undo] == [DelProxy, DeleteLink]
    sysctls = {"net.ipv4.ip_forward": 1, "net.ipv6.conf.all.forwarding": 0,
               "net.ipv6.conf.eth0.proxy_ndp": 1, "net.ipv6.conf.eth0.accept_ra": 2}
    keys = [s.key for s in plan_down(host, snap, sysctls) if isinstance(s, SetSysctl)]
    # all.forwarding was changed by someone else since: left alone
    assert keys == ["net.ipv6.conf.eth0.accept_ra", "net.ipv6.conf.eth0.proxy_ndp",
                    "net.ipv4.ip_forward"]


def test_down_on_a_tap_hostnet_did_not_create() -> None:
    snap = complete()
    record = [AddAddress("web1", "r", "tapweb1", "203.0.113.2", 32),
              AddProxy("web1", "r", "203.0.113.11", "eth0")]
    assert [type(s) for s in plan_down(record, snap)] == [DelProxy, DelAddress]


def test_merge_record_keeps_first_of_a_target() -> None:
    a = SetSysctl("", "r", "net.ipv4.ip_forward", 1, 0)
    b = SetSysctl("", "r", "net.ipv4.ip_forward", 1, 1)
    c = CreateTap("web1", "r", "tapweb1", 1, None, False, True)
    assert merge_record([a], [b, c]) == [a, c]


def test_qemu_args() -> None:
    assert qemu_args(VM) == [
        "-netdev", "tap,id=net-web1,ifname=tapweb1,script=no,downscript=no,vhost=on",
        "-device", "virtio-net-pci,netdev=net-web1,mac=52:54:00:65:9a:7f"]
    mq = replace(VM, multi_queue=True, queues=4, vhost=False, mac="52:54:00:00:00:01")
    assert qemu_args(mq) == [
        "-netdev", "tap,id=net-web1,ifname=tapweb1,script=no,downscript=no,queues=4",
        "-device", "virtio-net-pci,netdev=net-web1,mac=52:54:00:00:00:01,mq=on,vectors=10"]


@pytest.mark.parametrize(("machine", "setiff", "setgroup"), [
    ("x86_64", 0x400454CA, 0x400454CE), ("aarch64", 0x400454CA, 0x400454CE),
    ("riscv64", 0x400454CA, 0x400454CE), ("s390x", 0x400454CA, 0x400454CE),
    ("ppc64le", 0x800454CA, 0x800454CE), ("mips64", 0x800454CA, 0x800454CE),
    ("sparc64", 0x800454CA, 0x800454CE),
])
def test_tun_ioctl_numbers(machine: str, setiff: int, setgroup: int) -> None:
    codes = tun_ioctls(machine)
    assert (codes["TUNSETIFF"], codes["TUNSETGROUP"]) == (setiff, setgroup)
    assert codes["TUNSETPERSIST"] == setiff + 1 and codes["TUNSETOWNER"] == setiff + 2
