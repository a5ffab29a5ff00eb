"""VM links on the real kernel, in throwaway namespaces: a tap owned by an unprivileged user
gets the right owner, flags and addresses, that user can open it with QEMU's flags (in a
private mount namespace with its own /dev/net/tun node; the host's is 0600 and is never
touched), a second ``up`` makes no netlink write, ``down`` removes only what hostnet
created, and a failed step undoes the steps before it."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hostnet.config.vm import load_vms
from hostnet.errors import HostnetError
from hostnet.observe.links import read_snapshot
from hostnet.state.links import apply_steps, vm_down, vm_up
from hostnet.vm.steps import AddAddress, AddRoute
from tests.helpers.netns import Netns
from tests.helpers.vm_lab import vm_host

NOBODY, NOGROUP = 65534, 65534
CONFIG = '''
[[vm]]
name = "web1"
tap = "tapweb1"
owner = "nobody"
group = "nogroup"
mode = "routed"
uplink = "up0"
addresses = ["203.0.113.11", "2001:db8::11"]
multi_queue = true
queues = 2
mtu = 1400
'''

#: What QEMU does to attach: open /dev/net/tun, TUNSETIFF with IFF_TAP|IFF_NO_PI|
#: IFF_VNET_HDR (|IFF_MULTI_QUEUE with queues=N, once per queue). Prints the errno per try.
OPENER = r'''
import errno, fcntl, os, struct, sys
TUNSETIFF = 0x400454CA
name, flags, count = sys.argv[1].encode(), int(sys.argv[2], 0), int(sys.argv[3])
fds = []
for _ in range(count):
    fd = os.open("/dev/net/tun", os.O_RDWR)
    try:
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH22x", name, flags))
        fds.append(fd)
        print("ok", flush=True)
    except OSError as e:
        print(errno.errorcode[e.errno], flush=True)
        break
if fds and len(sys.argv) > 4:
    sys.stdin.read()
'''
PRIVATE_TUN = ("mount -t tmpfs -o mode=755 tmpfs /dev/net && mknod -m {mode} /dev/net/tun c 10 200"
               " && chgrp {node_gid} /dev/net/tun && exec setpriv --reuid={uid} --regid={gid} "
               '{groups} /usr/bin/python3 -c "$0" "$@"')
QEMU_MQ = str(0x0002 | 0x1000 | 0x4000 | 0x0100)  # TAP|NO_PI|VNET_HDR|MULTI_QUEUE
QEMU_SQ = str(0x0002 | 0x1000 | 0x4000)


@pytest.fixture
def host(netns: Callable[..., Netns], tmp_path: Path) -> Iterator[tuple[Netns, Path]]:
    lab = vm_host(netns, tmp_path, CONFIG, "vmhost", ipv6=True)
    yield lab.host, lab.config


def tap_json(ns: Netns, name: str = "tapweb1") -> dict:
    out = ns.run(["ip", "-d", "-j", "link", "show", name]).stdout
    return json.loads(out)[0]


def as_user(ns: Netns, uid: int, gid: int, args: list[str], *, mode: str = "666",
            node_gid: int = 0, groups: str = "", **kw: object) -> subprocess.Popen:
    """Run OPENER as uid:gid in a private mount namespace with its own /dev/net/tun node
    (``mode``, group ``node_gid``); ``groups``: supplementary groups (comma list)."""
    extra = f"--groups={groups}" if groups else "--clear-groups"
    script = PRIVATE_TUN.format(uid=uid, gid=gid, mode=mode, node_gid=node_gid, groups=extra)
    argv = ["ip", "netns", "exec", ns.name, "unshare", "-m", "sh", "-c", script, OPENER, *args]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.PIPE, text=True, **kw)  # type: ignore[call-overload]


def test_up_tap_owner_flags_addresses_then_nothing(host: tuple[Netns, Path],
                                                   tmp_path: Path) -> None:
    ns, cfg = host
    vms = load_vms(cfg)
    first = vm_up(vms, ns.name, tmp_path / "state")
    assert first.writes == len(first.done) == 13
    info = tap_json(ns)
    data = info["linkinfo"]["info_data"]
    assert info["linkinfo"]["info_kind"] == "tun"
    assert (data["type"], data["user"], data["group"]) == ("tap", "nobody", "nogroup")
    assert (data["pi"], data["vnet_hdr"], data["multi_queue"], data["persist"]) == (
        False, True, True, True)
    assert info["mtu"] == 1400 and "UP" in info["flags"]
    addrs = ns.run(["ip", "-j", "addr", "show", "tapweb1"]).stdout
    have = {(a["local"], a["prefixlen"]) for a in json.loads(addrs)[0]["addr_info"]}
    assert {("203.0.113.2", 32), ("fe80::1", 64)} <= have
    assert "203.0.113.11 dev tapweb1" in ns.run(["ip", "route"]).stdout
    assert "2001:db8::11 dev tapweb1" in ns.run(["ip", "-6", "route"]).stdout
    proxies = ns.run(["ip", "neigh", "show", "proxy"]).stdout
    assert "203.0.113.11 dev up0 proxy" in proxies and "2001:db8::11 dev up0 proxy" in proxies
    assert ns.sysctl("net.ipv4.ip_forward") == "1"
    assert ns.sysctl("net.ipv6.conf.up0.proxy_ndp") == "1"
    assert ns.sysctl("net.ipv4.conf.up0.proxy_arp") == "0"
    assert ns.sysctl("net.ipv4.conf.all.proxy_arp") == "0"

    # second up: no write, and an independent listener sees no netlink message at all
    monitor = subprocess.Popen(["ip", "-n", ns.name, "monitor", "all"], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        time.sleep(0.3)
        ns.run(["ip", "addr", "add", "192.0.2.99/32", "dev", "lo"])  # the monitor works
        second = vm_up(vms, ns.name, tmp_path / "state")
        time.sleep(0.3)
    finally:
        monitor.terminate()
        seen = monitor.communicate(timeout=5)[0]
    assert (second.writes, second.done) == (0, [])
    assert "192.0.2.99" in seen
    # the kernel's own IPv6 set-up of up0 (link-local address after DAD, the peer's
    # neighbour entry) may show up in the window; anything hostnet writes would name the
    # tap, a VM address, a proxy entry or a netconf (sysctl) change
    ours = ("tapweb1", "203.0.113.11", "2001:db8::11", "proxy", "[NETCONF]", "203.0.113.2/32",
            "fe80::1/64")
    assert [line for line in seen.splitlines() if any(s in line for s in ours)] == [], seen


def test_owner_opens_with_qemu_flags_others_cannot(host: tuple[Netns, Path],
                                                   tmp_path: Path) -> None:
    ns, cfg = host
    before = os.stat("/dev/net/tun")
    vm_up(load_vms(cfg), ns.name, tmp_path / "state")
    proc = as_user(ns, NOBODY, NOGROUP, ["tapweb1", QEMU_MQ, "2", "hold"])
    try:
        assert proc.stdout is not None
        assert [proc.stdout.readline().strip() for _ in range(2)] == ["ok", "ok"]
        tap = read_snapshot(ns.name).links["tapweb1"]
        assert tap.tun is not None and tap.tun.queues == 2 and tap.carrier
    finally:
        proc.communicate("", timeout=10)
    # another unprivileged user: the kernel's owner check refuses it
    other = as_user(ns, 65533, 65533, ["tapweb1", QEMU_MQ, "1"])
    assert other.communicate(timeout=10)[0].split() == ["EPERM"]
    # without IFF_MULTI_QUEUE on a multi-queue tap: refused, so qemu-args must say queues=N
    single = as_user(ns, NOBODY, NOGROUP, ["tapweb1", QEMU_SQ, "1"])
    assert single.communicate(timeout=10)[0].split() == ["EINVAL"]
    # the udev rule's way (VM101): node 0660 root:GROUP; the VM user in GROUP may open it,
    # without the group the node itself refuses the open
    member = as_user(ns, NOBODY, NOGROUP, ["tapweb1", QEMU_MQ, "1"], mode="660",
                     node_gid=NOGROUP)
    assert member.communicate(timeout=10)[0].split() == ["ok"]
    outsider = as_user(ns, NOBODY, NOGROUP, ["tapweb1", QEMU_MQ, "1"], mode="660",
                       node_gid=0)
    assert "PermissionError" in outsider.communicate(timeout=10)[1]
    # a tap with owner and group admits only its owner, and only while in the group: the
    # kernel refuses a member of the tap's group that is not its owner (tun_not_capable)
    other_member = as_user(ns, 65533, 65533, ["tapweb1", QEMU_MQ, "1"], groups=str(NOGROUP))
    assert other_member.communicate(timeout=10)[0].split() == ["EPERM"]
    after = os.stat("/dev/net/tun")
    assert (after.st_mode, after.st_uid, after.st_gid) == (before.st_mode, before.st_uid,
                                                           before.st_gid)


def test_down_removes_only_what_hostnet_created(host: tuple[Netns, Path],
                                                tmp_path: Path) -> None:
    ns, cfg = host
    # the hypervisor made the tap; someone else keeps a proxy entry of their own
    ns.run(["ip", "tuntap", "add", "dev", "tapweb1", "mode", "tap", "user", "nobody",
            "group", "nogroup", "vnet_hdr", "multi_queue"])
    ns.run(["ip", "neigh", "add", "proxy", "203.0.113.50", "dev", "up0"])
    state = tmp_path / "state"
    up = vm_up(load_vms(cfg), ns.name, state)
    assert not any(s.kind == "create-tap" for s in up.done)
    assert (state / "vm" / ns.name / "web1.json").is_file()
    down = vm_down("web1", ns.name, state)
    assert down.writes == len(down.steps) > 0
    assert "tapweb1" in ns.run(["ip", "link"]).stdout  # not ours: stays
    addrs = ns.run(["ip", "addr", "show", "tapweb1"]).stdout
    assert "203.0.113.2/32" not in addrs and "fe80::1/64" not in addrs
    assert ns.run(["ip", "neigh", "show", "proxy"]).stdout.split() == [
        "203.0.113.50", "dev", "up0", "proxy"]
    assert ns.sysctl("net.ipv4.ip_forward") == "0"
    assert ns.sysctl("net.ipv4.conf.up0.forwarding") == "0"
    assert not (state / "vm" / ns.name / "web1.json").exists()
    assert vm_down("web1", ns.name, state).steps == []


def test_down_deletes_a_tap_it_created(host: tuple[Netns, Path], tmp_path: Path) -> None:
    ns, cfg = host
    vm_up(load_vms(cfg), ns.name, tmp_path / "s")
    vm_down("web1", ns.name, tmp_path / "s")
    assert "tapweb1" not in ns.run(["ip", "link"]).stdout
    assert ns.run(["ip", "neigh", "show", "proxy"]).stdout.strip() == ""


def test_failed_step_undoes_the_ones_before(host: tuple[Netns, Path]) -> None:
    ns, _ = host
    steps = [AddAddress("t", "test", "up0", "198.51.100.7", 32),
             AddRoute("t", "test", "198.51.100.8", 32, "nosuchtap")]
    with pytest.raises(HostnetError, match=r"link nosuchtap does not exist.*was undone"):
        apply_steps(steps, ns.name)
    assert "198.51.100.7" not in ns.run(["ip", "addr", "show", "up0"]).stdout


def test_failed_up_leaves_nothing_and_no_record(host: tuple[Netns, Path],
                                                tmp_path: Path) -> None:
    ns, cfg = host
    # new links get IPv6 disabled, so adding the tap's fe80::1 gateway fails mid-way
    ns.sysctl("net.ipv6.conf.default.disable_ipv6", "1")
    state = tmp_path / "state"
    with pytest.raises(HostnetError, match=r"add address fe80::1/64 on tapweb1.*was undone"):
        vm_up(load_vms(cfg), ns.name, state)
    assert "tapweb1" not in ns.run(["ip", "link"]).stdout
    assert ns.run(["ip", "neigh", "show", "proxy"]).stdout.strip() == ""
    assert ns.sysctl("net.ipv4.ip_forward") == "0"
    assert list((state / "vm" / ns.name).glob("*.json")) == []


def test_record_from_an_earlier_boot_is_ignored(host: tuple[Netns, Path],
                                                tmp_path: Path) -> None:
    ns, cfg = host
    state = tmp_path / "state"
    vm_up(load_vms(cfg), ns.name, state)
    record = state / "vm" / ns.name / "web1.json"
    data = json.loads(record.read_text())
    assert data["boot_id"] and data["steps"][0]["kind"] == "create-tap"
    data["boot_id"] = "00000000-0000-0000-0000-000000000000"  # as if written before a reboot
    record.write_text(json.dumps(data))
    steps = vm_down("web1", ns.name, state).steps
    # the VM's record says nothing any more: its tap and proxy entries are not claimed
    # (only the shared sysctls, recorded in this boot, go back with the last VM)
    assert {s.kind for s in steps} == {"sysctl"}
    assert "tapweb1" in ns.run(["ip", "link"]).stdout
    assert "203.0.113.11 dev up0 proxy" in ns.run(["ip", "neigh", "show", "proxy"]).stdout


NAT_AND_BRIDGE = '''
[[vm]]
name = "natvm"
tap = "tapnat"
owner = "nobody"
mode = "nat"
gateway = "198.51.100.1/24"
mtu = 9000

[[vm]]
name = "brvm"
tap = "tapbr"
owner = "nobody"
mode = "bridge"
bridge = "br0"
'''


def test_nat_and_bridge_modes(netns: Callable[..., Netns], tmp_path: Path) -> None:
    ns = netns("vmnb")
    ns.run(["ip", "link", "add", "br0", "type", "bridge"])
    cfg = tmp_path / "h.toml"
    cfg.write_text(NAT_AND_BRIDGE)
    state = tmp_path / "s"
    vms = load_vms(cfg)
    vm_up(vms, ns.name, state)
    nat = json.loads(ns.run(["ip", "-j", "addr", "show", "tapnat"]).stdout)[0]
    assert nat["mtu"] == 9000
    assert [(a["local"], a["prefixlen"]) for a in nat["addr_info"] if a["family"] == "inet"] == [
        ("198.51.100.1", 24)]
    assert json.loads(ns.run(["ip", "-j", "link", "show", "tapbr"]).stdout)[0]["master"] == "br0"
    assert ns.sysctl("net.ipv4.ip_forward") == "1"
    assert vm_up(vms, ns.name, state).writes == 0
    vm_down("brvm", ns.name, state)
    assert "tapbr" not in ns.run(["ip", "link"]).stdout
    assert ns.sysctl("net.ipv4.ip_forward") == "1"  # natvm still needs it
    vm_down("natvm", ns.name, state)
    assert ns.sysctl("net.ipv4.ip_forward") == "0"
