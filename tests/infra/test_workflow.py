"""The GitOps workflow, validated as far as this machine allows (GitHub's schema + policy)."""

import subprocess
import sys
from pathlib import Path

import yaml

WORKFLOW = Path(__file__).resolve().parents[2] / ".github" / "workflows" / "ci-cd.yml"


def jobs():
    return yaml.safe_load(WORKFLOW.read_text())["jobs"]


def test_the_workflow_matches_githubs_schema():
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.github-workflows",
            str(WORKFLOW),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_tests_gate_everything_and_run_the_readme_command():
    all_jobs = jobs()
    assert any(step.get("run") == "make test" for step in all_jobs["test"]["steps"])
    assert all_jobs["preview"]["needs"] == "test" and all_jobs["deploy-dev"]["needs"] == "test"
    assert all_jobs["deploy-prod"]["needs"] == "deploy-dev"


def test_prod_waits_for_an_environment_approval_and_previews_run_on_pull_requests():
    all_jobs = jobs()
    assert all_jobs["deploy-prod"]["environment"] == "prod"
    assert "pull_request" in all_jobs["preview"]["if"]
    assert "refs/heads/main" in all_jobs["deploy-dev"]["if"]


def test_deploys_use_oidc_the_lock_and_never_print_outputs():
    for name in ("preview", "deploy-dev", "deploy-prod"):
        job = jobs()[name]
        assert job["permissions"]["id-token"] == "write"
        runs = [step["run"] for step in job["steps"] if "run" in step]
        pulumi = [run for run in runs if "infra.deploy" in run]
        assert pulumi and all("--suppress-outputs" in run for run in pulumi)
    text = WORKFLOW.read_text()
    assert "aws-access-key-id" not in text and "AWS_SECRET_ACCESS_KEY" not in text
