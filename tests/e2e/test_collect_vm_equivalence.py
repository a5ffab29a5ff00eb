"""``hostnet collect --netns X --config F`` then ``doctor --root`` gives the VM findings the
live ``doctor --netns X --config F`` gives (VM102-VM105 made real in a throwaway namespace).

The namespace has a tap owned by another user than its [[vm]] entry says (VM102), a routed
VM whose tap is missing, so its route is gone (VM104), proxy_arp=1 on the uplink (VM103) and
forwarding off for both families (VM105).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.helpers.netns import Netns, link

CONFIG = """role = "vm-host"

[[vm]]
name = "web"
tap = "tapweb"
owner = "root"
group = "root"
mode = "routed"
uplink = "up0"
addresses = ["198.51.100.10", "2001:db8:5::10"]

[[vm]]
name = "gone"
tap = "tapgone"
owner = "root"
mode = "routed"
uplink = "up0"
addresses = ["198.51.100.20"]
"""


def hostnet(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hostnet", *args], capture_output=True,
                          text=True, timeout=120, check=False, cwd="/")


def vm_findings(doc: dict[str, Any]) -> list[tuple[Any, ...]]:
    return sorted((f["code"], f["severity"], f["key"], f["message"], f["suggestion"],
                   f.get("path"), f.get("line"), json.dumps(f["evidence"], sort_keys=True))
                  for f in doc["findings"] if f["code"].startswith("VM"))


def test_snapshot_gives_the_live_vm_findings(netns: Callable[..., Netns],
                                             tmp_path: Path) -> None:
    host = netns("eqvm")
    link(host, netns("eqvu"), "192.0.2.1/24", "192.0.2.2/24", name_a="up0")
    host.run(["ip", "tuntap", "add", "dev", "tapweb", "mode", "tap", "user", "nobody"])
    host.run(["ip", "link", "set", "tapweb", "up"])
    host.run(["ip", "route", "add", "198.51.100.10/32", "dev", "tapweb"])
    host.run(["ip", "-6", "route", "add", "2001:db8:5::10/128", "dev", "tapweb"])
    host.run(["ip", "neigh", "add", "proxy", "198.51.100.10", "dev", "up0"])
    host.sysctl("net.ipv4.conf.up0.proxy_arp", "1")
    host.sysctl("net.ipv4.ip_forward", "0")
    host.sysctl("net.ipv6.conf.all.forwarding", "0")
    config = tmp_path / "hostnet.toml"
    config.write_text(CONFIG)

    live = hostnet("doctor", "--netns", host.name, "--config", str(config), "--format",
                   "json", "--no-composition")
    assert live.returncode in (0, 1), live.stderr
    snap = tmp_path / "vmhost.tar.gz"
    got = hostnet("collect", "--netns", host.name, "--config", str(config), "-o", str(snap))
    assert got.returncode == 0, got.stderr
    offline = hostnet("doctor", "--root", str(snap), "--format", "json", "--no-composition")
    assert offline.returncode == live.returncode, offline.stderr

    a, b = json.loads(live.stdout), json.loads(offline.stdout)
    keys = {(f["code"], f["key"]) for f in a["findings"] if f["code"].startswith("VM")}
    assert {("VM102", "tapweb"), ("VM103", "net.ipv4.conf.up0.proxy_arp"),
            ("VM104", "198.51.100.20"), ("VM105", "net.ipv4.ip_forward"),
            ("VM105", "net.ipv6.conf.all.forwarding")} <= keys, keys
    assert ("VM104", "198.51.100.10") not in keys  # web's route via its tap is there
    assert vm_findings(a) == vm_findings(b)
    assert not any("VM checks" in note for note in b["unreadable"]), b["unreadable"]
