"""Role labs: the topologies hostnet's roles live in, built from throwaway namespaces.

Each lab is a context manager that builds its namespaces (tests/helpers/netns.py), starts
its services, and removes everything on exit, even when set-up or the test fails. ``lab.host``
is the namespace the doctor examines, ``lab.role`` the role it is judged as, and
``lab.check()`` asserts that the role's traffic really flows (real TCP and UDP between the
namespaces). ``lab.set(key, value)`` changes a sysctl of the host and remembers the old value;
``lab.restore()`` puts back every value changed since (and removes ``table inet hostnet``),
so one lab can be shared by several tests.

Addresses only from the documentation ranges (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24).
:func:`request` / :func:`requests` send TCP connections and UDP datagrams to the echo service
(tests/helpers/probes.py holds the raw-socket probes of kernel behaviour).

* :func:`server_lab`: a server with one uplink and an "internet" client namespace; TCP 443 and
  80, UDP 53.
* :func:`dual_homed_lab`: a server with two uplinks to one client namespace and an asymmetric
  return path on each: requests for the eth1 address arrive on eth1 but the reply's route
  leaves by eth0, and requests for the eth0 address from the client's second address arrive
  on eth0 but go back by eth1. Strict rp_filter (1) drops both, loose (2) passes both.
* :func:`nat_router_lab`: LAN 198.51.100.0/24 behind a router (lan0 198.51.100.1, wan0
  203.0.113.1) that masquerades to an internet namespace (203.0.113.100) which has no route to
  the LAN; a DNS-like UDP responder on 53 and web ports on the internet side; a port forward
  (DNAT of wan0 tcp 8080 to the LAN server 198.51.100.10:8080).
* :func:`vm_host_lab`: a host with an uplink, a bridge br0 (a tap port and a veth port to a
  bridged "VM"), and a routed /32 VM on a veth standing in for a tap, reached from outside
  through a per-address proxy ARP entry on the uplink.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from tests.helpers.netns import Netns, bridge, ip, namespaces, start, veth

PYTHON = sys.executable

# Echo server: for each "tcp:PORT" / "udp:PORT" argument it answers every connection or
# datagram with "<peer address> <what was received>", so a client learns the source address
# the server saw (the router's address behind masquerade, the real client after DNAT).
SERVICE = r"""
import socket, sys, threading
def tcp(port):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port)); s.listen(64)
    return s
