"""Two real conntrack incidents on the running kernel, diagnosed by the CT checks.

1. A table full of ASSURED entries: new flows from a second namespace are dropped and
   logged ("table full in netns N, dropping packet"); the diagnosis says the table is full,
   counts the drops, finds the log lines, shows the composition and recommends a larger size.
   After the short-lived entries expire, a second run says the table is healthy and reports
   the drops as history.
2. A table full of unreplied UDP from few sources: new flows make the kernel evict (early
   drop) instead of dropping; the diagnosis says so and calls it a flood or scan.

Everything happens in throwaway namespaces; no global value is read-write touched (the child
namespace's nf_conntrack_max is the global one, read only).
"""

from __future__ import annotations

import ipaddress
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.conntrack import enable_tracking, load_assured, load_lines
from tests.helpers.netns import Netns, link

pytestmark = pytest.mark.skipif(shutil.which("conntrack") is None, reason="needs conntrack")


EXPIRE = 20  # seconds the loaded entries live (short so the incident clears by itself)
SERVER, CLIENT = "192.0.2.1", "192.0.2.2"

UDP_SENDER = """
import socket, sys
n, port = int(sys.argv[1]), int(sys.argv[2])
for i in range(n):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("192.0.2.2", 20000 + i))
    s.sendto(b"x", ("192.0.2.1", port))
    s.close()
"""


def send_udp(ns: Netns, flows: int, port: int = 9) -> None:
    ns.run([sys.executable, "-c", UDP_SENDER, str(flows), str(port)])


def stat(ns: Netns, name: str) -> int:
    text = ns.run(["cat", "/proc/net/stat/nf_conntrack"]).stdout.split("\n")
    header = text[0].split()
    col = header.index(name)
    return sum(int(row.split()[col], 16) for row in text[1:] if row.strip())


def load_udp_unreplied(ns: Netns, count: int, expire: int) -> None:
    """``count`` unreplied (never ASSURED) UDP entries from five sources to port 53."""
    hosts = [str(h) for h in ipaddress.ip_network("198.51.100.0/29").hosts()][:5]
    per = -(-count // len(hosts))
    ports = 65535 - 1024
    lines = []
    for i in range(count):
        src, j = hosts[i // per], i % per
        lines.append(f"-I -s {src} -d 203.0.113.{1 + j // ports} -p udp --sport "
                     f"{1024 + j % ports} --dport 53 -t {expire}")
    load_lines(ns, "\n".join(lines) + "\n")


def expiry(limit: int) -> int:
    """Entry lifetime: 20 s at the default 262144, longer when someone raised the global
    limit (loading takes about 5 s per 262k entries, and they must outlive the load)."""
    if limit > 2_000_000:
        pytest.skip(f"global nf_conntrack_max is {limit}: too slow to fill in a test")
    return max(EXPIRE, int(EXPIRE * limit / 262144))


def diagnose(ns: Netns, state_dir: Path) -> dict[str, Any]:
    """Run ``hostnet doctor --netns`` on ``ns``; the JSON report plus its exit code."""
    proc = subprocess.run(
        [sys.executable, "-m", "hostnet", "doctor", "--netns", ns.name, "--format", "json",
         "--state-dir", str(state_dir)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode in (0, 1), proc.stderr
    data: dict[str, Any] = json.loads(proc.stdout)
    data["exit"] = proc.returncode
    return data


def by_code(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["code"]: f for f in result["findings"]}


def test_table_full_of_assured_then_recovered(
    netns: Callable[..., Netns], tmp_path: Path
) -> None:
    server, client = netns("ctfull"), netns("ctcli")
    link(server, client, f"{SERVER}/24", f"{CLIENT}/24")
    enable_tracking(server)
    limit = int(server.sysctl("net.netfilter.nf_conntrack_max"))
    expire = expiry(limit)
    load_assured(server, limit, timeout=expire)
    loaded = time.monotonic()
    assert int(server.sysctl("net.netfilter.nf_conntrack_count")) >= limit
    send_udp(client, 50)
    assert stat(server, "drop") >= 50  # the kernel itself: nothing evictable, so it drops

    first = diagnose(server, tmp_path)
    codes = by_code(first)
    assert first["exit"] != 0
    full = codes["CT101"]
    assert full["severity"] == "error"
    assert server.name in full["message"]
    assert full["evidence"]["drop"] >= 50
    assert full["evidence"]["recommended_max"] > limit
    assert f"net.netfilter.nf_conntrack_max = {full['evidence']['recommended_max']}" in (
        full["suggestion"])
    assert "options nf_conntrack hashsize=" in full["suggestion"]
    comp = full["evidence"]["composition"]
    assert comp["entries"] >= limit * 0.9
    assert comp["assured"] >= limit * 0.9
    assert codes["CT103"]["severity"] == "error"
    log = codes["CT108"]
    assert log["evidence"]["lines"] >= 1
    assert "undercount" in log["message"]
    facts = first["facts"]
    assert facts["conntrack_usage"] >= 0.99
    assert facts["conntrack_drop"] >= 50
    assert facts["conntrack_log_events"] >= 1

    time.sleep(max(0.0, expire + 2 - (time.monotonic() - loaded)))
    # the kernel's gc worker reaps expired entries; on a loaded machine a full pass over
    # 262k expired entries can take well over 30 s
    deadline = time.monotonic() + 120
    while int(server.sysctl("net.netfilter.nf_conntrack_count")) > limit // 2:
        assert time.monotonic() < deadline, "entries did not expire"
        time.sleep(1)

    second = diagnose(server, tmp_path)
    codes = by_code(second)
    assert "CT101" not in codes and "CT102" not in codes
    history = codes["CT103"]
    assert history["severity"] == "info"
    assert history["message"].startswith("history:")
    assert history["evidence"]["drop"] >= 50
    assert history["evidence"]["drop_rate_per_s"] == 0  # rate from the saved first reading
    assert second["facts"]["conntrack_peak"] >= limit  # the peak survives in history
    assert second["exit"] == 0


def test_unreplied_udp_flood_early_drops(netns: Callable[..., Netns], tmp_path: Path) -> None:
    server, client = netns("ctflood"), netns("ctfcli")
    link(server, client, f"{SERVER}/24", f"{CLIENT}/24")
    enable_tracking(server)
    limit = int(server.sysctl("net.netfilter.nf_conntrack_max"))
    load_udp_unreplied(server, limit, expiry(limit))
    assert int(server.sysctl("net.netfilter.nf_conntrack_count")) >= limit * 0.99

    baseline = diagnose(server, tmp_path)  # keeps a reading for the rate
    assert "CT103" not in by_code(baseline)
    send_udp(client, 500)
    assert stat(server, "early_drop") >= 1  # the kernel evicts unreplied entries ...
    assert stat(server, "drop") == 0  # ... and drops nothing

    result = diagnose(server, tmp_path)
    codes = by_code(result)
    assert "CT103" not in codes  # no dropped packets to report
    full = codes["CT101"]
    assert "evicting" in full["message"] and "no packets dropped" in full["message"]
    early = codes["CT104"]
    assert early["severity"] == "warning"
    assert early["evidence"]["early_drop_rate_per_s"] > 0
    assert "flood or scan" in early["message"]
    flood = codes["CT109"]
    assert flood["evidence"]["unreplied"] >= limit * 0.9
    assert "198.51.100." in flood["message"]
    assert result["facts"]["conntrack_early_drop_rate"] > 0
    assert result["facts"]["conntrack_drop"] == 0
