"""Tests for rotator.metrics: what each outcome does to the exported series.

Then `run-once`/`run-now --metrics-file`, what a cron run leaves for node_exporter: the
runs are the real CLI in this process (``cli.main``, the console script's code path)
against the emulator over TLS; the file is checked by parsing it and by the real
``promtool check metrics``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import jwt
import pytest
from auth0_env import EmulatedTenant
from conftest import SERVICES_ID, break_services_id, one, promtool, run_cli, samples
from prometheus_client.parser import text_string_to_metric_families

import rotator
from rotator import metrics
from rotator.metrics import Metrics
from rotator.outcome import Outcome, Step

TENANT = "example.eu.auth0.com"
LABELS = {"tenant": TENANT, "connection": "apple"}
NOW = 1_790_000_000.0


def sample(metrics: Metrics, name: str, **extra: str) -> float | None:
    """One sample of the registry for the test connection (None when absent)."""
    return metrics.registry.get_sample_value(name, {**LABELS, **extra})


# -- Metrics.record --------------------------------------------------------------------


def test_record_of_a_rotation_sets_gauges_and_counts_success() -> None:
    """A rotated outcome sets every gauge and counts a successful check and rotation."""
    metrics = Metrics()
    metrics.record(
        Outcome(connection="apple", tenant=TENANT, checked=True, due=True, reason="age",
                rotated=True, iat=1_000, exp=2_000, due_at=1_500),
        NOW,
    )
    assert sample(metrics, "rotator_checks_total", result="success") == 1
    assert sample(metrics, "rotator_checks_total", result="failure") is None
    assert sample(metrics, "rotator_rotations_total", result="success") == 1
    assert sample(metrics, "rotator_rotations_total", result="failure") is None
    assert sample(metrics, "rotator_secret_issued_timestamp_seconds") == 1_000
    assert sample(metrics, "rotator_secret_expiry_timestamp_seconds") == 2_000
    assert sample(metrics, "rotator_secret_due_timestamp_seconds") == 1_500
    assert sample(metrics, "rotator_last_success_timestamp_seconds") == NOW


def test_record_of_a_not_due_check_counts_no_rotation() -> None:
    """A not-due outcome counts a successful check, no rotation, and sets the gauges."""
    metrics = Metrics()
    outcome = Outcome(connection="apple", tenant=TENANT, checked=True, reason="not_due",
                      iat=1_000, exp=2_000, due_at=1_500)
    metrics.record(outcome, NOW)
    metrics.record(outcome, NOW + 60)
    assert sample(metrics, "rotator_checks_total", result="success") == 2
    assert sample(metrics, "rotator_rotations_total", result="success") is None
    assert sample(metrics, "rotator_rotations_total", result="failure") is None
    assert sample(metrics, "rotator_secret_expiry_timestamp_seconds") == 2_000
    assert sample(metrics, "rotator_secret_due_timestamp_seconds") == 1_500
    assert sample(metrics, "rotator_last_success_timestamp_seconds") == NOW + 60


def test_record_of_a_failed_read_counts_a_failed_check_and_keeps_the_gauges() -> None:
    """A read that failed counts a failed check, leaves the gauges and last success alone."""
    metrics = Metrics()
    metrics.record(
        Outcome(connection="apple", tenant=TENANT, checked=True, iat=1_000, exp=2_000,
                due_at=1_500),
        NOW,
    )
    metrics.record(
        Outcome(connection="apple", tenant=TENANT, step=Step.READ,
                error="500 Internal Server Error"),
        NOW + 60,
    )
    assert sample(metrics, "rotator_checks_total", result="failure") == 1
    assert sample(metrics, "rotator_checks_total", result="success") == 1
    assert sample(metrics, "rotator_rotations_total", result="failure") is None
    assert sample(metrics, "rotator_secret_expiry_timestamp_seconds") == 2_000
    assert sample(metrics, "rotator_last_success_timestamp_seconds") == NOW


def test_record_of_a_failed_write_counts_a_failed_rotation() -> None:
    """A due secret whose write failed: the check succeeded, the rotation failed."""
    metrics = Metrics()
    metrics.record(
        Outcome(connection="apple", tenant=TENANT, checked=True, due=True, reason="age",
                iat=1_000, exp=2_000, due_at=1_500, step=Step.WRITE, error="503"),
        NOW,
    )
    assert sample(metrics, "rotator_checks_total", result="success") == 1
    assert sample(metrics, "rotator_rotations_total", result="failure") == 1
    assert sample(metrics, "rotator_rotations_total", result="success") is None
    assert sample(metrics, "rotator_last_success_timestamp_seconds") is None


def test_metrics_are_labelled_per_tenant_and_connection() -> None:
    """Two connections keep separate series, each labelled tenant and connection."""
    metrics = Metrics()
    metrics.record(Outcome(connection="apple", tenant=TENANT, checked=True, exp=2_000), NOW)
    metrics.record(Outcome(connection="apple-2", tenant="other.auth0.com", checked=True,
                           exp=3_000), NOW)
    families = {f.name: f for f in text_string_to_metric_families(metrics.render().decode())}
    expiry = families["rotator_secret_expiry_timestamp_seconds"]
    assert {(s.labels["tenant"], s.labels["connection"], s.value) for s in expiry.samples} == {
        (TENANT, "apple", 2_000), ("other.auth0.com", "apple-2", 3_000)
    }
    assert families["rotator_checks"].type == "counter"


# -- --metrics-file: what a cron run leaves for node_exporter (the real CLI, the emulator) ----


PER_CONNECTION = (
    "rotator_check_success",
    "rotator_secret_expiry_timestamp_seconds",
    "rotator_secret_issued_timestamp_seconds",
    "rotator_secret_due_timestamp_seconds",
    "rotator_last_success_timestamp_seconds",
    "rotator_secret_apple_accepted",
)


def labels(tenant: EmulatedTenant, connection: str = "apple") -> tuple[tuple[str, str], ...]:
    return (("connection", connection), ("tenant", tenant.emu.domain))


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
