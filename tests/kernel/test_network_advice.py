"""The network advice of ``hostnet doctor``, proven on the real kernel (issue 8 items 4, 5, 9, 10).

Each test builds its role's topology in throwaway namespaces (documentation addresses only),
runs the doctor through the CLI the way users do (``hostnet doctor --netns NAME --role ROLE
--format json``), applies exactly the fix it prints (sysctl lines with ``sysctl -p``, nft text
with ``nft -f``) inside that namespace, and shows the finding gone and the traffic flowing:

* a dual-homed server whose replies leave by the other uplink breaks under strict rp_filter;
  HD107 proposes loose, which repairs it. A single-homed server with rp_filter 0 gets strict,
  and keeps working;
* a DNAT to the host's own address with ip_forward 0 works and gets no NT101; a DNAT to a LAN
  host with ip_forward 0 fails, NT101 fires, and its fix makes the forwarded connection work;
* an open router (forwarding on, one interface, nothing filtering) lets a neighbour route
  through it; both NT105 fixes stop that and leave the namespace's own traffic alone;
* bridge ports, an IFB and a down device without addresses are not judged;
* V6101: with IPv6 forwarding on, accept_ra 1 ignores a real RA and accept_ra 2 takes it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.netns import Netns, link

pytestmark = pytest.mark.skipif(shutil.which("nft") is None or shutil.which("sysctl") is None,
                                reason="needs nft and sysctl")

_BIN = Path(sys.executable).with_name("hostnet")
HOSTNET = [str(_BIN)] if _BIN.exists() else [sys.executable, "-m", "hostnet"]

SERVER = r"""
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(8)
print("ready", flush=True)
while True:
    c, peer = s.accept()
    c.sendall(b"hello\n"); c.close()
"""
CLIENT = r"""
import socket, sys
try:
    c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3]))
    print(c.recv(100).decode().strip())
except OSError as exc:
    print("failed", exc)
