"""Prove the sysctl catalogue (knowledge/sysctl.toml) true on the running kernel.

Everything that writes happens inside throwaway namespaces; the initial namespace is only
read (file modes and values), never written. Each namespace is probed by one short Python
process (``ip netns exec NS python3 -c ...``) so the whole module runs in a few seconds.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hostnet.knowledge.catalogue import Catalogue, KeySpec, load
from tests.helpers.netns import Netns

PROC = Path("/proc/sys")
IFACE = "hnv0"  # veth end created inside the test namespace (dummy links are not built here)
INSTANCES = ("all", "default", IFACE)

# Runs inside a namespace: reads modes/values, and optionally performs boundary writes.
PROBE = r"""
import json, os, stat, sys
req = json.load(sys.stdin)
out = {"stat": {}, "writes": {}}
def path(key):
    return "/proc/sys/" + key.replace(".", "/")
def read(p):
    with open(p) as f:
        return f.read().strip()
def write(p, text):
    fd = os.open(p, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
        return 0
    except OSError as e:
        return e.errno
    finally:
        os.close(fd)
for key in req["stat"]:
    p = path(key)
    try:
        mode = stat.S_IMODE(os.stat(p).st_mode)
    except FileNotFoundError:
        out["stat"][key] = None
        continue
    value = None
    if mode & 0o444:
        try:
            value = read(p)
        except OSError as e:
            value = "<errno %d>" % e.errno
    out["stat"][key] = [mode, value]
for key, attempts in req["writes"].items():
    p = path(key)
    orig = read(p)
    res = []
    for text in attempts:
        err = write(p, text)
        res.append([text, err, read(p) if err == 0 else None])
    write(p, orig)
    out["writes"][key] = res
json.dump(out, sys.stdout)
"""


def _probe(ns: Netns, stat_keys: list[str], writes: dict[str, list[str]]) -> dict[str, object]:
    req = json.dumps({"stat": stat_keys, "writes": writes})
    proc = ns.run([sys.executable, "-c", PROBE], input=req)
    result: dict[str, object] = json.loads(proc.stdout)
    return result


def _init_stat(key: str) -> tuple[int, str | None] | None:
    """Mode and value of a key in the initial namespace (read only, never written)."""
    p = PROC / key.replace(".", "/")
    try:
        mode = stat.S_IMODE(os.stat(p).st_mode)
    except FileNotFoundError:
        return None
    value = None
    if mode & 0o444:
        try:
            value = p.read_text().strip()
        except OSError as exc:
            value = f"<errno {exc.errno}>"
    return mode, value


def _instances(spec: KeySpec) -> list[str]:
    if not spec.is_pattern:
        return [spec.key]
    # neigh/ has no "all", and neigh/default exists only in the initial namespace
    insts = (IFACE,) if ".neigh." in spec.key else INSTANCES
    return [spec.key.replace("*", inst) for inst in insts]


def _norm(value: str | None) -> list[str] | None:
    return None if value is None else value.split()


def _absent_reason(spec: KeySpec) -> str | None:
    if spec.module:
        return f"{spec.key}: module {spec.module} not loaded"
    if spec.config:
        return f"{spec.key}: kernel built without {spec.config}"
    return None


@pytest.fixture(scope="module")
def cat() -> Catalogue:
    return load()


@pytest.fixture(scope="module")
def child(cat: Catalogue) -> Iterator[dict[str, object]]:
    """A fresh namespace with a veth interface, probed once (nothing written)."""
    with Netns("cat") as ns:
        ns.run(["ip", "link", "add", IFACE, "type", "veth", "peer", "name", "hnv1"])
        keys = [k for spec in cat.specs.values() for k in _instances(spec)]
        yield _probe(ns, keys, {})


def _child_stat(child: dict[str, object], key: str) -> tuple[int, str | None] | None:
    table = child["stat"]
    assert isinstance(table, dict)
    entry = table[key]
    return None if entry is None else (int(entry[0]), entry[1])


def test_keys_exist_where_declared(cat: Catalogue, child: dict[str, object]) -> None:
    problems: list[str] = []
    skipped: list[str] = []
    for spec in cat.specs.values():
        if spec.gone:
            continue
        for key in _instances(spec):
            # per-namespace keys (and read-only copies) live in the child; global ones in init
            where = _child_stat(child, key) if spec.netns else _init_stat(key)
            if where is None:
                reason = _absent_reason(spec)
                if reason:
                    skipped.append(reason)
                else:
                    problems.append(f"{key}: missing ({'child' if spec.netns else 'initial'} ns)")
    assert not problems, "\n".join(problems)
    if skipped:
        print("not present on this kernel:", *sorted(set(skipped)), sep="\n  ")


def test_global_net_keys_are_not_per_namespace(cat: Catalogue, child: dict[str, object]) -> None:
    """netns = false net.* keys: absent in a child, or a read-only copy (init_ns_writable_only)."""
    problems: list[str] = []
    checked = 0
    for spec in cat.specs.values():
        if spec.gone or spec.netns or not spec.key.startswith("net.") or spec.is_pattern:
            continue
        got = _child_stat(child, spec.key)
        init = _init_stat(spec.key)
        if init is None:
            continue
        checked += 1
        if spec.init_ns_writable_only:
            if got is None:
                problems.append(f"{spec.key}: expected a read-only copy in the child, found none")
            elif got[0] & 0o222:
                problems.append(f"{spec.key}: writable in a child namespace (mode {got[0]:o})")
            elif not init[0] & 0o200:
                problems.append(f"{spec.key}: not writable in the initial namespace")
            elif _norm(got[1]) != _norm(init[1]):
                problems.append(f"{spec.key}: child copy {got[1]!r} != host {init[1]!r}")
        elif got is not None:
            problems.append(f"{spec.key}: declared global but a child namespace has it")
    assert checked > 10
    assert not problems, "\n".join(problems)


def test_declared_writability(cat: Catalogue, child: dict[str, object]) -> None:
    problems: list[str] = []
    for spec in cat.specs.values():
        if spec.gone:
            continue
        for key in _instances(spec):
            got = _child_stat(child, key) if spec.netns else _init_stat(key)
            if got is None:
                continue
            mode = got[0]
            if spec.readonly and mode & 0o222:
                problems.append(f"{key}: declared read-only, mode {mode:o}")
            if spec.writeonly and mode & 0o444:
                problems.append(f"{key}: declared write-only, mode {mode:o}")
            if spec.writeonly and not mode & 0o200:
                problems.append(f"{key}: declared write-only but not writable, mode {mode:o}")
            if not spec.readonly and not spec.writeonly and spec.netns and not mode & 0o200:
                problems.append(f"{key}: declared writable per namespace, mode {mode:o}")
    assert not problems, "\n".join(problems)


def test_removed_keys_are_absent(cat: Catalogue, child: dict[str, object]) -> None:
    removed = cat.removed()
    assert removed
    present = [
        s.key for s in removed if _child_stat(child, s.key) is not None or _init_stat(s.key)
    ]
    assert not present, f"declared removed but present: {present}"


def test_noop_keys_still_exist(cat: Catalogue) -> None:
    noops = [s for s in cat.specs.values() if s.noop]
    assert noops
    missing = [s.key for s in noops if _init_stat(s.key) is None]
    assert not missing


def _expected_default(spec: KeySpec, key: str) -> str | None:
    if spec.is_pattern and key.split(".")[3] == "all" and spec.default_all is not None:
        return spec.default_all
    return spec.default


def test_defaults_in_fresh_namespace(cat: Catalogue, child: dict[str, object]) -> None:
    problems: list[str] = []
    compared = 0
    for spec in cat.specs.values():
        if spec.gone or not spec.netns or spec.writeonly or spec.default is None:
            continue
        for key in _instances(spec):
            got = _child_stat(child, key)
            if got is None:
                continue  # existence is the other test's job
            want = _expected_default(spec, key)
            if spec.inherits_init_ns:
                host = _init_stat(key) if not key.endswith(f".{IFACE}") else None
                if host is not None and _norm(host[1]) != _norm(got[1]):
                    problems.append(f"{key}: child {got[1]!r} did not inherit host {host[1]!r}")
                ref = host if host is not None else _init_stat(key.replace(IFACE, "default"))
                if ref is not None and _norm(ref[1]) != _norm(want):
                    continue  # host changed it: the kernel default cannot be seen here
            compared += 1
            if _norm(got[1]) != _norm(want):
                problems.append(f"{key}: fresh namespace shows {got[1]!r}, catalogue says {want!r}")
    assert compared > 100
    assert not problems, "\n".join(problems)


def _attempts(spec: KeySpec) -> list[str] | None:
    """min, max, min-1, max+1 rendered for the key's arity."""
    if spec.min is None or spec.max is None:
        return None
    values = (spec.min, spec.max, spec.min - 1, spec.max + 1)
    return [" ".join([str(v)] * spec.arity) for v in values]


# Keys with test_boundaries = false because of cross-key rules; they have dedicated tests.
CROSS_CHECKED = frozenset({
    "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.ping_group_range",
})


def _boundary_specs(cat: Catalogue, enforced: bool) -> list[KeySpec]:
    return [
        s for s in cat.specs.values()
        if s.netns and not s.gone and not s.readonly and not s.writeonly
        and s.type in ("int", "bool", "enum", "tuple") and s.test_boundaries == enforced
        and s.key not in CROSS_CHECKED and _attempts(s) is not None
    ]


def _boundary_problems(ns: Netns, specs: list[KeySpec]) -> dict[str, list[str]]:
    """Write min, max, min-1, max+1 to every instance; list what differs from a strict range."""
    ns.run(["ip", "link", "add", IFACE, "type", "veth", "peer", "name", "hnv1"])
    present = _probe(ns, [k for s in specs for k in _instances(s)], {})["stat"]
    assert isinstance(present, dict)
    writes: dict[str, list[str]] = {}
    for spec in specs:
        attempts = _attempts(spec)
        assert attempts is not None
        for key in _instances(spec):
            if present[key] is not None:
                writes[key] = attempts
    result = _probe(ns, [], writes)["writes"]
    assert isinstance(result, dict)
    problems: dict[str, list[str]] = {}
    for key, rows in result.items():
        (lo, lo_err, lo_back), (hi, hi_err, hi_back), below, above = rows
        found = problems.setdefault(key, [])
        for text, err, back in ((lo, lo_err, lo_back), (hi, hi_err, hi_back)):
            if err:
                found.append(f"{key}: writing {text!r} failed with errno {err}")
            elif _norm(back) != text.split():
                found.append(f"{key}: wrote {text!r}, read back {back!r}")
        for text, err, _ in (below, above):
            if err != 22:
                found.append(f"{key}: writing {text!r} gave errno {err}, expected EINVAL")
    return problems


def test_boundaries_in_child_namespace(cat: Catalogue, netns) -> None:  # type: ignore[no-untyped-def]
    """min and max are accepted and read back; min-1 and max+1 fail with EINVAL."""
    specs = _boundary_specs(cat, enforced=True)
    assert len(specs) > 25
    problems = _boundary_problems(netns("catw"), specs)
    assert len(problems) >= len(specs)
    flat = [p for found in problems.values() for p in found]
    assert not flat, "\n".join(flat)


def test_unchecked_ranges_are_really_unchecked(cat: Catalogue, netns) -> None:  # type: ignore[no-untyped-def]
    """Every key marked test_boundaries = false does break the strict-range expectation."""
    specs = _boundary_specs(cat, enforced=False)
    assert len(specs) > 25
    problems = _boundary_problems(netns("catu"), specs)
    strict = [key for key, found in problems.items() if not found]
    assert not strict, f"the kernel enforces min/max here; set test_boundaries = true: {strict}"


def test_local_port_range_cross_checks(netns) -> None:  # type: ignore[no-untyped-def]
    """ip_local_port_range: low <= high, low >= ip_unprivileged_port_start."""
    ns = netns("catp")
    key = "net.ipv4.ip_local_port_range"
    writes = {key: ["1024 65535", "40000 30000", "1023 65535", "0 65535", "1024 65536"]}
    rows = _probe(ns, [], writes)["writes"]
    assert isinstance(rows, dict)
    errs = [err for _, err, _ in rows[key]]
    assert errs == [0, 22, 22, 22, 22], rows[key]
    writes = {
        "net.ipv4.ip_unprivileged_port_start": ["0", "32768", "32769", "65536", "-1"],
    }
    rows = _probe(ns, [], writes)["writes"]
    assert isinstance(rows, dict)
    errs = [err for _, err, _ in rows["net.ipv4.ip_unprivileged_port_start"]]
    # 32768 is the low end of the default port range: equal is allowed, above it is refused
    assert errs == [0, 0, 22, 22, 22], rows


def _running_config() -> dict[str, str] | None:
    import gzip

    from hostnet.sysctl.kernel import config_options

    release = os.uname().release
    for path in (Path(f"/boot/config-{release}"),):
        if path.is_file():
            return config_options(path.read_text(errors="replace"))
    try:
        with gzip.open("/proc/config.gz", "rt", errors="replace") as fh:
            return config_options(fh.read())
    except OSError:
        return None


def test_key_families_follow_the_kernel_config(cat: Catalogue) -> None:
    """A family whose build option this kernel lacks has no key here; one that is built in
    (=y) is not reported as missing by lint because its keys exist (read only, initial
    namespace)."""
    config = _running_config()
    if config is None:
        pytest.skip("no readable kernel config")
    keys = [str(p.relative_to(PROC)).replace("/", ".") for p in PROC.rglob("*") if p.is_file()]
    checked = 0
    for fam in cat.families.values():
        if fam.config is None or fam.prefix.startswith(("net.", "kernel.sched_")):
            continue  # per-namespace trees and mixed scheduler keys are covered elsewhere
        present = [k for k in keys if k.startswith(fam.prefix)]
        if fam.config not in config:
            assert not present, f"{fam.prefix}: {fam.config} is not set but {present[:3]} exist"
            checked += 1
    assert checked >= 5
