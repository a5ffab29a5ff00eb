"""``hostnet conntrack top`` against real conntrack tables in throwaway namespaces."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers.conntrack import enable_tracking
from tests.helpers.netns import Netns, link

HOSTNET = str(Path(sys.executable).with_name("hostnet"))

#: source -> number of entries loaded from it
SOURCES = {"198.51.100.1": 1200, "198.51.100.2": 600, "198.51.100.3": 300,
           "203.0.113.77": 150, "2001:db8::7": 90}


def hostnet_top(*args: str) -> dict:  # type: ignore[type-arg]
    proc = subprocess.run([HOSTNET, "conntrack", "top", "--format", "json", *args],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def groups(doc: dict) -> dict[tuple[object, ...], int]:  # type: ignore[type-arg]
    cols = doc["columns"]
    return {tuple(g[c] for c in cols): g["count"] for g in doc["groups"]}


def load(ns: Netns) -> None:
    lines = []
    for src, n in SOURCES.items():
        dst = "2001:db8::443" if ":" in src else "203.0.113.10"
        for port in range(2000, 2000 + n):
            lines.append(f"-I -s {src} -d {dst} -p tcp --sport {port} --dport 443 "
                         "--state ESTABLISHED -t 600 -u ASSURED")
    with tempfile.NamedTemporaryFile("w", suffix=".ct", delete=False) as fh:
        fh.write("\n".join(lines) + "\n")
    try:
        ns.run(["conntrack", "-R", fh.name], check=False, timeout=120)
    finally:
        os.unlink(fh.name)


def test_counts_per_source_are_exact(netns: Callable[..., Netns]) -> None:
    ns = netns("cttop")
    enable_tracking(ns)
    load(ns)
    total = sum(SOURCES.values())
    assert int(ns.sysctl("net.netfilter.nf_conntrack_count")) == total

    doc = hostnet_top("--netns", ns.name, "--by", "src", "--limit", "0")
    assert doc["source"]["kind"] == "proc"
    assert (doc["entries"], doc["matched"], doc["skipped"]) == (total, total, 0)
    assert groups(doc) == {(k,): v for k, v in SOURCES.items()}
    assert doc["groups"][0]["share"] == round(1200 / total, 6)

    # the netlink path (conntrack -L) sees the same table
    via_netlink = hostnet_top("--netns", ns.name, "--by", "src", "--limit", "0",
                              "--source", "netlink")
    assert via_netlink["source"]["kind"] == "netlink"
    assert groups(via_netlink) == groups(doc)

    # top 2 plus others; prefixes; filters
    doc = hostnet_top("--netns", ns.name, "--limit", "2")
    assert [g["src"] for g in doc["groups"]] == ["198.51.100.1", "198.51.100.2"]
    assert doc["others"] == {"groups": 3, "count": 540, "share": round(540 / total, 6)}
    doc = hostnet_top("--netns", ns.name, "--by", "src/24/64")
    assert groups(doc) == {("198.51.100.0/24",): 2100, ("203.0.113.0/24",): 150,
                           ("2001:db8::/64",): 90}
    doc = hostnet_top("--netns", ns.name, "--src", "198.51.100.2/31", "--by", "dst,dport",
                      "--assured", "--proto", "tcp", "--state", "ESTABLISHED")
    assert groups(doc) == {("203.0.113.10", 443): 900}
    assert doc["matched"] == 900 and doc["entries"] == total


TRAFFIC = r"""
import socket, struct, time
for port in (53, 53, 53):
    socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"q", ("192.0.2.2", port))
socket.socket(socket.AF_INET6, socket.SOCK_DGRAM).sendto(b"q", ("2001:db8::2", 53))

def csum(b):
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xffff)
    return ~(s + (s >> 16)) & 0xffff

