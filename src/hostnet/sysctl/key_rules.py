"""Rules about the key of one assignment: empty, removed, read-only, missing here, unknown,
misspelt, split or glued (pure). ``check_assignment`` is the entry for one line."""

from __future__ import annotations

from hostnet.findings import Severity
from hostnet.knowledge.catalogue import KeyFamily, KeySpec
from hostnet.sysctl import rules as R
from hostnet.sysctl.kernel import ModuleState
from hostnet.sysctl.linter import (
    IFACE_FAMILIES,
    IFACE_SPECIAL,
    Linter,
    a_text,
    interface_of,
    module_of,
    replace_key,
)
from hostnet.sysctl.parser import Assignment
from hostnet.sysctl.value_rules import check_values

#: Legacy compatibility names: prefix -> the prefix current kernels use.
LEGACY_PREFIXES = {"net.ipv4.netfilter.ip_conntrack_": "net.netfilter.nf_conntrack_"}


def check_assignment(lx: Linter, a: Assignment, comment_above: str | None) -> None:
    key = a.key
    if not a.value:
        lx.emit(
            R.EMPTY_VALUE,
            a.path,
            a.line,
            f"'{a.raw_key} =' has no value: systemd-sysctl writes an empty string (the "
            "kernel rejects it for numbers) and procps reports invalid syntax",
            suggestion=f"remove the line or give {key} a value",
            column=a.column,
            key=key,
        )
        return
    if a.is_glob:
        return
    legacy = legacy_replacement(key)
    spec = lx.cat.get(key)
    if legacy is not None and (spec is None or spec.gone):
        emit_removed(lx, a, spec, legacy)
        return
    if spec is not None and spec.gone:
        emit_removed(lx, a, spec, spec.replacement)
        return
    dotted = dotted_interface(lx, key)
    if dotted is not None:
        lx.emit(
            R.DOTTED_INTERFACE,
            a.path,
            a.line,
            f"'{key}' names an interface with a dot; with '.' separators the dot splits the "
            "name, so write it with '/' (or use the path form with '/' separators)",
            suggestion=f"{dotted} = {a.value}",
            edit=(replace_key(a, dotted),),
            column=a.column,
            key=key,
        )
        return
    exists = lx.exists(key)
    if exists is None and spec is None:
        check_unknown_offline(lx, a)
    if exists is False:
        if check_missing(lx, a, spec, comment_above) and spec is not None:
            check_values(lx, a, spec, None, present=False)  # bad on every kernel
        return
    if spec is not None and spec.noop:
        since = spec.noop_since or spec.removed_in
        lx.emit(
            R.REMOVED_KEY,
            a.path,
            a.line,
            f"{key} still exists but has had no effect since "
            f"{f'Linux {since}' if since else 'long ago'}: {spec.description}",
            suggestion="remove the line",
            edit=(f"# {a_text(a)}  # hostnet: no effect",),
            column=a.column,
            key=key,
        )
        return
    writable = lx.kernel.writable(key) if exists else None
    if (spec is not None and spec.readonly) or (
        writable is False
        and not (spec is not None and spec.init_ns_writable_only)
        and not (spec is not None and spec.writeonly)
    ):
        what = spec.description if spec is not None else "the kernel only reports it"
        lx.emit(
            R.READ_ONLY_KEY,
            a.path,
            a.line,
            f"{key} is read-only ({what}); writing it always fails",
            suggestion="remove the line",
            edit=(f"# {a_text(a)}  # hostnet: read-only key",),
            column=a.column,
            key=key,
        )
        return
    # the running value tells the shape of keys the catalogue does not describe
    current = lx.kernel.value(key) if exists and spec is None else None
    check_values(lx, a, spec, current)


def legacy_replacement(key: str) -> str | None:
    if not key.startswith("net.ipv4.netfilter."):
        return None
    for old, new in LEGACY_PREFIXES.items():
        if key.startswith(old):
            return new + key[len(old) :]
    return None


