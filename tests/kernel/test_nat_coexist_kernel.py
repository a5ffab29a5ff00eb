"""NT106 and the hook facts it states, on the real kernel (throwaway namespaces only).

Facts (net/netfilter/core.c nf_hook_slow, nf_hook_entries_grow; nf_nat_core.c
nf_nat_inet_fn), each shown with nft counters on the output hook of one namespace:

* an accept ends only its own base chain: the next base chain of the hook still sees the
  packet, and its drop is final (sendto fails with EPERM); a drop stops the walk: a later
  chain's counter stays 0; iptables-legacy chains are walked the same way as nft ones;
* two base chains of the same priority run newest first (the one registered last), so which
  runs first is decided by load order, and reloading a table changes it;
* NAT chains of a hook are consulted in priority order and the first that translates a new
  flow is the only one: iptables-legacy's nat OUTPUT and nft nat chains share one list.

Then the doctor: the compiled ``inet hostnet`` table next to iptables-nft's ``ip filter``
(FORWARD policy drop), a firewalld-like ``inet firewalld`` and iptables-legacy rules; NT106
lists each chain with its hook, priority, policy and order and says where it overrides ours;
with only our table loaded NT106 is silent.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.netns import Netns

pytestmark = pytest.mark.skipif(shutil.which("nft") is None, reason="needs nft")
LEGACY = shutil.which("iptables-legacy") is not None
IPT_NFT = shutil.which("iptables-nft") is not None

_BIN = Path(sys.executable).with_name("hostnet")
HOSTNET = [str(_BIN)] if _BIN.exists() else [sys.executable, "-m", "hostnet"]

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
"""

#: Sends one UDP datagram to 127.0.0.1:PORT; prints "sent" or the errno name; with a second
#: argument also listens on 127.0.0.2 and 127.0.0.3 (same port) and prints who received it.
SEND = r"""
import errno, socket, sys
port = int(sys.argv[1])
listen = {}
if len(sys.argv) > 2:
    for addr in ("127.0.0.2", "127.0.0.3"):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((addr, port))
        s.settimeout(1.0); listen[addr] = s
c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
try:
    c.sendto(b"x", ("127.0.0.1", port)); print("sent")
except OSError as exc:
    print(errno.errorcode.get(exc.errno, str(exc.errno)))
for addr, s in listen.items():
    try:
        s.recvfrom(10); print("received", addr)
    except socket.timeout:
        pass
"""


def send(ns: Netns, port: int, *, listen: bool = False) -> list[str]:
    argv = [sys.executable, "-c", SEND, str(port), *(["listen"] if listen else [])]
    return ns.run(argv).stdout.split("\n")[:-1]


def counter(ns: Netns, family: str, table: str, chain: str) -> int:
    doc = json.loads(ns.run(["nft", "-j", "list", "chain", family, table, chain]).stdout)
    return sum(int(e["counter"]["packets"]) for item in doc["nftables"] if "rule" in item
               for e in item["rule"]["expr"] if "counter" in e)


def chain_text(family: str, table: str, prio: int, body: str, kind: str = "filter",
               hook: str = "output") -> str:
    return (f"table {family} {table} {{\n  chain c {{\n    type {kind} hook {hook} priority "
            f"{prio}; policy accept;\n    {body}\n  }}\n}}\n")


def test_accept_ends_only_its_chain_and_a_drop_is_final(netns: Callable[..., Netns]) -> None:
    ns = netns("coexist-facts")
    ns.run(["nft", "-f", "-"], input=chain_text("inet", "first", -10,
                                                "udp dport 9 counter accept"))
    ns.run(["nft", "-f", "-"], input=chain_text("inet", "second", 0, "udp dport 9 counter drop"))
    assert send(ns, 9) == ["EPERM"]  # the later chain's drop, after the earlier accept
    assert (counter(ns, "inet", "first", "c"), counter(ns, "inet", "second", "c")) == (1, 1)
    # a drop before: nothing after it sees the packet
    ns.run(["nft", "-f", "-"], input=chain_text("inet", "zeroth", -20, "udp dport 9 counter drop"))
    assert send(ns, 9) == ["EPERM"]
    assert (counter(ns, "inet", "zeroth", "c"), counter(ns, "inet", "first", "c"),
            counter(ns, "inet", "second", "c")) == (1, 1, 1)


