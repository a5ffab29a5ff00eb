"""Benchmark `hostnet lint`: start-up, --system on this machine, throughput on 100k lines.

Compares with what users run today: `sysctl --system --dry-run` (procps) on the same files.
Usage: .venv/bin/python bench/lint.py   (writes bench/results/lint.md)
"""

from __future__ import annotations

import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import fmt_ms, time_command

HERE = Path(__file__).resolve().parent
HOSTNET = str(Path(sys.executable).with_name("hostnet"))
LINES = 100_000


def generate(directory: str, lines: int, per_file: int = 1000) -> None:
    """Realistic fragments: each file sets distinct live keys to their current values, with
    comments, blank lines and about 1% mistakes (inline comments, typos, removed keys)."""
    from hostnet.host.root import Root

    root = Root("/")
    pool = []
    for key in root.sysctl_keys():
        value = root.sysctl_value(key)
        if root.sysctl_writable(key) and value is not None and value.strip().isdigit():
            pool.append((key, value.strip()))
    rng = random.Random(42)
    written = 0
    n = 0
    while written < lines:
        out = []
        keys = iter(rng.sample(pool, len(pool)))
        while len(out) < per_file and written + len(out) < lines:
            r = rng.random()
            if r < 0.15:
                out.append(f"# comment {len(out)}: why the next value is what it is")
            elif r < 0.2:
                out.append("")
            elif r < 0.21:
                out.append(
                    rng.choice(
                        [
                            "net.ipv4.tcp_tw_recycle = 1",
                            "net.core.somaxconm = 1024",
                            "net.ipv4.tcp_fin_timeout = 30 # shorter",
                        ]
                    )
                )
            else:
                key, value = next(keys, ("net.ipv4.tcp_syncookies", "1"))
                out.append(f"{key} = {value}")
        Path(directory, f"{n:03d}-bench.conf").write_text("\n".join(out) + "\n")
        written += len(out)
        n += 1


def main() -> None:
    rows = []
    help_t = time_command([HOSTNET, "--help"])
    py_t = time_command([sys.executable, "-c", "pass"])
    rows.append(("`hostnet --help`", fmt_ms(help_t), f"python -c pass: {fmt_ms(py_t)}"))
    sys_t = time_command([HOSTNET, "lint", "--system"])
    procps_t = time_command(["sysctl", "--system", "--dry-run"])
    rows.append(
        (
            "`hostnet lint --system`",
            fmt_ms(sys_t),
            f"`sysctl --system --dry-run`: {fmt_ms(procps_t)} (ratio {sys_t / procps_t:.1f}x)",
        )
    )
    with tempfile.TemporaryDirectory() as tmp:
        big = tmp
        generate(big, LINES)
        t_kernel = time_command([HOSTNET, "lint", big], runs=5)
        t_pure = time_command([HOSTNET, "lint", "--no-kernel", big], runs=5)
        files = [str(p) for p in sorted(Path(big).glob("*.conf"))]
        t_procps = time_command(
            ["sysctl", "-e", "-q", "--dry-run", *(x for f in files for x in ("-p", f))], runs=5
        )
        # the library alone, without process start-up
        from hostnet.host.kernel_view import RootKernelView
        from hostnet.host.root import Root
        from hostnet.knowledge.catalogue import load
        from hostnet.sysctl.lint import lint_files
        from hostnet.sysctl.parser import parse_text

        texts = [(str(p), p.read_text()) for p in sorted(Path(big).glob("*.conf"))]
        load()
        start = time.perf_counter()
        lint_files([parse_text(t, p) for p, t in texts], load(), RootKernelView(Root("/")))
        lib_t = time.perf_counter() - start
    rows.append(
        (
            f"`hostnet lint` {LINES:,} lines in 100 files (checks the kernel)",
            fmt_ms(t_kernel),
            f"{LINES / t_kernel:,.0f} lines/s",
        )
    )
    rows.append(
        (
            f"`hostnet lint --no-kernel` {LINES:,} lines",
            fmt_ms(t_pure),
            f"{LINES / t_pure:,.0f} lines/s",
        )
    )
    rows.append(
        (f"lint library only, {LINES:,} lines", fmt_ms(lib_t), f"{LINES / lib_t:,.0f} lines/s")
    )
    rows.append(
        (
            "`sysctl -e -q --dry-run -p FILE...` same files",
            fmt_ms(t_procps),
            f"{LINES / t_procps:,.0f} lines/s (parses only, checks nothing)",
        )
    )
    table = ["| measurement | median | compared with |", "| --- | --- | --- |"]
    table += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    body = "\n".join(table)
    print(body)
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "lint.md").write_text(
        "## hostnet lint\n\nTargets: `lint --system` under 0.3 s; at least 200,000 lines/s.\n"
        f"Machine: {os.cpu_count()} cores, kernel {os.uname().release}.\n"
        "Reproduce: `.venv/bin/python bench/lint.py` (medians of 11 runs, 5 for the big file,"
        " after one warm-up run).\n\n" + body + "\n"
    )


if __name__ == "__main__":
    main()
