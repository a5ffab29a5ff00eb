"""Benchmark `hostnet doctor`: wall time of the cheap path on this machine (target < 0.5 s),
compared with `sysctl -a` and with reading the same inputs with shell tools.

The keys compared are the ones the doctor really reads: the checks run once in-process with a
Root that records every /proc/sys key it opens.
Usage: .venv/bin/python bench/doctor.py [--compare-src DIR]   (writes bench/results/doctor.md)
Before/after a change: git archive REV src | tar -x -C /tmp/old; --compare-src /tmp/old/src
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import fmt_ms, time_command

HERE = Path(__file__).resolve().parent
HOSTNET = str(Path(sys.executable).with_name("hostnet"))


def keys_read() -> list[str]:
    from hostnet.host.root import Root, SysctlRead
    from hostnet.service.doctor import run

    seen: list[str] = []

    class Recording(Root):
        def sysctl(self, key: str) -> SysctlRead:
            seen.append(key)
            return super().sysctl(key)

    run(Recording("/"), composition=False)
    return sorted(set(seen))


def library_time(runs: int = 11) -> float:
    from hostnet.service.doctor import run

    samples = []
    for i in range(runs + 1):
        start = time.perf_counter()
        run(None, composition=False)
        if i:
            samples.append(time.perf_counter() - start)
    samples.sort()
    return samples[len(samples) // 2]


def compare(old_src: str, runs: int = 21) -> tuple[float, float, float, float]:
    """Interleaved medians of (old, new) for the cheap and the full doctor: both through
    ``python -m hostnet`` with PYTHONPATH pointing at each source tree, so start-up is fair."""
    new_src = str(HERE.parent / "src")
    out = []
    for extra in (["--no-composition"], []):
        argv = [sys.executable, "-m", "hostnet", "doctor", *extra, "--state-dir", "/nonexistent"]
        old_t: list[float] = []
        new_t: list[float] = []
        for i in range(runs + 1):
            for src, bucket in ((old_src, old_t), (new_src, new_t)):
                env = {**os.environ, "PYTHONPATH": src}
                start = time.perf_counter()
                subprocess.run(argv, env=env, check=False, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
                if i:
                    bucket.append(time.perf_counter() - start)
        out += [statistics.median(old_t), statistics.median(new_t)]
    return out[0], out[1], out[2], out[3]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--compare-src", metavar="DIR",
                        help="also time an older source tree (git archive REV src | tar -x)")
    args = parser.parse_args()
    keys = keys_read()
    paths = [f"/proc/sys/{k.replace('.', '/') if '/' not in k else k}" for k in keys]
    paths = [p for p in paths if os.path.exists(p)]
    netfiles = [f"/proc/net/{n}" for n in ("tcp", "tcp6", "udp", "udp6", "ipv6_route")]
    cat_all = ["cat", *paths, *netfiles]
    rows = []
    cheap = time_command([HOSTNET, "doctor", "--no-composition", "--state-dir", "/nonexistent"])
    rows.append(("`hostnet doctor --no-composition`", cheap, "target < 500 ms"))
    full = time_command([HOSTNET, "doctor", "--state-dir", "/nonexistent"], runs=5)
    rows.append(("`hostnet doctor` (with kernel log scan)", full, ""))
    lib = library_time()
    rows.append(("runner.run(composition=False), in-process", lib, "no interpreter start-up"))
    sysctl_a = time_command(["sh", "-c", "sysctl -a > /dev/null 2>&1"])
    rows.append(("`sysctl -a > /dev/null`", sysctl_a,
                 f"doctor / sysctl -a = {cheap / sysctl_a:.1f}x"))
    one_cat = time_command(cat_all)
    rows.append((f"`cat` of the {len(paths)} keys + 5 /proc/net files (one process)", one_cat,
                 f"doctor / cat = {cheap / one_cat:.1f}x"))
    loop = time_command(["sh", "-c", "for f in \"$@\"; do cat \"$f\"; done > /dev/null", "sh",
                         *paths, *netfiles])
    rows.append(("shell loop, one `cat` per file", loop, f"doctor / loop = {cheap / loop:.1f}x"))
    same_inputs = time_command(["sh", "-c", "cat \"$@\" >/dev/null; nft -j list ruleset "
                                "> /dev/null; iptables-save -t nat > /dev/null; ip -j -d link "
                                "show > /dev/null", "sh", *paths, *netfiles])
    rows.append(("same inputs with shell tools: cat + nft -j + iptables-save + ip -j link",
                 same_inputs, f"doctor / shell = {cheap / same_inputs:.1f}x"))
    python = time_command([sys.executable, "-c", "pass"])
    rows.append(("`python -c pass` (interpreter start-up)", python, ""))
    if args.compare_src:
        old_cheap, new_cheap, old_full, new_full = compare(args.compare_src)
        rows.append((f"before: `python -m hostnet doctor --no-composition` ({args.compare_src})",
                     old_cheap, "interleaved with the next row, 21 runs each"))
        rows.append(("after: the same command on this tree", new_cheap,
                     f"after / before = {new_cheap / old_cheap:.2f}"))
        rows.append(("before: `python -m hostnet doctor` (full)", old_full, ""))
        rows.append(("after: the same command on this tree", new_full,
                     f"after / before = {new_full / old_full:.2f}"))
    out = [
        "## hostnet doctor",
        "",
        "Target: `hostnet doctor --no-composition` under 0.5 s.",
        f"Machine: {os.cpu_count()} cores, kernel {platform.release()}, initial namespace of "
        "the test VM (4 interfaces).",
        "Reproduce: `.venv/bin/python bench/doctor.py` (medians of 11 runs, 5 for the full "
        "doctor, after one warm-up run).",
        "",
        "| measurement | median | note |",
        "| --- | --- | --- |",
        *(f"| {name} | {fmt_ms(t)} | {note} |" for name, t, note in rows),
        "",
        f"The doctor reads {len(keys)} sysctl keys ({len(paths)} exist here), the four "
        "/proc/net socket tables, /proc/net/route, ipv6_route and snmp, and runs the commands "
        "of hostnet/observe/registry.py: `nft -j list ruleset`, `iptables-save` (only when nft "
        "shows no NAT), `ip -j -d addr show` and `ip -j route show table all`.",
        "",
    ]
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results/doctor.md").write_text("\n".join(out))
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
