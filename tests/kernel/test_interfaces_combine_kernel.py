"""The kernel combines conf/all and conf/IFACE the way hostnet.checks.interfaces says.

Observed, not just read back, in throwaway namespaces:

* rp_filter = max(all, iface): an input route lookup (``ip route get ... iif DEV``) for a
  source that is routed out of another interface fails in strict mode, passes in loose mode;
  a source with no route at all fails in loose mode too.
* accept_redirects: a forged ICMP redirect from the gateway changes the route (a "redirected"
  route exception) exactly when all OR iface allows it on a non-forwarding interface, and
  all AND iface on a forwarding one.
* secure_redirects (OR) only counts when shared_media is off; with shared_media on (the
  kernel default) a redirect to a non-gateway neighbour is accepted even with it set.

For each case the value hostnet computes from the sysctls it reads inside the namespace is
compared with what the kernel did.
"""

from __future__ import annotations

import itertools
import struct
import sys
from collections.abc import Callable

import pytest

from hostnet.checks.interfaces import ConfTable, conf_table
from hostnet.host.root import Root
from hostnet.observe.host import Want, observe
from tests.helpers.netns import Netns, link

LEAVES = ["rp_filter", "accept_redirects", "secure_redirects", "shared_media", "forwarding"]


def read_conf(ns: Netns) -> ConfTable:
    host = observe(Root("/"), netns=[ns.name], want=Want(composition=False, log=False))
    return conf_table(host.namespaces[0], "ipv4", LEAVES)


def set_conf(ns: Netns, iface: str, leaf: str, value: int) -> None:
    ns.sysctl(f"net.ipv4.conf.{iface}.{leaf}", str(value))


def add_link(ns: Netns, dev: str) -> None:
    """An interface that is up (a veth pair inside the namespace; no dummy module needed)."""
    ns.run(["ip", "link", "add", dev, "type", "veth", "peer", "name", f"{dev}p"])
    ns.run(["ip", "link", "set", dev, "up"])
    ns.run(["ip", "link", "set", f"{dev}p", "up"])


def route_ok(ns: Netns, *args: str) -> bool:
    return ns.run(["ip", "route", "get", *args], check=False).returncode == 0


def test_rp_filter_is_max_of_all_and_interface(netns: Callable[..., Netns]) -> None:
    ns = netns("rpf")
    for dev, addr in (("dum0", "192.0.2.1/24"), ("dum1", "198.51.100.1/24")):
        add_link(ns, dev)
        ns.run(["ip", "addr", "add", addr, "dev", dev])
    for all_v, dev_v in itertools.product((0, 1, 2), (0, 1, 2)):
        set_conf(ns, "all", "rp_filter", all_v)
        set_conf(ns, "dum0", "rp_filter", dev_v)
        effective = read_conf(ns).effective("dum0", "rp_filter").value
        assert effective == max(all_v, dev_v)
        # source routed out of dum1, packet arriving on dum0: only strict refuses it
        asymmetric = route_ok(ns, "192.0.2.1", "from", "198.51.100.7", "iif", "dum0")
        # source with no route back at all: strict and loose refuse it
        unroutable = route_ok(ns, "192.0.2.1", "from", "203.0.113.7", "iif", "dum0")
        assert asymmetric == (effective != 1), (all_v, dev_v)
        assert unroutable == (effective == 0), (all_v, dev_v)


REDIRECT = r"""
import socket, struct, sys

def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF

gw, host, dest = sys.argv[1], sys.argv[2], sys.argv[3]
# the packet the host "sent": an echo reply from the host to dest (handled without a socket)
echo = struct.pack("!BBHHH", 0, 0, 0, 1, 1)
echo = echo[:2] + struct.pack("!H", csum(echo)) + echo[4:]
inner = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 28, 0, 0, 64, 1, 0,
                    socket.inet_aton(host), socket.inet_aton(dest))
inner = inner[:10] + struct.pack("!H", csum(inner)) + inner[12:]
body = struct.pack("!BBH4s", 5, 1, 0, socket.inet_aton(gw)) + inner + echo
body = body[:2] + struct.pack("!H", csum(body)) + body[4:]
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
s.sendto(body, (host, 0))
"""

HOST, GW, OTHER = "192.0.2.2", "192.0.2.1", "192.0.2.3"


@pytest.fixture
def redirect_pair(netns: Callable[..., Netns]) -> tuple[Netns, Netns]:
    host, gw = netns("rdh"), netns("rdg")
    link(host, gw, f"{HOST}/24", f"{GW}/24")
    host.run(["ip", "route", "add", "default", "via", GW])
    host.run(["ip", "neigh", "replace", OTHER, "lladdr", "02:00:00:00:00:03", "dev", "veth0",
              "nud", "permanent"])
    host.run(["ip", "neigh", "replace", GW, "lladdr",
              gw.run(["cat", "/sys/class/net/veth0/address"]).stdout.strip(), "dev", "veth0",
              "nud", "permanent"])
    return host, gw


