"""Rules about the value of one assignment: type, range, quotes, trailing text, security
direction, the port range invariants, what this kernel offers for string keys, units, and
module keys applied before their module loads (pure)."""

from __future__ import annotations

from hostnet.findings import Severity
from hostnet.knowledge.catalogue import KeySpec
from hostnet.sysctl import invariants as inv
from hostnet.sysctl import rules as R
from hostnet.sysctl.kernel import (
    PAGE_SIZE,
    ModuleState,
    congestion_available,
    mem_total_pages,
    qdisc_available,
)
from hostnet.sysctl.linter import Linter, module_of
from hostnet.sysctl.parser import Assignment
from hostnet.sysctl.values import check_value, unquote

PAGE_KEYS = ("net.ipv4.tcp_mem", "net.ipv4.udp_mem", "net.sctp.sctp_mem")


def check_values(
    lx: Linter, a: Assignment, spec: KeySpec | None, current: str | None, *, present: bool = True
) -> None:
    """Every value rule for one assignment; ``present=False`` for a key missing here (its
    value is still judged, the module and kernel-offer rules are not)."""
    key = a.key
    for problem in check_value(spec, a.value, current):
        severity = problem.severity
        if (
            problem.rule is R.OUT_OF_RANGE
            and spec is not None
            and spec.range_enforced is False
            and severity is None
        ):
            # the kernel tests found it stores the value anyway (test_boundaries = false);
            # keys whose handler is known to store anything never get here (values.py)
            severity = Severity.WARNING
        fixed_line = f"{a.raw_key} = {problem.fixed}" if problem.fixed is not None else None
        if a.ignore_failure and fixed_line:
            fixed_line = "-" + fixed_line
        edit: tuple[str, ...] | None = None
        if fixed_line is not None:
            edit = (fixed_line,)
            if problem.rule is R.TRAILING_TEXT:
                rest = a.value[len(problem.fixed or "") :].strip().lstrip("#;").strip()
                if rest:
                    edit = (f"# {rest}", fixed_line)
        lx.emit(
            problem.rule,
            a.path,
            a.line,
            f"{key}: {problem.message}",
            column=a.value_column,
            key=key,
            severity=severity,
            suggestion=fixed_line,
            edit=edit,
            evidence={"value": a.value, **({"current": current} if current else {})},
        )
    if spec is not None:
        check_security(lx, a, spec)
        if key == inv.PORT_KEY:
            check_port_range(lx, a)
        elif key in ("net.ipv4.tcp_congestion_control", "net.core.default_qdisc") and present:
            check_offered(lx, a)
        elif key in PAGE_KEYS and present:
            check_pages(lx, a)
    if present:
        check_module(lx, a)


def check_security(lx: Linter, a: Assignment, spec: KeySpec) -> None:
    if spec.stronger is None or spec.default is None:
        return
    try:
        value = int(a.value.split()[0])
        default = int(spec.default.split()[0])
    except (ValueError, IndexError):
        return
    weaker = value < default if spec.stronger == "higher" else value > default
    if not weaker:
        return
    meaning = spec.values.get(value)
    good = spec.secure if spec.secure is not None else spec.default
    line = f"{a.raw_key} = {good}"
    lx.emit(
        R.WEAKER_THAN_DEFAULT,
        a.path,
        a.line,
        f"{a.key} = {value}{f' ({meaning})' if meaning else ''} is weaker than the kernel "
        f"default {spec.default}: {spec.description}",
        column=a.value_column,
        key=a.key,
        suggestion=line,
        edit=(line,),
        evidence={"value": value, "default": spec.default},
    )


_PORT_MESSAGES = {
    inv.PortProblem.NOT_TWO_INTEGERS: "the key takes exactly two ports (low high)",
    inv.PortProblem.OUT_OF_BOUNDS: "each end must be a port 1..65535",
    inv.PortProblem.REVERSED: "the first port is above the last",
    inv.PortProblem.BELOW_UNPRIVILEGED: "the low end is below ip_unprivileged_port_start",
}


