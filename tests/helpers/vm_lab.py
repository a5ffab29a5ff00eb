"""The "routed host" of the VM tests: a host namespace whose uplink up0 (203.0.113.2/24)
reaches an outside namespace (eth0 203.0.113.1/24, the provider's router), with a hostnet.toml
of ``[[vm]]`` entries and a state directory, and ``hostnet`` run as a user runs it.

Addresses only from the documentation ranges; the namespaces come from the ``netns`` fixture
(tests/conftest.py) and go with the test.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from tests.helpers.netns import Netns, ip, veth

#: One routed VM, IPv4 and IPv6, the tap owned by nobody.
WEB1 = '''
[[vm]]
name = "web1"
tap = "tapweb1"
owner = "nobody"
mode = "routed"
uplink = "up0"
addresses = ["203.0.113.11", "2001:db8::11"]
'''

#: The same VM, IPv4 only, its tap owned by nobody:nogroup (routed is the default mode).
WEB1_V4 = '''
[[vm]]
name = "web1"
tap = "tapweb1"
owner = "nobody"
group = "nogroup"
uplink = "up0"
addresses = ["203.0.113.11"]
'''


def hostnet(*args: str, env: Mapping[str, str] | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``hostnet ARGS`` in a new process, output captured (``env``: the whole environment)."""
    return subprocess.run([sys.executable, "-m", "hostnet", *args], capture_output=True,
                          text=True, timeout=timeout, env=env)


def uplinked(netns: Callable[..., Netns], tag: str, *,
             ipv6: bool = False) -> tuple[Netns, Netns]:
    """(host, outside): up0 203.0.113.2/24 in the host, eth0 203.0.113.1/24 outside; with
    ``ipv6`` also 2001:db8::2/64 and 2001:db8::1/64 (no duplicate address detection)."""
    host, outside = netns(tag), netns(f"{tag}o")
    veth(host, outside, "up0", "eth0", "203.0.113.2/24", "203.0.113.1/24")
    if ipv6:
        ip(host, "addr", "add", "2001:db8::2/64", "dev", "up0", "nodad")
        ip(outside, "addr", "add", "2001:db8::1/64", "dev", "eth0", "nodad")
    return host, outside


@dataclass(frozen=True)
class VmHost:
    host: Netns
    outside: Netns
    config: Path
    state: Path

    @property
    def common(self) -> list[str]:
        """``--config F --netns NS --state-dir D``, the options every ``vm`` command takes."""
        return ["--config", str(self.config), "--netns", self.host.name, "--state-dir",
                str(self.state)]


def vm_host(netns: Callable[..., Netns], tmp_path: Path, config: str, tag: str, *,
            ipv6: bool = False) -> VmHost:
    """:func:`uplinked` namespaces plus ``config`` written to tmp_path/hostnet.toml."""
    host, outside = uplinked(netns, tag, ipv6=ipv6)
    cfg = tmp_path / "hostnet.toml"
    cfg.write_text(config)
    return VmHost(host, outside, cfg, tmp_path / "state")


def wait_for(check: Callable[[], bool], timeout: float = 5.0, every: float = 0.02) -> bool:
    """Poll ``check`` until it holds or ``timeout`` seconds pass; its last answer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(every)
    return check()


# -- neighbour resolution (who answers ARP / NDP for an address) ------------------------------

#: One UDP datagram to an address (port 9, discard): enough to make the sender resolve it.
POKE = r'''
import socket, sys
socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x", (sys.argv[1], 9))
'''


def mac_of(ns: Netns, dev: str) -> str:
    return str(json.loads(ip(ns, "-j", "link", "show", dev))[0]["address"])


def neigh(ns: Netns, addr: str) -> dict[str, object]:
    """``ns``'s neighbour entry for ``addr`` (``ip -j neigh``), {} when there is none."""
    out = json.loads(ip(ns, "-j", "neigh", "show", addr) or "[]")
    return out[0] if out else {}


def settled(ns: Netns, addr: str, timeout: float = 3.0) -> dict[str, object]:
    """The neighbour entry once it has a MAC or has failed (or what it is after ``timeout``)."""
    entry: dict[str, object] = {}

    def done() -> bool:
        nonlocal entry
        entry = neigh(ns, addr)
        return "lladdr" in entry or "FAILED" in entry.get("state", [])  # type: ignore[operator]

    wait_for(done, timeout, every=0.05)
    return entry


def resolve(ns: Netns, addr: str, timeout: float = 3.0) -> dict[str, object]:
    """Forget ``ns``'s neighbour entry for ``addr``, send it a datagram and return the entry
    once resolution has succeeded or failed."""
    ns.run(["ip", "neigh", "flush", "to", addr], check=False)  # nothing to flush: fine
    ns.run([sys.executable, "-c", POKE, addr])
    return settled(ns, addr, timeout)