_counter = itertools.count(1)


def redirected(host: Netns, gw: Netns) -> bool:
    """Send a redirect for a fresh destination; True when the host now routes via OTHER."""
    dest = f"203.0.113.{next(_counter)}"
    assert f"via {GW}" in host.run(["ip", "route", "get", dest]).stdout
    gw.run([sys.executable, "-c", REDIRECT, OTHER, HOST, dest])
    for _ in range(20):
        out = host.run(["ip", "route", "get", dest]).stdout
        if f"via {OTHER}" in out:
            return True
        import time

        time.sleep(0.02)
    return False


def test_accept_redirects_or_when_not_forwarding_and_when_forwarding(
    redirect_pair: tuple[Netns, Netns],
) -> None:
    host, gw = redirect_pair
    for leaf in ("secure_redirects", "shared_media"):
        for dev in ("all", "veth0", "default"):
            set_conf(host, dev, leaf, 0)
    seen = {}
    for fwd, all_v, dev_v in itertools.product((0, 1), (0, 1), (0, 1)):
        set_conf(host, "veth0", "forwarding", fwd)  # per interface: all stays as it is
        set_conf(host, "all", "accept_redirects", all_v)
        set_conf(host, "veth0", "accept_redirects", dev_v)
        eff = read_conf(host).effective("veth0", "accept_redirects")
        assert eff.forwarding == fwd
        seen[(fwd, all_v, dev_v)] = redirected(host, gw)
        assert seen[(fwd, all_v, dev_v)] == bool(eff.value), (fwd, all_v, dev_v, eff)
    # the kernel's rule, spelled out: OR when the interface does not forward, AND when it does
    assert [seen[(0, a, d)] for a, d in itertools.product((0, 1), (0, 1))] == [0, 1, 1, 1]
    assert [seen[(1, a, d)] for a, d in itertools.product((0, 1), (0, 1))] == [0, 0, 0, 1]


def test_secure_redirects_only_with_shared_media_off(redirect_pair: tuple[Netns, Netns]) -> None:
    host, gw = redirect_pair
    set_conf(host, "all", "accept_redirects", 1)
    set_conf(host, "veth0", "accept_redirects", 1)
    # kernel defaults: shared_media 1, secure_redirects 1 -> a non-gateway is still accepted
    assert host.sysctl("net.ipv4.conf.veth0.shared_media") == "1"
    assert host.sysctl("net.ipv4.conf.veth0.secure_redirects") == "1"
    assert redirected(host, gw)
    for dev in ("all", "veth0"):
        set_conf(host, dev, "shared_media", 0)
    table = read_conf(host)
    for all_v, dev_v in itertools.product((0, 1), (0, 1)):
        set_conf(host, "all", "secure_redirects", all_v)
        set_conf(host, "veth0", "secure_redirects", dev_v)
        table = read_conf(host)
        secure = table.effective("veth0", "secure_redirects").value
        assert secure == int(bool(all_v or dev_v))
        # OTHER is not a default gateway: secure_redirects refuses it
        assert redirected(host, gw) == (not secure), (all_v, dev_v)


def test_writing_ip_forward_flips_all_accept_redirects(netns: Callable[..., Netns]) -> None:
    ns = netns("fwd")
    add_link(ns, "dum0")
    assert ns.sysctl("net.ipv4.conf.all.accept_redirects") == "1"
    ns.sysctl("net.ipv4.ip_forward", "1")
    assert ns.sysctl("net.ipv4.conf.all.accept_redirects") == "0"
    assert ns.sysctl("net.ipv4.conf.all.forwarding") == "1"
    assert ns.sysctl("net.ipv4.conf.default.forwarding") == "1"
    assert ns.sysctl("net.ipv4.conf.dum0.forwarding") == "1"
    ns.sysctl("net.ipv4.ip_forward", "0")
    assert ns.sysctl("net.ipv4.conf.all.accept_redirects") == "1"


def test_writing_default_reaches_interfaces_never_set(netns: Callable[..., Netns]) -> None:
    ns = netns("dflt")
    for dev in ("dum0", "dum1"):
        add_link(ns, dev)
    ns.sysctl("net.ipv4.conf.dum1.log_martians", "0")  # set explicitly: keeps its own value
    ns.sysctl("net.ipv4.conf.default.log_martians", "1")
    assert ns.sysctl("net.ipv4.conf.dum0.log_martians") == "1"
    assert ns.sysctl("net.ipv4.conf.dum1.log_martians") == "0"


def test_struct_module_used() -> None:
    # keep the raw-packet builder honest: an ICMP redirect header is 8 bytes
    assert struct.calcsize("!BBH4s") == 8
