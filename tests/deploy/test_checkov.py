"""checkov scans the Kubernetes manifests and the Dockerfile for misconfigurations. Any finding fails the test
unless the manifest skips that check with a written reason.

checkov pins many packages, so it lives in its own virtual environment under var/tools, made on first use (about a
minute, once) with a pinned version so that a new release's new checks do not change the result by themselves.
It runs with --skip-download: nothing is sent anywhere.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from scripts.stack import ROOT

CHECKOV_VERSION = "3.3.30"
TOOLS = ROOT / "var" / "tools"
VENV = TOOLS / "checkov"
STAMP = VENV / ".installed"


def checkov() -> Path:
    executable = VENV / "bin" / "checkov"
    if STAMP.exists() and STAMP.read_text() == CHECKOV_VERSION and executable.exists():
        return executable
    shutil.rmtree(VENV, ignore_errors=True)
    TOOLS.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, timeout=120)
    result = subprocess.run([str(VENV / "bin" / "python"), "-m", "pip", "install", "--quiet",
                             "--disable-pip-version-check", f"checkov=={CHECKOV_VERSION}"],
                            capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        pytest.fail(f"could not install checkov {CHECKOV_VERSION} into {VENV}: {result.stderr[-2000:]}")
    STAMP.write_text(CHECKOV_VERSION)
    return executable


def scan(*targets: str, framework: str) -> list[dict[str, Any]]:
    command = [str(checkov()), *targets, "--framework", framework, "--skip-download", "--output", "json",
               "--compact", "--quiet"]
    env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/root"), "LOG_LEVEL": "ERROR"}
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode in (0, 1), f"checkov crashed: {result.stderr[-2000:]}"
    reports = json.loads(result.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    assert reports and all(r.get("check_type") == framework for r in reports), result.stdout[:500]
    return reports


def findings(reports: list[dict[str, Any]]) -> list[str]:
    return [f"{c['check_id']} {c['resource']} ({c['file_path']}): {c['check_name']}"
            for r in reports for c in r["results"].get("failed_checks", [])]


def test_the_kubernetes_manifests_have_no_finding() -> None:
    reports = scan("--directory", "deploy/k8s", framework="kubernetes")
    assert sum(r["summary"]["passed"] for r in reports) > 100, "checkov scanned nothing"
    assert not findings(reports), "\n".join(findings(reports))
    # Skips are allowed only with a reason written next to them in the manifest.
    for report in reports:
        for check in report["results"].get("skipped_checks", []):
            reason = check.get("check_result", {}).get("suppress_comment", "")
            assert len(reason.split()) >= 5, f"{check['check_id']} on {check['resource']} skipped without a reason"


def test_the_dockerfile_has_no_finding() -> None:
    reports = scan("--file", "deploy/Dockerfile", framework="dockerfile")
    assert sum(r["summary"]["passed"] for r in reports) > 10, "checkov scanned nothing"
    assert not findings(reports), "\n".join(findings(reports))
    assert not any(r["results"].get("skipped_checks") for r in reports)
