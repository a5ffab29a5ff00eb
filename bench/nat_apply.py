#!/usr/bin/env python3
"""Benchmark ``hostnet apply`` / ``plan`` / ``rollback`` of a [nat] table with N forwards,
end to end through the installed command (Python start, config parse and validation,
compile, ``nft -c``, journal fsynced with the old table, ``nft -f``, conntrack clean-up of
changed forwards, read-back).

In a throwaway router namespace (``hn-test-bench-natapply-*``: wan0 and lan0 veths) it times,
for each of ``--runs`` rounds:

1. ``hostnet plan`` with no table loaded;
2. the first ``hostnet apply`` (creates the table, sets ip_forward);
3. a second ``hostnet apply`` (nothing to do: the stamp and the translations match);
4. an apply after changing one forward's target (replaces the table; deletes the conntrack
   entries of that forward only);
5. ``hostnet rollback`` of that change (the old table put back exactly);
6. ``hostnet rollback`` of the first apply (table removed, ip_forward back).

Compared with one ``iptables -t nat -A`` per forward (bench/nat.py measures that on this
machine: see its section) and with ``iptables-restore`` of the same DNAT rules, timed here.

Usage: sudo .venv/bin/python bench/nat_apply.py [--forwards 10 10000] [--runs 3]
(writes bench/results/nat_apply.md)
"""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from tests.helpers.netns import Netns, link  # noqa: E402

HOSTNET = str(Path(sys.executable).with_name("hostnet"))
SRV = "198.51.100.20"


def config(n: int, shift: int = 0) -> str:
    head = ('[nat]\nbackend = "nftables"\n\n[[nat.masquerade]]\nsource = ["198.51.100.0/24"]\n'
            'out = "wan0"\n')
    body = []
    for i in range(n):
        target = f"{SRV}:{22 + shift}" if i == 0 else SRV
        body.append(f'\n[[nat.forward]]\nin = "wan0"\nproto = "tcp"\nport = {10000 + i}\n'
                    f'to = "{target}"\nallow = ["192.0.2.0/28"]\n')
    return head + "".join(body)


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    took = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:3])}... failed ({proc.returncode}):\n"
                         f"{proc.stdout}{proc.stderr}")
    return took


def round_(n: int, tmp: Path) -> dict[str, float]:
    cfg = tmp / f"nat-{n}.toml"
    cfg.write_text(config(n))
    with Netns("bench-natapply") as rtr, Netns("bench-natlan") as lan:
        wan = Netns("bench-natwan").__enter__()
        try:
            link(wan, rtr, "203.0.113.254/24", "203.0.113.1/24", name_a="veth0",
                 name_b="wan0")
            link(rtr, lan, "198.51.100.1/24", f"{SRV}/24", name_a="lan0", name_b="veth0")
            rtr.sysctl("net.ipv4.ip_forward", "0")
            state = tmp / f"state-{n}-{time.monotonic_ns()}"
            common = ["--config", str(cfg), "--netns", rtr.name, "--state-dir", str(state)]
            rb = [HOSTNET, "rollback", "--netns", rtr.name, "--state-dir", str(state), "--yes"]
            out = {"plan": timed([HOSTNET, "plan", *common]),
                   "apply (create)": timed([HOSTNET, "apply", *common, "--yes"]),
                   "apply again (nothing to do)": timed([HOSTNET, "apply", *common, "--yes"])}
            cfg.write_text(config(n, shift=1))
            out["apply one changed forward (replace)"] = timed([HOSTNET, "apply", *common,
                                                                 "--yes"])
            out["rollback of the change"] = timed(rb)
            out["rollback of the first apply"] = timed(rb)
            cfg.write_text(config(n))
            return out
        finally:
            wan.close()


def restore_bench(n: int) -> float:
    """One ``iptables-restore --noflush`` of the same N DNAT rules (allowlist in the rule)."""
    lines = ["*nat"] + [f"-A PREROUTING -i wan0 -s 192.0.2.0/28 -p tcp -m tcp --dport "
                        f"{10000 + i} -j DNAT --to-destination {SRV}" for i in range(n)]
    text = "\n".join([*lines, "COMMIT", ""])
    with Netns("bench-natipt") as ns:
        start = time.perf_counter()
        ns.run(["iptables-restore", "--noflush"], input=text)
        return time.perf_counter() - start


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--forwards", type=int, nargs="+", default=[10, 10000])
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    rows: dict[int, dict[str, list[float]]] = {}
    restore: dict[int, float] = {}
    with tempfile.TemporaryDirectory(prefix="hn-bench-natapply-") as d:
        for n in args.forwards:
            for _ in range(args.runs):
                for k, v in round_(n, Path(d)).items():
                    rows.setdefault(n, {}).setdefault(k, []).append(v)
            restore[n] = statistics.median(restore_bench(n) for _ in range(args.runs))
            print(n, {k: round(statistics.median(v), 3) for k, v in rows[n].items()},
                  flush=True)
    ipt = subprocess.run(["iptables", "--version"], capture_output=True, text=True).stdout
    heads = " | ".join(f"{n:,} forwards" for n in args.forwards)
    md = ["# NAT in `hostnet apply`: plan, apply, rollback of N forwards", "",
          "Reproduce (root; throwaway namespaces `hn-test-bench-nat*` only):", "",
          f"    sudo .venv/bin/python bench/nat_apply.py --forwards "
          f"{' '.join(map(str, args.forwards))} --runs {args.runs}", "",
          f"Kernel {platform.release()}, {ipt.strip()}, 2 vCPUs. End to end through the "
          "`hostnet` command (Python start, parse, validate, compile, `nft -c`, journal "
          "with the old table fsynced, `nft -f`, read-back). Each forward: tcp, its own "
          f"port, one allowlisted /28. Median of {args.runs} runs, seconds.", "",
          f"| step | {heads} |", "| --- |" + " ---: |" * len(args.forwards)]
    for key in rows[args.forwards[0]]:
        vals = " | ".join(f"{statistics.median(rows[n][key]):.3f}" for n in args.forwards)
        md.append(f"| `hostnet {key}` | {vals} |")
    vals = " | ".join(f"{restore[n]:.3f}" for n in args.forwards)
    md.append(f"| one `iptables-restore --noflush` of the same DNAT rules (no journal, no "
              f"check, no forward filtering) | {vals} |")
    md += ["", "One `iptables -t nat -A` process per forward, the way users add them, takes "
           "about 105 s for 10,000 on this machine (bench/nat.py, section above)."]
    (HERE / "results" / "nat_apply.md").write_text("\n".join(md) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