def check_port_range(lx: Linter, a: Assignment) -> None:
    value = unquote(a.value) or a.value
    start = lx.setting_int("net.ipv4.ip_unprivileged_port_start")
    if len(value.split()) == 1:
        return  # only the low end is set (SC106 info); the high end stays
    check = inv.check_port_range(value, unprivileged_start=start)
    if check is None or not check.problems:
        return
    fix = f"{a.raw_key} = {check.proposed_text}" if check.proposed is not None else None
    refused = [p for p in check.problems if p.refused]
    if refused:
        why = "; ".join(_PORT_MESSAGES[p] for p in refused)
        lx.emit(
            R.OUT_OF_RANGE,
            a.path,
            a.line,
            f"ip_local_port_range {value}: {why} (ip_unprivileged_port_start is "
            f"{check.unprivileged_start}); the kernel refuses the write with EINVAL",
            column=a.value_column,
            key=a.key,
            suggestion=fix,
            edit=(fix,) if fix else None,
            evidence={"value": a.value, "unprivileged_start": check.unprivileged_start},
        )
        return
    if check.has(inv.PortProblem.SAME_PARITY) and check.low is not None:
        lx.emit(
            R.PORT_PARITY,
            a.path,
            a.line,
            f"ip_local_port_range {check.low} {check.high}: both ends are "
            f"{'even' if check.low % 2 == 0 else 'odd'}; the kernel prefers ports of one parity "
            "for connect() and the other for bind(), and warns about this range",
            column=a.value_column,
            key=a.key,
            suggestion=fix,
        )


def check_offered(lx: Linter, a: Assignment) -> None:
    """tcp_congestion_control / default_qdisc must name something this kernel has or can
    load; otherwise the write fails with ENOENT."""
    name = (unquote(a.value) or a.value).split()[0] if a.value.split() else ""
    if not name or "#" in name or ";" in name:
        return
    mods = lx.modules()
    if a.key == "net.core.default_qdisc":
        ok = qdisc_available(mods, name, lx.kernel.value(a.key))
        what, offered = "queueing discipline", f"sch_{name}"
    else:
        available = lx.kernel.value("net.ipv4.tcp_available_congestion_control")
        ok = congestion_available(mods, name, available)
        what, offered = "congestion control", f"tcp_{name}"
        if ok is False and available:
            offered += f"; available here: {available.strip()}"
    if ok is not False:
        return
    lx.emit(
        R.NOT_OFFERED,
        a.path,
        a.line,
        f"{a.key} = {name}: this kernel has no {what} '{name}' built in and cannot load it "
        f"({offered}), so the write fails with 'No such file or directory'",
        column=a.value_column,
        key=a.key,
        suggestion="use one this kernel offers, or install/build the module",
        evidence={"value": name},
    )


def check_pages(lx: Linter, a: Assignment) -> None:
    """tcp_mem/udp_mem count pages: a value above the RAM in pages was written as bytes."""
    total = mem_total_pages(lx.kernel.meminfo())
    if total is None:
        return
    try:
        nums = [int(t) for t in a.value.split()[:3]]
    except ValueError:
        return
    if len(nums) != 3 or max(nums) <= total:
        return
    # more pages than RAM; still pages when the numbers do not look like byte sizes
    # (multiples of 1 KiB) and are not absurdly large for pages
    if not (all(n % 1024 == 0 for n in nums) or max(nums) > 16 * total):
        return
    as_pages = " ".join(str(max(1, n // PAGE_SIZE)) for n in nums)
    gib = total * PAGE_SIZE / 2**30
    line = f"{a.raw_key} = {as_pages}"
    lx.emit(
        R.UNIT_MISMATCH,
        a.path,
        a.line,
        f"{a.key} counts memory pages ({PAGE_SIZE} bytes each), and {max(nums)} pages is more "
        f"than this host's RAM ({total} pages, {gib:.1f} GiB): the numbers look like bytes",
        column=a.value_column,
        key=a.key,
        suggestion=line,
        evidence={"value": a.value, "ram_pages": total},
    )


def check_module(lx: Linter, a: Assignment) -> None:
    """SC122 only when the module is really loadable here (not built in) and nothing loads
    it before systemd-sysctl runs."""
    found = module_of(a.key)
    mods = lx.modules()
    if found is None or mods is None:
        return
    module, config = found
    if mods.state(module, config) is not ModuleState.LOADABLE:
        return
    if mods.loaded_at_boot(module) is not False:
        return
    lx.emit(
        R.MODULE_KEY_AT_BOOT,
        a.path,
        a.line,
        f"{a.key} belongs to the {module} module, which this kernel loads on demand, and no "
        "modules-load.d entry loads it before systemd-sysctl runs at boot, so this line fails "
        "with 'No such file'",
        column=a.column,
        key=a.key,
        suggestion=f"echo {module} > /etc/modules-load.d/{module}.conf",
    )
