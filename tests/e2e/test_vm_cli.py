"""``hostnet vm up/list/qemu-args/down`` as a user runs them, on a throwaway namespace:
list shows each link's state and what is missing, the VM checks fire on a broken host
(proxy_arp on the uplink, the tap gone with its routes, forwarding off), ``up`` mends it,
a second ``up`` writes nothing, ``down`` cleans up."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

from tests.helpers import vm_lab
from tests.helpers.netns import Netns

CONFIG = vm_lab.WEB1_V4 + "multi_queue = true\n"


def hostnet(*args: str) -> subprocess.CompletedProcess[str]:
    return vm_lab.hostnet("vm", *args)


def test_vm_commands(netns: Callable[..., Netns], tmp_path: Path) -> None:
    lab = vm_lab.vm_host(netns, tmp_path, CONFIG, "vc")
    ns, common = lab.host, lab.common

    first = hostnet("up", "--all", *common, "--format", "json")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["writes"] == 6
    again = hostnet("up", "web1", *common)
    assert (again.returncode, again.stdout.strip()) == (0, "nothing to do: web1 in place")

    listed = json.loads(hostnet("list", *common[:4], "--format", "json").stdout)
    (row,) = listed["vms"]
    assert row["ok"] and row["exists"] and row["is_tap"] and row["up"] and not row["carrier"]
    assert (row["owner"], row["group"]) == (65534, 65534)
    assert row["flags"] == ["tap", "vnet_hdr", "multi_queue", "persist"]
    assert row["addresses"] == ["203.0.113.2/32"]
    assert row["routes"] == ["203.0.113.11 via tapweb1"]
    assert row["proxies"] == ["203.0.113.11 on up0"]
    codes = {f["code"] for f in listed["findings"]}
    tun = os.stat("/dev/net/tun")
    world_rw = stat.S_IMODE(tun.st_mode) & 0o006 == 0o006
    assert codes == (set() if world_rw else {"VM101"})  # 0600 here: nobody cannot open it

    qemu = hostnet("qemu-args", "web1", *common[:4])
    assert qemu.returncode == 0 and "queues=2" in qemu.stdout and qemu.stderr == ""

    # break it: proxy_arp on the uplink, forwarding off, the tap (and its route) gone
    ns.sysctl("net.ipv4.conf.up0.proxy_arp", "1")
    ns.sysctl("net.ipv4.ip_forward", "0")
    ns.run(["ip", "link", "del", "tapweb1"])
    broken = json.loads(hostnet("list", *common[:4], "--format", "json").stdout)
    assert {"VM103", "VM104", "VM105"} <= {f["code"] for f in broken["findings"]}
    (row,) = broken["vms"]
    assert not row["ok"] and not row["exists"]
    assert "route 203.0.113.11/32 dev tapweb1" in row["missing"]
    text = hostnet("list", *common[:4]).stdout
    assert "link: missing" in text and "VM104 error: vm web1: 203.0.113.11" in text

    # a single-queue tap where the config wants multi-queue: qemu-args warns
    ns.run(["ip", "tuntap", "add", "dev", "tapweb1", "mode", "tap", "user", "nobody"])
    warn = hostnet("qemu-args", "web1", *common[:4])
    assert "single-queue tap" in warn.stderr and "EINVAL" in warn.stderr
    ns.run(["ip", "link", "del", "tapweb1"])

    mended = hostnet("up", "web1", *common)
    assert mended.returncode == 0 and "create tap tapweb1" in mended.stdout
    assert "sysctl net.ipv4.ip_forward = 1 (was 0)" in mended.stdout
    assert ns.sysctl("net.ipv4.conf.up0.proxy_arp") == "1"  # never touched by hostnet

    down = hostnet("down", "web1", *common)
    assert down.returncode == 0 and "delete link tapweb1" in down.stdout
    assert "tapweb1" not in ns.run(["ip", "link"]).stdout
