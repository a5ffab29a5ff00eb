"""Routed mode end to end, through the ``hostnet vm`` command.

Topology: OUTSIDE (the provider's router, 203.0.113.1/24, 2001:db8::1/64) -- veth -- HOST
(uplink up0, 203.0.113.2/24) -- tapweb1 -- VM. The VM namespace is really behind the tap: a
process on the host holds tapweb1 (as QEMU would) and copies every frame to and from a tap
``eth0`` it created inside the VM namespace, so ARP, NDP and IP cross the same tap device a
guest's virtio NIC would use (a veth could not stand in: the thing under test is a tap).

Shown: OUTSIDE resolves the VM's public address to the uplink's MAC and reaches the VM over
IPv4 and IPv6; the VM reaches OUTSIDE from its public address; OUTSIDE asking for an
unrelated address the host routes elsewhere gets no ARP answer (and the control: with
proxy_arp=1 it would).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.helpers.netns import Netns, start
from tests.helpers.vm_lab import WEB1, hostnet, mac_of, neigh, resolve, vm_host

BRIDGE = r'''
import ctypes, fcntl, os, select, struct, sys
TUNSETIFF, FLAGS = 0x400454CA, 0x0002 | 0x1000  # IFF_TAP | IFF_NO_PI
def tap(name):
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH22x", name.encode(), FLAGS))
    return fd
host = tap(sys.argv[1])                       # attach to the tap hostnet created
libc = ctypes.CDLL(None, use_errno=True)
if libc.setns(os.open(sys.argv[2], os.O_RDONLY), 0x40000000) != 0:
    raise OSError(ctypes.get_errno(), "setns")
guest = tap("eth0")                           # the VM's NIC, inside the VM namespace
peer = {host: guest, guest: host}
print("ready", flush=True)
while True:
    ready, _, _ = select.select([host, guest, 0], [], [])
    if 0 in ready:
        break
    for fd in ready:
        try:
            os.write(peer[fd], os.read(fd, 65536))
        except OSError:
            pass
'''
SERVER = r'''
import socket, sys
s = socket.socket(socket.AF_INET6)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("::", 8080)); s.listen(4); s.settimeout(20)
print("ready", flush=True)
for _ in range(int(sys.argv[1])):
    c, peer = s.accept(); c.sendall(peer[0].removeprefix("::ffff:").encode()); c.close()
'''
CLIENT = r'''
import socket, sys
s = socket.create_connection((sys.argv[1], 8080), timeout=5)
print(s.recv(100).decode())
'''
@pytest.fixture
def routed(netns: Callable[..., Netns], tmp_path: Path) -> Iterator[tuple[Netns, Netns, Netns]]:
    lab = vm_host(netns, tmp_path, WEB1, "vmh", ipv6=True)
    outside, host, vm = lab.outside, lab.host, netns("vmg")
    # answer proxied requests at once instead of after up to proxy_delay (0.8 s) and let
    # OUTSIDE give up on an address after 3 x 200 ms: only timing, not what is answered
    for key in ("net.ipv4.neigh.up0.proxy_delay", "net.ipv6.neigh.up0.proxy_delay"):
        host.sysctl(key, "0")
    outside.sysctl("net.ipv4.neigh.eth0.retrans_time_ms", "200")
    up = hostnet("vm", "up", "web1", *lab.common)
    assert up.returncode == 0, up.stderr
    start(host, [sys.executable, "-c", BRIDGE, "tapweb1", f"/run/netns/{vm.name}"],
          stdin=subprocess.PIPE)
    for argv in (["ip", "link", "set", "eth0", "up"],
                 ["ip", "addr", "add", "203.0.113.11/32", "dev", "eth0"],
                 ["ip", "addr", "add", "2001:db8::11/128", "dev", "eth0", "nodad"],
                 ["ip", "route", "add", "203.0.113.2", "dev", "eth0"],
                 ["ip", "route", "add", "default", "via", "203.0.113.2", "dev", "eth0"],
                 ["ip", "-6", "route", "add", "default", "via", "fe80::1", "dev", "eth0"]):
        vm.run(argv)
    yield outside, host, vm


def test_routed_vm_reachable_and_nothing_else_answered(routed: tuple[Netns, Netns, Netns]
                                                       ) -> None:
    outside, host, vm = routed
    uplink_mac = mac_of(host, "up0")
    guest = start(vm, [sys.executable, "-c", SERVER, "2"])
    for addr in ("203.0.113.11", "2001:db8::11"):
        seen = outside.run([sys.executable, "-c", CLIENT, addr]).stdout.strip()
        assert seen in ("203.0.113.1", "2001:db8::1")  # the VM saw OUTSIDE's own address
        assert neigh(outside, addr).get("lladdr") == uplink_mac
    guest.wait(timeout=10)

    server = start(outside, [sys.executable, "-c", SERVER, "1"])
    assert vm.run([sys.executable, "-c", CLIENT, "203.0.113.1"]).stdout.strip() == "203.0.113.11"
    server.wait(timeout=10)

    # an address the host routes elsewhere (another tap) but that is not a VM's: no answer
    host.run(["ip", "tuntap", "add", "dev", "tapother", "mode", "tap"])
    host.run(["ip", "link", "set", "tapother", "up"])
    host.run(["ip", "route", "add", "203.0.113.99/32", "dev", "tapother"])
    entry = resolve(outside, "203.0.113.99")
    assert "lladdr" not in entry and "FAILED" in entry.get("state", []), entry  # type: ignore[operator]

    # control: what proxy_arp=1 on the uplink would have done
    host.sysctl("net.ipv4.conf.up0.proxy_arp", "1")
    assert resolve(outside, "203.0.113.99").get("lladdr") == uplink_mac
