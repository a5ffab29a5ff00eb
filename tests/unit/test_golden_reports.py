"""Golden files: doctor and lint JSON on every fixture tree, so a refactor shows each change.

Regenerate after an intended change with ``HOSTNET_REGEN_GOLDEN=1 pytest tests/unit/test_golden_reports.py``
and name every difference in the commit message.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from hostnet.cli.main import cli

HERE = Path(__file__).resolve().parent.parent
ROOTS = HERE / "fixtures" / "roots"
SYSCTL = HERE / "fixtures" / "sysctl"
GOLDEN = HERE / "golden"
REGEN = os.environ.get("HOSTNET_REGEN_GOLDEN") == "1"

CASES: list[tuple[str, list[str]]] = []
for tree in sorted(p for p in ROOTS.iterdir() if p.is_dir()):
    if (tree / "proc/sys").is_dir():  # a config-only tree is refused (test_bad_input.py)
        CASES.append((f"doctor-{tree.name}", ["doctor", "--root", str(tree), "--format", "json"]))
    CASES.append((f"lint-system-{tree.name}",
                  ["lint", "--system", "--root", str(tree), "--format", "json"]))
for conf in sorted(SYSCTL.rglob("*.conf")):
    name = str(conf.relative_to(SYSCTL)).replace("/", "-")
    CASES.append((f"lint-{name}", ["lint", str(conf), "--root", str(ROOTS / "lint-kernel"),
                                   "--format", "json"]))


def _normalise(text: str) -> str:
    doc = json.loads(text)
    return json.dumps(doc, indent=1, sort_keys=True).replace(str(HERE), "<tests>") + "\n"


@pytest.mark.parametrize(("name", "argv"), CASES, ids=[c[0] for c in CASES])
def test_golden(name: str, argv: list[str]) -> None:
    result = CliRunner().invoke(cli, argv)
    assert result.exit_code in (0, 1), result.output
    got = _normalise(result.output)
    path = GOLDEN / f"{name}.json"
    if REGEN or not path.exists():
        if not REGEN:
            pytest.fail(f"no golden file {path.name}; run with HOSTNET_REGEN_GOLDEN=1")
        path.write_text(got)
        return
    assert got == path.read_text(), f"{name}: output differs from {path}"