"""


def doctor(ns: Netns, role: str | None, state: Path) -> dict[str, Any]:
    argv = [*HOSTNET, "doctor", "--netns", ns.name, "--format", "json", "--no-composition",
            "--state-dir", str(state)]
    if role:
        argv += ["--role", role]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False, cwd="/")
    assert proc.returncode in (0, 1), proc.stderr
    doc: dict[str, Any] = json.loads(proc.stdout)
    return doc


def findings(doc: dict[str, Any], code: str) -> list[dict[str, Any]]:
    return [f for f in doc["findings"] if f["code"] == code]


def apply_sysctl(ns: Netns, lines: str, tmp: Path) -> None:
    """Apply the suggestion exactly as printed, the way a user would: ``sysctl -p FILE``."""
    path = tmp / f"fix-{uuid.uuid4().hex[:6]}.conf"
    path.write_text(lines + "\n")
    ns.run(["sysctl", "-q", "-p", str(path)])


def serve(ns: Netns, port: int) -> None:
    proc = ns.popen([sys.executable, "-c", SERVER, str(port)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"


def reaches(ns: Netns, addr: str, port: int, timeout: float = 1.5) -> bool:
    out = ns.run([sys.executable, "-c", CLIENT, addr, str(port), str(timeout)]).stdout.strip()
    return out == "hello"


def conf(ns: Netns, leaf: str, value: int, ifaces: tuple[str, ...]) -> None:
    for iface in ("all", "default", *ifaces):
        ns.sysctl(f"net.ipv4.conf.{iface}.{leaf}", str(value))


@pytest.fixture
def state(tmp_path: Path) -> Path:
    path = tmp_path / "state"
    path.mkdir()
    return path


# -- (a) rp_filter ------------------------------------------------------------------------------


@pytest.fixture
def dual_homed(netns: Callable[..., Netns]) -> Iterator[tuple[Netns, Netns]]:
    """server (up0 192.0.2.1, up1 198.51.100.1, a default route on each: metric 100 via up0,
    200 via up1), router (both uplinks and the client's network), client 203.0.113.10.
    A request to 198.51.100.1 arrives on up1; the reply follows the better default route out
    of up0: the return path is asymmetric."""
    server, router, client = netns("dual-srv"), netns("dual-rtr"), netns("dual-cli")
    for ns in (server, router, client):
        conf(ns, "rp_filter", 0, ())
    link(server, router, "192.0.2.1/24", "192.0.2.254/24", name_a="up0", name_b="a0")
    link(server, router, "198.51.100.1/24", "198.51.100.254/24", name_a="up1", name_b="b0")
    link(client, router, "203.0.113.10/24", "203.0.113.1/24", name_b="c0")
    server.run(["ip", "route", "add", "default", "via", "192.0.2.254", "metric", "100"])
    server.run(["ip", "route", "add", "default", "via", "198.51.100.254", "metric", "200"])
    client.run(["ip", "route", "add", "default", "via", "203.0.113.1"])
    router.sysctl("net.ipv4.ip_forward", "1")
    conf(router, "rp_filter", 0, ("a0", "b0", "c0"))
    yield server, client


def test_HD107_dual_homed_gets_loose(dual_homed: tuple[Netns, Netns], state: Path,
                                         tmp_path: Path) -> None:
    server, client = dual_homed
    conf(server, "rp_filter", 1, ("up0", "up1"))
    serve(server, 8443)
    assert reaches(client, "192.0.2.1", 8443)  # symmetric through up0: fine
    assert not reaches(client, "198.51.100.1", 8443)  # strict drops it on up1
    doc = doctor(server, "server", state)
    [hd107] = findings(doc, "HD107")
    assert "default routes on up0, up1" in hd107["message"]
    lines = hd107["suggestion"].splitlines()
    assert "net.ipv4.conf.all.rp_filter = 2" in lines and not any(
        line.endswith("= 1") for line in lines)
    apply_sysctl(server, hd107["suggestion"], tmp_path)
    assert findings(doctor(server, "server", state), "HD107") == []
    assert reaches(client, "198.51.100.1", 8443) and reaches(client, "192.0.2.1", 8443)


@pytest.fixture
def single_homed(netns: Callable[..., Netns]) -> tuple[Netns, Netns]:
    """server eth0 192.0.2.1/24 (default route via the client side), client 192.0.2.2."""
    server, client = netns("one-srv"), netns("one-cli")
    for ns in (server, client):
        ns.sysctl("net.ipv4.ip_forward", "0")
        conf(ns, "rp_filter", 0, ())
    link(server, client, "192.0.2.1/24", "192.0.2.2/24", name_a="eth0")
    conf(server, "rp_filter", 0, ("eth0", "lo"))
    server.run(["ip", "route", "add", "default", "via", "192.0.2.2"])
    return server, client


def test_HD107_single_homed_gets_strict(single_homed: tuple[Netns, Netns], state: Path,
                                            tmp_path: Path) -> None:
    server, client = single_homed
    serve(server, 8443)
    [hd107] = findings(doctor(server, "server", state), "HD107")
    assert hd107["suggestion"].splitlines() == [
        "net.ipv4.conf.all.rp_filter = 1", "net.ipv4.conf.default.rp_filter = 1",
        "net.ipv4.conf.eth0.rp_filter = 1"]
    apply_sysctl(server, hd107["suggestion"], tmp_path)
    assert server.sysctl("net.ipv4.conf.all.rp_filter") == "1"
    assert findings(doctor(server, "server", state), "HD107") == []
    assert reaches(client, "192.0.2.1", 8443)


# -- (b) DNAT and forwarding --------------------------------------------------------------------

OWN_DNAT = """
table ip hn {
    chain pre { type nat hook prerouting priority dstnat; tcp dport 8080 dnat to 192.0.2.1:443; }
}
"""
LAN_DNAT = """
table ip hn {
    chain pre {
        type nat hook prerouting priority dstnat;
        iifname "wan0" tcp dport 8080 dnat to 192.0.2.10:80;
    }
}
"""


def test_NT101_dnat_to_own_address_needs_no_forwarding(single_homed: tuple[Netns, Netns],
                                                 state: Path) -> None:
    server, client = single_homed
    server.run(["nft", "-f", "-"], input=OWN_DNAT)
    serve(server, 443)
    assert server.sysctl("net.ipv4.ip_forward") == "0"
    assert reaches(client, "192.0.2.1", 8080)  # through the DNAT, no forwarding
    doc = doctor(server, "server", state)
    assert findings(doc, "NT101") == [], doc["findings"]
    assert any("dnat" in r for r in doc["facts"]["nat_rules"])


def test_NT101_dnat_to_lan_host_needs_forwarding(netns: Callable[..., Netns], state: Path,
                                           tmp_path: Path) -> None:
    wan, router, lan = netns("dn-wan"), netns("dn-rtr"), netns("dn-lan")
    for ns in (wan, router, lan):
        ns.sysctl("net.ipv4.ip_forward", "0")
        conf(ns, "rp_filter", 0, ())
    link(wan, router, "198.51.100.2/24", "198.51.100.1/24", name_b="wan0")
    link(router, lan, "192.0.2.1/24", "192.0.2.10/24", name_a="lan0")
    lan.run(["ip", "route", "add", "default", "via", "192.0.2.1"])
    # one uplink (the default route on wan0) and strict rp_filter: fine for a NAT router
    router.run(["ip", "route", "add", "default", "via", "198.51.100.2"])
    conf(router, "rp_filter", 1, ("wan0", "lan0"))
    router.run(["nft", "-f", "-"], input=LAN_DNAT)
    serve(lan, 80)
    assert not reaches(wan, "198.51.100.1", 8080)
    [nt101] = findings(doctor(router, "nat-router", state), "NT101")
    assert nt101["severity"] == "error" and nt101["suggestion"] == "net.ipv4.ip_forward = 1"
    assert nt101["evidence"]["non_local_targets"] == ["192.0.2.10"]
    apply_sysctl(router, nt101["suggestion"], tmp_path)
    doc = doctor(router, "nat-router", state)
    assert findings(doc, "NT101") == []
    assert reaches(wan, "198.51.100.1", 8080)
    # issue 8 item 9: strict on a single-uplink NAT router is no false alarm, and it works
    assert router.sysctl("net.ipv4.conf.all.rp_filter") == "1"
    assert findings(doc, "HD107") == [], findings(doc, "HD107")


# -- (c) the open router ------------------------------------------------------------------------


def port_of(switch: Netns, ns: Netns, addr: str, dev: str = "eth0") -> None:
    """Plug ``ns`` into the switch namespace's bridge br0 with a veth, ``addr`` on its end."""
    tmp_a, tmp_b = f"hna{uuid.uuid4().hex[:6]}", f"hnb{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "link", "add", tmp_a, "type", "veth", "peer", "name", tmp_b],
                   check=True)
    subprocess.run(["ip", "link", "set", tmp_a, "netns", ns.name, "name", dev], check=True)
    subprocess.run(["ip", "link", "set", tmp_b, "netns", switch.name], check=True)
    switch.run(["ip", "link", "set", tmp_b, "master", "br0", "up"])
    ns.run(["ip", "addr", "add", addr, "dev", dev])
    ns.run(["ip", "link", "set", dev, "up"])


