"""The watcher notices lost events: with a receive buffer far too small for a burst, the
kernel drops messages and reports ENOBUFS, which the watcher turns into a full
dump-and-reconcile (here: the drain reports the overflow)."""

from __future__ import annotations

from collections.abc import Callable

from hostnet.host.links import open_event_socket
from hostnet.service.vm_watch import Watcher, WatchOptions
from tests.helpers.netns import Netns


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
