"""`run-once`/`run-now --metrics-file`: what a cron run leaves for node_exporter.

The runs are the real CLI in this process (``cli.main``, the console script's
code path) against the emulator over TLS; the file is checked by parsing it,
by the real ``promtool check metrics``, and by feeding it to the shipped alert
rules with ``promtool test rules``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
import yaml
from auth0_env import SERVICES_ID, EmulatedTenant
from conftest import assert_refused, promtool_path, run_cli, run_rotator
from prometheus_client.parser import text_string_to_metric_families

import rotator
from rotator import metrics
from rotator.outcome import Outcome

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "deploy" / "prometheus" / "rotator-rules.yaml"
PER_CONNECTION = (
    "rotator_check_success",
    "rotator_secret_expiry_timestamp_seconds",
    "rotator_secret_issued_timestamp_seconds",
    "rotator_secret_due_timestamp_seconds",
    "rotator_last_success_timestamp_seconds",
    "rotator_secret_apple_accepted",
)




def samples(path: Path) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """The file's samples: metric name -> {sorted labels: value}."""
    found: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(path.read_text(encoding="utf-8")):
        for sample in family.samples:
            found.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def labels(tenant: EmulatedTenant, connection: str = "apple") -> tuple[tuple[str, str], ...]:
    return (("connection", connection), ("tenant", tenant.emu.domain))


def one(found: dict[str, dict[tuple[tuple[str, str], ...], float]], name: str) -> float:
    """The value of an unlabelled metric."""
    (value,) = found[name].values()
    return value


def _promtool() -> str:
    return promtool_path()