echo = struct.pack("!BBHHH", 8, 0, 0, 0x4242, 1) + b"hnet"
echo = struct.pack("!BBHHH", 8, 0, csum(echo), 0x4242, 1) + b"hnet"
socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP).sendto(echo, ("192.0.2.2", 0))
echo6 = struct.pack("!BBHHH", 128, 0, 0, 0x4343, 1) + b"hnet"  # the kernel fills the sum
socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6).sendto(
    echo6, ("2001:db8::2", 0))
for _ in range(100):
    try:
        c = socket.create_connection(("192.0.2.2", 8080), timeout=1)
        break
    except OSError:
        time.sleep(0.05)
c.sendall(b"x")
c.recv(1)
time.sleep(0.2)
"""

SERVER = r"""
import socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("192.0.2.2", 8080))
s.listen()
c, _ = s.accept()
c.recv(1)
c.sendall(b"y")
c.recv(1)
"""


def test_real_udp_icmp_ipv6_tcp_mix(netns: Callable[..., Netns]) -> None:
    a, b = netns("ctmix-a"), netns("ctmix-b")
    link(a, b, "192.0.2.1/24", "192.0.2.2/24")
    for ns, addr in ((a, "2001:db8::1/64"), (b, "2001:db8::2/64")):
        ns.run(["ip", "addr", "add", addr, "dev", "veth0", "nodad"])
    enable_tracking(a)
    server = b.popen([sys.executable, "-c", SERVER], stdout=subprocess.DEVNULL)
    a.run([sys.executable, "-c", TRAFFIC], timeout=30)

    by_proto = groups(hostnet_top("--netns", a.name, "--by", "proto", "--limit", "0"))
    assert by_proto == {("udp",): 4, ("icmp",): 1, ("icmpv6",): 1, ("tcp",): 1}

    udp = hostnet_top("--netns", a.name, "--proto", "udp", "--unreplied",
                      "--by", "dst,dport")
    assert groups(udp) == {("192.0.2.2", 53): 3, ("2001:db8::2", 53): 1}

    # ICMP has no ports: dport shows as "-"; the echo was answered (not unreplied)
    icmp = hostnet_top("--netns", a.name, "--proto", "icmp", "--by", "dst,dport")
    assert groups(icmp) == {("192.0.2.2", "-"): 1}
    assert hostnet_top("--netns", a.name, "--proto", "icmp", "--unreplied")["matched"] == 0

    tcp = hostnet_top("--netns", a.name, "--proto", "tcp", "--assured", "--by", "dport,state")
    assert list(groups(tcp)) in ([(8080, "ESTABLISHED")], [(8080, "FIN_WAIT")],
                                 [(8080, "CLOSE_WAIT")], [(8080, "TIME_WAIT")],
                                 [(8080, "LAST_ACK")], [(8080, "CLOSE")])

    six = hostnet_top("--netns", a.name, "--src", "2001:db8::/32", "--by", "proto,dst")
    assert groups(six) == {("icmpv6", "2001:db8::2"): 1, ("udp", "2001:db8::2"): 1}

    # both readers agree on every entry of the real mix
    for by in ("src,dst,sport,dport", "proto,state", "l3"):
        proc = hostnet_top("--netns", a.name, "--by", by, "--limit", "0")
        nl = hostnet_top("--netns", a.name, "--by", by, "--limit", "0", "--source", "netlink")
        assert groups(proc) == groups(nl), by
    server.kill()


@pytest.mark.parametrize("fmt", ["proc", "netlink"])
def test_saved_dump_reads_like_the_live_table(netns: Callable[..., Netns], fmt: str,
                                              tmp_path: Path) -> None:
    ns = netns("ctsave")
    enable_tracking(ns)
    load(ns)
    argv = ["cat", "/proc/net/nf_conntrack"] if fmt == "proc" else ["conntrack", "-L"]
    saved = tmp_path / "table.txt"
    saved.write_text(ns.run(argv).stdout)
    live = hostnet_top("--netns", ns.name, "--by", "src/24/64", "--limit", "0")
    from_file = hostnet_top("--file", str(saved), "--by", "src/24/64", "--limit", "0")
    assert groups(from_file) == groups(live)
    assert from_file["skipped"] == 0
