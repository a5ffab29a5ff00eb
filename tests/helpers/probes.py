"""Probes that show what the kernel does with a few crafted packets, for the advice proofs.

Each runs a short Python script inside a lab namespace (raw sockets: the kernel tests run as
root) and reports what came back:

* :func:`broadcast_ping`: who answers an echo request sent to a broadcast address (HD109);
* :func:`send_redirect` and :func:`route_gateway`: an ICMP redirect from a host's gateway,
  and the gateway the host then uses (HD103);
* :func:`source_routed`: whether a host answers a datagram carrying a source route (HD106);
* :func:`syn_flood`: spoofed SYNs that fill a listener's half-open queue (HD101).

Addresses only from the documentation ranges, only between the lab's namespaces.
"""

from __future__ import annotations

import sys

from tests.helpers.netns import Netns

PYTHON = sys.executable

# The Internet checksum (RFC 1071), shared by the scripts below.
CSUM = r"""
import struct
def csum(b):
    b += b"\0" * (len(b) % 2)
    t = sum(struct.unpack(f"!{len(b) // 2}H", b)); t = (t >> 16) + (t & 0xFFFF); t += t >> 16
    return ~t & 0xFFFF
"""

# Broadcast ping: one ICMP echo request to a broadcast address; prints each address that
# answered within the timeout (a raw socket: needs root, which the kernel tests have).
PING = CSUM + r"""
import os, socket, struct, sys, time
dst, timeout, want = sys.argv[1], float(sys.argv[2]), sys.argv[3]
ident = os.getpid() & 0xFFFF
body = struct.pack("!BBHHH", 8, 0, 0, ident, 1) + b"hostnet-lab"
pkt = body[:2] + struct.pack("!H", csum(body)) + body[4:]
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
s.sendto(pkt, (dst, 0))
end = time.monotonic() + timeout
seen = set()
while (left := end - time.monotonic()) > 0:
    s.settimeout(left)
    try:
        data, (src, _) = s.recvfrom(1500)
    except socket.timeout:
        break
    ihl = (data[0] & 0x0F) * 4
    kind, _, _, rid = struct.unpack("!BBHH", data[ihl:ihl + 6])
    if kind == 0 and rid == ident and src not in seen:
        seen.add(src); print(src, flush=True)
        if src == want:
            break
"""


def broadcast_ping(ns: Netns, broadcast: str, timeout: float = 1.0,
                   until: str = "-") -> set[str]:
    """The addresses that answer one echo request sent from ``ns`` to ``broadcast`` within
    ``timeout`` (it stops early once ``until`` has answered)."""
    proc = ns.run([PYTHON, "-c", PING, broadcast, str(timeout), until], timeout=timeout + 10)
    return set(proc.stdout.split())


# ICMP host redirect (type 5 code 1) from this namespace's address to TARGET: "for packets
# from TARGET to DST, use GATEWAY". The payload quotes the header of such a packet: an echo
# reply the kernel sent, for which icmp_err applies redirects without needing a socket.
REDIRECT = CSUM + r"""
import socket, struct, sys
target, dst, gateway = sys.argv[1:4]
inner = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 28, 0, 0, 64, 1, 0,
                    socket.inet_aton(target), socket.inet_aton(dst))
inner = inner[:10] + struct.pack("!H", csum(inner)) + inner[12:]
inner += struct.pack("!BBHHH", 0, 0, 0, 1, 1)
body = struct.pack("!BBH4s", 5, 1, 0, socket.inet_aton(gateway)) + inner
pkt = body[:2] + struct.pack("!H", csum(body)) + body[4:]
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
s.sendto(pkt, (target, 0))
"""


# A UDP "hello" from SRC to DST:PORT carrying a loose source route option whose route is
# used up (pointer past its one hop): only a host that accepts source-routed packets delivers
# it. Prints the echo service's answer, exit 3 when none comes.
SOURCE_ROUTED = r"""
import socket, struct, sys
src, dst, port, timeout = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); rx.bind((src, 0)); rx.settimeout(timeout)
sport = rx.getsockname()[1]
lsrr = bytes([0x83, 7, 8]) + socket.inet_aton(dst) + b"\x01"  # LSRR, spent; NOP pad
data = b"hello"
udp = struct.pack("!HHHH", sport, port, 8 + len(data), 0) + data
ip = struct.pack("!BBHHHBBH4s4s", 0x47, 0, 28 + len(udp), 0, 0, 64, 17, 0,
                 socket.inet_aton(src), socket.inet_aton(dst)) + lsrr
tx = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
tx.sendto(ip + udp, (dst, 0))
try:
    print(rx.recv(512).decode())
except socket.timeout:
    sys.exit(3)
"""


def source_routed(ns: Netns, src: str, dst: str, port: int, timeout: float = 1.0) -> bool:
    """Whether ``dst`` answers a source-routed UDP datagram sent from ``ns``."""
    proc = ns.run([PYTHON, "-c", SOURCE_ROUTED, src, dst, str(port), str(timeout)],
                  check=False, timeout=timeout + 10)
    return proc.returncode == 0 and proc.stdout.strip().endswith(" hello")


# SYN flood: COUNT TCP SYNs to DST:PORT from SPOOF (an address nobody answers for), so the
# listener's queue of half-open connections fills and stays full while it retries SYN-ACKs.
SYN_FLOOD = CSUM + r"""
import random, socket, struct, sys
spoof, dst, port, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
tx = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
for i in range(count):
    sport = 20000 + i
    tcp = struct.pack("!HHIIBBHHH", sport, port, random.getrandbits(32), 0, 5 << 4, 0x02,
                      64240, 0, 0)
    pseudo = socket.inet_aton(spoof) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 6, 20)
    tcp = tcp[:16] + struct.pack("!H", csum(pseudo + tcp)) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, i, 0, 64, 6, 0, socket.inet_aton(spoof),
                     socket.inet_aton(dst))
    tx.sendto(ip + tcp, (dst, 0))
"""


def syn_flood(ns: Netns, spoof: str, dst: str, port: int, count: int) -> None:
    """Send ``count`` spoofed SYNs from ``ns`` (the replies go to ``spoof``, which is silent)."""
    ns.run([PYTHON, "-c", SYN_FLOOD, spoof, dst, str(port), str(count)])


def send_redirect(ns: Netns, target: str, dst: str, gateway: str) -> None:
    """From ``ns`` (the target's gateway), tell ``target`` to reach ``dst`` by ``gateway``."""
    ns.run([PYTHON, "-c", REDIRECT, target, dst, gateway])


def route_gateway(ns: Netns, dst: str) -> str | None:
    """The gateway ``ns`` uses for ``dst`` now (route exceptions such as redirects included)."""
    words = ns.run(["ip", "-4", "route", "get", dst]).stdout.split()
    return words[words.index("via") + 1] if "via" in words else None
