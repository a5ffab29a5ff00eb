"""Shared helpers for the benchmark scripts: repeated wall-clock timing of commands."""

from __future__ import annotations

import statistics
import subprocess
import time
from collections.abc import Sequence


def time_command(
    argv: Sequence[str], *, runs: int = 11, shell: bool = False, stdin: str | None = None
) -> float:
    """Median wall time in seconds of ``runs`` runs (one warm-up run first)."""
    samples = []
    for i in range(runs + 1):
        start = time.perf_counter()
        subprocess.run(
            argv if not shell else " ".join(argv),
            shell=shell,
            check=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            input=stdin.encode() if stdin is not None else None,
        )
        elapsed = time.perf_counter() - start
        if i:
            samples.append(elapsed)
    return statistics.median(samples)


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"
