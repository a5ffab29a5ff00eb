"""Run every benchmark script and gather bench/results/*.md into bench/RESULTS.md.

Usage: make bench   (or .venv/bin/python bench/run_all.py [name ...]); --merge only rewrites
RESULTS.md from bench/results/*.md (after editing a results file by hand), running nothing.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SKIP = {"run_all.py", "_timing.py"}


def main(argv: list[str]) -> int:
    if argv == ["--merge"]:
        merge()
        return 0
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


def merged(here: Path = HERE) -> str:
    """RESULTS.md as the sections in ``here``/results/*.md make it, in file-name order."""
    parts = [
        "# Benchmark results\n",
        "Each section was produced by the script named in it; `make bench` reruns all of "
        "them and rewrites this file. Speeds are measured, never asserted in tests.\n",
    ]
    for md in sorted((here / "results").glob("*.md")):
        parts.append(md.read_text().strip() + "\n")
    return "\n".join(parts)


def merge() -> None:
    """Rewrite bench/RESULTS.md from bench/results/*.md (the only place sections live)."""
    (HERE / "RESULTS.md").write_text(merged())


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