def udp(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", port))
    return s
def serve_tcp(s):
    while True:
        c, peer = s.accept()
        with c:
            c.settimeout(5)
            try:
                data = c.recv(200)
                c.sendall(peer[0].encode() + b" " + data)
            except OSError:
                pass
def serve_udp(s):
    while True:
        try:
            data, peer = s.recvfrom(512)
            s.sendto(peer[0].encode() + b" " + data, peer)
        except OSError:  # no route back (a test took it away): keep serving
            pass
socks = []
for spec in sys.argv[1:]:
    proto, port = spec.split(":")
    socks.append((serve_tcp, tcp(int(port))) if proto == "tcp" else (serve_udp, udp(int(port))))
for fn, s in socks:
    threading.Thread(target=fn, args=(s,), daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
"""

# Client: requests given as groups of five arguments (proto host port source timeout), one
# after the other; prints one line each: "ok <source the server saw> <echo>" or "failed: ...".
CLIENT = r"""
import socket, sys
args = sys.argv[1:]
for i in range(0, len(args), 5):
    proto, host, port, source, timeout = args[i:i + 5]
    s = None
    try:
        if proto == "tcp":
            s = socket.create_connection((host, int(port)), timeout=float(timeout),
                                         source_address=(source, 0) if source != "-" else None)
            s.sendall(b"hello"); data = s.recv(200)
        else:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(float(timeout))
            if source != "-":
                s.bind((source, 0))
            s.sendto(b"hello", (host, int(port))); data = s.recv(512)
        print("ok " + data.decode().replace("\n", " "), flush=True)
    except OSError as exc:
        print(f"failed: {exc}", flush=True)
    finally:
        if s is not None:
            s.close()
"""


@dataclass(frozen=True, slots=True)
class Reply:
    ok: bool
    seen_from: str  # the peer address the server saw ("" when it failed)
    detail: str


@dataclass(frozen=True, slots=True)
class Ask:
    """One request of a traffic check: what it is, and the source the server should see."""

    proto: str
    host: str
    port: int
    what: str
    seen_from: str | None = None
    source: str | None = None


def requests(ns: Netns, asks: Sequence[Ask], timeout: float = 3.0) -> list[Reply]:
    """Several requests from ``ns``, one after the other, in one client process."""
    argv: list[str] = []
    for ask in asks:
        argv += [ask.proto, ask.host, str(ask.port), ask.source or "-", str(timeout)]
    proc = ns.run([PYTHON, "-c", CLIENT, *argv], check=False,
                  timeout=len(asks) * (timeout + 2) + 10)
    lines = proc.stdout.splitlines()
    out: list[Reply] = []
    for i, _ in enumerate(asks):
        line = lines[i].strip() if i < len(lines) else f"no answer ({proc.stderr.strip()})"
        if line.startswith("ok ") and line.endswith(" hello"):
            out.append(Reply(True, line.split()[1], line[3:]))
        else:
            out.append(Reply(False, "", line))
    return out


def request(ns: Netns, proto: str, host: str, port: int, *, source: str | None = None,
            timeout: float = 3.0) -> Reply:
    """One TCP connection or UDP datagram from ``ns``; what the server saw as its source."""
    return requests(ns, [Ask(proto, host, port, "", source=source)], timeout)[0]


def expect(ns: Netns, asks: Sequence[Ask], timeout: float) -> None:
    """Every request of ``asks`` from ``ns`` is answered, each seen from the right source."""
    for ask, reply in zip(asks, requests(ns, asks, timeout), strict=True):
        _expect(reply, f"{ask.what} {ask.proto}/{ask.port}", ask.seen_from)


def start_service(ns: Netns, *specs: str) -> subprocess.Popen[str]:
    """Start the echo service in ``ns`` (``tcp:443``, ``udp:53`` ...); killed with ``ns``
    (or earlier by the caller, with the process returned)."""
    return start(ns, [PYTHON, "-c", SERVICE, *specs], stderr=subprocess.PIPE)


def sysctl_path(key: str) -> str:
    """/proc/sys path of a sysctl key ('/' in a key stands for a dot in an interface name)."""
    return "/proc/sys/" + key.translate(str.maketrans("./", "/."))


# Values every lab host starts from, whatever the initial namespace passed on to new
# namespaces (net.core.devconf_inherit_init_net = 0 copies its IPv4 conf/all and default).
NEUTRAL = {
    "net.ipv4.conf.all.rp_filter": "0",
    "net.ipv4.conf.default.rp_filter": "0",
}


def _neutral(*namespaces: Netns) -> None:
    for ns in namespaces:
        for key, value in NEUTRAL.items():
            ns.sysctl(key, value)


@dataclass
class Lab:
    role: str
    host: Netns
    namespaces: list[Netns] = field(default_factory=list)
    _undo: list[tuple[str, str]] = field(default_factory=list)
    timeout: float = 5.0  # per request in check(); tests expecting a failure lower it

    def read(self, key: str) -> str:
        return self.host.run(["cat", sysctl_path(key)]).stdout.strip()

    def write(self, key: str, value: str) -> None:
        self.host.run(["sh", "-c", f"printf '%s' \"$1\" > '{sysctl_path(key)}'", "sh", value])

    def set(self, key: str, value: str) -> None:
        """Write a sysctl in the host namespace, remembering the old value for restore()."""
        self.remember(key)
        self.write(key, value)

    def try_set(self, key: str, value: str) -> bool:
        """set() that reports a refused write (or a missing key) instead of failing."""
        path = sysctl_path(key)
        old = self.host.run(["cat", path], check=False)
        proc = self.host.run(["sh", "-c", f"printf '%s' \"$1\" > '{path}'", "sh", value],
                             check=False)
        if proc.returncode != 0:
            return False
        self._undo.append((key, old.stdout.strip()))
        return True

    def remember(self, key: str) -> None:
        """Remember a key's current value: restore() puts it back (for writes made elsewhere)."""
        self._undo.append((key, self.read(key)))

    def restore(self) -> None:
        """Undo every set()/remembered write, newest first, and drop ``table inet hostnet``."""
        failed: list[str] = []
        while self._undo:
            key, old = self._undo.pop()
            try:
                self.write(key, old)
            except AssertionError as exc:  # keep restoring the rest, then report
                failed.append(f"{key} = {old}: {exc}")
        self.host.run(["nft", "delete", "table", "inet", "hostnet"], check=False)
        if failed:
            raise AssertionError("could not restore " + "; ".join(failed))

    def check(self) -> None:  # pragma: no cover - every lab overrides it
        raise NotImplementedError


def _expect(reply: Reply, what: str, seen_from: str | None = None) -> None:
    assert reply.ok, f"{what}: {reply.detail}"
    if seen_from is not None:
        assert reply.seen_from == seen_from, f"{what}: server saw {reply.seen_from}, " \
                                             f"expected {seen_from}"


# -- server, single-homed ---------------------------------------------------------------------


@dataclass
class ServerLab(Lab):
    client: Netns | None = None
    address: str = "192.0.2.10"

    def check(self) -> None:
        assert self.client is not None
        expect(self.client, [Ask(proto, self.address, port, "client -> server", "192.0.2.1")
                             for proto, port in (("tcp", 443), ("tcp", 80), ("udp", 53))],
               self.timeout)


@contextlib.contextmanager
def server_lab() -> Iterator[ServerLab]:
    with contextlib.ExitStack() as stack:
        srv, cli = namespaces(stack, "srv", "inet")
        lab = ServerLab("server", srv, [srv, cli], client=cli)
        _neutral(srv)
        veth(srv, cli, "eth0", "up0", "192.0.2.10/24", "192.0.2.1/24")
        ip(srv, "route", "add", "default", "via", "192.0.2.1")
        start_service(srv, "tcp:443", "tcp:80", "udp:53")
        lab.check()
        yield lab


# -- server, dual-homed with asymmetric return paths ------------------------------------------


@dataclass
class DualHomedLab(Lab):
    client: Netns | None = None

    PATHS: Sequence[tuple[str, str, str]] = (
        # (what, destination, source): each request arrives on one interface and its reply
        # leaves by the other
        ("in eth1, reply out eth0", "198.51.100.10", "203.0.113.100"),
        ("in eth0, reply out eth1", "192.0.2.10", "203.0.113.200"),
    )

    def paths(self, proto: str = "tcp", timeout: float = 3.0) -> dict[str, Reply]:
        assert self.client is not None
        port = 443 if proto == "tcp" else 53
        asks = [Ask(proto, dst, port, what, source=src) for what, dst, src in self.PATHS]
        return {a.what: r for a, r in zip(asks, requests(self.client, asks, timeout),
                                          strict=True)}

    def check(self) -> None:
        assert self.client is not None
        expect(self.client, [Ask(proto, dst, 443 if proto == "tcp" else 53, what, src, src)
                             for proto in ("tcp", "udp") for what, dst, src in self.PATHS],
               self.timeout)


@contextlib.contextmanager
def dual_homed_lab() -> Iterator[DualHomedLab]:
    with contextlib.ExitStack() as stack:
        srv, cli = namespaces(stack, "srv2", "inet")
        lab = DualHomedLab("server", srv, [srv, cli], client=cli)
        _neutral(srv, cli)
        veth(srv, cli, "eth0", "upa", "192.0.2.10/24", "192.0.2.1/24")
        veth(srv, cli, "eth1", "upb", "198.51.100.10/24", "198.51.100.1/24")
        # the client: two addresses of its own network; the server routes .100 (and the rest
        # of 203.0.113.0/24) back by eth0, .200 by eth1
        ip(cli, "addr", "add", "203.0.113.100/32", "dev", "lo")
        ip(cli, "addr", "add", "203.0.113.200/32", "dev", "lo")
        ip(srv, "route", "add", "default", "via", "192.0.2.1", "dev", "eth0")
        ip(srv, "route", "add", "203.0.113.200/32", "via", "198.51.100.1", "dev", "eth1")
        # the client reaches each server address on its own link (connected routes)
        start_service(srv, "tcp:443", "udp:53")
        lab.check()
        yield lab


# -- NAT router -------------------------------------------------------------------------------

LAB_NAT = """
table ip lab_nat {
    chain prerouting {
        type nat hook prerouting priority dstnat; policy accept;
        iifname "wan0" tcp dport 8080 dnat to 198.51.100.10:8080
    }
    chain postrouting {
        type nat hook postrouting priority srcnat; policy accept;
        oifname "wan0" masquerade
    }
}
"""


@dataclass
class NatRouterLab(Lab):
    lan: Netns | None = None
    internet: Netns | None = None

    def check(self) -> None:
        assert self.lan is not None and self.internet is not None
        # LAN clients browse and resolve: the internet sees the router's address (masquerade)
        expect(self.lan, [Ask("tcp", "203.0.113.100", 443, "LAN out", "203.0.113.1"),
                          Ask("tcp", "203.0.113.100", 80, "LAN out", "203.0.113.1"),
                          Ask("udp", "203.0.113.100", 53, "LAN DNS", "203.0.113.1")],
               self.timeout)
        # port forward from outside: the LAN server sees the real client
        expect(self.internet, [Ask("tcp", "203.0.113.1", 8080, "port forward",
                                   "203.0.113.100")], self.timeout)


@contextlib.contextmanager
def nat_router_lab() -> Iterator[NatRouterLab]:
    with contextlib.ExitStack() as stack:
        router, lan, inet = namespaces(stack, "router", "lan", "inet")
        lab = NatRouterLab("nat-router", router, [router, lan, inet], lan=lan, internet=inet)
        _neutral(router)
        veth(router, lan, "lan0", "eth0", "198.51.100.1/24", "198.51.100.10/24")
        veth(router, inet, "wan0", "eth0", "203.0.113.1/24", "203.0.113.100/24")
        ip(lan, "route", "add", "default", "via", "198.51.100.1")
        ip(router, "route", "add", "default", "via", "203.0.113.100")  # the "ISP"
        # the internet has no route to 198.51.100.0/24: only masquerade makes replies come back
        router.sysctl("net.ipv4.ip_forward", "1")
        router.run(["nft", "-f", "-"], input=LAB_NAT)
        start_service(inet, "tcp:443", "tcp:80", "udp:53")
        start_service(lan, "tcp:8080")
        lab.check()
        yield lab


# -- VM host ----------------------------------------------------------------------------------


@dataclass
class VmHostLab(Lab):
    internet: Netns | None = None
    bridged: Netns | None = None
    routed: Netns | None = None

    def check(self) -> None:
        assert self.internet and self.bridged and self.routed
        outside = "203.0.113.100"
        expect(self.internet, [
            Ask("tcp", "203.0.113.50", 443, "outside -> routed VM", outside),  # proxy ARP, /32
            Ask("udp", "203.0.113.50", 53, "outside -> routed VM", outside),
            Ask("tcp", "192.0.2.10", 443, "outside -> bridged VM", outside),  # into the bridge
        ], self.timeout)
        expect(self.routed, [Ask("tcp", outside, 443, "routed VM -> outside", "203.0.113.50")],
               self.timeout)
        expect(self.bridged, [Ask("tcp", outside, 443, "bridged VM -> outside", "192.0.2.10")],
               self.timeout)


@contextlib.contextmanager
def vm_host_lab() -> Iterator[VmHostLab]:
    """The tap0 port has no process holding it, so its carrier stays down and it carries no
    traffic (a tap passes frames only while a program such as QEMU has it open); it is there
    because that is what a VM host's bridge looks like to the doctor. The VMs that do carry
    traffic sit behind veth pairs, which behave like a tap whose program is running."""
    with contextlib.ExitStack() as stack:
        host, inet, bridged, routed = namespaces(stack, "vmhost", "inet", "vm1", "vm2")
        lab = VmHostLab("vm-host", host, [host, inet, bridged, routed], internet=inet,
                        bridged=bridged, routed=routed)
        _neutral(host)
        veth(host, inet, "eth0", "eth0", "203.0.113.1/24", "203.0.113.100/24")
        ip(inet, "route", "add", "192.0.2.0/24", "via", "203.0.113.1")
        # the bridge: a tap (no process: NO-CARRIER) and a veth to a bridged VM
        ip(host, "tuntap", "add", "dev", "tap0", "mode", "tap")
        veth(host, bridged, "vnet0", "eth0", None, "192.0.2.10/24")
        bridge(host, "br0", "tap0", "vnet0", addr="192.0.2.1/24")
        ip(host, "link", "set", "tap0", "up")
        ip(bridged, "route", "add", "default", "via", "192.0.2.1")
        # the routed VM: its /32 on a veth, no address on the host side
        veth(host, routed, "vmr0", "eth0", None, "203.0.113.50/32")
        ip(host, "route", "add", "203.0.113.50/32", "dev", "vmr0")
        ip(host, "neigh", "add", "proxy", "203.0.113.50", "dev", "eth0")
        ip(routed, "route", "add", "203.0.113.1", "dev", "eth0")
        ip(routed, "route", "add", "default", "via", "203.0.113.1", "dev", "eth0")
        host.sysctl("net.ipv4.ip_forward", "1")
        start_service(bridged, "tcp:443")
        start_service(routed, "tcp:443", "udp:53")
        start_service(inet, "tcp:443")
        lab.check()
        yield lab


LABS = {
    "server": server_lab,
    "dual-homed": dual_homed_lab,
    "nat-router": nat_router_lab,
    "vm-host": vm_host_lab,
}
