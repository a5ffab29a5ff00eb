#!/usr/bin/env python3
"""Benchmark ``hostnet conntrack top`` on a real 1,000,000-entry conntrack table.

What it does (as root):

1. creates a throwaway namespace ``hn-bench-ct-*`` with a conntrack-using nft rule;
2. RAISES the global ``net.netfilter.nf_conntrack_max`` in the initial namespace to
   ENTRIES + 10% (a child namespace cannot raise its own limit: it is read-only there and
   equals the global one) and puts the old value back in a ``finally``;
3. loads ENTRIES ESTABLISHED+ASSURED TCP entries with ``conntrack -R`` (16 sources);
4. times, median of REPEAT runs, with the peak RSS of each command (wait4):
     cat /proc/net/nf_conntrack > /dev/null            (the raw read, the floor)
     conntrack -L > /dev/null                          (the raw netlink dump)
     conntrack -L | awk '{print $5}' | sort | uniq -c | sort -rn   (what users run)
     hostnet conntrack top --by src --netns NS         (auto: /proc file)
     hostnet conntrack top --by src --netns NS --source netlink
     hostnet conntrack top --by dst,dport / --by proto,state / --proto tcp --assured --src NET
     the library in one process (no interpreter start-up per run)
     the doctor's table composition (library), also from another source tree with
     --compare-src DIR (e.g. the previous commit: git archive HEAD~1 src | tar -x -C DIR)
5. deletes the namespace.

Usage: sudo .venv/bin/python bench/conntrack_top.py [--entries 1000000] [--repeat 3]
       [--compare-src DIR] [--only-composition]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "src"))

from _conntrack import load_entries, raised_global_max, require_root_tools  # noqa: E402
from tests.helpers.conntrack import TRACK_RULESET  # noqa: E402

HOSTNET = str(Path(sys.executable).with_name("hostnet"))


def run_timed(argv: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of a command and the children it waited for.

    The seconds include GNU time's own fork+exec (about a millisecond)."""
    # GNU time forks the command from a small process, so the RSS of this Python process
    # (inherited across fork) does not inflate the figure; it includes waited-for children.
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as out:
        start = time.perf_counter()
        proc = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", out.name, *argv],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        elapsed = time.perf_counter() - start
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} exited {proc.returncode}")
        return elapsed, int(out.read().split()[-1])


def measure(label: str, argv: list[str], repeat: int) -> dict[str, float | str]:
    times, rss = [], []
    for _ in range(repeat):
        t, m = run_timed(argv)
        times.append(t)
        rss.append(m)
    row: dict[str, float | str] = {
        "label": label, "median": statistics.median(times), "min": min(times),
        "max": max(times), "rss_mib": max(rss) / 1024,
    }
    print(f"{label:58s} median {row['median']:.2f} s  (min {row['min']:.2f}, "
          f"max {row['max']:.2f})  peak RSS {row['rss_mib']:.0f} MiB", flush=True)
    return row


LIB_SNIPPET = """
import sys
from hostnet.host.netns import entered
from hostnet.host.root import Root
from hostnet.host.conntrack_source import open_table
from hostnet.conntrack.top import top
with entered(sys.argv[1]), open_table(Root('/')) as t:
    r = top(t.chunks, 'src')
print(r.matched)
"""


