"""The NAT router topology of the NAT e2e tests (tests/e2e/test_nat_*.py).

    inet (203.0.113.254/24 + client /32s, internet server)
      | wan0 203.0.113.1/24
    router (inet hostnet loaded here)
      | lan0 198.51.100.1/24
    sw (bridge) --- srv  198.51.100.20 (server), 198.51.100.11 (the 1:1 VM)
                --- lanc 198.51.100.30-41 (LAN clients)

An agent (one python process per namespace) sends many probes at once and servers log what
they saw (local address and port, peer address, probe id), so a thousand probes take seconds.
:func:`probe` builds one probe, :meth:`Topology.probe_all` sends them, :meth:`Topology.seen`
says what the servers saw, :func:`conntrack_entries` what the router's conntrack table holds.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.helpers.conntrack import entries as conntrack_entries
from tests.helpers.netns import Netns, bridge, ip, ip_batch, namespaces, start, veth

__all__ = ["CONFIG", "INET_SOURCES", "LAN_SOURCES", "Topology", "conntrack_entries", "probe",
           "topology", "write_config"]

CONFIG = """\
[nat]
backend = "nftables"

[[nat.masquerade]]
source = ["198.51.100.0/24"]
out = "wan0"

[[nat.forward]]
in = "wan0"
proto = "tcp"
port = 3389
to = "198.51.100.20"
allow = ["203.0.113.50", "192.0.2.0/28", "198.51.100.32/30"]
hairpin = true

[[nat.forward]]
in = "wan0"
proto = "udp"
port = 5000
to = "198.51.100.20:15000"
allow = ["203.0.113.50", "192.0.2.0/28", "198.51.100.32/30"]
hairpin = true

[[nat.forward]]
in = "wan0"
proto = "tcp"
port = "8000-8003"
to = "198.51.100.20"

[[nat.forward]]
in = "wan0"
proto = "udp"
port = "8000-8003"
to = "198.51.100.20"

[[nat.one_to_one]]
public = "203.0.113.11"
private = "198.51.100.11"
arp = "proxy"

