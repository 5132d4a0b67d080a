"""The Prometheus config and rules pass promtool, and the rule unit tests pass."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

DEPLOY = Path(__file__).resolve().parents[3] / "deploy" / "prometheus"
RULES = DEPLOY / "rules" / "vip2clip.rules.yml"
RULE_TESTS = sorted((DEPLOY / "tests").glob("*.yml"))
ALERTS = {
    "Vip2clipNightlyScoringMissing",
    "Vip2clipNightlyScoringNeverSucceeded",
    "Vip2clipJobErrorRateHigh",
    "Vip2clipScoringErrorRateHigh",
    "Vip2clipThroughputDrop",
    "Vip2clipTrainingFailed",
}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    assert binary, "promtool is not installed: run `make system-deps` (Debian prometheus)"
    return subprocess.run(
        [binary, *args], cwd=DEPLOY, capture_output=True, text=True, timeout=120, check=False
    )


def test_scrape_config_is_valid() -> None:
    done = promtool("check", "config", "prometheus.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_rules_are_valid() -> None:
    done = promtool("check", "rules", str(RULES))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 9 rules found" in done.stdout


@pytest.mark.parametrize("test_file", RULE_TESTS, ids=lambda path: path.name)
def test_rule_unit_tests_pass(test_file: Path) -> None:
    done = promtool("test", "rules", str(test_file))
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_has_a_rule_unit_test() -> None:
    assert RULE_TESTS, "no promtool rule tests found"
    tested = "\n".join(path.read_text(encoding="utf-8") for path in RULE_TESTS)
    rules = RULES.read_text(encoding="utf-8")
    for alert in ALERTS:
        assert f"alert: {alert}" in rules
        assert f"alertname: {alert}" in tested, alert
