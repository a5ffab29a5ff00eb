"""Benchmark `hostnet apply` / `rollback` of 100 sysctl changes against the usual tools.

In a throwaway namespace (hn-bench-apply-*, 20 veth interfaces) 100 per-namespace keys
(5 per-interface leaves x 20 interfaces) change from one set of values to another with:

* `sysctl -p FILE` (procps) on an equivalent file, in the namespace (`ip netns exec`);
* one `sysctl -w KEY=VALUE` process per key (a shell loop in the namespace);
* `hostnet apply --netns NS --yes` (end to end: Python start, config, checks, plan, journal
  fsynced, 100 writes, read-back) and `hostnet rollback --netns NS --yes`;
* the same transaction in-process (the library, after imports), to show the start-up share.

Nothing outside the namespace is touched; the journal goes to a temporary directory.
Usage: sudo .venv/bin/python bench/apply.py [--runs N]   (writes bench/results/apply.md)
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
HOSTNET = str(Path(sys.executable).with_name("hostnet"))
LEAVES = {"arp_ignore": ("0", "1"), "arp_announce": ("0", "2"), "log_martians": ("0", "1"),
          "rp_filter": ("0", "2"), "proxy_arp": ("0", "1")}


def sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True)


def median_of(runs: int, work: Callable[[], None], reset: Callable[[], None]) -> list[float]:
    samples = []
    for _ in range(runs + 1):  # one warm-up
        reset()
        start = time.perf_counter()
        work()
        samples.append(time.perf_counter() - start)
    return samples[1:]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    runs = parser.parse_args().runs
    # an installed hostnet has byte-compiled modules; this tree may not (PYTHONDONTWRITEBYTECODE)
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(HERE.parent / "src")],
                   check=False)
    ns = f"hn-bench-apply-{uuid.uuid4().hex[:6]}"
    tmp = Path(tempfile.mkdtemp(prefix="hostnet-bench-apply-"))
    sh("ip", "netns", "add", ns)
    try:
        for i in range(10):
            sh("ip", "-n", ns, "link", "add", f"b{i}a", "type", "veth", "peer", "name", f"b{i}b")
        ifaces = [f"b{i}{s}" for i in range(10) for s in "ab"]
        keys = [(f"net.ipv4.conf.{d}.{leaf}", a, b) for d in ifaces for leaf, (a, b) in
                LEAVES.items()]
        assert len(keys) == 100
        base = tmp / "base.conf"
        base.write_text("".join(f"{k} = {a}\n" for k, a, _ in keys))
        new = tmp / "new.conf"
        new.write_text("".join(f"{k} = {b}\n" for k, _, b in keys))
        config = tmp / "hostnet.toml"
        config.write_text("[sysctl]\n" + "".join(f'"{k}" = {b}\n' for k, _, b in keys))
        loop = tmp / "loop.sh"
        loop.write_text("".join(f"sysctl -qw {k}={b}\n" for k, _, b in keys))
        state = tmp / "state"

        def reset() -> None:
            sh("ip", "netns", "exec", ns, "sysctl", "-q", "-p", str(base))

        def check_new() -> None:
            out = subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-n", keys[-1][0]],
                                 capture_output=True, text=True, check=True).stdout.strip()
            assert out == keys[-1][2], out

        results: dict[str, list[float]] = {}
        results["sysctl -p FILE"] = median_of(runs, lambda: sh(
            "ip", "netns", "exec", ns, "sysctl", "-q", "-p", str(new)), reset)
        check_new()
        results["one sysctl -w per key"] = median_of(runs, lambda: sh(
            "ip", "netns", "exec", ns, "sh", str(loop)), reset)
        check_new()
        common = ["--netns", ns, "--state-dir", str(state)]
        results["hostnet apply"] = median_of(runs, lambda: sh(
            HOSTNET, "apply", "--config", str(config), *common, "--yes"), reset)
        check_new()

        def reset_and_apply() -> None:
            reset()
            sh(HOSTNET, "apply", "--config", str(config), *common, "--yes")

        results["hostnet rollback"] = median_of(runs, lambda: sh(
            HOSTNET, "rollback", *common, "--yes"), reset_and_apply)
        lib_apply, lib_rollback = library(ns, config, tmp / "state-lib", runs, reset)
        results["library: transaction (apply)"] = lib_apply
        results["library: rollback"] = lib_rollback
        results["python -c pass (interpreter floor)"] = median_of(
            runs, lambda: sh(sys.executable, "-c", "pass"), lambda: None)
        write(results, runs)
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
    return 0


def library(ns: str, config: Path, state: Path, runs: int,
            reset: Callable[[], None]) -> tuple[list[float], list[float]]:
    from hostnet.host.netns import entered
    from hostnet.state.hostio import HostIO
    from hostnet.state.journal import Journal
    from hostnet.state.prepare import prepare
    from hostnet.state.rollback import rollback
    from hostnet.state.transaction import apply

    applies, rollbacks = [], []
    for i in range(runs + 1):
        reset()
        with entered(ns):
            io = HostIO("/", live=True)
            t0 = time.perf_counter()
            apply(lambda: prepare(config, netns=ns, root_dir=None).plan, io, state_dir=state,
                  netns=ns, config=str(config))
            t1 = time.perf_counter()
            rollback(Journal(state, ns), io, None, force=False)
            t2 = time.perf_counter()
        if i:
            applies.append(t1 - t0)
            rollbacks.append(t2 - t1)
    return applies, rollbacks


def write(results: dict[str, list[float]], runs: int) -> None:
    med = {k: statistics.median(v) for k, v in results.items()}
    mins = {k: min(v) for k, v in results.items()}
    p = med["sysctl -p FILE"]
    rows = "\n".join(
        f"| {name} | {med[name] * 1000:.1f} | {min(v) * 1000:.1f} | {max(v) * 1000:.1f} | "
        f"{med[name] / p:.1f}x |" for name, v in results.items())
    kernel = Path("/proc/sys/kernel/osrelease").read_text().strip()
    load = Path("/proc/loadavg").read_text().split()[0]
    text = f"""# apply: 100 sysctl changes in a namespace