[[nat.notrack]]
proto = "udp"
port = 53
"""

INET_SOURCES = ["203.0.113.50", "203.0.113.51", "203.0.113.52", "203.0.113.77",
                "192.0.2.1", "192.0.2.5", "192.0.2.14", "192.0.2.15", "192.0.2.16",
                "192.0.2.17", "192.0.2.100", "192.0.2.200"]
LAN_SOURCES = [f"198.51.100.{i}" for i in range(30, 42)]
SRV_PORTS = [("tcp", 3389), ("udp", 15000), *[(p, n) for p in ("tcp", "udp")
             for n in range(8000, 8004)], ("tcp", 7000), ("udp", 7000)]
ROUTER_PORTS = [("udp", 53), ("tcp", 9000), ("udp", 9000), ("tcp", 3389), ("udp", 5000),
                *[(p, n) for p in ("tcp", "udp") for n in range(8000, 8004)]]
INET_PORTS = [("tcp", 9100), ("udp", 9100)]

AGENT = r'''
import json, os, selectors, socket, struct, sys, time
mode = sys.argv[1]
if mode == "serve":
    ports, log = json.loads(sys.argv[2]), open(sys.argv[3], "a", buffering=1)
    sel = selectors.DefaultSelector()
    for proto, port in ports:
        if proto == "tcp":
            s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("0.0.0.0", port)); s.listen(512); s.setblocking(False)
            sel.register(s, selectors.EVENT_READ, ("accept", port))
        else:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setsockopt(socket.IPPROTO_IP, 8, 1)  # IP_PKTINFO: which local address
            s.bind(("0.0.0.0", port)); s.setblocking(False)
            sel.register(s, selectors.EVENT_READ, ("udp", port))
    print("ready", flush=True)
    while True:
        for key, _ in sel.select():
            kind, port = key.data[0], key.data[1]
            s = key.fileobj
            try:
                if kind == "accept":
                    c, peer = s.accept(); c.setblocking(False)
                    sel.register(c, selectors.EVENT_READ, ("tcp", port, peer[0]))
                elif kind == "tcp":
                    data = s.recv(200)
                    if data:
                        local = s.getsockname()[0]
                        log.write(json.dumps({"id": data.decode().strip(), "proto": "tcp",
                                  "local": f"{local}:{port}", "peer": key.data[2]}) + "\n")
                        s.sendall(key.data[2].encode())
                    sel.unregister(s); s.close()
                else:
                    data, anc, _, peer = s.recvmsg(200, 256)
                    local = "?"
                    for lvl, typ, val in anc:
                        if lvl == socket.IPPROTO_IP and typ == 8:
                            local = socket.inet_ntoa(val[8:12])
                    log.write(json.dumps({"id": data.decode().strip(), "proto": "udp",
                              "local": f"{local}:{port}", "peer": peer[0]}) + "\n")
                    info = struct.pack("=I4s4s", 0, socket.inet_aton(local), bytes(4))
                    s.sendmsg([peer[0].encode()], [(socket.IPPROTO_IP, 8, info)], 0, peer)
            except OSError:
                pass
else:
    probes, wait = json.load(sys.stdin), float(sys.argv[2])
    sel = selectors.DefaultSelector()
    out = {}
    for p in probes:
        kind = socket.SOCK_STREAM if p["proto"] == "tcp" else socket.SOCK_DGRAM
        s = socket.socket(socket.AF_INET, kind); s.setblocking(False)
        s.bind((p["src"], 0))
        out[p["id"]] = {"result": "timeout", "sport": s.getsockname()[1]}
        if p["proto"] == "udp":
            s.connect((p["dst"], p["dport"])); s.send(p["id"].encode())
            sel.register(s, selectors.EVENT_READ, (p["id"], "read"))
        else:
            s.connect_ex((p["dst"], p["dport"]))
            sel.register(s, selectors.EVENT_WRITE, (p["id"], "conn"))
    end = time.time() + wait
    while time.time() < end and sel.get_map():
        for key, _ in sel.select(timeout=max(0.01, end - time.time())):
            pid, state = key.data; s = key.fileobj
            try:
                if state == "conn":
                    err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        out[pid]["result"] = "refused" if err == 111 else f"error {err}"
                        sel.unregister(s); s.close(); continue
                    s.send(pid.encode()); sel.modify(s, selectors.EVENT_READ, (pid, "read"))
                else:
                    data = s.recv(200)
                    out[pid].update(result="ok", seen=data.decode())
                    sel.unregister(s); s.close()
            except ConnectionRefusedError:
                out[pid]["result"] = "refused"; sel.unregister(s); s.close()
            except OSError as exc:
                out[pid]["result"] = f"error {exc.errno}"; sel.unregister(s); s.close()
    json.dump(out, sys.stdout)
'''


def probe(pid: str, proto: str, src: str, dst: str, dport: int) -> dict[str, Any]:
    """One probe for :meth:`Topology.probe_all`: ``proto`` from ``src`` to ``dst:dport``."""
    return {"id": pid, "proto": proto, "src": src, "dst": dst, "dport": dport}


@dataclass
class Topology:
    router: Netns
    inet: Netns
    srv: Netns
    lanc: Netns
    sw: Netns
    logdir: Path

    def ns(self, name: str) -> Netns:
        ns: Netns = getattr(self, name)
        return ns

    def probe(self, name: str, probes: list[dict[str, Any]], wait: float = 2.5) -> dict[str, Any]:
        return self.probe_all({name: probes}, wait)

    def probe_all(self, by_ns: dict[str, list[dict[str, Any]]], wait: float = 2.5) \
            -> dict[str, Any]:
        """Run the probes of every namespace at the same time; results by probe id."""
        procs: dict[str, subprocess.Popen[str]] = {}
        for name, probes in by_ns.items():
            if probes:
                proc = procs[name] = self.ns(name).popen(
                    [sys.executable, "-c", AGENT, "probe", str(wait)], stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE, text=True)
                assert proc.stdin is not None
                proc.stdin.write(json.dumps(probes))
                proc.stdin.close()
        results: dict[str, Any] = {}
        for name, proc in procs.items():
            assert proc.stdout is not None
            out = proc.stdout.read()
            assert proc.wait(timeout=60) == 0, f"probe agent in {name} failed: {out!r}"
            results.update(json.loads(out))
        return results

    def seen(self) -> dict[str, dict[str, str]]:
        """What the servers logged, by probe id."""
        time.sleep(0.2)
        out: dict[str, dict[str, str]] = {}
        for log in self.logdir.glob("*.log"):
            for line in log.read_text().splitlines():
                rec = json.loads(line)
                out[rec["id"]] = {**rec, "server": log.stem}
        return out

    def clear_logs(self) -> None:
        for log in self.logdir.glob("*.log"):
            log.write_text("")


def _serve(ns: Netns, ports: list[tuple[str, int]], log: Path) -> None:
    log.touch()
    start(ns, [sys.executable, "-c", AGENT, "serve", json.dumps(ports), str(log)])


@contextlib.contextmanager
def topology(route_public: bool = True) -> Iterator[Topology]:
    with contextlib.ExitStack() as stack:
        router, inet, srv, lanc, sw = namespaces(stack, *(f"nat-{tag}" for tag in (
            "rtr", "inet", "srv", "lanc", "sw")))
        logdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="hn-nat-")))
        veth(router, inet, "wan0", "veth0", "203.0.113.1/24", "203.0.113.254/24")
        for ns, port, addr in ((router, "p-rtr", "198.51.100.1/24"),
                               (srv, "p-srv", "198.51.100.20/24"),
                               (lanc, "p-lanc", f"{LAN_SOURCES[0]}/24")):
            veth(ns, sw, "lan0" if ns is router else "veth0", port, addr)
        bridge(sw, "br0", "p-rtr", "p-srv", "p-lanc")
        ip(router, "route", "add", "default", "via", "203.0.113.254")
        router.sysctl("net.ipv4.ip_forward", "1")
        ip_batch(inet, [*(f"addr add {a}/32 dev veth0" for a in INET_SOURCES),
                        "route add 198.51.100.0/24 via 203.0.113.1"])
        ip_batch(srv, ["addr add 198.51.100.11/24 dev veth0",
                       "route add default via 198.51.100.1"])
        ip_batch(lanc, [*(f"addr add {a}/24 dev veth0" for a in LAN_SOURCES[1:]),
                        "route add default via 198.51.100.1"])
        # 1:1: the proxy neighbour entry answers only for addresses routed elsewhere
        ip(router, "neigh", "add", "proxy", "203.0.113.11", "dev", "wan0")
        if route_public:
            ip(router, "route", "add", "203.0.113.11/32", "dev", "lan0")
        _serve(srv, SRV_PORTS, logdir / "srv.log")
        _serve(router, ROUTER_PORTS, logdir / "router.log")
        _serve(inet, INET_PORTS, logdir / "inet.log")
        yield Topology(router, inet, srv, lanc, sw, logdir)


def write_config(text: str = CONFIG) -> str:
    fd, path = tempfile.mkstemp(prefix="hn-nat-", suffix=".toml")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    return path
