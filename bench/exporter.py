#!/usr/bin/env python3
"""Benchmark ``hostnet exporter`` scrapes: the table size must not matter.

What it does (as root):

1. creates a throwaway namespace ``hn-bench-exp-*`` with a conntrack-using nft rule and
   starts ``hostnet exporter --netns NS`` on a free loopback port;
2. times SCRAPES scrapes of /metrics (HTTP round trip, and the collector's own
   ``hostnet_scrape_duration_seconds``) with the namespace's table empty;
3. RAISES the global ``net.netfilter.nf_conntrack_max`` in the initial namespace to
   ENTRIES + 10% (a child namespace cannot raise its own limit) and puts the old value back
   in a ``finally``; loads ENTRIES ESTABLISHED+ASSURED TCP entries with ``conntrack -R``;
4. times the same scrapes again with the full table, and ``conntrack -C`` for reference;
5. stops the exporter and deletes the namespace.

Usage: sudo .venv/bin/python bench/exporter.py [--entries 1000000] [--scrapes 200]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from contextlib import ExitStack
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "src"))

from _conntrack import load_entries, raised_global_max, require_root_tools  # noqa: E402
from tests.helpers.conntrack import TRACK_RULESET  # noqa: E402
from tests.helpers.netns import free_port  # noqa: E402

HOSTNET = str(Path(sys.executable).with_name("hostnet"))


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as resp:
        return str(resp.read().decode())


def own_duration(text: str) -> float:
    for line in text.splitlines():
        if line.startswith("hostnet_scrape_duration_seconds "):
            return float(line.split()[1])
    raise ValueError("no hostnet_scrape_duration_seconds in the scrape")


def entries_of(text: str, ns: str) -> int:
    needle = f'hostnet_conntrack_entries{{netns="{ns}"}} '
    for line in text.splitlines():
        if line.startswith(needle):
            return int(float(line.split()[-1]))
    raise ValueError(f"namespace {ns} missing from the scrape")


def measure(url: str, ns: str, scrapes: int) -> dict[str, float]:
    wall: list[float] = []
    own: list[float] = []
    text = scrape(url)  # warm-up
    for _ in range(scrapes):
        t0 = time.perf_counter()
        text = scrape(url)
        wall.append(time.perf_counter() - t0)
        own.append(own_duration(text))
    wall.sort()
    return {
        "entries": entries_of(text, ns),
        "wall_median_ms": statistics.median(wall) * 1000,
        "wall_p95_ms": wall[int(len(wall) * 0.95) - 1] * 1000,
        "wall_max_ms": wall[-1] * 1000,
        "collector_median_ms": statistics.median(own) * 1000,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--entries", type=int, default=1_000_000)
    ap.add_argument("--scrapes", type=int, default=200)
    args = ap.parse_args()
    require_root_tools()

    ns = f"hn-bench-exp-{uuid.uuid4().hex[:8]}"
    nsx = ["ip", "netns", "exec", ns]
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    results: list[tuple[str, dict[str, float]]] = []
    proc: subprocess.Popen[bytes] | None = None
    subprocess.run(["ip", "netns", "add", ns], check=True)
    stack = ExitStack()
    try:
        subprocess.run([*nsx, "nft", "-f", "-"], input=TRACK_RULESET.encode(), check=True)
        proc = subprocess.Popen([HOSTNET, "exporter", "--listen", f"127.0.0.1:{port}",
                                 "--netns", ns], stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while True:
            try:
                scrape(url)
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit("exporter did not start") from None
                time.sleep(0.2)
        results.append(("empty table", measure(url, ns, args.scrapes)))

        stack.enter_context(raised_global_max(args.entries))
        took = load_entries(nsx, args.entries)
        print(f"loaded entries in {took:.1f} s "
              f"(kernel {os.uname().release}, {os.cpu_count()} CPUs)", flush=True)
        results.append(("full table", measure(url, ns, args.scrapes)))
        t0 = time.perf_counter()
        subprocess.run([*nsx, "conntrack", "-C"], check=True, capture_output=True)
        conntrack_c = (time.perf_counter() - t0) * 1000
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=10)
        subprocess.run(["ip", "netns", "del", ns], check=False)
        stack.close()

    print(f"\n{args.scrapes} scrapes each, one namespace plus the initial one\n")
    print("| table | entries | scrape wall median ms | p95 | max | collector median ms |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for label, r in results:
        print(f"| {label} | {int(r['entries']):,} | {r['wall_median_ms']:.2f} | "
              f"{r['wall_p95_ms']:.2f} | {r['wall_max_ms']:.2f} | "
              f"{r['collector_median_ms']:.3f} |")
    print(f"\n`conntrack -C` in the full namespace (process start included): {conntrack_c:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
