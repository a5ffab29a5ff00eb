"""Role labs for the conntrack advice (issue 8, "Prove each fix on its role").

Each test builds the role's topology in throwaway namespaces with real traffic, checks the
finding before, applies exactly the proposed nft snippet (``nft -f``) and checks the finding
and the role's traffic after:

* a NAT router whose table fills with its LAN clients' masqueraded DNS flows: CT110 must not
  propose notrack (untracked packets are not NATed: the clients' DNS would stop);
* a server answering DNS itself: CT110 proposes notrack; applied, new queries create no
  entries and still get answers;
* a server with established TCP clients and a UDP flood from one source: CT109 names only
  the flooding source; applied, the clients' connections keep working and the flood's new
  entries stop growing.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from hostnet.checks.base import Subject
from hostnet.checks.conntrack_composition import check_composition
from hostnet.findings import Finding
from hostnet.host.root import Root
from hostnet.knowledge.catalogue import load as load_catalogue
from hostnet.knowledge.roles import load as load_role
from hostnet.observe.host import Want, observe
from tests.helpers import conntrack as ct
from tests.helpers.conntrack import enable_tracking, load_lines
from tests.helpers.netns import Netns, link

Factory = Callable[..., Netns]

RESPONDER = """
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 53))
while True:
    data, peer = s.recvfrom(2048)
    s.sendto(data, peer)
"""

QUERIES = """
import socket, sys
addr, n, ok = sys.argv[1], int(sys.argv[2]), 0
for i in range(n):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(1)
    s.sendto(b"q%d" % i, (addr, 53))
    try:
        ok += s.recvfrom(2048)[0] == b"q%d" % i
    except OSError:
        pass
    s.close()
print(ok)
"""

FLOOD = """
import socket, sys
addr, n = sys.argv[1], int(sys.argv[2])
socks = []
for i in range(n):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(b"x", (addr, 9999))
    socks.append(s)
"""

ECHO_SERVER = """
import asyncio
async def handle(reader, writer):
    while data := await reader.read(100):
        writer.write(data)
        await writer.drain()
    writer.close()
async def main():
    server = await asyncio.start_server(handle, "0.0.0.0", 80, backlog=512)
    async with server:
        await server.serve_forever()
asyncio.run(main())
"""

#: Opens PER connections from each source address, then on every stdin line sends a byte
#: on each and prints how many echoed it back (and whether a new connection works).
CLIENTS = """
import socket, sys
server, per, sources = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
conns = []
for src in sources:
    for _ in range(per):
        c = socket.create_connection((server, 80), timeout=5, source_address=(src, 0))
        conns.append(c)
print("ready", len(conns), flush=True)
for _ in sys.stdin:
    ok = 0
    for c in conns:
        c.sendall(b"p")
        ok += c.recv(1) == b"p"
    fresh = socket.create_connection((server, 80), timeout=5, source_address=(sources[0], 0))
    fresh.sendall(b"n")
    ok_new = fresh.recv(1) == b"n"
    fresh.close()
    print(ok, ok_new, flush=True)
