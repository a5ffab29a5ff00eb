"""The lint state shared by every rule group: catalogue, kernel view, findings, edits (pure).

Rule groups (hostnet.sysctl.key_rules, value_rules, file_rules, combined_rules) are functions
that take a :class:`Linter` and emit through it; ``emit`` applies inline suppressions and
records the edit --fix would make.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence

from hostnet.findings import Finding, Rule, Severity
from hostnet.knowledge.catalogue import Catalogue
from hostnet.sysctl.kernel import KernelView, Modules, interpret
from hostnet.sysctl.lint_result import Edit
from hostnet.sysctl.parser import Assignment, ParsedFile

TOP_LEVELS = ("net.", "kernel.", "vm.", "fs.", "dev.", "user.", "abi.", "debug.", "crypto.")
#: Per-interface families: prefix -> number of components before the interface name.
IFACE_FAMILIES = ("net.ipv4.conf.", "net.ipv6.conf.", "net.ipv4.neigh.", "net.ipv6.neigh.")
IFACE_SPECIAL = frozenset({"all", "default"})
#: Keys that appear with a module, not at boot: prefix -> (module, kernel config option).
MODULE_PREFIXES = {
    "net.netfilter.nf_conntrack": ("nf_conntrack", "CONFIG_NF_CONNTRACK"),
    "net.bridge.": ("br_netfilter", "CONFIG_BRIDGE_NETFILTER"),
}


class Linter:
    def __init__(self, catalogue: Catalogue, kernel: KernelView) -> None:
        self.cat = catalogue
        self.kernel = kernel
        self.findings: list[Finding] = []
        self.edits: dict[tuple[str, int], Edit] = {}
        self.file: ParsedFile | None = None
        self._known: set[str] | None = None
        self._exists: dict[str, bool | None] = {}
        self._guesses: dict[str, str | None] = {}
        self._modules: Modules | None = None
        self._modules_read = False
        self._offline: dict[str, str | None] = {}
        #: last value each key gets from the files being linted (filled before the rules run)
        self.settings: dict[str, str] = {}
        self.families_present: dict[str, bool] = {}  # family prefix -> any key on this kernel
        self._parents: dict[str, list[str]] | None = None

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
        pf = parsed or self.file
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

    # -- what the kernel and the catalogue know ---------------------------------------------
    def exists(self, key: str) -> bool | None:
        if key not in self._exists:
            self._exists[key] = self.kernel.exists(key)
        return self._exists[key]

    def setting_int(self, key: str) -> int | None:
        """The first integer of the value the files give ``key``, else the running value."""
        text = self.settings.get(key)
        if text is None:
            text = self.kernel.value(key)
        try:
            return int((text or "").split()[0])
        except (ValueError, IndexError):
            return None

    def modules(self) -> Modules | None:
        if not self._modules_read:
            facts = self.kernel.modules()
            self._modules = interpret(facts) if facts is not None else None
            self._modules_read = True
        return self._modules

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

    def offline_guess(self, key: str) -> str | None:
        """A near-miss catalogue key for ``key`` when no kernel can be asked (cached)."""
        if key not in self._offline:
            self._offline[key] = self._offline_guess(key)
        return self._offline[key]

    def _offline_guess(self, key: str) -> str | None:
        guess = self.recover_glued(key)
        if guess is not None:
            return guess
        parent = key.rpartition(".")[0]
        if self._parents is None:
            self._parents = {}
            for k in self.cat.concrete_keys():
                self._parents.setdefault(k.rpartition(".")[0], []).append(k)
        siblings = self._parents.get(parent)
        if not siblings:
            return None
        close = difflib.get_close_matches(key, siblings, n=1, cutoff=0.9)
        return close[0] if close else None


def module_of(key: str) -> tuple[str, str] | None:
    """(module, config option) of a key that only exists while a module is loaded."""
    for prefix, module in MODULE_PREFIXES.items():
        if key.startswith(prefix):
            return module
    return None


def a_text(a: Assignment) -> str:
    return f"{'-' if a.ignore_failure else ''}{a.raw_key} = {a.value}"


def replace_key(a: Assignment, key: str) -> str:
    return f"{'-' if a.ignore_failure else ''}{key} = {a.value}"


def interface_of(key: str) -> str | None:
    for fam in IFACE_FAMILIES:
        if key.startswith(fam):
            rest = key[len(fam) :].split(".")
            if len(rest) == 2:
                return rest[0]
    return None


def find_file(files: Sequence[ParsedFile], path: str) -> ParsedFile | None:
    for pf in files:
        if pf.path == path:
            return pf
    return None
