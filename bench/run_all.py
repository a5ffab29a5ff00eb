"""Run every benchmark script and gather bench/results/*.md into bench/RESULTS.md.

Usage: make bench   (or .venv/bin/python bench/run_all.py [name ...])
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SKIP = {"run_all.py", "_timing.py"}


def main(argv: list[str]) -> int:
    scripts = sorted(
        p for p in HERE.glob("*.py") if p.name not in SKIP and not p.name.startswith("_")
    )
    if argv:
        scripts = [p for p in scripts if p.stem in argv]
    failed = 0
    for script in scripts:
        print(f"== {script.name}", flush=True)
        failed += subprocess.run([sys.executable, str(script)], check=False).returncode != 0
    merge()
    return 1 if failed else 0


def merge() -> None:
    parts = [
        "# Benchmark results\n",
        "Each section was produced by the script named in it; `make bench` reruns all of "
        "them and rewrites this file. Speeds are measured, never asserted in tests.\n",
    ]
    for md in sorted((HERE / "results").glob("*.md")):
        parts.append(md.read_text().strip() + "\n")
    (HERE / "RESULTS.md").write_text("\n".join(parts))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
