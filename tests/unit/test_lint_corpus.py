"""The lint corpus (tests/fixtures/corpus): every file cites its source, its labels parse and
name real codes, and lint runs on every file without crashing, with and without a kernel.
Precision and recall are measured by bench/lint_corpus.py, never asserted here."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hostnet.host.kernel_view import RootKernelView
from hostnet.host.root import Root
from hostnet.knowledge.catalogue import load
from hostnet.rules import all_rules
from hostnet.sysctl.lint import NoKernel, lint_files
from hostnet.sysctl.parser import parse_text

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
CORPUS = FIXTURES / "corpus"
FILES = sorted(CORPUS.glob("*.conf"))
SOURCE = re.compile(
    r"^# hostnet lint corpus: https://github\.com/[\w.-]+/[\w.-]+/blob/[0-9a-f]{40}/\S+$"
)


def test_corpus_is_big_enough() -> None:
    assert len(FILES) >= 40


@pytest.mark.parametrize("conf", FILES, ids=[p.name for p in FILES])
def test_file_cites_its_source_and_labels_parse(conf: Path) -> None:
    text = conf.read_text(encoding="utf-8", errors="surrogateescape")
    assert SOURCE.match(text.splitlines()[0]), conf.name
    lines = text.split("\n")
    codes = all_rules()
    expected = conf.with_suffix(".expected")
    for raw in expected.read_text().splitlines():
        if not raw.strip() or raw.startswith("#"):
            continue
        number, code = raw.split()[:2]
        assert code in codes, (expected.name, raw)
        n = int(number)
        assert 3 <= n <= len(lines) and lines[n - 1].strip(), (expected.name, raw)


@pytest.mark.parametrize("conf", FILES, ids=[p.name for p in FILES])
def test_lint_runs_on_every_file(conf: Path) -> None:
    text = conf.read_text(encoding="utf-8", errors="surrogateescape")
    for kernel in (NoKernel(), RootKernelView(Root(FIXTURES / "roots" / "lint-kernel"))):
        result = lint_files([parse_text(text, f"/etc/sysctl.d/{conf.name}")], load(), kernel)
        assert all(f.line is not None for f in result.findings)