def promtool(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([_promtool(), *args], input=stdin, capture_output=True, text=True,
                          timeout=60, check=False)


def break_services_id(tenant: EmulatedTenant, connection: str) -> None:
    """Make the stored connection name another Services ID: rotator refuses it at step read."""
    options = dict(tenant.stored(connection)["options"])
    options["client_id"] = "com.example.somebody-else"
    tenant.emu.set_connection_options(connection, options)


# -- written after every run -------------------------------------------------------


def test_a_successful_run_writes_every_gauge(
    tenant: EmulatedTenant, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """After a rotation the file carries the run, the connection's gauges and build info."""
    tenant.add(client_secret=None)
    prom = tmp_path / "rotator.prom"
    before = time.time()
    run = run_cli("run-once", "--config", str(tenant.write_config()), "--metrics-file", str(prom),
                  capsys=capsys)
    after = time.time()

    assert run.code == 0, run.stderr
    found = samples(prom)
    assert one(found, "rotator_last_run_success") == 1
    assert before <= one(found, "rotator_last_run_timestamp_seconds") <= after
    assert found["rotator_build_info"] == {(("version", rotator.__version__),): 1}
    live = jwt.decode(tenant.stored("apple")["options"]["client_secret"],
                      options={"verify_signature": False})
    mine = labels(tenant)
    assert found["rotator_check_success"] == {mine: 1}
    assert found["rotator_secret_apple_accepted"] == {mine: 1}
    assert found["rotator_secret_issued_timestamp_seconds"] == {mine: live["iat"]}
    assert found["rotator_secret_expiry_timestamp_seconds"] == {mine: live["exp"]}
    assert found["rotator_secret_due_timestamp_seconds"] == {mine: live["iat"] + 30 * 86400}
    assert before <= found["rotator_last_success_timestamp_seconds"][mine] <= after


def test_a_failed_run_records_last_run_success_0(
    tenant: EmulatedTenant, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A run refused at step read still writes its file: run success 0, check success 0."""
    tenant.add()
    break_services_id(tenant, "apple")
    prom = tmp_path / "rotator.prom"
    run = run_cli("run-once", "--config", str(tenant.write_config()), "--metrics-file", str(prom),
                  capsys=capsys)

    assert run.code == 1, run.stderr
    found = samples(prom)
    assert one(found, "rotator_last_run_success") == 0
    assert "rotator_last_run_timestamp_seconds" in found
    assert found["rotator_check_success"] == {labels(tenant): 0}
    assert "rotator_last_success_timestamp_seconds" not in found
    assert "rotator_build_info" in found


def test_run_now_writes_the_file_too(
    tenant: EmulatedTenant, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """run-now takes --metrics-file as run-once does."""
    tenant.add()
    prom = tmp_path / "rotator.prom"
    run = run_cli("run-now", "--config", str(tenant.write_config()), "--metrics-file", str(prom),
                  capsys=capsys)

    assert run.code == 0, run.stderr
    found = samples(prom)
    assert one(found, "rotator_last_run_success") == 1
    assert found["rotator_check_success"] == {labels(tenant): 1}


def test_a_connection_failing_now_keeps_its_previous_last_success(
    tenant: EmulatedTenant, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A failing connection's last success carries over from the last file; the other's moves."""
    tenant.add("apple")
    tenant.add("apple-ios", services_id="com.example.ios")
    cfg = str(tenant.write_config([("apple", SERVICES_ID), ("apple-ios", "com.example.ios")]))
    prom = tmp_path / "rotator.prom"
    assert run_cli("run-once", "--config", cfg, "--metrics-file", str(prom),
                   capsys=capsys).code == 0
    first = samples(prom)["rotator_last_success_timestamp_seconds"]
    assert set(first) == {labels(tenant, "apple"), labels(tenant, "apple-ios")}

    break_services_id(tenant, "apple-ios")
    run = run_cli("run-once", "--config", cfg, "--metrics-file", str(prom), capsys=capsys)

    assert run.code == 1, run.stderr
    found = samples(prom)
    last = found["rotator_last_success_timestamp_seconds"]
    assert last[labels(tenant, "apple-ios")] == first[labels(tenant, "apple-ios")]
    assert last[labels(tenant, "apple")] == one(found, "rotator_last_run_timestamp_seconds")
    assert last[labels(tenant, "apple")] > first[labels(tenant, "apple")]
    assert found["rotator_check_success"] == {labels(tenant, "apple"): 1,
                                              labels(tenant, "apple-ios"): 0}


def test_a_connection_abandoned_by_a_signal_keeps_its_previous_last_success(
    tmp_path: Path,
) -> None:
    """A connection a SIGTERM stopped before its check is no success: its last success stays."""
    prom = tmp_path / "rotator.prom"
    checked = Outcome(connection="apple", tenant="t.example", checked=True, exp=2_000)
    metrics.write_textfile(prom, [checked], now=1_000.0, success=True)
    abandoned = Outcome(connection="apple", tenant="t.example", abandoned=True)
    metrics.write_textfile(prom, [abandoned], now=2_000.0, success=False)

    found = samples(prom)
    key = (("connection", "apple"), ("tenant", "t.example"))
    assert found["rotator_last_success_timestamp_seconds"] == {key: 1_000.0}
    assert one(found, "rotator_last_run_success") == 0


# -- atomic, and readable by node_exporter -----------------------------------------------


def test_the_file_is_replaced_by_rename_never_rewritten_in_place(
    tenant: EmulatedTenant, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A second run renames a new file over the old: the old inode keeps its text, no temp left."""
    tenant.add()
    cfg = str(tenant.write_config())
    textfiles = tmp_path / "textfile_collector"
    textfiles.mkdir()
    prom = textfiles / "rotator.prom"
    assert run_cli("run-once", "--config", cfg, "--metrics-file", str(prom),
                   capsys=capsys).code == 0
    old_text = prom.read_bytes()
    with prom.open("rb") as old:
        old_inode = os.fstat(old.fileno()).st_ino
        assert run_cli("run-once", "--config", cfg, "--metrics-file", str(prom),
                       capsys=capsys).code == 0
        assert old.read() == old_text, "the file a reader held open was changed in place"

    assert prom.stat().st_ino != old_inode
    assert prom.read_bytes() != old_text
    assert sorted(p.name for p in textfiles.iterdir()) == ["rotator.prom"]


def test_the_file_is_readable_by_node_exporter_under_a_strict_umask(
    tenant: EmulatedTenant, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Under systemd's UMask=0077 the file is still 0644: node_exporter runs as another user."""
    tenant.add()
    prom = tmp_path / "rotator.prom"
    previous = os.umask(0o077)
    try:
        run = run_cli("run-once", "--config", str(tenant.write_config()),
                      "--metrics-file", str(prom), capsys=capsys)
    finally:
        os.umask(previous)

    assert run.code == 0, run.stderr
    assert prom.stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize("outcome", ["success", "failure"])
def test_promtool_check_metrics_accepts_the_file(
    outcome: str, tenant: EmulatedTenant, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`promtool check metrics` finds nothing wrong with the file of a good or a failed run."""
    tenant.add()
    if outcome == "failure":
        break_services_id(tenant, "apple")
    prom = tmp_path / "rotator.prom"
    run = run_cli("run-once", "--config", str(tenant.write_config()), "--metrics-file", str(prom),
                  capsys=capsys)
    assert run.code == (0 if outcome == "success" else 1), run.stderr

    checked = promtool("check", "metrics", stdin=prom.read_text(encoding="utf-8"))
    assert (checked.returncode, checked.stdout + checked.stderr) == (0, "")


# -- refused before anything is contacted --------------------------------------------------


def test_a_metrics_file_in_a_missing_directory_is_refused_before_any_contact(
    tenant: EmulatedTenant, tmp_path: Path
) -> None:
    """A path whose directory does not exist: exit 2 naming it, Auth0 and Apple never asked."""
    tenant.add()
    prom = tmp_path / "no-such-dir" / "rotator.prom"
    run = run_rotator("run-once", "--config", str(tenant.write_config()),
                      "--metrics-file", str(prom))

    assert_refused(run, "--metrics-file", str(prom.parent), "does not exist",
                   secrets=[tenant.client_secret])
    assert tenant.emu.journal == []
    assert not prom.parent.exists()


def test_a_metrics_file_that_is_a_directory_is_refused_before_any_contact(
    tenant: EmulatedTenant, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A directory given as the file: exit 2 naming --metrics-file, nothing contacted."""
    tenant.add()
    prom = tmp_path / "rotator.prom"
    prom.mkdir()
    run = run_cli("run-now", "--config", str(tenant.write_config()), "--metrics-file", str(prom),
                  capsys=capsys)

    assert_refused(run, "--metrics-file", str(prom))
    assert tenant.emu.journal == []


# -- the shipped cron alerts read what rotator writes -----------------------------------------


def _input_series(prom: Path, instance: str, count: int) -> list[dict[str, str]]:
    """The file's samples as node_exporter would expose them, ``count`` times, the run at time 0.

    Each sample gets node_exporter's job and instance labels; timestamps are
    shifted by the run's own time, so the run happened at time 0.
    """
    text = prom.read_text(encoding="utf-8")
    ran = one(samples(prom), "rotator_last_run_timestamp_seconds")
    series = []
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            value = sample.value
            if sample.name.endswith("_timestamp_seconds"):
                value -= ran
            tags = {**sample.labels, "job": "node", "instance": instance}
            selector = ", ".join(f"{k}={json.dumps(v)}" for k, v in sorted(tags.items()))
            series.append({"series": f"{sample.name}{{{selector}}}",
                           "values": f"{value:.0f}x{count}"})
    return series


def test_shipped_cron_alerts_fire_on_files_rotator_wrote(
    tenant: EmulatedTenant, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """RotatorRunFailed and RotatorRunsStopped, fed real files, fire and stay quiet as documented.

    host-a ran with a failing post_rotate hook (run failed, every check passed):
    RotatorRunFailed fires for it. host-b's connection failed at read:
    RotatorCheckFailing speaks for it, RotatorRunFailed does not. Neither ran
    again: RotatorRunsStopped fires for both after 26 hours, not before.
    """
    false = shutil.which("false")
    assert false is not None
    tenant.add()
    hook_failed, read_failed = tmp_path / "a.prom", tmp_path / "b.prom"
    cfg = tenant.write_config(extra=f"[hooks]\npost_rotate = {json.dumps([false])}\n")
    run = run_cli("run-now", "--config", str(cfg), "--metrics-file", str(hook_failed),
                  capsys=capsys)
    assert run.code == 1, run.stderr
    break_services_id(tenant, "apple")
    run = run_cli("run-once", "--config", str(tenant.write_config()),
                  "--metrics-file", str(read_failed), capsys=capsys)
    assert run.code == 1, run.stderr

    # The shipped expressions, `for:` and labels; their wording is tested in
    # deploy/prometheus/rotator-rules.test.yaml, so the annotations are left out.
    rules = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rules))
    samples_every, minutes = 5, 28 * 60
    node = {"job": "node", "severity": "warning"}
    alerts: list[dict[str, Any]] = [
        {"eval_time": "3h", "alertname": "RotatorRunFailed",
         "exp_alerts": [{"exp_labels": {**node, "instance": "host-a:9100"}}]},
        {"eval_time": "3h", "alertname": "RotatorCheckFailing",
         "exp_alerts": [{"exp_labels": {**node, "instance": "host-b:9100",
                                        "tenant": tenant.emu.domain, "connection": "apple"}}]},
        {"eval_time": "25h", "alertname": "RotatorRunsStopped", "exp_alerts": []},
        {"eval_time": "27h", "alertname": "RotatorRunsStopped",
         "exp_alerts": [{"exp_labels": {**node, "instance": "host-a:9100"}},
                        {"exp_labels": {**node, "instance": "host-b:9100"}}]},
        {"eval_time": "3h", "alertname": "RotatorMetricsAbsent", "exp_alerts": []},
        {"eval_time": "3h", "alertname": "RotatorSecretExpiresSoon", "exp_alerts": []},
    ]
    tests = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": f"{samples_every}m",
            "input_series": [*_input_series(hook_failed, "host-a:9100", minutes // samples_every),
                             *_input_series(read_failed, "host-b:9100", minutes // samples_every)],
            "alert_rule_test": alerts,
        }],
    }
    (tmp_path / "rules.test.yaml").write_text(yaml.safe_dump(tests))

    proc = promtool("test", "rules", str(tmp_path / "rules.test.yaml"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