def test_NT105_open_router_fixes_close_it(netns: Callable[..., Netns], state: Path,
                                    tmp_path: Path) -> None:
    """open (192.0.2.1, one interface, forwarding on, no rules), its gateway (192.0.2.3, owns
    203.0.113.5) and a neighbour (192.0.2.2) that routes 203.0.113.0/24 via the open one,
    all on one bridge."""
    switch, open_, gw, neighbour = (netns("or-sw"), netns("or-open"), netns("or-gw"),
                                    netns("or-nb"))
    switch.run(["ip", "link", "add", "br0", "type", "bridge"])
    switch.run(["ip", "link", "set", "br0", "up"])
    for ns in (open_, gw, neighbour):
        conf(ns, "rp_filter", 0, ())
        conf(ns, "accept_redirects", 0, ())
        conf(ns, "send_redirects", 0, ())
        ns.sysctl("net.ipv4.ip_forward", "0")
    port_of(switch, open_, "192.0.2.1/24")
    port_of(switch, gw, "192.0.2.3/24")
    port_of(switch, neighbour, "192.0.2.2/24")
    gw.run(["ip", "addr", "add", "203.0.113.5/32", "dev", "lo"])
    open_.run(["ip", "route", "add", "default", "via", "192.0.2.3"])
    neighbour.run(["ip", "route", "add", "203.0.113.0/24", "via", "192.0.2.1"])
    open_.sysctl("net.ipv4.ip_forward", "1")
    for ns, ifaces in ((open_, ("eth0",)), (neighbour, ("eth0",))):
        conf(ns, "accept_redirects", 0, ifaces)
        conf(ns, "send_redirects", 0, ifaces)
    serve(gw, 8000)

    # nothing has been routed through it yet: turn forwarding off
    doc = doctor(open_, None, state)
    assert doc["role"] != "nat-router" and "open router" in doc["role_reason"]
    [nt105] = findings(doc, "NT105")
    assert nt105["suggestion"] == "net.ipv4.ip_forward = 0"
    assert reaches(neighbour, "203.0.113.5", 8000)  # the neighbour uses it as a router

    # something has been routed through it now: the forward-chain policy
    [nt105] = findings(doctor(open_, "server", state), "NT105")
    assert nt105["evidence"]["forwarded_datagrams"] > 0
    policy = nt105["suggestion"]
    assert "hook forward" in policy and "policy drop" in policy
    open_.run(["nft", "-f", "-"], input=policy)
    assert findings(doctor(open_, "server", state), "NT105") == []
    assert not reaches(neighbour, "203.0.113.5", 8000)
    assert reaches(open_, "203.0.113.5", 8000)  # its own traffic still flows

    # the other fix, on the same topology: forwarding off
    open_.run(["nft", "delete", "table", "inet", "hostnet"])
    assert reaches(neighbour, "203.0.113.5", 8000)
    apply_sysctl(open_, "net.ipv4.ip_forward = 0", tmp_path)
    assert findings(doctor(open_, "server", state), "NT105") == []
    assert not reaches(neighbour, "203.0.113.5", 8000)
    assert reaches(open_, "203.0.113.5", 8000)