def emit_removed(lx: Linter, a: Assignment, spec: KeySpec | None, replacement: str | None) -> None:
    when = f" in Linux {spec.removed_in}" if spec is not None and spec.removed_in else ""
    why = f" ({spec.description})" if spec is not None else ""
    target = lx.cat.get(replacement) if replacement else None
    comment_out = (f"# {a_text(a)}  # hostnet: removed key",)
    if spec is not None and spec.moved_to:
        lx.emit(
            R.REMOVED_KEY,
            a.path,
            a.line,
            f"{a.key} was removed from /proc/sys{when}{why}; the setting is now "
            f"{spec.moved_to}, which sysctl files cannot set",
            column=a.column,
            key=a.key,
            suggestion="remove the line (set the debugfs file at boot another way if needed)",
            edit=comment_out,
        )
        return
    if replacement and target is not None and target.readonly:
        lx.emit(
            R.REMOVED_KEY,
            a.path,
            a.line,
            f"{a.key} was removed{when}{why}; its successor {replacement} is read-only, "
            "so there is nothing to set",
            column=a.column,
            key=a.key,
            suggestion="remove the line",
            edit=comment_out,
        )
        return
    if replacement:
        line = replace_key(a, replacement)
        lx.emit(
            R.REMOVED_KEY,
            a.path,
            a.line,
            f"{a.key} was removed{when}{why}; the setting now lives in {replacement}",
            column=a.column,
            key=a.key,
            suggestion=line,
            edit=(line,),
        )
        return
    lx.emit(
        R.REMOVED_KEY,
        a.path,
        a.line,
        f"{a.key} was removed{when}{why}; writing it fails and nothing replaces it",
        column=a.column,
        key=a.key,
        suggestion="remove the line",
        edit=comment_out,
    )


def dotted_interface(lx: Linter, key: str) -> str | None:
    for fam in IFACE_FAMILIES:
        if key.startswith(fam):
            rest = key[len(fam) :].split(".")
            if len(rest) > 2:
                iface, leaf = ".".join(rest[:-1]), rest[-1]
                fixed = fam + iface.replace(".", "/") + "." + leaf
                if lx.cat.get(fam + "all." + leaf) is not None or lx.is_known(fam + "all." + leaf):
                    return fixed
    return None


def _family_present(lx: Linter, fam: KeyFamily) -> bool:
    """Whether this kernel has any key of the family (then a missing one may be a typo)."""
    if fam.prefix not in lx.families_present:
        present = any(k.startswith(fam.prefix) for k in lx.kernel.all_keys())
        lx.families_present[fam.prefix] = present
    return lx.families_present[fam.prefix]


def _provider_note(lx: Linter, module: str | None, config: str | None) -> str:
    mods = lx.modules()
    if mods is None or (module is None and config is None):
        return ""
    state = mods.state(module or "", config) if module else None
    if state is None and config is not None and mods.config is not None:
        return "" if mods.config.get(config) else f"; this kernel is built without {config}"
    if state is ModuleState.LOADABLE:
        return f"; it appears when the {module} module is loaded"
    if state is ModuleState.ABSENT:
        return f"; this kernel has no {module} ({config or 'module'} not built)"
    return ""


def check_missing(
    lx: Linter, a: Assignment, spec: KeySpec | None, comment_above: str | None
) -> bool:
    """Report a key that does not exist on this kernel. True when it was reported as
    "not on this kernel" (a real key), False for an interface, typo or unknown key."""
    key = a.key
    iface = interface_of(key)
    if iface is not None and iface not in IFACE_SPECIAL:
        leaf_known = lx.is_known(key.replace(f".{iface}.", ".all.", 1))
        if leaf_known or spec is not None:
            have = lx.kernel.interfaces()
            lx.emit(
                R.MISSING_INTERFACE,
                a.path,
                a.line,
                f"interface {iface.replace('/', '.')} does not exist now; {key} is applied "
                "only if the interface is there when systemd-sysctl runs (systemd's udev "
                "rule re-applies per-interface keys when it appears)",
                evidence={"interfaces": list(have) if have is not None else None},
                column=a.column,
                key=key,
            )
            return False
    module = module_of(key)
    if spec is not None:
        if module is not None:
            mods = lx.modules()
            state = mods.state(*module) if mods is not None else ModuleState.UNKNOWN
            if state is ModuleState.BUILTIN:
                where = f" ({module[0]} is built in, but this key is not part of it here)"
            elif state is ModuleState.ABSENT:
                where = _provider_note(lx, *module)
            else:
                where = f" (it appears when the {module[0]} module is loaded)"
        else:
            note = _provider_note(lx, spec.module, spec.config)
            where = note or (f" (it needs {spec.config})" if spec.config else "")
        lx.emit(
            R.NOT_ON_THIS_KERNEL,
            a.path,
            a.line,
            f"{key} does not exist on this kernel{where}; it is valid on others",
            column=a.column,
            key=key,
        )
        return True
    fam = lx.cat.family_of(key)
    if fam is not None and not _family_present(lx, fam):
        note = _provider_note(lx, fam.module, fam.config)
        lx.emit(
            R.NOT_ON_THIS_KERNEL,
            a.path,
            a.line,
            f"{key} comes with {fam.provider}, which this kernel does not have now{note}; "
            "it is valid where that is present",
            column=a.column,
            key=key,
            evidence={"family": fam.prefix, "reference": fam.reference},
        )
        return True
    if fam is None and module is not None and lx.modules() is not None:
        lx.emit(
            R.NOT_ON_THIS_KERNEL,
            a.path,
            a.line,
            f"{key} does not exist now; it appears when the {module[0]} module is loaded",
            column=a.column,
            key=key,
        )
        return True
    check_unknown(lx, a, comment_above, fam)
    return False


