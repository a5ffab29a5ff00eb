"""contrib/: the alert rules pass promtool (syntax and behaviour), the dashboard and the unit
only use metric names the exporter really exposes."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from hostnet.service.exporter import TableSample, families

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "contrib/prometheus/hostnet-alerts.yml"
RULES_TEST = REPO / "tests/fixtures/contrib/hostnet-alerts-test.yml"
DASHBOARD = REPO / "contrib/grafana/hostnet-conntrack.json"
UNIT = REPO / "contrib/hostnet-exporter.service"

needs_promtool = pytest.mark.skipif(shutil.which("promtool") is None,
                                    reason="needs promtool (Debian package prometheus)")


def exposed_names() -> set[str]:
    sample = TableSample(0.0, 10, {"drop": 1, "early_drop": 2}, limit=100, buckets=16)
    names: set[str] = set()
    for fam in families([sample], findings={"error": 1}, log_events=3, duration=0.01):
        names.update(s.name for s in fam.samples)
    return names


@needs_promtool
def test_promtool_check_rules() -> None:
    proc = subprocess.run(["promtool", "check", "rules", str(RULES)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS: 4 rules found" in proc.stdout


@needs_promtool
def test_promtool_test_rules() -> None:
    """Warning above 75% for 5 m, critical above 90%, drops within 5 minutes alert."""
    proc = subprocess.run(["promtool", "test", "rules", str(RULES_TEST)], capture_output=True,
                          text=True, timeout=60, cwd=RULES_TEST.parent)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\b((?:hostnet|node)_[a-z_]+)", expr))


def test_rules_and_dashboard_use_exposed_metric_names() -> None:
    exposed = exposed_names()
    text = RULES.read_text()
    used = {n for line in text.splitlines() if "expr:" in line for n in _metric_names(line)}
    dash = json.loads(DASHBOARD.read_text())
    for panel in dash["panels"]:
        for target in panel["targets"]:
            used |= _metric_names(target["expr"])
    assert used, "no metric names found"
    assert used <= exposed, used - exposed


def test_dashboard_shape() -> None:
    dash = json.loads(DASHBOARD.read_text())
    assert dash["uid"] == "hostnet-conntrack"
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    for p in dash["panels"]:  # panels stay inside Grafana's 24-column grid
        assert p["gridPos"]["x"] + p["gridPos"]["w"] <= 24


def test_unit_runs_loopback_exporter_without_privileges() -> None:
    text = UNIT.read_text()
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert "DynamicUser=yes" in lines and "NoNewPrivileges=yes" in lines
    assert "CapabilityBoundingSet=" in lines
    start = next(line for line in lines if line.startswith("ExecStart="))
    assert "exporter" in start and "127.0.0.1:" in start and "--allow-remote" not in start


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_unit_verifies(tmp_path: Path) -> None:
    import sys

    hostnet = Path(sys.executable).with_name("hostnet")
    unit = tmp_path / "hostnet-exporter.service"
    unit.write_text(UNIT.read_text().replace("/usr/local/bin/hostnet", str(hostnet)))
    proc = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