Reproduce (root; creates and deletes namespace `hn-bench-apply-*`, nothing else changes):

    sudo .venv/bin/python bench/apply.py --runs {runs}

100 per-namespace keys (5 per-interface leaves x 20 veth interfaces) change value. Kernel
{kernel}, 2 vCPUs shared with other work (load average {load} when it finished). Median
of {runs} runs after a warm-up, wall time including process start (modules byte-compiled
first, as an installed hostnet has them); `sysctl` runs go through `ip netns exec`, hostnet
uses `--netns`.

| command | median ms | min | max | / sysctl -p |
| --- | ---: | ---: | ---: | ---: |
{rows}

- `hostnet apply` / `sysctl -p`: **{med['hostnet apply'] / p:.1f}x** (target <= 2x:
  {'met' if med['hostnet apply'] <= 2 * p else 'not met'}). The Python interpreter alone
  takes {med['python -c pass (interpreter floor)'] * 1000:.0f} ms, more than `sysctl -p` does
  its whole job; the transaction itself (config, checks, plan, journal with fsync, 100
  writes, read-back) takes {med['library: transaction (apply)'] * 1000:.0f} ms in-process,
  {med['library: transaction (apply)'] / p:.1f}x `sysctl -p`
  ({'met' if med['library: transaction (apply)'] <= 2 * p else 'not met'} for the
  transaction alone).
- Fastest runs (less disturbed by other work on the machine): `hostnet apply`
  {mins['hostnet apply'] * 1000:.0f} ms = {mins['hostnet apply'] / mins['sysctl -p FILE']:.1f}x
  `sysctl -p` ({mins['sysctl -p FILE'] * 1000:.1f} ms); the library transaction
  {mins['library: transaction (apply)'] * 1000:.0f} ms =
  {mins['library: transaction (apply)'] / mins['sysctl -p FILE']:.1f}x.
- `hostnet apply` / one `sysctl -w` per key: {med['hostnet apply'] /
  med['one sysctl -w per key']:.2f}x.
- `hostnet rollback` / `sysctl -p`: {med['hostnet rollback'] / p:.1f}x; in-process
  {med['library: rollback'] * 1000:.0f} ms.
"""
    (HERE / "results/apply.md").write_text(text)
    print(text)


if __name__ == "__main__":
    sys.exit(main())