"""


MASQUERADE = """
table ip hn_nat {
    chain post {
        type nat hook postrouting priority srcnat;
        oifname "wan0" masquerade
    }
}
"""


def py(ns: Netns, script: str, *args: str, timeout: float = 60) -> str:
    return ns.run([sys.executable, "-c", script, *args], timeout=timeout).stdout.strip()


def start(ns: Netns, script: str, *args: str, **kw: object) -> subprocess.Popen[str]:
    return ns.popen([sys.executable, "-c", script, *args], text=True, **kw)  # type: ignore[arg-type]


def wait_for_dns(client: Netns, addr: str) -> None:
    for _ in range(50):
        if py(client, QUERIES, addr, "1") == "1":
            return
        time.sleep(0.1)
    raise AssertionError(f"no DNS answer from {addr}")


def composition_findings(ns: Netns, role: str) -> list[Finding]:
    """Observe ``ns`` (walking its table whatever its size) and run the composition check."""
    host = observe(Root("/"), netns=[ns.name],
                   want=Want(composition=True, composition_at=0.0, log=False))
    subject = Subject(host, host.namespaces[0], load_role(role), load_catalogue())
    return list(check_composition(subject))


def test_CT110_no_notrack_on_a_nat_router_full_of_lan_dns(netns: Factory) -> None:
    lan, router, inet = netns("ct-lan"), netns("ct-rtr"), netns("ct-inet")
    link(lan, router, "192.0.2.10/24", "192.0.2.1/24", name_a="eth0", name_b="lan0")
    link(router, inet, "198.51.100.1/24", "198.51.100.53/24", name_a="wan0", name_b="eth0")
    lan.run(["ip", "route", "add", "default", "via", "192.0.2.1"])
    router.sysctl("net.ipv4.ip_forward", "1")
    router.run(["nft", "-f", "-"], input=MASQUERADE)
    start(inet, RESPONDER)
    wait_for_dns(lan, "198.51.100.53")
    assert py(lan, QUERIES, "198.51.100.53", "300") == "300"
    assert len(ct.entries(router, "-p", "udp", "--dport", "53")) >= 250  # ports may repeat
    found = composition_findings(router, "nat-router")
    assert "CT110" not in {f.code for f in found}
    # the LAN's DNS still flows through the router (nothing was applied)
    assert py(lan, QUERIES, "198.51.100.53", "20") == "20"


def test_CT110_doctor_on_a_full_nat_router_proposes_no_notrack(netns: Factory,
                                                                    tmp_path: Path) -> None:
    """The same through ``hostnet doctor --netns``: the router's table 80 % full of
    masqueraded LAN DNS flows (loaded with ``conntrack -R``, reply tuple rewritten to the
    router's outside address) is sized (CT101/CT102), never exempted from conntrack."""
    lan, router, inet = netns("ct-lan"), netns("ct-rtr"), netns("ct-inet")
    link(lan, router, "192.0.2.10/24", "192.0.2.1/24", name_a="eth0", name_b="lan0")
    link(router, inet, "198.51.100.1/24", "198.51.100.53/24", name_a="wan0", name_b="eth0")
    router.sysctl("net.ipv4.ip_forward", "1")
    router.run(["nft", "-f", "-"], input=MASQUERADE)
    limit = int(router.sysctl("net.netfilter.nf_conntrack_max"))
    if limit > 2_000_000:
        pytest.skip(f"global nf_conntrack_max is {limit}: too slow to fill in a test")
    want = int(limit * 0.8)
    lines = []
    for i in range(want):
        # masquerade picks a free port per (upstream, router address): reply tuples are unique
        client, port = f"192.0.2.{10 + i % 200}", 1024 + (i // 200) % 64000
        upstream, mapped = f"198.51.100.{53 + i // 60000}", 1024 + i % 60000
        lines.append(f"-I -s {client} -d {upstream} -p udp --sport {port} --dport 53 "
                     f"--reply-src {upstream} --reply-dst 198.51.100.1 --reply-port-src 53 "
                     f"--reply-port-dst {mapped} -u SEEN_REPLY -t 120")
    load_lines(router, "\n".join(lines) + "\n")
    assert ct.count(router) >= want * 0.95
    proc = subprocess.run(
        [sys.executable, "-m", "hostnet", "doctor", "--netns", router.name, "--format", "json",
         "--state-dir", str(tmp_path)], capture_output=True, text=True, timeout=120,
        check=False)
    assert proc.returncode in (0, 1), proc.stderr
    found = {f["code"]: f for f in json.loads(proc.stdout)["findings"]}
    sizing = found.get("CT101") or found["CT102"]
    comp = sizing["evidence"]["composition"]
    assert comp["nated"] >= want * 0.95 and comp["forwarded"] >= want * 0.95
    assert comp["top_dport"][0]["dport"] == 53
    assert "CT110" not in found and "CT109" not in found


def test_CT110_notrack_proposed_for_a_dns_server_works(netns: Factory) -> None:
    server, client = netns("ct-dns"), netns("ct-cli")
    link(server, client, "203.0.113.10/24", "203.0.113.20/24")
    enable_tracking(server)
    start(server, RESPONDER)
    wait_for_dns(client, "203.0.113.10")
    assert py(client, QUERIES, "203.0.113.10", "300") == "300"
    before = {f.code: f for f in composition_findings(server, "server")}
    assert "CT110" in before
    snippet = before["CT110"].suggestion or ""
    server.run(["nft", "-c", "-f", "-"], input=snippet)
    server.run(["nft", "-f", "-"], input=snippet)
    server.run(["conntrack", "-F"], check=False)
    assert py(client, QUERIES, "203.0.113.10", "200") == "200"  # DNS still answers
    assert len(ct.entries(server, "-p", "udp", "--dport", "53")) == 0  # and tracks nothing
    after = {f.code for f in composition_findings(server, "server")}
    assert "CT110" not in after


def test_CT109_flood_limit_spares_established_clients(netns: Factory) -> None:
    server, clients, attacker = netns("ct-srv"), netns("ct-cl"), netns("ct-atk")
    link(server, clients, "198.51.100.10/24", "198.51.100.21/24")
    clients.run(["ip", "addr", "add", "198.51.100.22/24", "dev", "veth0"])
    link(server, attacker, "203.0.113.10/24", "203.0.113.66/24", name_a="veth1")
    enable_tracking(server)
    start(server, ECHO_SERVER)
    for _ in range(50):
        if server.run(["ss", "-ltn", "sport = :80"]).stdout.count("LISTEN"):
            break
        time.sleep(0.1)
    conn = start(clients, CLIENTS, "198.51.100.10", "60", "198.51.100.21", "198.51.100.22",
                 stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert conn.stdin is not None and conn.stdout is not None
    assert conn.stdout.readline().split() == ["ready", "120"]

    def clients_work() -> tuple[int, bool]:
        assert conn.stdin is not None and conn.stdout is not None
        conn.stdin.write("ping\n")
        conn.stdin.flush()
        ok, fresh = conn.stdout.readline().split()
        return int(ok), fresh == "True"

    assert clients_work() == (120, True)
    py(attacker, FLOOD, "203.0.113.10", "400")
    assert len(ct.entries(server, "-s", "203.0.113.66")) >= 350
    before = {f.code: f for f in composition_findings(server, "server")}
    flood = before["CT109"]
    assert flood.evidence["flooding"] == ["203.0.113.66"]
    snippet = flood.suggestion or ""
    assert "198.51.100.21" not in snippet and "198.51.100.22" not in snippet
    server.run(["nft", "-c", "-f", "-"], input=snippet)  # nft 1.x accepts the syntax
    server.run(["nft", "-f", "-"], input=snippet)
    assert clients_work() == (120, True)  # established and new client connections work
    server.run(["conntrack", "-D", "-s", "203.0.113.66"], check=False)
    py(attacker, FLOOD, "203.0.113.10", "400")
    grown = len(ct.entries(server, "-s", "203.0.113.66"))
    print("flood entries after the fix:", grown)
    assert grown < 60, grown  # at most the per-source rate (100/s) for the burst's duration
    assert clients_work() == (120, True)
    after = {f.code for f in composition_findings(server, "server")}
    assert "CT109" not in after
    conn.stdin.close()


def test_CT109_flood_snippet_for_both_families_passes_nft_check(netns: Factory) -> None:
    from hostnet.checks.conntrack_composition import flood_snippet

    ns = netns("ct-nftc")
    ns.run(["nft", "-c", "-f", "-"], input=flood_snippet(["203.0.113.66", "2001:db8::66"]))
