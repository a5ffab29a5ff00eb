"""``hostnet collect --netns X`` then ``doctor --root`` judges what the live run judges.

A namespace topology with IPv6 routes, NAT rules and listeners: the snapshot must carry every
input the doctor reads (the registry), so the findings are the same.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.helpers.netns import Netns, link

MASQ = """table ip hn_nat {
  chain post { type nat hook postrouting priority srcnat; oifname "wan0" masquerade; }
  chain pre { type nat hook prerouting priority dstnat; tcp dport 8443 dnat to 192.0.2.2:443; }
}
"""
SERVER = "import socket,time\ns=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\ns.bind(('0.0.0.0', 443)); s.listen(); print('ready', flush=True); time.sleep(120)\n"


def hostnet(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hostnet", *args], capture_output=True,
                          text=True, timeout=120, check=False, cwd="/")


def findings(doc: dict[str, Any]) -> list[tuple[Any, ...]]:
    return sorted((f["code"], f["severity"], f["key"], f["message"], f["suggestion"],
                   json.dumps(f["evidence"], sort_keys=True)) for f in doc["findings"])


def test_snapshot_gives_the_live_findings(netns: Callable[..., Netns], tmp_path: Path) -> None:
    router, lan = netns("eqr"), netns("eql")
    link(lan, router, "192.0.2.2/24", "192.0.2.1/24", name_b="lan0")
    link(router, netns("eqw"), "198.51.100.1/24", "198.51.100.2/24", name_a="wan0")
    router.run(["ip", "-6", "addr", "add", "2001:db8:1::1/64", "dev", "wan0", "nodad"])
    router.run(["ip", "-6", "route", "add", "2001:db8:99::/48", "via", "2001:db8:1::2"])
    router.sysctl("net.ipv4.ip_forward", "1")
    router.sysctl("net.ipv6.conf.all.forwarding", "1")
    router.sysctl("net.ipv6.conf.wan0.accept_ra", "1")  # V6101: ignored while forwarding
    router.sysctl("net.ipv4.tcp_syncookies", "0")  # HD101
    router.run(["nft", "-f", "-"], input=MASQ)
    proc = router.popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"

    live = hostnet("doctor", "--netns", router.name, "--format", "json", "--state-dir",
                   str(tmp_path / "state"))
    assert live.returncode in (0, 1), live.stderr
    snap = tmp_path / "router.tar.gz"
    got = hostnet("collect", "--netns", router.name, "-o", str(snap))
    assert got.returncode == 0, got.stderr
    offline = hostnet("doctor", "--root", str(snap), "--format", "json")
    assert offline.returncode == live.returncode, offline.stderr

    a, b = json.loads(live.stdout), json.loads(offline.stdout)
    codes = {f["code"] for f in a["findings"]}
    assert {"HD101", "V6101"} <= codes, codes  # the topology shows what it should
    assert a["role"] == b["role"] == "nat-router"
    assert b["namespace"] == router.name  # the snapshot is of the named namespace
    assert findings(a) == findings(b)
    for fact in ("nat_rules", "listening", "interfaces"):
        assert a["facts"][fact] == b["facts"][fact], fact
