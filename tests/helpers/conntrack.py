"""Fill a namespace's conntrack table for real (see FACTS.md: conntrack -R), and read it back
(:func:`entries`: ``conntrack -L`` as records, :func:`count`)."""

from __future__ import annotations

import ipaddress
from typing import TypedDict

from tests.helpers.netns import Netns

#: A rule that makes the kernel track every packet in the namespace (conntrack hooks are
#: only registered once something uses them).
TRACK_RULESET = """
table inet hn_test_track {
    chain pre { type filter hook prerouting priority 0; ct state new counter; }
    chain out { type filter hook output priority 0; ct state new counter; }
}
"""


def enable_tracking(ns: Netns) -> None:
    ns.run(["nft", "-f", "-"], input=TRACK_RULESET)


def assured_lines(
    count: int,
    *,
    timeout: int = 60,
    dport: int = 443,
    src_net: str = "198.51.100.0/24",
    dst: str = "203.0.113.10",
) -> str:
    """``conntrack -R`` input: ``count`` ESTABLISHED+ASSURED TCP entries.

    Sources cycle through ``src_net`` and source ports 1024-65535, so entries are unique.
    """
    hosts = [str(h) for h in ipaddress.ip_network(src_net).hosts()]
    ports = 65535 - 1024
    out = []
    for i in range(count):
        src = hosts[(i // ports) % len(hosts)]
        sport = 1024 + i % ports
        out.append(
            f"-I -s {src} -d {dst} -p tcp --sport {sport} --dport {dport} "
            f"--state ESTABLISHED -t {timeout} -u ASSURED"
        )
    return "\n".join(out) + "\n"


def load_lines(ns: Netns, lines: str) -> None:
    """Feed ``conntrack -R`` lines (one ``-I ...`` per line) to ``ns``'s table."""
    import os
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".ct", delete=False) as fh:
        fh.write(lines)
        path = fh.name
    try:
        ns.run(["conntrack", "-R", path], check=False, timeout=600)
    finally:
        os.unlink(path)


def load_assured(ns: Netns, count: int, **kw: object) -> None:
    """Insert ``count`` ASSURED entries into ``ns``'s table (about 5 s for 262k)."""
    load_lines(ns, assured_lines(count, **kw))  # type: ignore[arg-type]


def count(ns: Netns) -> int:
    return int(ns.sysctl("net.netfilter.nf_conntrack_count"))


class Entry(TypedDict):
    """One ``conntrack -L`` line: the original direction's tuple and the reply's (r...)."""

    proto: str
    src: str
    dst: str
    sport: str  # "0" where the protocol has no ports
    dport: str
    rsrc: str
    rdst: str
    rsport: str
    rdport: str


def entries(ns: Netns, *args: str) -> list[Entry]:
    """``conntrack -L ARGS`` of ``ns`` (``-p udp --dport 53`` ...), one record a line."""
    proc = ns.run(["conntrack", "-L", *args], check=False)
    out: list[Entry] = []
    for line in proc.stdout.splitlines():
        parts = line.split()
        kv: dict[str, list[str]] = {}
        for p in parts:
            if "=" in p:
                k, v = p.split("=", 1)
                kv.setdefault(k, []).append(v)
        if len(kv.get("src", [])) < 2:
            continue
        out.append(Entry(proto=parts[0], src=kv["src"][0], dst=kv["dst"][0],
                         sport=kv.get("sport", ["0"])[0], dport=kv.get("dport", ["0"])[0],
                         rsrc=kv["src"][1], rdst=kv["dst"][1],
                         rsport=kv.get("sport", ["0", "0"])[1],
                         rdport=kv.get("dport", ["0", "0"])[1]))
    return out