# -- (d) interfaces without L3 ------------------------------------------------------------------


def test_ports_and_down_devices_not_judged(netns: Callable[..., Netns], state: Path) -> None:
    """A VM host: uplink eth0, br0 with an address, a veth port of br0 without one, an IFB and
    a down veth without addresses, all three left with rp_filter 0, send_redirects 1 and
    log_martians 0. Only eth0 and br0 are judged."""
    host, up = netns("l3-host"), netns("l3-up")
    conf(host, "rp_filter", 2, ())
    conf(host, "log_martians", 1, ())
    conf(host, "send_redirects", 0, ())
    host.sysctl("net.ipv4.ip_forward", "1")
    host.sysctl("net.ipv4.conf.all.log_martians", "0")
    host.sysctl("net.ipv4.conf.all.rp_filter", "0")
    link(host, up, "203.0.113.2/24", "203.0.113.1/24", name_a="eth0")
    for argv in (["link", "add", "br0", "type", "bridge"],
                 ["addr", "add", "192.0.2.1/24", "dev", "br0"], ["link", "set", "br0", "up"],
                 ["link", "add", "vport0", "type", "veth", "peer", "name", "vpeer0"],
                 ["link", "set", "vport0", "master", "br0", "up"],
                 ["link", "set", "vpeer0", "up"],
                 ["link", "add", "ifb0", "type", "ifb"],
                 ["link", "add", "down0", "type", "veth", "peer", "name", "down1"]):
        host.run(["ip", *argv])
    host.run(["ip", "route", "add", "default", "via", "203.0.113.1"])
    host.run(["nft", "-f", "-"], input="table inet vm {\n chain fwd_filter { type filter hook "
             "forward priority filter; policy drop; iifname \"br0\" accept; }\n}\n")
    ports = ("vport0", "ifb0", "down0")
    for iface in ports:
        host.sysctl(f"net.ipv4.conf.{iface}.rp_filter", "0")
        host.sysctl(f"net.ipv4.conf.{iface}.send_redirects", "1")
        host.sysctl(f"net.ipv4.conf.{iface}.log_martians", "0")
    for iface in ("eth0", "br0", "vpeer0", "down1"):
        host.sysctl(f"net.ipv4.conf.{iface}.rp_filter", "2")
        host.sysctl(f"net.ipv4.conf.{iface}.send_redirects", "0")
        host.sysctl(f"net.ipv4.conf.{iface}.log_martians", "1")
    doc = doctor(host, "vm-host", state)
    text = json.dumps([f for f in doc["findings"] if f["code"] in ("HD104", "HD107", "HD108")])
    for iface in ports:
        assert iface not in text, (iface, text)
    # vpeer0 (up, no address, no route) is not judged either; the L3 ones are clean
    assert text == "[]", text


