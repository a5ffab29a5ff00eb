"""Config + role + what the host shows -> a Plan of typed steps (pure).

Order: the keys whose write makes the kernel rewrite others come first (ip_forward sets
forwarding on every interface and flips all.accept_redirects; IPv6 ``all`` keys write every
interface); the planner predicts those rewrites, so a later key the kernel would clobber is
written again and a second apply changes nothing. Then the other live values, then the files.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from hostnet.config.schema import BUCKETS_MAX, INT_MAX
from hostnet.errors import PlanError
from hostnet.model.facts import Facts
from hostnet.state.desired import AUTO_MAX, CT_BUCKETS, CT_MAX, Want
from hostnet.state.files import (
    MODPROBE_FILE,
    SYSCTL_FILE,
    Line,
    modprobe_text,
    owned,
    parse_hashsize,
    parse_sysctl_values,
    sysctl_text,
)
from hostnet.state.hostio import norm
from hostnet.state.steps import FileEntry, SetSysctl, Step, WriteOwnedFile

#: key -> (subtree the kernel rewrites when it is written, leaf it sets to the same value).
REWRITERS: dict[str, tuple[str, str]] = {
    "net.ipv4.ip_forward": ("net.ipv4.conf", "forwarding"),
    "net.ipv4.conf.all.forwarding": ("net.ipv4.conf", "forwarding"),
    "net.ipv6.conf.all.forwarding": ("net.ipv6.conf", "forwarding"),
    "net.ipv6.conf.all.disable_ipv6": ("net.ipv6.conf", "disable_ipv6"),
}
COUNT = "net.netfilter.nf_conntrack_count"


@dataclass(frozen=True, slots=True)
class Plan:
    steps: tuple[Step, ...]
    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    netns: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not self.steps

    def to_json(self) -> dict[str, Any]:
        return {"version": 1, "changes": [s.change() for s in self.steps],
                "warnings": list(self.warnings), "notes": list(self.notes)}


def keys_needed(wants: list[Want], interfaces: tuple[str, ...]) -> set[str]:
    """Every key the planner and the checks read."""
    keys = {w.key for w in wants} | {CT_MAX, CT_BUCKETS, COUNT,
                                     "net.ipv4.ip_local_reserved_ports",
                                     "net.ipv4.ip_unprivileged_port_start"}
    for subtree, leaf in set(REWRITERS.values()):
        keys |= {f"{subtree}.{n.replace('.', '/')}.{leaf}" for n in ("all", "default", *interfaces)}
    keys.add("net.ipv4.conf.all.accept_redirects")
    return keys


def _int(value: str | None) -> int | None:
    try:
        return int(value.split()[0]) if value else None
    except ValueError:
        return None


def conntrack_sizing(facts: Facts) -> tuple[int, int, tuple[str, ...]]:
    """``auto`` max and buckets, through the one sizing function hostnet has."""
    from hostnet.conntrack.sizing import SizingInput, recommend

    sizing = recommend(SizingInput(
        mem_bytes=facts.mem_bytes or (1 << 30), cpus=facts.cpus, kernel=facts.kernel,
        current_max=_int(facts.value(CT_MAX)), current_buckets=_int(facts.value(CT_BUCKETS)),
        count=_int(facts.value(COUNT)) or 0))
    return min(sizing.max, INT_MAX), min(sizing.buckets, BUCKETS_MAX), sizing.warnings


def _predict(key: str, new: str, facts: Facts, predicted: dict[str, str | None]) -> None:
    subtree, leaf = REWRITERS[key]
    for name in ("all", "default", *facts.interfaces):
        predicted[f"{subtree}.{name.replace('.', '/')}.{leaf}"] = new
    if subtree == "net.ipv4.conf":
        predicted["net.ipv4.conf.all.accept_redirects"] = "0" if new != "0" else "1"


def _targets(wants: list[Want], facts: Facts) -> tuple[dict[str, tuple[Want, str]], list[str]]:
    warnings: list[str] = []
    out: dict[str, tuple[Want, str]] = {}
    sized: tuple[int, int, tuple[str, ...]] | None = None
    for want in wants:
        if want.auto is not None:
            if sized is None:
                sized = conntrack_sizing(facts)
                warnings += [f"conntrack sizing: {w}" for w in sized[2]]
            number = sized[0] if want.auto == AUTO_MAX else sized[1]
            why = (f"{want.reason}: sized from {facts.mem_bytes / (1 << 30):.1f} GiB RAM and "
                   f"{facts.cpus} CPUs (hostnet conntrack size)")
            out[want.key] = (Want(want.key, why, want.where, want.line, value=str(number),
                                  section=want.section), str(number))
            continue
        target = want.target(facts.value(want.key))
        if target is not None:
            out[want.key] = (want, target)
    return out, warnings


def make_plan(wants: list[Want], facts: Facts) -> Plan:
    targets, warnings = _targets(wants, facts)
    notes: list[str] = []
    steps: list[Step] = []
    predicted: dict[str, str | None] = {k: f.value for k, f in facts.values.items()}
    ns = facts.netns
    live_targets = dict(targets)
    for key in (CT_MAX, CT_BUCKETS):
        if key in live_targets and ns is not None:
            del live_targets[key]
            warnings.append(
                f"{key} is host-wide: in namespace {ns} it is a read-only copy; "
                f"{targets[key][1]} waits for the initial namespace "
                + ("(the --root files carry it to the next boot)" if facts.files else
                   "(apply without --netns to set it)"))
    if CT_BUCKETS in live_targets and facts.value(CT_BUCKETS) is None and facts.live:
        del live_targets[CT_BUCKETS]
        warnings.append(f"{CT_BUCKETS}: nf_conntrack is not loaded; hashsize="
                        f"{targets[CT_BUCKETS][1]} takes effect when the module loads")
    if facts.live:
        first = [k for k in REWRITERS if k in live_targets]
        for key in [*first, *sorted(k for k in live_targets if k not in REWRITERS)]:
            want, new = live_targets[key]
            cur = facts.value(key)
            if norm(predicted.get(key)) == norm(new):
                continue
            rewrites = key in REWRITERS
            reason = want.reason
            if norm(cur) == norm(new):
                reason += " (written again: an earlier step makes the kernel rewrite it)"
            steps.append(SetSysctl(ns, key, cur, new, reason, "live",
                                   side_prefixes=(REWRITERS[key][0],) if rewrites else (),
                                   first=rewrites))
            if rewrites:
                _predict(key, new, facts, predicted)
            predicted[key] = new
    if facts.files:
        steps += _file_steps(targets, facts, warnings)
    warnings += _ipv6_warnings(targets, facts, notes)
    return Plan(tuple(steps), tuple(warnings), tuple(notes), ns)


def _file_steps(targets: dict[str, tuple[Want, str]], facts: Facts,
                warnings: list[str]) -> list[Step]:
    steps: list[Step] = []
    old_bytes = facts.owned_files.get(SYSCTL_FILE)
    old_vals = parse_sysctl_values(old_bytes.decode(errors="replace")) if old_bytes else {}
    lines: list[Line] = []
    for key, (want, value) in sorted(targets.items()):
        if key == CT_BUCKETS or (want.section == "ipv6" and key.split(".")[3] not in (
                "all", "default") and not _listed(want)):
            continue
        if want.value is None and want.auto is None and key in old_vals and not facts.live:
            value = want.target(old_vals[key]) or value  # --root: raise from the file's value
        lines.append(Line(key, value, want.reason))
    steps += _owned(SYSCTL_FILE, old_bytes, sysctl_text(lines, facts.source), "boot",
                    [FileEntry(ln.key, old_vals.get(ln.key), ln.value, ln.reason) for ln in lines
                     if norm(old_vals.get(ln.key)) != norm(ln.value)], facts.source)
    for later in facts.later:
        if any(ln.key == later.key and norm(ln.value) != norm(later.value) for ln in lines):
            warnings.append(f"{later.path}:{later.line} sets {later.key} = {later.value} and is "
                            f"read after {SYSCTL_FILE} at boot, so it wins there")
    if facts.conntrack_module == "module" and any(ln.key.startswith("net.netfilter.nf_conntrack")
                                                  for ln in lines):
        warnings.append("nf_conntrack is a module: list it in /etc/modules-load.d/ so its keys "
                        "exist when systemd-sysctl applies the file at boot")
    if CT_BUCKETS in targets:
        want, value = targets[CT_BUCKETS]
        mod_old = facts.owned_files.get(MODPROBE_FILE)
        old_hash = parse_hashsize(mod_old.decode(errors="replace")) if mod_old else None
        steps += _owned(MODPROBE_FILE, mod_old, modprobe_text(int(value), want.reason,
                                                              facts.source), "module-load",
                        [FileEntry("nf_conntrack hashsize", old_hash, value, want.reason)]
                        if old_hash != value else [], facts.source)
        if facts.conntrack_module == "builtin":
            warnings.append(f"nf_conntrack is built into this kernel: modprobe.d options are not "
                            f"read for it; put nf_conntrack.hashsize={value} on the kernel "
                            "command line to keep the bucket count across reboots")
        elif facts.conntrack_module in ("module", "not-loaded"):
            warnings.append(f"hashsize={value} in {MODPROBE_FILE} takes effect the next time "
                            "the nf_conntrack module loads (reboot or module reload)")
    return steps


def _listed(want: Want) -> bool:
    return "disabled on this interface" in want.reason


def _owned(path: str, old: bytes | None, text: str, effect: str, entries: list[FileEntry],
           source: str) -> list[Step]:
    if not owned(old):
        raise PlanError(f"{path} exists and was not written by hostnet (no '# Written by "
                        "hostnet' header): refusing to overwrite it",
                        hint=f"move its settings into {source} and remove the file, then apply")
    if old is not None and old == text.encode():
        return []
    digest = None if old is None else hashlib.sha256(old).hexdigest()
    reason = f"{source}: {len(entries)} value(s) changed" if entries else f"{source}: rewritten"
    return [WriteOwnedFile(path, digest, text, reason, effect, tuple(entries))]


def _ipv6_warnings(targets: dict[str, tuple[Want, str]], facts: Facts,
                   notes: list[str]) -> list[str]:
    want = targets.get("net.ipv6.conf.all.disable_ipv6")
    if want is None or want[1] != "1":
        return []
    out = []
    if facts.v6_any:
        out.append(f"services bound to :: ({', '.join(facts.v6_any[:6])}) lose their IPv6 "
                   "socket; those without dual-stack fallback stop listening when restarted")
    if facts.hosts_v6_loopback:
        out.append("/etc/hosts names ::1 (localhost/ip6-localhost): programs that resolve "
                   "localhost to ::1 first get connection refused; keep 127.0.0.1 first")
    if facts.slaac:
        out.append(f"SLAAC addresses and IPv6 routes from router advertisements go away on "
                   f"{', '.join(facts.slaac)}")
    notes.append("to keep IPv6 from loading at all, add ipv6.disable=1 to the kernel command "
                 "line (GRUB_CMDLINE_LINUX); do not blacklist the module: other modules "
                 "depend on it")
    return out
