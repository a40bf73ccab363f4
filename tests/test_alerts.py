"""The alert rules and dashboards under deploy/ pass ci/alerts.sh (promtool) and the
dashboards' own shape check."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_dashboards_have_a_data_source_variable_and_queries() -> None:
    dashboards = sorted(str(p) for p in ROOT.glob("deploy/grafana/*.json"))
    run = subprocess.run(
        [sys.executable, "ci/dashboard_promql.py", *dashboards],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    groups = json.loads(run.stdout)["groups"]
    assert len(groups) == len(dashboards) >= 1
    assert all(group["rules"] for group in groups)


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_alert_rules_and_dashboard_queries_pass_promtool() -> None:
    run = subprocess.run(
        ["bash", "ci/alerts.sh"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHON": sys.executable},
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "FAILED" not in run.stdout