# -- V6101: IPv6 forwarding and router advertisements ------------------------------------------

SEND_RA = r"""
import socket, struct, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
# type 134, code 0, checksum (the kernel fills it), hop limit 64, flags 0, router lifetime
# 1800 s, reachable time 0, retrans timer 0; then a prefix option for 2001:db8:1::/64
ra = struct.pack("!BBHBBHII", 134, 0, 0, 64, 0, 1800, 0, 0)
prefix = struct.pack("!BBBBIII16s", 3, 4, 64, 0xC0, 3600, 1800, 0,
                     socket.inet_pton(socket.AF_INET6, "2001:db8:1::"))
s.sendto(ra + prefix, ("ff02::1", 0, 0, socket.if_nametoindex(sys.argv[1])))
"""


def test_V6101_accept_ra_2_takes_ras_while_forwarding(netns: Callable[..., Netns], state: Path,
                                                      tmp_path: Path) -> None:
    """IPv6 forwarding on and accept_ra 1: the RA is ignored (no default route), V6101 fires;
    its fix (accept_ra = 2) makes the next RA install the default route, and V6101 is gone.
    IPv4 forwarding plays no part (it stays 0)."""
    host, router = netns("ra-host"), netns("ra-rtr")
    for ns in (host, router):
        ns.sysctl("net.ipv6.conf.default.accept_dad", "0")
        ns.sysctl("net.ipv4.ip_forward", "0")
    link(host, router, "192.0.2.1/24", "192.0.2.2/24", name_a="eth0", name_b="eth0")
    host.sysctl("net.ipv6.conf.all.forwarding", "1")
    host.sysctl("net.ipv6.conf.eth0.accept_ra", "1")

    def default_v6() -> str:
        return host.run(["ip", "-6", "route", "show", "default"]).stdout.strip()

    def send_ra() -> None:
        router.run(["ip", "link", "set", "eth0", "up"])
        for _ in range(20):  # the router's link-local address must be usable first
            if "tentative" not in router.run(["ip", "-6", "addr", "show", "dev", "eth0"]).stdout:
                break
            time.sleep(0.1)
        router.run([sys.executable, "-c", SEND_RA, "eth0"])
        time.sleep(0.3)

    send_ra()
    assert default_v6() == ""  # ignored: forwarding on, accept_ra 1
    [v6101] = findings(doctor(host, "nat-router", state), "V6101")
    assert v6101["suggestion"] == "net.ipv6.conf.eth0.accept_ra = 2"
    apply_sysctl(host, v6101["suggestion"], tmp_path)
    send_ra()
    assert "proto ra" in default_v6()
    assert findings(doctor(host, "nat-router", state), "V6101") == []
