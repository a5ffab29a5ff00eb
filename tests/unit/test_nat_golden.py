"""Golden files: compiler output of both backends for every tests/golden/nat-*.toml.

Regenerate after an intended change with
``HOSTNET_REGEN_GOLDEN=1 pytest tests/unit/test_nat_golden.py`` and name every difference in
the commit message.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from hostnet.cli.main import cli

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
REGEN = os.environ.get("HOSTNET_REGEN_GOLDEN") == "1"
CASES = [(toml, backend) for toml in sorted(GOLDEN.glob("nat-*.toml"))
         for backend in ("nftables", "iptables")]


@pytest.mark.parametrize(("toml", "backend"), CASES,
                         ids=[f"{t.stem}-{b}" for t, b in CASES])
def test_golden(toml: Path, backend: str) -> None:
    result = CliRunner().invoke(cli, ["nat", "compile", "--config", str(toml),
                                      "--backend", backend])
    assert result.exit_code == 0, result.output
    got = result.stdout
    path = GOLDEN / f"{toml.stem}.{'nft' if backend == 'nftables' else 'iptables'}"
    if REGEN or not path.exists():
        if not REGEN:
            pytest.fail(f"no golden file {path.name}; run with HOSTNET_REGEN_GOLDEN=1")
        path.write_text(got)
        return
    assert got == path.read_text(), f"{toml.name} ({backend}): output differs from {path}"


def test_every_case_has_both_golden_files() -> None:
    for toml in GOLDEN.glob("nat-*.toml"):
        assert (GOLDEN / f"{toml.stem}.nft").exists()
        assert (GOLDEN / f"{toml.stem}.iptables").exists()