def check_unknown(
    lx: Linter, a: Assignment, comment_above: str | None, fam: KeyFamily | None
) -> None:
    """Unknown: junk glued on, split across lines, a typo, or a key of a family this kernel
    has only partly."""
    key = a.key
    glued = lx.recover_glued(key)
    if comment_above is not None and not any(ch.isspace() for ch in key):
        tail = comment_above.rstrip().split()[-1] if comment_above.split() else ""
        if (tail and not tail.startswith(("#", ";"))) or tail.endswith("."):
            joined = lx.recover_glued(tail.lstrip("#;") + key) if tail else None
            if joined is None and tail.lstrip("#;").endswith("."):
                joined = lx.recover_glued("x" + tail.lstrip("#;") + key)
            if joined is not None and joined != key:
                line = replace_key(a, joined)
                lx.emit(
                    R.SPLIT_KEY,
                    a.path,
                    a.line,
                    f"'{key}' is the end of {joined}: its start is at the end of the comment "
                    "on the line above, so neither line sets anything",
                    suggestion=line,
                    edit=(line,),
                    column=a.column,
                    key=key,
                )
                return
    if glued is not None:
        line = replace_key(a, glued)
        lx.emit(
            R.UNKNOWN_KEY,
            a.path,
            a.line,
            f"unknown key '{key}': it looks like {glued} with '{key[: len(key) - len(glued)]}' "
            "glued in front",
            suggestion=line,
            edit=(line,),
            column=a.column,
            key=key,
        )
        return
    guess = lx.did_you_mean(key)
    if guess is not None:
        line = replace_key(a, guess)
        lx.emit(
            R.UNKNOWN_KEY,
            a.path,
            a.line,
            f"unknown key '{key}'; did you mean {guess}?",
            suggestion=line,
            edit=(line,),
            column=a.column,
            key=key,
        )
        return
    if fam is not None:
        lx.emit(
            R.NOT_ON_THIS_KERNEL,
            a.path,
            a.line,
            f"{key} does not exist on this kernel; keys under {fam.prefix} come with "
            f"{fam.provider}, and this one is not a near-miss of any key here either",
            column=a.column,
            key=key,
            evidence={"family": fam.prefix, "reference": fam.reference},
        )
        return
    lx.emit(
        R.UNKNOWN_KEY,
        a.path,
        a.line,
        f"unknown key '{key}': no such file /proc/sys/{key.replace('.', '/')} and not a "
        "key hostnet knows from other kernels",
        suggestion="check the spelling against 'sysctl -a'",
        edit=("# hostnet: SC103 unknown key, left unchanged", a_text(a)),
        column=a.column,
        key=key,
    )


def check_unknown_offline(lx: Linter, a: Assignment) -> None:
    """Without a kernel to ask, flag only keys that are near-misses of catalogue keys."""
    guess = lx.offline_guess(a.key)
    if guess is None or guess == a.key:
        return
    line = replace_key(a, guess)
    lx.emit(
        R.UNKNOWN_KEY,
        a.path,
        a.line,
        f"'{a.key}' is not a key hostnet knows; did you mean {guess}? (no kernel was "
        "consulted, so this is a guess)",
        column=a.column,
        key=a.key,
        suggestion=line,
        edit=(line,),
        severity=Severity.WARNING,
    )
