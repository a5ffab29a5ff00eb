"""``hostnet lint`` as one library call: read the files (through a Root for --system), lint
them, and for --fix write the corrected files back atomically (state/ is the only writer).

The write keeps every byte lint does not change, goes to a temporary file in the same
directory, is fsynced, takes the original file's mode (and owner, when allowed) and then
replaces the original with rename(2), so a crash leaves either the old or the new file.
"""

from __future__ import annotations

import enum
import os
import sys
import tempfile
from dataclasses import dataclass, field

from hostnet.host.kernel_view import RootKernelView
from hostnet.host.root import Root
from hostnet.host.sysctl_files import expand_paths, read_config_file, read_tree
from hostnet.knowledge.catalogue import load
from hostnet.sysctl.discovery import system_sources
from hostnet.sysctl.fix import apply_edits, unified_diff
from hostnet.sysctl.lint import FileNote, LintResult, lint_files
from hostnet.sysctl.parser import ParsedFile, parse_text

STDIN = "<stdin>"


class FixMode(enum.Enum):
    REPORT = "report"
    DIFF = "diff"
    FIX = "fix"


@dataclass(frozen=True, slots=True)
class LintRequest:
    paths: tuple[str, ...] = ()
    system: bool = False
    use_kernel: bool = True
    mode: FixMode = FixMode.REPORT


@dataclass
class LintOutcome:
    result: LintResult
    diffs: list[str] = field(default_factory=list)  # DIFF: one unified diff per changed file
    fixed: list[tuple[str, int]] = field(default_factory=list)  # FIX: (path, edits) written
    stdout_text: str | None = None  # FIX on standard input: the corrected text


def run_lint(root: Root, request: LintRequest) -> LintOutcome:
    parsed: list[ParsedFile] = []
    texts: dict[str, str] = {}
    notes: list[FileNote] = []
    if request.system:
        sources, notes = system_sources(read_tree(root))
        for src in sources:
            text = read_config_file(root.file(src.real).as_posix(), shown=src.path)
            texts[src.path] = text
            parsed.append(parse_text(text, src.path))
    for path in expand_paths(request.paths):
        if path == "-":
            text, path = sys.stdin.read(), STDIN
        else:
            text = read_config_file(path)
        texts[path] = text
        parsed.append(parse_text(text, path))
    kernel = RootKernelView(root) if request.use_kernel else None
    result = lint_files(parsed, load(), kernel, notes=notes)
    outcome = LintOutcome(result)
    if request.mode is FixMode.REPORT:
        return outcome
    for path, text in texts.items():
        edits = [e for e in result.edits if e.path == path]
        new = apply_edits(text, edits) if edits else text
        if new == text:
            continue
        if request.mode is FixMode.DIFF:
            outcome.diffs.append(unified_diff(path, text, new))
        elif path == STDIN:
            outcome.stdout_text = new
        else:
            write_atomic(path, new)
            outcome.fixed.append((path, len(edits)))
    if request.mode is FixMode.FIX and STDIN in texts and outcome.stdout_text is None:
        outcome.stdout_text = texts[STDIN]
    return outcome


def write_atomic(path: str, text: str) -> None:
    """Replace ``path`` with ``text``: temp file in the same directory, fsync, same mode
    (and owner when we may set it), rename over the original, fsync the directory."""
    directory = os.path.dirname(os.path.abspath(path))
    st = os.stat(path)
    fd, tmp = tempfile.mkstemp(prefix=".hostnet-", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, st.st_mode & 0o7777)
        if os.geteuid() == 0:
            os.chown(tmp, st.st_uid, st.st_gid)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    dfd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
