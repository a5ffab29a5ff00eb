"""Lint sysctl configuration (pure: parsed files + catalogue + a view of the kernel).

The kernel view answers "does this key exist, is it writable, what is its value now"; on the
live host it is backed by /proc/sys through a Root (hostnet.host.kernel_view), in tests by a
fixture tree. Lint never writes.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from hostnet.findings import Finding, Rule, Severity, normalize
from hostnet.knowledge.catalogue import Catalogue, KeySpec
from hostnet.sysctl import rules as R
from hostnet.sysctl.parser import Assignment, ParsedFile
from hostnet.sysctl.values import check_value

TOP_LEVELS = ("net.", "kernel.", "vm.", "fs.", "dev.", "user.", "abi.", "debug.", "crypto.")
#: Per-interface families: prefix -> number of components before the interface name.
IFACE_FAMILIES = ("net.ipv4.conf.", "net.ipv6.conf.", "net.ipv4.neigh.", "net.ipv6.neigh.")
IFACE_SPECIAL = frozenset({"all", "default"})
#: Legacy compatibility names: prefix -> the prefix current kernels use.
LEGACY_PREFIXES = {"net.ipv4.netfilter.ip_conntrack_": "net.netfilter.nf_conntrack_"}
#: Keys that appear with a module, not at boot (module name for the hint).
MODULE_PREFIXES = {"net.netfilter.nf_conntrack": "nf_conntrack", "net.bridge.": "br_netfilter"}
#: (default key, max key) pairs whose default must not exceed the max.
DEFAULT_MAX_PAIRS = (
    ("net.core.rmem_default", "net.core.rmem_max"),
    ("net.core.wmem_default", "net.core.wmem_max"),
)
ORDERED_TRIPLES = ("net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem", "net.ipv4.tcp_mem", "net.ipv4.udp_mem")
_ASSIGN_IN_TEXT = re.compile(r"((?:[A-Za-z0-9_\-]+[./])+[A-Za-z0-9_\-]+)\s*=\s*(\S.*)$")
_DISABLE = re.compile(
    r"\b(disabl\w*|turn(?:s|ing)?\s+(?:ipv6\s+)?off|switch(?:es|ing)?\s+(?:ipv6\s+)?off|"
    r"no ipv6|kill|without ipv6|ipv4[- ]only)\b",
    re.I,
)
_ENABLE = re.compile(r"\b(enabl\w*|turn(?:s|ing)? on|re-?enable)\b", re.I)


class KernelView(Protocol):
    def exists(self, key: str) -> bool | None: ...
    def writable(self, key: str) -> bool | None: ...
    def value(self, key: str) -> str | None: ...
    def all_keys(self) -> Sequence[str]: ...
    def interfaces(self) -> Sequence[str] | None: ...
    def boot_modules(self) -> frozenset[str] | None: ...


class NoKernel:
    """A view that knows nothing (linting files for another machine)."""

    def exists(self, key: str) -> bool | None:
        return None

    def writable(self, key: str) -> bool | None:
        return None

    def value(self, key: str) -> str | None:
        return None

    def all_keys(self) -> Sequence[str]:
        return ()

    def interfaces(self) -> Sequence[str] | None:
        return None

    def boot_modules(self) -> frozenset[str] | None:
        return None


@dataclass(frozen=True, slots=True)
class Edit:
    """A change --fix makes: replace ``line`` of ``path`` with ``lines`` (empty: delete)."""

    path: str
    line: int
    lines: tuple[str, ...]


@dataclass
class LintResult:
    findings: list[Finding] = field(default_factory=list)
    edits: list[Edit] = field(default_factory=list)
    #: final effective value of each key after all files (key -> assignment that wins)
    effective: dict[str, Assignment] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FileNote:
    """Something about a whole file found while discovering files (masked, not read...)."""

    rule: Rule
    path: str
    message: str
    suggestion: str | None = None


class _Linter:
    def __init__(self, catalogue: Catalogue, kernel: KernelView) -> None:
        self.cat = catalogue
        self.kernel = kernel
        self.findings: list[Finding] = []
        self.edits: dict[tuple[str, int], Edit] = {}
        self._known: set[str] | None = None
        self._exists: dict[str, bool | None] = {}
        self._file: ParsedFile | None = None
        self._guesses: dict[str, str | None] = {}
        self._offline: dict[str, str | None] = {}
        self._parents: dict[str, list[str]] | None = None

    # -- helpers --------------------------------------------------------------------------
    def emit(
        self,
        rule: Rule,
        a_path: str,
        line: int | None,
        message: str,
        *,
        column: int | None = None,
        key: str | None = None,
        suggestion: str | None = None,
        evidence: dict[str, object] | None = None,
        severity: Severity | None = None,
        edit: tuple[str, ...] | None = None,
        parsed: ParsedFile | None = None,
    ) -> None:
        pf = parsed or self._file
        if pf is not None and pf.path == a_path and pf.is_suppressed(line, rule.code):
            return
        self.findings.append(
            rule.finding(
                message,
                path=a_path,
                line=line,
                column=column,
                key=key,
                suggestion=suggestion,
                evidence=dict(evidence or {}),
                severity=severity,
            )
        )
        if edit is not None and line is not None and (a_path, line) not in self.edits:
            self.edits[(a_path, line)] = Edit(a_path, line, edit)

    def exists(self, key: str) -> bool | None:
        if key not in self._exists:
            self._exists[key] = self.kernel.exists(key)
        return self._exists[key]

    def known_keys(self) -> set[str]:
        if self._known is None:
            self._known = set(self.kernel.all_keys()) | set(self.cat.concrete_keys())
        return self._known

    def is_known(self, key: str) -> bool:
        if key in self.known_keys():
            return True
        spec = self.cat.get(key)
        return spec is not None and not spec.gone

    def recover_glued(self, text: str) -> str | None:
        """A known key at the end of ``text`` with junk glued in front (longest match)."""
        best: str | None = None
        for top in TOP_LEVELS:
            start = text.find(top)
            while start >= 0:
                candidate = text[start:]
                if (
                    start > 0
                    and self.is_known(candidate)
                    and (best is None or len(candidate) > len(best))
                ):
                    best = candidate
                start = text.find(top, start + 1)
        return best

    def did_you_mean(self, key: str) -> str | None:
        if key not in self._guesses:
            self._guesses[key] = self._did_you_mean(key)
        return self._guesses[key]

    def _did_you_mean(self, key: str) -> str | None:
        parts = key.split(".")
        pool = self.known_keys()
        # compare per-interface keys against the 'all' spelling
        if any(key.startswith(f) for f in IFACE_FAMILIES) and len(parts) == 5:
            probe = ".".join([*parts[:3], "all", parts[4]])
            matches = difflib.get_close_matches(probe, pool, n=1, cutoff=0.85)
            if matches:
                m = matches[0].split(".")
                return ".".join([*m[:3], parts[3], m[4]])
            return None
        prefix = ".".join(parts[:-1])
        near = [k for k in pool if k.startswith(prefix)] if len(parts) > 1 else []
        matches = difflib.get_close_matches(key, near or pool, n=1, cutoff=0.8)
        return matches[0] if matches else None

    # -- per assignment -------------------------------------------------------------------
    def check_assignment(self, a: Assignment, comment_above: str | None) -> None:
        key = a.key
        if not a.value:
            self.emit(
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
        legacy = self.legacy_replacement(key)
        spec = self.cat.get(key)
        if legacy is not None and (spec is None or spec.gone):
            self.emit_removed(a, spec, legacy)
            return
        if spec is not None and spec.gone:
            self.emit_removed(a, spec, spec.replacement)
            return
        dotted = self.dotted_interface(key)
        if dotted is not None:
            self.emit(
                R.DOTTED_INTERFACE,
                a.path,
                a.line,
                f"'{key}' names an interface with a dot; with '.' separators the dot splits the "
                "name, so write it with '/' (or use the path form with '/' separators)",
                suggestion=f"{dotted} = {a.value}",
                edit=(self.replace_key(a, dotted),),
                column=a.column,
                key=key,
            )
            return
        exists = self.exists(key)
        if exists is None and spec is None:
            self.check_unknown_offline(a)
        if exists is False:
            self.check_missing(a, spec, comment_above)
            return
        if spec is not None and spec.noop:
            self.emit(
                R.REMOVED_KEY,
                a.path,
                a.line,
                f"{key} still exists but has had no effect since {spec.removed_in or 'long ago'}: "
                f"{spec.description}",
                suggestion="remove the line",
                edit=(f"# {a_text(a)}  # hostnet: no effect",),
                column=a.column,
                key=key,
            )
            return
        writable = self.kernel.writable(key) if exists else None
        if (spec is not None and spec.readonly) or (
            writable is False
            and not (spec is not None and spec.init_ns_writable_only)
            and not (spec is not None and spec.writeonly)
        ):
            what = spec.description if spec is not None else "the kernel only reports it"
            self.emit(
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
        current = self.kernel.value(key) if exists and spec is None else None
        for problem in check_value(spec, a.value, current):
            severity = problem.severity
            if (
                problem.rule is R.OUT_OF_RANGE
                and spec is not None
                and not spec.test_boundaries
                and severity is None
            ):
                # the kernel stores it anyway; the value just means nothing documented
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
            self.emit(
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
            self.check_security(a, spec)
            if key == "net.ipv4.ip_local_port_range":
                self.check_parity(a)
        self.check_module(a)

    def legacy_replacement(self, key: str) -> str | None:
        if not key.startswith("net.ipv4.netfilter."):
            return None
        for old, new in LEGACY_PREFIXES.items():
            if key.startswith(old):
                return new + key[len(old) :]
        return None

    def emit_removed(self, a: Assignment, spec: KeySpec | None, replacement: str | None) -> None:
        when = f" in Linux {spec.removed_in}" if spec is not None and spec.removed_in else ""
        why = f" ({spec.description})" if spec is not None else ""
        target = self.cat.get(replacement) if replacement else None
        if replacement and target is not None and target.readonly:
            self.emit(
                R.REMOVED_KEY,
                a.path,
                a.line,
                f"{a.key} was removed{when}{why}; its successor {replacement} is read-only, "
                "so there is nothing to set",
                column=a.column,
                key=a.key,
                suggestion="remove the line",
                edit=(f"# {a_text(a)}  # hostnet: removed key",),
            )
            return
        if replacement:
            line = self.replace_key(a, replacement)
            self.emit(
                R.REMOVED_KEY,
                a.path,
                a.line,
                f"{a.key} was removed{when}{why}; the setting now lives in {replacement}",
                column=a.column,
                key=a.key,
                suggestion=line,
                edit=(line,),
            )
        else:
            self.emit(
                R.REMOVED_KEY,
                a.path,
                a.line,
                f"{a.key} was removed{when}{why}; writing it fails and nothing replaces it",
                column=a.column,
                key=a.key,
                suggestion="remove the line",
                edit=(f"# {a_text(a)}  # hostnet: removed key",),
            )

    def replace_key(self, a: Assignment, key: str) -> str:
        return f"{'-' if a.ignore_failure else ''}{key} = {a.value}"

    def dotted_interface(self, key: str) -> str | None:
        for fam in IFACE_FAMILIES:
            if key.startswith(fam):
                rest = key[len(fam) :].split(".")
                if len(rest) > 2:
                    iface, leaf = ".".join(rest[:-1]), rest[-1]
                    fixed = fam + iface.replace(".", "/") + "." + leaf
                    if self.cat.get(fam + "all." + leaf) is not None or self.is_known(
                        fam + "all." + leaf
                    ):
                        return fixed
        return None

    def check_missing(self, a: Assignment, spec: KeySpec | None, comment_above: str | None) -> None:
        key = a.key
        iface = interface_of(key)
        if iface is not None and iface not in IFACE_SPECIAL:
            leaf_known = self.is_known(key.replace(f".{iface}.", ".all.", 1))
            if leaf_known or spec is not None:
                have = self.kernel.interfaces()
                self.emit(
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
                return
        if spec is not None:
            module = self.module_of(key)
            where = f" (it appears when the {module} module is loaded)" if module else ""
            self.emit(
                R.NOT_ON_THIS_KERNEL,
                a.path,
                a.line,
                f"{key} does not exist on this kernel{where}; it is valid on others",
                column=a.column,
                key=key,
            )
            return
        module = self.module_of(key)
        if module is not None and self.kernel.boot_modules() is not None:
            self.emit(
                R.NOT_ON_THIS_KERNEL,
                a.path,
                a.line,
                f"{key} does not exist now; it appears when the {module} module is loaded",
                column=a.column,
                key=key,
            )
            return
        # unknown: junk glued on, split across lines, or a typo
        glued = self.recover_glued(key)
        if comment_above is not None:
            tail = comment_above.rstrip().split()[-1] if comment_above.split() else ""
            if (tail and not tail.startswith(("#", ";"))) or tail.endswith("."):
                joined = self.recover_glued(tail.lstrip("#;") + key) if tail else None
                if joined is None and tail.lstrip("#;").endswith("."):
                    joined = self.recover_glued("x" + tail.lstrip("#;") + key)
                if joined is not None and joined != key:
                    line = self.replace_key(a, joined)
                    self.emit(
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
            line = self.replace_key(a, glued)
            self.emit(
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
        guess = self.did_you_mean(key)
        if guess is not None:
            line = self.replace_key(a, guess)
            self.emit(
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
        self.emit(
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

    def check_unknown_offline(self, a: Assignment) -> None:
        """Without a kernel to ask, flag only keys that are near-misses of catalogue keys."""
        if a.key not in self._offline:
            self._offline[a.key] = self._offline_guess(a.key)
        guess = self._offline[a.key]
        if guess is None or guess == a.key:
            return
        line = self.replace_key(a, guess)
        self.emit(
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

    def _offline_guess(self, key: str) -> str | None:
        guess = self.recover_glued(key)
        if guess is not None:
            return guess
        parent = key.rpartition(".")[0]
        siblings = self._by_parent().get(parent)
        if not siblings:
            return None
        close = difflib.get_close_matches(key, siblings, n=1, cutoff=0.9)
        return close[0] if close else None

    def _by_parent(self) -> dict[str, list[str]]:
        if self._parents is None:
            self._parents = {}
            for k in self.cat.concrete_keys():
                self._parents.setdefault(k.rpartition(".")[0], []).append(k)
        return self._parents

    def module_of(self, key: str) -> str | None:
        for prefix, module in MODULE_PREFIXES.items():
            if key.startswith(prefix):
                return module
        return None

    def check_security(self, a: Assignment, spec: KeySpec) -> None:
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
        self.emit(
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

    def check_parity(self, a: Assignment) -> None:
        parts = a.value.split()
        if len(parts) != 2 or not all(p.isdigit() for p in parts):
            return
        lo, hi = int(parts[0]), int(parts[1])
        if lo < hi and lo % 2 == hi % 2:
            self.emit(
                R.PORT_PARITY,
                a.path,
                a.line,
                f"ip_local_port_range {lo} {hi}: both ends are {'even' if lo % 2 == 0 else 'odd'}"
                "; the kernel prefers ports of one parity for connect() and the other for bind(),"
                " and warns about this range",
                column=a.value_column,
                key=a.key,
                suggestion=f"{a.raw_key} = {lo} {hi - 1 if hi % 2 == lo % 2 else hi}",
            )

    def check_module(self, a: Assignment) -> None:
        module = self.module_of(a.key)
        boot = self.kernel.boot_modules()
        if module is None or boot is None or module in boot:
            return
        self.emit(
            R.MODULE_KEY_AT_BOOT,
            a.path,
            a.line,
            f"{a.key} belongs to the {module} module, which is usually loaded after "
            "systemd-sysctl has run at boot, so this line fails with 'No such file'",
            column=a.column,
            key=a.key,
            suggestion=f"echo {module} > /etc/modules-load.d/{module}.conf",
        )


def a_text(a: Assignment) -> str:
    return f"{'-' if a.ignore_failure else ''}{a.raw_key} = {a.value}"


def interface_of(key: str) -> str | None:
    for fam in IFACE_FAMILIES:
        if key.startswith(fam):
            rest = key[len(fam) :].split(".")
            if len(rest) == 2:
                return rest[0]
    return None


def _comment_block_above(pf: ParsedFile, line: int) -> str:
    """Text of the comment block heading the group of settings that ``line`` belongs to
    (comment lines directly above, possibly above a few other settings, up to a blank line)."""
    texts: list[str] = []
    n = line - 1
    in_comments = False
    while n >= 1:
        raw = pf.lines[n - 1].strip()
        if not raw:
            break
        if raw.startswith(("#", ";")):
            in_comments = True
            texts.append(raw.lstrip("#;").strip())
        elif in_comments:
            break
        n -= 1
    return " ".join(reversed(texts))


def lint_files(
    files: Sequence[ParsedFile],
    catalogue: Catalogue,
    kernel: KernelView | None = None,
    *,
    notes: Iterable[FileNote] = (),
) -> LintResult:
    """Lint files given in the order they are applied (later files win)."""
    linter = _Linter(catalogue, kernel or NoKernel())
    seen: dict[str, Assignment] = {}  # key -> last assignment so far (all files)
    for pf in files:
        linter._file = pf
        _lint_lines(linter, pf)
        in_file: dict[str, Assignment] = {}
        for a in pf.assignments:
            prev_line = pf.lines[a.line - 2].strip() if a.line >= 2 else ""
            comment_above = prev_line if prev_line.startswith(("#", ";")) else None
            linter.check_assignment(a, comment_above)
            if a.is_glob and a.value:
                _check_glob_order(linter, a, seen, pf)
            if a.is_glob or not a.value:
                continue
            earlier = in_file.get(a.key)
            if earlier is not None:
                linter.emit(
                    R.DUPLICATE_KEY,
                    pf.path,
                    earlier.line,
                    f"{a.key} is set again on line {a.line} of this file"
                    f" ({earlier.value!r} then {a.value!r}); this line has no effect",
                    column=earlier.column,
                    key=a.key,
                    suggestion="remove this line",
                    edit=(f"# {a_text(earlier)}  # hostnet: set again on line {a.line}",),
                )
            else:
                other = seen.get(a.key)
                if other is not None and other.path != pf.path and other.value != a.value:
                    vendor = not other.path.startswith("/etc/")
                    linter.emit(
                        R.OVERRIDDEN_KEY,
                        other.path,
                        other.line,
                        f"{a.key} = {other.value} is overridden by {pf.path}:{a.line} "
                        f"({a.key} = {a.value}), which is read later and wins"
                        + (
                            " when procps 'sysctl --system' runs (systemd-sysctl does not read "
                            "/etc/sysctl.conf)"
                            if pf.path == "/etc/sysctl.conf"
                            else ""
                        ),
                        column=other.column,
                        key=a.key,
                        severity=Severity.INFO if vendor else None,
                        evidence={"winner": f"{pf.path}:{a.line}", "value": a.value},
                        parsed=_find(files, other.path),
                    )
            in_file[a.key] = a
            seen[a.key] = a
    linter._file = None
    _lint_combined(linter, seen, files)
    for note in notes:
        linter.emit(note.rule, note.path, None, note.message, suggestion=note.suggestion)
    result = LintResult(normalize(linter.findings), sorted(linter.edits.values(), key=_edit_key))
    result.effective = seen
    return result


def _check_glob_order(
    linter: _Linter, glob: Assignment, seen: dict[str, Assignment], pf: ParsedFile
) -> None:
    """A glob after explicit keys it matches: systemd keeps the explicit values, procps
    (which applies lines in order) overwrites them."""
    import fnmatch

    width = glob.key.count(".")
    hit = [
        a
        for k, a in seen.items()
        if k.count(".") == width and fnmatch.fnmatchcase(k, glob.key) and a.value != glob.value
    ]
    if not hit:
        return
    first = hit[0]
    more = f" and {len(hit) - 1} more" if len(hit) > 1 else ""
    linter.emit(
        R.PARSER_DISAGREEMENT,
        pf.path,
        glob.line,
        f"{glob.key} = {glob.value} comes after {first.key} = {first.value} "
        f"({first.path}:{first.line}){more}: systemd-sysctl keeps explicit keys over globs, "
        "procps sysctl --system applies lines in order and overwrites them",
        column=glob.column,
        key=glob.key,
        suggestion="put the glob before the explicit keys it should not override",
    )


def _edit_key(e: Edit) -> tuple[str, int]:
    return (e.path, e.line)


def _find(files: Sequence[ParsedFile], path: str) -> ParsedFile | None:
    for pf in files:
        if pf.path == path:
            return pf
    return None


def _lint_lines(linter: _Linter, pf: ParsedFile) -> None:
    for na in pf.not_assignments:
        words = na.text.split()
        fix: str | None = None
        if len(words) == 2 and linter.is_known(words[0].lstrip("-")):
            fix = f"{words[0]} = {words[1]}"
        linter.emit(
            R.NOT_ASSIGNMENT,
            pf.path,
            na.line,
            f"'{na.text}' has no '=': systemd-sysctl ignores the line and procps reports "
            "invalid syntax",
            column=na.column,
            suggestion=fix or "write it as key = value, or comment it out",
            edit=(fix,) if fix else None,
        )
    for c in pf.comments:
        if c.marker == ";":
            fixed = "#" + c.text[1:]
            linter.emit(
                R.SEMICOLON_COMMENT,
                pf.path,
                c.line,
                "';' starts a comment for procps and older systemd, but the newest "
                "systemd-sysctl reads this line as a setting",
                column=c.column,
                suggestion=fixed,
                edit=(fixed,),
            )
        body = c.text[1:]
        if "=" not in body:
            continue
        m = _ASSIGN_IN_TEXT.search(body)
        if m is None:
            continue
        written = m.group(1)
        real = written if linter.is_known(written) else linter.recover_glued(written)
        if real is None:
            continue
        at = m.start(1) + len(written) - len(real)  # where the real key starts in body
        before = body[:at]
        if not before.strip() or before[-1].isspace() or before.rstrip()[-1] in "#;":
            continue  # a commented-out setting, or prose that mentions a key
        assignment = f"{real} = {m.group(2).strip()}"
        linter.emit(
            R.COMMENTED_ASSIGNMENT,
            pf.path,
            c.line,
            f"'{assignment}' is glued onto the comment, so it is never applied "
            "(a lost line break?)",
            column=c.column + 1 + at,
            key=real,
            suggestion=f"put '{assignment}' on its own line",
            edit=((c.marker + before).rstrip(), assignment),
        )


def _lint_combined(
    linter: _Linter, final: dict[str, Assignment], files: Sequence[ParsedFile]
) -> None:
    kernel = linter.kernel

    def value(key: str) -> tuple[str | None, Assignment | None]:
        a = final.get(key)
        if a is not None:
            return a.value, a
        return kernel.value(key), None

    for dkey, mkey in DEFAULT_MAX_PAIRS:
        dval, da = value(dkey)
        mval, ma = value(mkey)
        if da is None and ma is None:
            continue
        try:
            d, m = int((dval or "").split()[0]), int((mval or "").split()[0])
        except (ValueError, IndexError):
            continue
        if d > m:
            at = da or ma
            assert at is not None
            linter.emit(
                R.DEFAULT_ABOVE_MAX,
                at.path,
                at.line,
                f"{dkey} = {d} is above {mkey} = {m}"
                f"{'' if ma else ' (the running value)'}: sockets cannot get the default",
                column=at.value_column,
                key=at.key,
                suggestion=f"{mkey} = {d}",
                parsed=_find(files, at.path),
                evidence={dkey: d, mkey: m},
            )
    for key in ORDERED_TRIPLES:
        a = final.get(key)
        if a is None:
            continue
        parts = a.value.split()
        if len(parts) == 3 and all(p.isdigit() for p in parts):
            lo, mid, hi = (int(p) for p in parts)
            if not lo <= mid <= hi:
                linter.emit(
                    R.DEFAULT_ABOVE_MAX,
                    a.path,
                    a.line,
                    f"{key} = {a.value}: the three values should rise (min, default/pressure, max);"
                    " the kernel does not check the order",
                    key=key,
                    column=a.value_column,
                    parsed=_find(files, a.path),
                    suggestion=f"{key} = {' '.join(str(v) for v in sorted((lo, mid, hi)))}",
                )
    _lint_ipv6_intent(linter, final, files)


def _lint_ipv6_intent(
    linter: _Linter, final: dict[str, Assignment], files: Sequence[ParsedFile]
) -> None:
    for pf in files:
        for a in pf.assignments:
            leaf = a.key.rsplit(".", 1)[-1]
            if leaf != "disable_ipv6" or final.get(a.key) is not a:
                continue
            said = (_comment_block_above(pf, a.line) + " " + pf.path.rsplit("/", 1)[-1]).lower()
            if "ipv6" not in said and "v6" not in said:
                continue
            wants_off = bool(_DISABLE.search(said)) and not _ENABLE.search(said)
            wants_on = bool(_ENABLE.search(said)) and not _DISABLE.search(said)
            v = a.value.strip()
            if (wants_off and v == "0") or (wants_on and v == "1"):
                good = "1" if wants_off else "0"
                line = f"{a.raw_key} = {good}"
                linter.emit(
                    R.IPV6_INTENT,
                    pf.path,
                    a.line,
                    f"the comment says IPv6 should be {'off' if wants_off else 'on'}, but "
                    f"disable_ipv6 = {v} {'keeps it on' if v == '0' else 'turns it off'} "
                    "(1 disables, 0 enables)",
                    column=a.value_column,
                    key=a.key,
                    suggestion=line,
                    edit=(line,),
                    parsed=pf,
                )
    # forwarding on + accept_ra = 1: router advertisements are ignored
    fwd_all = final.get("net.ipv6.conf.all.forwarding")
    for key, a in final.items():
        if not (key.startswith("net.ipv6.conf.") and key.endswith(".accept_ra")):
            continue
        iface = key.split(".")[3]
        fwd = final.get(f"net.ipv6.conf.{iface}.forwarding") or fwd_all
        if fwd is not None and fwd.value == "1" and a.value == "1":
            line = f"{a.raw_key} = 2"
            linter.emit(
                R.IPV6_INTENT,
                a.path,
                a.line,
                f"{key} = 1 has no effect while IPv6 forwarding is on ({fwd.path}:{fwd.line}): "
                "a forwarding interface ignores router advertisements unless accept_ra = 2",
                column=a.value_column,
                key=key,
                suggestion=line,
                edit=(line,),
                parsed=_find(files, a.path),
            )