COMP_SNIPPET = """
import inspect, sys
from hostnet.host.netns import entered
from hostnet.host.root import Root
from hostnet.host.conntrack_source import open_table
from hostnet.conntrack.top import composition
kw = {}
if "own" in inspect.signature(composition).parameters:
    kw["own"] = {"203.0.113.10"}
with entered(sys.argv[1]), open_table(Root('/')) as t:
    c = composition(t.chunks, limit=5, **kw)
print(c.entries)
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--entries", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--pyroute2", action="store_true", help="also time a pyroute2 dump (slow)")
    ap.add_argument("--compare-src", metavar="DIR",
                    help="also time composition() from this source tree (its src/ directory)")
    ap.add_argument("--only-composition", action="store_true",
                    help="time only the composition rows (and the raw read)")
    args = ap.parse_args()
    require_root_tools()
    ns = f"hn-bench-ct-{uuid.uuid4().hex[:8]}"
    rows: list[dict[str, float | str]] = []
    subprocess.run(["ip", "netns", "add", ns], check=True)
    stack = ExitStack()
    try:
        stack.enter_context(raised_global_max(args.entries))
        nsx = ["ip", "netns", "exec", ns]
        subprocess.run([*nsx, "nft", "-f", "-"], input=TRACK_RULESET, text=True, check=True)
        took = load_entries(nsx, args.entries)
        count = int(subprocess.run(
            [*nsx, "cat", "/proc/sys/net/netfilter/nf_conntrack_count"],
            capture_output=True, text=True, check=True).stdout)
        print(f"loaded {count} entries in {took:.1f} s "
              f"(kernel {os.uname().release}, {os.cpu_count()} CPUs)", flush=True)
        r = args.repeat
        pipeline = "conntrack -L 2>/dev/null | awk '{print $5}' | sort | uniq -c | sort -rn"
        rows.append(measure("cat /proc/net/nf_conntrack",
                            [*nsx, "cat", "/proc/net/nf_conntrack"], r))
        py = sys.executable
        rows.append(measure("library composition() (this tree)",
                            [py, "-c", COMP_SNIPPET, ns], r))
        if args.compare_src:
            env_py = ["env", f"PYTHONPATH={Path(args.compare_src).resolve() / 'src'}", py]
            rows.append(measure(f"library composition() ({args.compare_src})",
                                [*env_py, "-c", COMP_SNIPPET, ns], r))
        if args.only_composition:
            return 0
        rows.append(measure("conntrack -L", [*nsx, "conntrack", "-L"], r))
        rows.append(measure("conntrack -L | awk | sort | uniq -c | sort -rn",
                            [*nsx, "sh", "-c", pipeline], r))
        top = [HOSTNET, "conntrack", "top", "--netns", ns]
        rows.append(measure("hostnet conntrack top --by src", [*top, "--by", "src"], r))
        rows.append(measure("hostnet conntrack top --by src --source netlink",
                            [*top, "--by", "src", "--source", "netlink"], r))
        rows.append(measure("hostnet conntrack top --by dst,dport", [*top, "--by", "dst,dport"], r))
        rows.append(measure("hostnet conntrack top --by proto,state",
                            [*top, "--by", "proto,state"], r))
        rows.append(measure("hostnet conntrack top --proto tcp --assured --src 198.51.100.0/28",
                            [*top, "--proto", "tcp", "--assured", "--src", "198.51.100.0/28"], r))
        rows.append(measure("library top(src), in one process",
                            [py, "-c", LIB_SNIPPET, ns], r))
        if args.pyroute2:
            snippet = (
                "from pyroute2 import NFCTSocket\nfrom hostnet.host.netns import entered\n"
                "import sys\nwith entered(sys.argv[1]):\n s = NFCTSocket()\n"
                " n = sum(1 for _ in s.dump())\nprint(n)\n"
            )
            rows.append(measure("pyroute2 NFCTSocket().dump() (count only)",
                                [py, "-c", snippet, ns], 1))
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
        stack.close()

    by = {str(row["label"]): row for row in rows}
    raw = float(by["cat /proc/net/nf_conntrack"]["median"])
    pipe = float(by["conntrack -L | awk | sort | uniq -c | sort -rn"]["median"])
    ours = float(by["hostnet conntrack top --by src"]["median"])
    print(f"\nhostnet top --by src / cat /proc: {ours / raw:.2f}x (target <= 1.3x)")
    print(f"pipeline / hostnet top --by src: {pipe / ours:.2f}x faster (target >= 2x)")
    rss = float(by["hostnet conntrack top --by src"]["rss_mib"])
    print(f"peak RSS hostnet top --by src: {rss:.0f} MiB (target < 200 MiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
