#!/usr/bin/env python3
"""Benchmark the doctor's table composition (``hostnet.conntrack.top.composition``).

Builds an in-memory ``/proc/net/nf_conntrack`` text of ENTRIES lines (no root, no kernel
table): 60 % ASSURED TCP from 16 clients to the host, 30 % masqueraded UDP DNS from a LAN
(reply tuple rewritten), 10 % unreplied SYNs from one source. Times ``composition()`` over
1 MiB blocks, median of REPEAT runs, each source tree in its own interpreter, and writes
bench/results/conntrack_composition.md. The real-table figures come from
``bench/conntrack_top.py --only-composition`` (root).

Usage: .venv/bin/python bench/conntrack_composition.py [--entries 1000000] [--repeat 3]
       [--compare-src DIR]   (also time another tree: git archive REV src | tar -x -C DIR)
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results" / "conntrack_composition.md"


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


def measure(src: str, entries: int, repeat: int) -> dict[str, float]:
    """Time composition() of the tree at ``src`` (run in this interpreter)."""
    sys.path.insert(0, str(Path(src).resolve() / "src"))
    import inspect

    from hostnet.conntrack.top import composition

    data = table(entries)
    blocks = [data[i:i + (1 << 20)] for i in range(0, len(data), 1 << 20)]
    kwargs: dict[str, object] = {}
    if "own" in inspect.signature(composition).parameters:
        kwargs["own"] = frozenset({"203.0.113.10", "203.0.113.1"})
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        composition(blocks, limit=5, **kwargs)
        times.append(time.perf_counter() - start)
    return {"median": statistics.median(times), "min": min(times), "max": max(times)}


def run_tree(src: str, entries: int, repeat: int) -> dict[str, float]:
    proc = subprocess.run([sys.executable, __file__, "--child", src, "--entries", str(entries),
                           "--repeat", str(repeat)], capture_output=True, text=True, check=True)
    result: dict[str, float] = json.loads(proc.stdout)
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--entries", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--compare-src", metavar="DIR", help="also time this source tree")
    ap.add_argument("--child", metavar="DIR", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.entries, args.repeat)))
        return 0
    rows = [("this tree", run_tree(str(REPO), args.entries, args.repeat))]
    if args.compare_src:
        rows.append((args.compare_src, run_tree(args.compare_src, args.entries, args.repeat)))
    lines = [
        "## Doctor table composition (bench/conntrack_composition.py)", "",
        f"{args.entries:,} synthetic entries in memory (60 % ASSURED TCP, 30 % masqueraded "
        f"DNS, 10 % unreplied SYNs), median of {args.repeat} runs, 2 shared cores.", "",
        "| tree | median | min | max |", "| --- | --- | --- | --- |",
    ]
    for label, r in rows:
        lines.append(f"| {label} | {r['median']:.2f} s | {r['min']:.2f} s | {r['max']:.2f} s |")
        print(f"{label}: median {r['median']:.2f} s (min {r['min']:.2f}, max {r['max']:.2f})")
    lines += ["", "Reproduce: `.venv/bin/python bench/conntrack_composition.py "
              "[--compare-src DIR]`"]
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
