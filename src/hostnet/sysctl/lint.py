"""Lint sysctl configuration (pure: parsed files + catalogue + a view of the kernel).

The kernel view answers "does this key exist, is it writable, what is its value now"; on the
live host it is backed by /proc/sys through a Root (hostnet.host.kernel_view), in tests by a
fixture tree. Lint never writes. The rules live in key_rules, value_rules, file_rules and
combined_rules; this module runs them over the files in the order they are applied.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from hostnet.findings import normalize
from hostnet.knowledge.catalogue import Catalogue
from hostnet.model.modules import ModuleFacts
from hostnet.sysctl.combined_rules import check_combined
from hostnet.sysctl.file_rules import check_glob_order, check_lines, check_repeat
from hostnet.sysctl.kernel import KernelView, NoKernel
from hostnet.sysctl.key_rules import check_assignment
from hostnet.sysctl.lint_result import Edit, FileNote, LintResult
from hostnet.sysctl.linter import Linter
from hostnet.sysctl.parser import Assignment, ParsedFile

__all__ = [
    "Edit",
    "FileNote",
    "KernelView",
    "LintResult",
    "ModuleFacts",
    "NoKernel",
    "lint_files",
]


def lint_files(
    files: Sequence[ParsedFile],
    catalogue: Catalogue,
    kernel: KernelView | None = None,
    *,
    notes: Iterable[FileNote] = (),
) -> LintResult:
    """Lint files given in the order they are applied (later files win)."""
    linter = Linter(catalogue, kernel or NoKernel())
    for pf in files:
        for a in pf.assignments:
            if a.value and not a.is_glob:
                linter.settings[a.key] = a.value
    seen: dict[str, Assignment] = {}  # key -> last assignment so far (all files)
    for pf in files:
        linter.file = pf
        check_lines(linter, pf)
        in_file: dict[str, Assignment] = {}
        for a in pf.assignments:
            prev_line = pf.lines[a.line - 2].strip() if a.line >= 2 else ""
            comment_above = prev_line if prev_line.startswith(("#", ";")) else None
            check_assignment(linter, a, comment_above)
            if a.is_glob and a.value:
                check_glob_order(linter, a, seen, pf)
            if a.is_glob or not a.value:
                continue
            check_repeat(linter, a, in_file, seen, pf, files)
            in_file[a.key] = a
            seen[a.key] = a
    linter.file = None
    check_combined(linter, seen, files)
    for note in notes:
        linter.emit(note.rule, note.path, None, note.message, suggestion=note.suggestion)
    edits = sorted(linter.edits.values(), key=lambda e: (e.path, e.line))
    result = LintResult(normalize(linter.findings), edits)
    result.effective = seen
    return result
