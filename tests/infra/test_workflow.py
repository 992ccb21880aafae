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


def triggers():
    document = yaml.safe_load(WORKFLOW.read_text())
    return document.get("on") or document.get(True)  # YAML 1.1 reads `on` as true


def test_tests_gate_everything_and_run_the_readme_command():
    all_jobs = jobs()
    assert any(step.get("run") == "make test" for step in all_jobs["test"]["steps"])
    assert (
        all_jobs["preview-dev-pr"]["needs"] == "test" and all_jobs["deploy-dev"]["needs"] == "test"
    )
    assert all_jobs["preview-prod"]["needs"] == "deploy-dev"
    assert all_jobs["deploy-prod"]["needs"] == "preview-prod"


def mentions_prod(job):
    text = yaml.safe_dump(job).lower()
    return "prod" in text


def test_pull_requests_never_run_with_prod_credentials():
    assert "pull_request_target" not in triggers()  # it would hand secrets to fork code
    for name, job in jobs().items():
        condition = job.get("if", "")
        runs_on_pull_requests = "pull_request" in condition or (
            name != "test" and "refs/heads/main" not in condition
        )
        if name == "test":
            assert "environment" not in job and "id-token" not in str(job.get("permissions"))
            continue
        if runs_on_pull_requests:
            assert not mentions_prod(job), name
            # Only branches of this repository, never forks, and only when dev is isolated.
            assert "head.repo.full_name == github.repository" in condition, name
            assert "vars.PR_PREVIEW_DEV == 'true'" in condition, name
            roles = [
                s["with"]["role-to-assume"]
                for s in job["steps"]
                if "with" in s and "role-to-assume" in s["with"]
            ]
            assert roles == ["${{ vars.AWS_DEV_PREVIEW_ROLE_ARN }}"], name


def test_prod_runs_only_from_main_and_waits_for_an_approval_after_its_preview():
    all_jobs = jobs()
    for name, job in all_jobs.items():
        if mentions_prod(job):
            assert "refs/heads/main" in job["if"] and "push" in job["if"], name
    assert all_jobs["deploy-prod"]["environment"] == "prod"
    assert all_jobs["preview-prod"]["environment"] == "prod-preview"
    preview_runs = [s["run"] for s in all_jobs["preview-prod"]["steps"] if "run" in s]
    assert any("infra.deploy preview --stack prod" in run for run in preview_runs)
    assert all_jobs["deploy-dev"]["environment"] == "dev"


def test_deploys_use_oidc_the_lock_and_never_print_outputs():
    for name in ("preview-dev-pr", "deploy-dev", "preview-prod", "deploy-prod"):
        job = jobs()[name]
        assert job["permissions"]["id-token"] == "write"
        runs = [step["run"] for step in job["steps"] if "run" in step]
        pulumi = [run for run in runs if "infra.deploy" in run]
        assert pulumi and all("--suppress-outputs" in run for run in pulumi)
    text = WORKFLOW.read_text()
    assert "aws-access-key-id" not in text and "AWS_SECRET_ACCESS_KEY" not in text
