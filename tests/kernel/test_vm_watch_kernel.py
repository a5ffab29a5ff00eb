"""The watcher's parts on the real kernel: it notices lost events (with a receive buffer far
too small for a burst the kernel drops messages and reports ENOBUFS, which the watcher turns
into a full dump-and-reconcile), a reconcile writes nothing when all is in place, waits for
a missing tap by default and recreates it with --create-taps."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from hostnet.config.vm import load_vms
from hostnet.observe.links import open_event_socket
from hostnet.service.vm_watch import Watcher, WatchOptions
from tests.helpers.netns import Netns
from tests.helpers.vm_lab import vm_host


def test_enobufs_is_reported(netns: Callable[..., Netns]) -> None:
    ns = netns("ovf")
    sock = open_event_socket(ns.name, rcvbuf=1)  # the kernel rounds up to its minimum
    watcher = Watcher([], WatchOptions(netns=ns.name))
    try:
        batch = "".join(f"addr add 198.51.100.{i}/32 dev lo\n" for i in range(1, 200))
        ns.run(["ip", "-batch", "-"], input=batch)
        count, overflow = watcher._drain(sock)
        assert overflow, count
        # after the overflow the socket works again: new events arrive
        ns.run(["ip", "addr", "add", "203.0.113.5/32", "dev", "lo"])
        count, overflow = watcher._drain(sock)
        assert count >= 1 and not overflow
    finally:
        sock.close()
        watcher.close()


CONFIG = """
[[vm]]
name = "web1"
tap = "tapweb1"
owner = "nobody"
uplink = "up0"
addresses = ["203.0.113.11"]
"""


def test_reconcile_waits_for_or_creates_the_tap(netns: Callable[..., Netns],
                                                tmp_path: Path) -> None:
    lab = vm_host(netns, tmp_path, CONFIG, "wr")
    ns = lab.host
    vms = load_vms(lab.config)
    waiting = Watcher(vms, WatchOptions(netns=ns.name, state_dir=str(tmp_path / "s")))
    creating = Watcher(vms, WatchOptions(netns=ns.name, state_dir=str(tmp_path / "s"),
                                         create_taps=True))
    try:
        assert waiting.reconcile("test") == 1  # ip_forward only: the VM waits for its tap
        assert "tapweb1" not in ns.run(["ip", "link"]).stdout
        assert creating.reconcile("test") == 5  # tap, up, gateway address, route, proxy
        tap = ns.run(["ip", "-d", "link", "show", "tapweb1"]).stdout
        assert "user nobody" in tap and "vnet_hdr on" in tap
        assert creating.reconcile("test") == 0 and waiting.reconcile("test") == 0
        assert (creating.stats.repairs, creating.stats.errors) == (1, 0)
    finally:
        waiting.close()
        creating.close()