@pytest.mark.skipif(not LEGACY, reason="needs iptables-legacy")
def test_a_legacy_drop_wins_over_an_nft_accept(netns: Callable[..., Netns]) -> None:
    ns = netns("coexist-legacy")
    ns.run(["nft", "-f", "-"], input=chain_text("inet", "ours", -10,
                                                "udp dport 9 counter accept"))
    assert send(ns, 9) == ["sent"]
    ns.run(["iptables-legacy", "-A", "OUTPUT", "-p", "udp", "--dport", "9", "-j", "DROP"])
    assert send(ns, 9) == ["EPERM"]
    assert counter(ns, "inet", "ours", "c") == 2  # it accepted; the legacy chain dropped


def test_same_priority_runs_newest_first(netns: Callable[..., Netns]) -> None:
    ns = netns("coexist-order")
    dropper = chain_text("inet", "dropper", 0, "udp dport 9 counter drop")
    ns.run(["nft", "-f", "-"], input=dropper)
    ns.run(["nft", "-f", "-"], input=chain_text("inet", "watcher", 0, "udp dport 9 counter"))
    assert send(ns, 9) == ["EPERM"]
    assert counter(ns, "inet", "watcher", "c") == 1  # loaded last, ran first
    ns.run(["nft", "delete", "table", "inet", "dropper"])
    ns.run(["nft", "-f", "-"], input=dropper)  # reloaded: now it is the newest
    assert send(ns, 9) == ["EPERM"]
    assert counter(ns, "inet", "watcher", "c") == 1  # dropped before it


def test_first_nat_chain_to_translate_wins(netns: Callable[..., Netns]) -> None:
    ns = netns("coexist-nat")
    ns.run(["nft", "-f", "-"], input=chain_text("ip", "early", -110,
                                                "udp dport 9000 counter dnat to 127.0.0.2",
                                                kind="nat"))
    ns.run(["nft", "-f", "-"], input=chain_text("ip", "late", -90,
                                                "udp dport 9000 counter dnat to 127.0.0.3",
                                                kind="nat"))
    assert send(ns, 9000, listen=True) == ["sent", "received 127.0.0.2"]
    assert (counter(ns, "ip", "early", "c"), counter(ns, "ip", "late", "c")) == (1, 0)
    if LEGACY:  # iptables-legacy's nat OUTPUT (-100) sits in the same list, before "late"
        ns.run(["nft", "delete", "table", "ip", "early"])
        ns.run(["iptables-legacy", "-t", "nat", "-A", "OUTPUT", "-p", "udp", "--dport", "9001",
                "-j", "DNAT", "--to-destination", "127.0.0.2"])
        ns.run(["nft", "add", "rule", "ip", "late", "c", "udp", "dport", "9001", "counter",
                "dnat", "to", "127.0.0.3"])
        assert send(ns, 9001, listen=True) == ["sent", "received 127.0.0.2"]
        assert counter(ns, "ip", "late", "c") == 0  # neither flow reached its rules


# -- the doctor ---------------------------------------------------------------------------------

FIREWALLD = """\
table inet firewalld {
  chain filter_PREROUTING {
    type filter hook prerouting priority filter + 10; policy accept;
    meta nfproto ipv4 fib saddr . mark . iif oif missing drop
  }
  chain filter_FORWARD {
    type filter hook forward priority filter + 10; policy accept;
    ct state established,related accept
    ct status dnat accept
    jump filter_FORWARD_POLICIES
    reject with icmpx admin-prohibited
  }
  chain filter_FORWARD_POLICIES {
    iifname "lan0" oifname "wan0" accept
  }
}
"""


def doctor(ns: Netns, tmp: Path) -> list[dict[str, Any]]:
    state = tmp / "state"
    state.mkdir(exist_ok=True)
    proc = subprocess.run([*HOSTNET, "doctor", "--netns", ns.name, "--format", "json",
                           "--no-composition", "--role", "nat-router", "--state-dir", str(state)],
                          capture_output=True, text=True, timeout=60, check=False, cwd="/")
    assert proc.returncode in (0, 1), proc.stderr
    return [f for f in json.loads(proc.stdout)["findings"] if f["code"] == "NT106"]


