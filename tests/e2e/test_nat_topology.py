"""NAT router topology for the e2e tests (no tests here).

    inet (203.0.113.254/24 + client /32s, internet server)
      | wan0 203.0.113.1/24
    router (inet hostnet loaded here)
      | lan0 198.51.100.1/24
    sw (bridge) --- srv  198.51.100.20 (server), 198.51.100.11 (the 1:1 VM)
                --- lanc 198.51.100.30-41 (LAN clients)

An agent (one python process per namespace) sends many probes at once and servers log what
they saw (local address and port, peer address, probe id), so a thousand probes take seconds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.helpers.netns import Netns

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


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


def _veth(a: Netns, name_a: str, b: Netns, name_b: str) -> None:
    ta, tb = f"hna{uuid.uuid4().hex[:6]}", f"hnb{uuid.uuid4().hex[:6]}"
    _ip("link", "add", ta, "type", "veth", "peer", "name", tb)
    _ip("link", "set", ta, "netns", a.name, "name", name_a)
    _ip("link", "set", tb, "netns", b.name, "name", name_b)
    for ns, dev in ((a, name_a), (b, name_b)):
        _ip("-n", ns.name, "link", "set", dev, "up")


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
        proc = self.ns(name).run([sys.executable, "-c", AGENT, "probe", str(wait)],
                                 input=json.dumps(probes), timeout=120)
        out: dict[str, Any] = json.loads(proc.stdout)
        return out

    def probe_all(self, by_ns: dict[str, list[dict[str, Any]]], wait: float = 2.5) \
            -> dict[str, Any]:
        """Run the probes of every namespace at the same time; results by probe id."""
        procs = {}
        for name, probes in by_ns.items():
            if probes:
                procs[name] = self.ns(name).popen(
                    [sys.executable, "-c", AGENT, "probe", str(wait)], stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE, text=True)
                assert procs[name].stdin is not None
                procs[name].stdin.write(json.dumps(probes))
                procs[name].stdin.close()
        results: dict[str, Any] = {}
        for proc in procs.values():
            assert proc.stdout is not None
            results.update(json.loads(proc.stdout.read()))
            proc.wait(timeout=60)
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
    proc = ns.popen([sys.executable, "-c", AGENT, "serve", json.dumps(ports), str(log)],
                    stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"


@contextmanager
def topology(route_public: bool = True) -> Iterator[Topology]:
    made: list[Netns] = []
    tmp = tempfile.TemporaryDirectory(prefix="hn-nat-")
    try:
        for tag in ("rtr", "inet", "srv", "lanc", "sw"):
            made.append(Netns(f"nat-{tag}").__enter__())
        router, inet, srv, lanc, sw = made
        _veth(router, "wan0", inet, "veth0")
        _ip("-n", sw.name, "link", "add", "br0", "type", "bridge")
        _ip("-n", sw.name, "link", "set", "br0", "up")
        for ns, port in ((router, "p-rtr"), (srv, "p-srv"), (lanc, "p-lanc")):
            _veth(ns, "lan0" if ns is router else "veth0", sw, port)
            _ip("-n", sw.name, "link", "set", port, "master", "br0")
        _ip("-n", router.name, "addr", "add", "203.0.113.1/24", "dev", "wan0")
        _ip("-n", router.name, "addr", "add", "198.51.100.1/24", "dev", "lan0")
        _ip("-n", router.name, "route", "add", "default", "via", "203.0.113.254")
        router.sysctl("net.ipv4.ip_forward", "1")
        _ip("-n", inet.name, "addr", "add", "203.0.113.254/24", "dev", "veth0")
        for a in INET_SOURCES:
            _ip("-n", inet.name, "addr", "add", f"{a}/32", "dev", "veth0")
        _ip("-n", inet.name, "route", "add", "198.51.100.0/24", "via", "203.0.113.1")
        for a in ("198.51.100.20/24", "198.51.100.11/24"):
            _ip("-n", srv.name, "addr", "add", a, "dev", "veth0")
        for a in LAN_SOURCES:
            _ip("-n", lanc.name, "addr", "add", f"{a}/24", "dev", "veth0")
        for ns in (srv, lanc):
            _ip("-n", ns.name, "route", "add", "default", "via", "198.51.100.1")
        # 1:1: the proxy neighbour entry answers only for addresses routed elsewhere
        _ip("-n", router.name, "neigh", "add", "proxy", "203.0.113.11", "dev", "wan0")
        if route_public:
            _ip("-n", router.name, "route", "add", "203.0.113.11/32", "dev", "lan0")
        logdir = Path(tmp.name)
        _serve(srv, SRV_PORTS, logdir / "srv.log")
        _serve(router, ROUTER_PORTS, logdir / "router.log")
        _serve(inet, INET_PORTS, logdir / "inet.log")
        yield Topology(router, inet, srv, lanc, sw, logdir)
    finally:
        for ns in reversed(made):
            ns.close()
        tmp.cleanup()


def conntrack_entries(router: Netns) -> list[dict[str, str]]:
    """``conntrack -L`` of the router as dicts: proto, src, dst, sport, dport (original) and
    rsrc, rdst, rsport, rdport (reply)."""
    proc = router.run(["conntrack", "-L"], check=False)
    out = []
    for line in proc.stdout.splitlines():
        parts = line.split()
        kv: dict[str, list[str]] = {}
        for p in parts:
            if "=" in p:
                k, v = p.split("=", 1)
                kv.setdefault(k, []).append(v)
        if len(kv.get("src", [])) < 2:
            continue
        out.append({"proto": parts[0], "src": kv["src"][0], "dst": kv["dst"][0],
                    "sport": kv.get("sport", ["0"])[0], "dport": kv.get("dport", ["0"])[0],
                    "rsrc": kv["src"][1], "rdst": kv["dst"][1],
                    "rsport": kv.get("sport", ["0", "0"])[1],
                    "rdport": kv.get("dport", ["0", "0"])[1]})
    return out


def write_config(text: str = CONFIG) -> str:
    fd, path = tempfile.mkstemp(prefix="hn-nat-", suffix=".toml")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    return path
