"""Advice proofs (tests/kernel/test_*advice_proofs.py): run the installed ``hostnet doctor``
against a lab's host namespace, apply exactly what a finding suggests, see the finding gone
and the lab's traffic still flowing."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tests.helpers import fixes
from tests.helpers.labs import Lab

HOSTNET = Path(sys.executable).with_name("hostnet")  # the worktree's installed command


def doctor(lab: Lab, *args: str) -> list[dict[str, Any]]:
    """The findings of ``hostnet doctor --netns HOST --role ROLE --format json ARGS``."""
    assert HOSTNET.exists(), f"{HOSTNET} is missing: run the tests from the venv (make venv)"
    proc = subprocess.run(
        [str(HOSTNET), "doctor", "--netns", lab.host.name, "--role", lab.role,
         "--format", "json", *args],
        capture_output=True, text=True, timeout=120, check=False, cwd="/")
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["namespace"] == lab.host.name and doc["role"] == lab.role
    findings: list[dict[str, Any]] = doc["findings"]
    return findings


def prove(lab: Lab, args: Sequence[str], code: str, problem: Mapping[str, str] | None = None,
          key: str | None = None) -> list[str]:
    """Make ``problem`` real (sysctls of the host), see ``code`` (for ``key``) in the doctor
    run with ``args``, apply its suggestion, see it gone and the role's traffic flow. Returns
    the suggestions applied."""
    for k, v in (problem or {}).items():
        lab.set(k, v)

    def matching(findings: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [f for f in findings if f["code"] == code and (key is None or f["key"] == key)]

    found = matching(doctor(lab, *args))
    assert found, f"{code} not reported after {problem or {}}"
    applied = []
    for finding in found:
        assert finding["suggestion"], f"{code} proposes no fix: {finding}"
        fixes.apply(lab.host, finding["suggestion"], before_write=lab.remember)
        applied.append(finding["suggestion"])
    left = matching(doctor(lab, *args))
    assert not left, f"{code} still reported after applying {applied}: {left}"
    lab.check()
    return applied