def load_hostnet(ns: Netns, tmp: Path) -> None:
    cfg = tmp / "hostnet.toml"
    cfg.write_text(CONFIG)
    table = subprocess.run([*HOSTNET, "nat", "compile", "--config", str(cfg)],
                           capture_output=True, text=True, check=True, cwd="/").stdout
    ns.run(["nft", "-f", "-"], input=table)


def test_NT106_silent_with_only_our_table(netns: Callable[..., Netns], tmp_path: Path) -> None:
    ns = netns("coexist-alone")
    load_hostnet(ns, tmp_path)
    assert doctor(ns, tmp_path) == []


@pytest.mark.skipif(not IPT_NFT, reason="needs iptables-nft")
def test_NT106_lists_other_tables_and_where_they_win(netns: Callable[..., Netns],
                                                     tmp_path: Path) -> None:
    ns = netns("coexist-doctor")
    load_hostnet(ns, tmp_path)
    ns.run(["iptables-nft", "-P", "FORWARD", "DROP"])  # (a) docker's forward policy
    ns.run(["nft", "-f", "-"], input=FIREWALLD)  # (b)
    if LEGACY:  # (c) a DNAT and a drop in a user chain, in x_tables
        ns.run(["iptables-legacy", "-t", "nat", "-A", "PREROUTING", "-p", "tcp", "--dport",
                "8080", "-j", "DNAT", "--to-destination", "198.51.100.9"])
        ns.run(["iptables-legacy", "-N", "BLOCK"])
        ns.run(["iptables-legacy", "-A", "BLOCK", "-s", "192.0.2.0/24", "-j", "DROP"])
        ns.run(["iptables-legacy", "-A", "FORWARD", "-j", "BLOCK"])
    [f] = doctor(ns, tmp_path)
    assert f["severity"] == "warning"
    chains = {c["chain"]: c for c in f["evidence"]["chains"]}
    seen = {k: (c["hook"], c["priority"], c["policy"], c["order"], c["hostnet_chain"])
            for k, c in chains.items()}
    assert seen["ip filter FORWARD (iptables-nft)"] == ("forward", 0, "drop", "same",
                                                        "filter_forward")
    assert seen["inet firewalld filter_FORWARD"] == ("forward", 10, "accept", "after",
                                                     "filter_forward")
    assert seen["inet firewalld filter_PREROUTING"] == ("prerouting", 10, "accept", "after",
                                                        "dnat_prerouting")
    assert "inet firewalld filter_FORWARD_POLICIES" not in seen  # a regular chain
    over = {k: " ".join(c["overrides"]) for k, c in chains.items()}
    assert "policy drop" in over["ip filter FORWARD (iptables-nft)"]
    fw = over["inet firewalld filter_FORWARD"]
    assert "reject rules win over hostnet's accept" in fw
    assert "accept ends only its own chain: hostnet's drops still apply" in fw
    assert "drop rules win" in over["inet firewalld filter_PREROUTING"]
    overriding = set(f["evidence"]["overriding"])
    assert {"ip filter FORWARD (iptables-nft)", "inet firewalld filter_FORWARD",
            "inet firewalld filter_PREROUTING"} <= overriding
    assert "ip filter FORWARD (iptables-nft) [forward, priority 0, policy drop" in f["message"]
    if LEGACY:
        assert seen["iptables-legacy -t filter FORWARD"] == ("forward", 0, "accept", "same",
                                                             "filter_forward")
        assert "drop rules win" in over["iptables-legacy -t filter FORWARD"]  # via BLOCK
        assert seen["iptables-legacy -t nat PREROUTING"] == ("prerouting", -100, "accept",
                                                             "same", "dnat_prerouting")
        assert "whichever NAT chain runs first" in over["iptables-legacy -t nat PREROUTING"]
        assert seen["iptables-legacy -t nat POSTROUTING"][:3] == ("postrouting", 100, "accept")
        assert "iptables-legacy -t filter FORWARD" in overriding
        assert "iptables-legacy -t nat PREROUTING" not in overriding
