#!/usr/bin/env python3
"""Benchmark the doctor's table composition (``hostnet.conntrack.top.composition``).

Builds an in-memory ``/proc/net/nf_conntrack`` text of ENTRIES lines (no root, no kernel
table): 60 % ASSURED TCP from 16 clients to the host, 30 % masqueraded UDP DNS from a LAN
(reply tuple rewritten), 10 % unreplied SYNs from one source. Times ``composition()`` over
1 MiB blocks, median of REPEAT runs. The real-table figures are in bench/conntrack_top.py.

Usage: .venv/bin/python bench/conntrack_composition.py [--entries 1000000] [--repeat 3]
       [--src DIR]   (time another source tree, e.g. git archive HEAD~1 src | tar -x -C DIR)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def table(entries: int) -> bytes:
    out: list[str] = []
    for i in range(entries):
        kind = i % 10
        port = 1024 + i % 64000
        if kind < 6:
            src = f"198.51.100.{1 + i % 16}"
            out.append(
                f"ipv4     2 tcp      6 431999 ESTABLISHED src={src} dst=203.0.113.10 "
                f"sport={port} dport=443 src=203.0.113.10 dst={src} sport=443 dport={port} "
                "[ASSURED] mark=0 zone=0 use=2\n")
        elif kind < 9:
            src = f"192.0.2.{1 + i % 200}"
            out.append(
                f"ipv4     2 udp      17 29 src={src} dst=198.51.100.53 sport={port} "
                f"dport=53 src=198.51.100.53 dst=203.0.113.1 sport=53 dport={port} "
                "mark=0 zone=0 use=2\n")
        else:
            out.append(
                f"ipv4     2 tcp      6 119 SYN_RECV src=203.0.113.66 dst=203.0.113.10 "
                f"sport={port} dport=80 [UNREPLIED] src=203.0.113.10 dst=203.0.113.66 "
                f"sport=80 dport={port} mark=0 zone=0 use=2\n")
    return "".join(out).encode()


def chunks(data: bytes, size: int = 1 << 20) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--entries", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--src", metavar="DIR", default=str(REPO),
                    help="source tree whose src/ is timed (default: this one)")
    args = ap.parse_args()
    sys.path.insert(0, str(Path(args.src).resolve() / "src"))
    import inspect

    from hostnet.conntrack.top import composition

    data = chunks(table(args.entries))
    kwargs: dict[str, object] = {}
    if "local" in inspect.signature(composition).parameters:
        kwargs["local"] = frozenset({"203.0.113.10", "203.0.113.1"})
    times = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        comp = composition(data, limit=5, **kwargs)
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    print(f"{args.src}: composition of {comp.entries:,} entries: median {median:.2f} s "
          f"(min {min(times):.2f}, max {max(times):.2f}, {args.repeat} runs)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
