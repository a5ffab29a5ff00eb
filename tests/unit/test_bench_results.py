"""bench/RESULTS.md is generated: it must be exactly what bench/run_all.py's merge() makes of
bench/results/*.md (a section written into RESULTS.md by hand would be lost on the next
``make bench``), and every results file names a bench script that exists. No benchmark runs."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _run_all() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_run_all", BENCH / "run_all.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_results_md_is_the_merge_of_the_results_files() -> None:
    want = _run_all().merged()
    have = (BENCH / "RESULTS.md").read_text()
    assert have == want, ("bench/RESULTS.md differs from the merge of bench/results/*.md: edit "
                          "the results file and run `python bench/run_all.py --merge`")


def test_every_section_comes_from_a_results_file(tmp_path: Path) -> None:
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "b.md").write_text("## b\n\nsecond\n\n")
    (tmp_path / "results" / "a.md").write_text("# a\n\nfirst\n")
    (tmp_path / "results" / "notes.txt").write_text("not a section\n")
    text = _run_all().merged(tmp_path)
    assert text.index("# a\n\nfirst\n") < text.index("## b\n\nsecond\n")
    assert "not a section" not in text and text.endswith("second\n")


def test_every_results_file_has_its_bench_script() -> None:
    for md in sorted((BENCH / "results").glob("*.md")):
        script = BENCH / f"{md.stem}.py"
        assert script.is_file(), f"{md.name}: no {script.name}"
        named = re.findall(r"bench/([a-z_]+)\.py", md.read_text())
        assert md.stem in named, f"{md.name} does not say how to rerun bench/{md.stem}.py"
