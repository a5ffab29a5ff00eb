"""``hostnet vm watch`` repairs without a restart: the tap deleted and recreated (as a
hypervisor does on a VM restart), the route deleted, the proxy entry deleted, proxy_ndp and
ip_forward turned off; each comes back, each repair is logged with what was missing, a quiet host sees no write, and SIGTERM
stops it cleanly."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tests.helpers.netns import Netns
from tests.helpers.vm_lab import WEB1, hostnet, vm_host, wait_for


def complete(ns: Netns) -> bool:
    addrs = ns.run(["ip", "addr", "show", "tapweb1"], check=False).stdout
    routes = ns.run(["ip", "route"]).stdout + ns.run(["ip", "-6", "route"]).stdout
    proxies = ns.run(["ip", "neigh", "show", "proxy"]).stdout
    return ("203.0.113.2/32" in addrs and "fe80::1/64" in addrs and ",UP" in addrs
            and "203.0.113.11 dev tapweb1" in routes and "2001:db8::11 dev tapweb1" in routes
            and "203.0.113.11 dev up0 proxy" in proxies
            and "2001:db8::11 dev up0 proxy" in proxies)


def test_watch_repairs_tap_route_and_proxy(netns: Callable[..., Netns], tmp_path: Path) -> None:
    lab = vm_host(netns, tmp_path, WEB1, "vwh")
    ns, common = lab.host, lab.common
    up = hostnet("vm", "up", "web1", *common, timeout=30)
    assert up.returncode == 0, up.stderr
    log = tmp_path / "watch.log"
    with log.open("w") as out:
        watcher = subprocess.Popen([sys.executable, "-m", "hostnet", "vm", "watch", *common,
                                    "--poll", "0.2"], stdout=out, stderr=subprocess.STDOUT)
    try:
        assert wait_for(lambda: "start-up reconcile done" in log.read_text()), log.read_text()

        # the hypervisor deletes and recreates the tap: addresses and routes are gone
        ns.run(["ip", "link", "del", "tapweb1"])
        ns.run(["ip", "tuntap", "add", "dev", "tapweb1", "mode", "tap", "user", "nobody",
                "vnet_hdr"])
        assert wait_for(lambda: complete(ns)), log.read_text()

        ns.run(["ip", "route", "del", "203.0.113.11/32", "dev", "tapweb1"])
        assert wait_for(lambda: complete(ns)), log.read_text()

        ns.run(["ip", "neigh", "del", "proxy", "2001:db8::11", "dev", "up0"])
        assert wait_for(lambda: complete(ns)), log.read_text()

        # sysctls: the kernel reports these on its netconf groups
        ns.sysctl("net.ipv6.conf.up0.proxy_ndp", "0")
        assert wait_for(lambda: ns.sysctl("net.ipv6.conf.up0.proxy_ndp") == "1"), log.read_text()
        ns.sysctl("net.ipv4.ip_forward", "0")
        assert wait_for(lambda: ns.sysctl("net.ipv4.ip_forward") == "1"), log.read_text()

        # everything in place: a second of watching (five proxy polls, the events of the
        # kernel's own IPv6 set-up) repairs nothing
        before = log.read_text()
        time.sleep(1.0)
        assert "repair" not in log.read_text()[len(before):]
    finally:
        watcher.send_signal(signal.SIGTERM)
        code = watcher.wait(timeout=10)
    text = log.read_text()
    assert code == 0, text
    assert "repair web1 (netlink event): missing set tapweb1 up; add address 203.0.113.2/32" in text
    assert "missing route 203.0.113.11/32 dev tapweb1" in text
    assert "repair web1 (proxy entry gone): missing proxy neighbour 2001:db8::11 on up0" in text
    assert "repair host settings (netlink event): missing sysctl net.ipv6.conf.up0.proxy_ndp" \
        in text
    # 5 + 1 + 1 + 1 + 1 writes for the five repairs, none for the reconciles in between
    assert text.count("repaired ") == 5 and "5 repair(s), 9 write(s)" in text, text
    assert "Traceback" not in text
