"""Check wanted values against the catalogue and this kernel before anything runs (pure).

Errors (exit 2, nothing changed): keys unknown here (with did-you-mean), keys of a module that
is not loaded, read-only keys, host-wide keys when ``--netns`` is given, values the kernel
refuses, bounds on keys that are not numbers, a local port range that swallows listening
ports or starts below ``ip_unprivileged_port_start``. Warnings go into the plan.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass

from hostnet.findings import Severity
from hostnet.knowledge.catalogue import Catalogue, KeySpec
from hostnet.model.facts import Facts
from hostnet.state.desired import CT_BUCKETS, CT_MAX, Want

PORT_RANGE = "net.ipv4.ip_local_port_range"
RESERVED = "net.ipv4.ip_local_reserved_ports"
UNPRIV = "net.ipv4.ip_unprivileged_port_start"
NUMERIC = ("int", "bool", "enum")


@dataclass(frozen=True, slots=True)
class Check:
    errors: tuple[str, ...]
    warnings: tuple[str, ...]
    #: role values this host cannot take (missing, read-only, host-wide in a namespace):
    #: dropped from the plan without an error, the config did not name them
    skipped: frozenset[str] = frozenset()


def _at(want: Want, source: str) -> str:
    if want.from_role:
        return f"{source}:{want.line}: role" if want.line else f"{source}: role"
    return f"{source}:{want.line}: {want.where}" if want.line else f"{source}: {want.where}"


def _suggest(key: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.75)
    return f" (did you mean {close[0]}?)" if close else ""


def _module(key: str, spec: KeySpec | None) -> str | None:
    if spec is not None and spec.module:
        return spec.module
    from hostnet.sysctl.linter import MODULE_PREFIXES

    return next((m for prefix, (m, _option) in MODULE_PREFIXES.items()
                 if key.startswith(prefix)), None)


def _interface(key: str) -> str | None:
    """The interface of a per-interface key (net.ipv4.conf.eth0.rp_filter -> eth0)."""
    parts = key.split(".")
    if len(parts) == 5 and parts[0] == "net" and parts[2] in ("conf", "neigh") and parts[3] \
            not in ("all", "default"):
        return parts[3]
    return None


def _global(spec: KeySpec | None) -> bool:
    return spec is not None and (not spec.netns or spec.init_ns_writable_only)


def check(wants: list[Want], facts: Facts, cat: Catalogue) -> Check:
    errors: list[str] = []
    warnings: list[str] = []
    skipped: set[str] = set()
    known = set(cat.concrete_keys()) | {k for k, f in facts.values.items() if f.state != "missing"}
    for want in wants:
        at = _at(want, facts.source)
        spec = cat.get(want.key)
        fact = facts.fact(want.key)
        is_ct_size = want.key in (CT_MAX, CT_BUCKETS) and want.section == "conntrack"
        if facts.netns is not None and _global(spec) and not is_ct_size:
            if want.from_role:
                skipped.add(want.key)
                continue
            errors.append(f"{at}: {want.key} is host-wide: only the initial namespace can set it, "
                          f"not --netns {facts.netns}")
            continue
        if spec is not None and spec.readonly:
            errors.append(f"{at}: {want.key} is read-only: the kernel reports it, nobody sets it")
            continue
        if spec is not None and spec.gone and fact.state == "missing":
            instead = f"; use {spec.replacement}" if spec.replacement else ""
            errors.append(f"{at}: {want.key} was removed in Linux {spec.removed_in}{instead}")
            continue
        if facts.kernel_known and fact.state == "missing" and not (is_ct_size and facts.netns):
            module = _module(want.key, spec)
            if module is not None and not (module == "nf_conntrack"
                                           and facts.conntrack_module == "builtin"):
                errors.append(
                    f"{at}: {want.key} exists only while the {module} module is loaded, and "
                    f"it is not: load it first (modprobe {module}, and list it in "
                    "/etc/modules-load.d/ so it is there at boot)")
            elif (iface := _interface(want.key)) is not None and iface not in facts.interfaces:
                have = ", ".join(facts.interfaces) or "none"
                errors.append(f"{at}: interface {iface.replace('/', '.')} does not exist here "
                              f"(interfaces: {have})")
            elif spec is None:
                errors.append(f"{at}: {want.key} is not a sysctl key on this kernel"
                              + _suggest(want.key, known))
            elif not want.from_role:
                errors.append(f"{at}: {want.key} is not on this kernel ({facts.kernel_text()})")
            skipped.add(want.key)
            continue
        if spec is None and not facts.kernel_known:
            errors.append(f"{at}: {want.key} is not in hostnet's catalogue and no kernel was "
                          "read to check it" + _suggest(want.key, known))
            continue
        if fact.state == "ok" and fact.writable is False and not is_ct_size:
            if want.from_role:
                skipped.add(want.key)
                continue
            errors.append(f"{at}: {want.key} is read-only here" + (
                f" (in namespace {facts.netns} it is a copy of the host's value)"
                if facts.netns else ""))
            continue
        kind = spec.type if spec is not None else None
        if (want.bound is not None or want.role_op is not None) and kind not in NUMERIC and (
                kind is not None or (fact.value or "0").split()[1:]):
            errors.append(f"{at}: at_least/at_most need a single number; {want.key} is "
                          f"{kind or 'not a number'}")
            continue
        value = want.target(fact.value)
        if value is None:
            continue
        from hostnet.sysctl.values import check_value

        for problem in check_value(spec, value, fact.value):
            severity = problem.severity or problem.rule.severity
            text = f"{at}: {want.key} = {value}: {problem.message}"
            (errors if severity >= Severity.ERROR else warnings).append(text)
    by_key = {w.key: w for w in wants}
    if PORT_RANGE in by_key:
        errors += _port_range(by_key[PORT_RANGE], facts, by_key)
    return Check(tuple(errors), tuple(warnings), frozenset(skipped))


def _ports(text: str | None) -> set[int]:
    out: set[int] = set()
    for part in (text or "").split(","):
        lo, _, hi = part.strip().partition("-")
        if lo.strip().isdigit():
            a = int(lo)
            b = int(hi) if hi.strip().isdigit() else a
            out.update(range(a, b + 1))
    return out


def _port_range(want: Want, facts: Facts, by_key: dict[str, Want]) -> list[str]:
    value = want.target(facts.value(PORT_RANGE))
    parts = (value or "").split()
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        return []
    lo, hi = int(parts[0]), int(parts[1])
    at = _at(want, facts.source)
    out: list[str] = []
    unpriv_want = by_key.get(UNPRIV)
    unpriv_text = unpriv_want.target(facts.value(UNPRIV)) if unpriv_want else facts.value(UNPRIV)
    if unpriv_text and unpriv_text.isdigit() and lo < int(unpriv_text):
        out.append(f"{at}: the range starts at {lo}, below ip_unprivileged_port_start "
                   f"({unpriv_text}): the kernel refuses it")
    reserved_want = by_key.get(RESERVED)
    reserved = _ports(reserved_want.target(facts.value(RESERVED)) if reserved_want
                      else facts.value(RESERVED))
    clash = sorted({f"{proto}/{port}" for proto, port in facts.listening
                    if lo <= port <= hi and port not in reserved})
    if clash:
        shown = ", ".join(clash[:6]) + (" ..." if len(clash) > 6 else "")
        out.append(f"{at}: {lo}-{hi} takes in ports services listen on ({shown}): outgoing "
                   "connections could take them while the service restarts; reserve them in "
                   f"{RESERVED} or choose a range that leaves them out")
    return out
