"""Read what the planner needs (:class:`hostnet.model.facts.Facts`) through a Root (the live
host, or a snapshot / fixture tree); hostnet.state plans and writes from it.

Values are read in the namespace the caller entered (``hostnet.host.netns.entered``); owned
files and the sysctl.d precedence come from the files root (``/`` or ``--root DIR``).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from hostnet.host.root import Root
from hostnet.model.facts import MODPROBE_FILE, SYSCTL_FILE, Facts, KeyFact, LaterSetting
from hostnet.model.sysctl import SysctlState
from hostnet.observe.kernel import cpu_count, mem_total, parse_kernel_version

OWN_NAME = SYSCTL_FILE.rsplit("/", 1)[1]


def interfaces(kernel: Root | None) -> tuple[str, ...]:
    """Interfaces of the current namespace (from /proc/sys, which follows setns; /sys does not)."""
    if kernel is None:
        return ()
    names = set(kernel.listdir("proc/sys/net/ipv4/conf")) | set(
        kernel.listdir("proc/sys/net/ipv6/conf"))
    return tuple(sorted(n for n in names if n not in ("all", "default")))


def conntrack_module(kernel: Root | None) -> str:
    if kernel is None:
        return "unknown"
    if kernel.exists("sys/module/nf_conntrack/initstate"):
        return "module"
    if kernel.exists("sys/module/nf_conntrack"):
        return "builtin"
    return "not-loaded"


def later_settings(files_root: Root) -> tuple[LaterSetting, ...]:
    """sysctl.d lines read after 90-hostnet.conf at boot, in the order systemd-sysctl reads."""
    from hostnet.host.sysctl_files import read_tree
    from hostnet.sysctl.discovery import system_sources
    from hostnet.sysctl.parser import parse_text

    sources, _notes = system_sources(read_tree(files_root))
    out: list[LaterSetting] = []
    for src in sources:
        name = src.path.rsplit("/", 1)[1]
        if src.path == SYSCTL_FILE or (name <= OWN_NAME and src.path != "/etc/sysctl.conf"):
            continue
        try:
            text = files_root.read_text(src.real) or ""
        except OSError:
            continue
        for a in parse_text(text, src.path).assignments:
            if a.value and not a.is_glob:
                out.append(LaterSetting(src.path, a.line, a.key, a.value))
    return tuple(out)


def listening_sockets(text: str, proto: str) -> list[tuple[int, str]]:
    """(port, local address hex) of listening TCP (state 0A) or bound, unconnected UDP
    (state 07) sockets in /proc/net/{tcp,tcp6,udp,udp6} text."""
    out: list[tuple[int, str]] = []
    for line in text.splitlines()[1:]:
        parts = line.split()
        if len(parts) < 4 or ":" not in parts[1]:
            continue
        addr, _, port_hex = parts[1].rpartition(":")
        wanted = "0A" if proto == "tcp" else "07"
        if parts[3] != wanted or (proto == "udp" and not parts[2].endswith(":0000")):
            continue
        try:
            port = int(port_hex, 16)
        except ValueError:
            continue
        if port:
            out.append((port, addr.upper()))
    return out


def _loopback(addr: str) -> bool:
    if len(addr) == 8:  # IPv4 in little-endian words: 0100007F is 127.0.0.1
        return addr[6:8] == "7F"
    return addr in ("00000000000000000000000001000000", "0000000000000000FFFF00000100007F")


def _listening(kernel: Root) -> tuple[tuple[tuple[str, int], ...], tuple[str, ...]]:
    ports: set[tuple[str, int]] = set()
    v6_any: set[str] = set()
    for name in ("tcp", "tcp6", "udp", "udp6"):
        proto = name.rstrip("6")
        for port, addr in listening_sockets(kernel.read_text(f"proc/net/{name}") or "", proto):
            if not _loopback(addr):
                ports.add((proto, port))
            if name.endswith("6") and set(addr) == {"0"}:
                v6_any.add(f"{proto}/{port}")
    return tuple(sorted(ports)), tuple(sorted(v6_any))


def observe(kernel: Root | None, files_root: Root, keys: Iterable[str], *, netns: str | None,
            live: bool, files: bool, source: str, sockets: bool = True) -> Facts:
    """``sockets``: also read listening sockets (for a port range or disabling IPv6)."""
    values: dict[str, KeyFact] = {}
    if kernel is not None:
        for key in sorted(set(keys)):
            read = kernel.sysctl(key)
            state = {SysctlState.OK: "ok", SysctlState.MISSING: "missing"}.get(read.state,
                                                                              "denied")
            values[key] = KeyFact(key, read.value, state, kernel.sysctl_writable(key))
    owned: dict[str, bytes | None] = {}
    for path in (SYSCTL_FILE, MODPROBE_FILE):
        try:
            owned[path] = files_root.file(path).read_bytes()
        except FileNotFoundError:
            owned[path] = None
    listening: tuple[tuple[str, int], ...] = ()
    v6_any: tuple[str, ...] = ()
    slaac: tuple[str, ...] = ()
    if kernel is not None and sockets:
        listening, v6_any = _listening(kernel)
        slaac = tuple(n for n in interfaces(kernel) if n != "lo" and kernel.sysctl_int(
            f"net.ipv6.conf.{n.replace('.', '/')}.accept_ra") and kernel.sysctl_int(
            f"net.ipv6.conf.{n.replace('.', '/')}.autoconf"))
    hosts = files_root.read_text("etc/hosts") or ""
    return Facts(
        netns=netns, live=live, files=files, kernel_known=kernel is not None, values=values,
        interfaces=interfaces(kernel),
        mem_bytes=(mem_total(kernel) or 0) if kernel is not None else 0,
        cpus=cpu_count(kernel) if kernel is not None else 1,
        kernel=parse_kernel_version(kernel.osrelease) if kernel is not None else (6, 0, 0),
        conntrack_module=conntrack_module(kernel), owned_files=owned,
        later=later_settings(files_root) if files else (), listening=listening, v6_any=v6_any,
        hosts_v6_loopback=any(line.split()[:1] == ["::1"] for line in hosts.splitlines()),
        slaac=slaac, source=source,
    )


def kernel_root(root_dir: Path | None) -> Root:
    """The kernel to check against: a tree's own proc/sys when it has one, else the host."""
    if root_dir is not None and (root_dir / "proc/sys").is_dir():
        return Root(root_dir)
    return Root("/")
