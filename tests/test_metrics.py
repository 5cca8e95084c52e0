"""Tests for rotator.metrics: what each outcome does to the exported series."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

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
