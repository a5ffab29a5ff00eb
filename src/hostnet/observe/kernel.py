"""The kernel and machine a root shows: release, memory, CPUs, boot and observation time."""

from __future__ import annotations

import os
import time

from hostnet.host.root import Root
from hostnet.model.host import KernelInfo


def parse_meminfo(text: str) -> dict[str, int]:
    """/proc/meminfo in bytes."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        parts = rest.split()
        if not parts:
            continue
        try:
            value = int(parts[0])
        except ValueError:
            continue
        if len(parts) > 1 and parts[1].lower() == "kb":
            value *= 1024
        out[name.strip()] = value
    return out


def parse_kernel_version(release: str) -> tuple[int, int, int]:
    nums: list[int] = []
    for part in release.split("-", 1)[0].split(".")[:3]:
        digits = ""
        for ch in part:
            if not ch.isdigit():
                break
            digits += ch
        nums.append(int(digits) if digits else 0)
    while len(nums) < 3:
        nums.append(0)
    return nums[0], nums[1], nums[2]


def count_cpu_list(text: str) -> int:
    """Count CPUs in a sysfs list such as ``0-3,8-11`` or ``0``."""
    total = 0
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        lo, _, hi = part.partition("-")
        total += (int(hi) - int(lo) + 1) if hi else 1
    return total


def mem_total(root: Root) -> int | None:
    try:
        return parse_meminfo(root.read_text("proc/meminfo") or "").get("MemTotal")
    except PermissionError:
        return None


def cpu_count(root: Root) -> int:
    """Online CPUs (from /sys, so snapshots answer too)."""
    for rel in ("sys/devices/system/cpu/online", "sys/devices/system/cpu/possible"):
        text = root.read_text(rel)
        if text and text.strip():
            return count_cpu_list(text.strip())
    return (os.cpu_count() or 1) if root.is_live else 1


def boot_time(root: Root) -> float | None:
    """btime of /proc/stat: when the machine booted (epoch seconds)."""
    try:
        text = root.read_text("proc/stat")
    except PermissionError:
        return None
    for line in (text or "").splitlines():
        if line.startswith("btime "):
            value = line.split()[1]
            return float(value) if value.isdigit() else None
    return None


def observed_at(root: Root) -> float | None:
    """Now on the live host; a snapshot's collection time (meta.json), if it has one."""
    if root.is_live:
        return time.time()
    from hostnet.host.snapshot import read_meta

    meta = read_meta(root)
    return meta.time if meta is not None else None


def observe_kernel(root: Root) -> KernelInfo:
    release = root.osrelease
    return KernelInfo(release=release,
                      version=parse_kernel_version(release) if release else (6, 0, 0),
                      mem_total=mem_total(root), cpus=cpu_count(root),
                      boot_time=boot_time(root), observed_at=observed_at(root))
