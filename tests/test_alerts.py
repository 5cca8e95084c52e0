"""The shipped Prometheus alerts load, behave as their unit tests say, and stay in step.

deploy/prometheus/rotator-rules.yaml is checked and unit-tested with the real
promtool (`make test` puts it at .venv/bin/promtool, out of Debian's prometheus
package); its tests must hold a firing and a quiet case for every alert, and
must fail when a rule is changed under them. The Prometheus Operator copy,
deploy/kubernetes/prometheusrule.yaml, must carry the very same groups and the
shape the operator's CRD accepts. Every metric an alert reads must be one that
rotator exports, and deploy/README.md must explain every alert. Fed the files
real `run-once`/`run-now --metrics-file` runs wrote, the cron alerts fire and
stay quiet as documented.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import kubernetes_validate.utils as kubernetes_validate
import pytest
import yaml
from auth0_env import EmulatedTenant
from conftest import (
    KUBERNETES,
    ROOT,
    RULES,
    break_services_id,
    one,
    promtool,
    run_cli,
    samples,
)
from prometheus_client.parser import text_string_to_metric_families

RULE_TESTS = ROOT / "deploy" / "prometheus" / "rotator-rules.test.yaml"
PROMETHEUS_RULE = KUBERNETES / "prometheusrule.yaml"
DEPLOY_README = ROOT / "deploy" / "README.md"

# What rotator exports: `rotator start` at /metrics, and `run-once --metrics-file`
# (the same per-connection gauges plus the two rotator_last_run_* gauges).
EXPORTED_METRICS = {
    "rotator_secret_expiry_timestamp_seconds",
    "rotator_secret_issued_timestamp_seconds",
    "rotator_secret_due_timestamp_seconds",
    "rotator_last_success_timestamp_seconds",
    "rotator_check_success",
    "rotator_secret_apple_accepted",
    "rotator_rotations_total",
    "rotator_checks_total",
    "rotator_hook_failures_total",
    "rotator_log_write_errors_total",
    "rotator_config_reload_failures_total",
    "rotator_config_last_reload_successful",
    "rotator_build_info",
    "rotator_last_run_timestamp_seconds",
    "rotator_last_run_success",
}
# PromQL functions and keywords the rules may use; any other name is a metric.
PROMQL_WORDS = {
    "time", "absent", "increase", "rate", "min", "max", "sum", "count",
    "and", "or", "unless", "on", "ignoring", "by", "without", "bool", "offset",
}
SEVERITIES = {"warning", "critical"}
ANNOTATIONS = {"summary", "description", "runbook"}

# The PrometheusRule fields of the operator's CRD (monitoring.coreos.com/v1,
# example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml).
OPERATOR_SPEC_FIELDS = {"groups"}
OPERATOR_GROUP_FIELDS = {
    "name", "interval", "labels", "limit", "partial_response_strategy", "query_offset", "rules",
}
OPERATOR_RULE_FIELDS = {"alert", "record", "expr", "for", "keep_firing_for", "labels",
                        "annotations"}
OPERATOR_DURATION = re.compile(
    r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?"
    r"(([0-9]+)ms)?)$"
)


def _load(path: Path) -> dict[str, Any]:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(doc, dict), f"{path.name}: not a mapping"
    return doc


def _alerts() -> dict[str, dict[str, Any]]:
    """The alerting rules of rotator-rules.yaml, by name."""
    (group,) = _load(RULES)["groups"]
    return {rule["alert"]: rule for rule in group["rules"]}


def _metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (label matchers, ranges, label lists dropped)."""
    expr = re.sub(r"\{[^}]*\}", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    expr = re.sub(r"\b(on|ignoring|by|without|group_left|group_right)\s*\([^)]*\)", r"\1", expr)
    return set(re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", expr)) - PROMQL_WORDS


def test_promtool_checks_the_rule_file() -> None:
    """promtool check rules accepts rotator-rules.yaml and counts every alert in it."""
    proc = promtool("check", "rules", str(RULES))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(_alerts())} rules found" in proc.stdout


@pytest.mark.slow
def test_promtool_unit_tests_pass() -> None:
    """promtool test rules passes every case in rotator-rules.test.yaml."""
    proc = promtool("test", "rules", str(RULE_TESTS))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


@pytest.mark.parametrize(
    ("alert", "field", "before", "after"),
    [
        ("RotatorSecretExpiresSoon", "expr", "14 * 86400", "15 * 86400"),
        ("RotatorCheckFailing", "for", "2h", "1h"),
        ("RotatorRunFailed", "expr", " unless on (job, instance) rotator_check_success == 0", ""),
    ],
    ids=["14.1-days-would-fire", "1h-failure-would-fire", "unless-dropped-double-warns"],
)
def test_promtool_unit_tests_catch_a_changed_rule(
    tmp_path: Path, alert: str, field: str, before: str, after: str,
) -> None:
    """The unit tests fail when a threshold, a for: or the de-duplication of a rule changes."""
    doc = _load(RULES)
    (rule,) = [r for r in doc["groups"][0]["rules"] if r.get("alert") == alert]
    assert before in rule[field]
    rule[field] = rule[field].replace(before, after)
    (tmp_path / RULES.name).write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    tests = _load(RULE_TESTS)  # only the groups with a case for this alert, for speed
    tests["tests"] = [
        group for group in tests["tests"]
        if any(case["alertname"] == alert for case in group.get("alert_rule_test", []))
    ]
    (tmp_path / RULE_TESTS.name).write_text(yaml.safe_dump(tests), encoding="utf-8")

    proc = promtool("test", "rules", str(tmp_path / RULE_TESTS.name))

    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, f"the tests did not notice {alert} changed\n{output}"
    assert f"alertname: {alert}," in output


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    """Each alert has a test case where it fires, with labels and annotations, and one where
    it stays quiet; the tests name no alert that does not exist."""
    alerts = _alerts()
    tests = _load(RULE_TESTS)
    assert tests["rule_files"] == [RULES.name]
    firing: set[str] = set()
    quiet: set[str] = set()
    for group in tests["tests"]:
        for case in group.get("alert_rule_test", []):
            name = case["alertname"]
            assert name in alerts, f"{group['name']}: tests an unknown alert {name}"
            expected = case.get("exp_alerts") or []
            if not expected:
                quiet.add(name)
                continue
            firing.add(name)
            rule = alerts[name]
            for exp in expected:
                assert exp["exp_labels"]["severity"] == rule["labels"]["severity"], name
                assert set(exp["exp_annotations"]) == set(rule["annotations"]), (
                    f"{group['name']}: {name} must expect every annotation, rendered"
                )
    assert set(alerts) - firing == set(), "alerts with no case where they fire"
    assert set(alerts) - quiet == set(), "alerts with no case where they stay quiet"


def test_every_alert_has_severity_for_and_runbook() -> None:
    """Each alert has a severity, a for: duration, a summary, a description and a one-line
    runbook."""
    alerts = _alerts()
    assert len(alerts) >= 8
    (group,) = _load(RULES)["groups"]
    assert group["name"] == "rotator"
    assert all("alert" in rule for rule in group["rules"]), "alerting rules only"
    for name, rule in alerts.items():
        assert re.fullmatch(r"Rotator[A-Za-z]+", name), name
        assert rule["labels"]["severity"] in SEVERITIES, name
        assert OPERATOR_DURATION.fullmatch(str(rule["for"])), f"{name}: for: {rule['for']!r}"
        assert set(rule["annotations"]) == ANNOTATIONS, name
        for key, text in rule["annotations"].items():
            assert text.strip(), f"{name}: {key} is empty"
            assert "\n" not in text.strip(), f"{name}: {key} is not one line"
    assert {alerts["RotatorAppleRefusesSecret"]["labels"]["severity"]} == {"critical"}
    assert alerts["RotatorCheckFailing"]["for"] == "2h"


def test_alerts_read_only_metrics_rotator_exports() -> None:
    """Every metric name an alert expression reads is one that rotator exports."""
    for name, rule in _alerts().items():
        metrics = _metric_names(rule["expr"])
        assert metrics, f"{name}: reads no metric"
        unknown = metrics - EXPORTED_METRICS
        assert not unknown, (
            f"{name} reads {sorted(unknown)}, which rotator does not export "
            "(or add a PromQL function to PROMQL_WORDS)"
        )


def test_unit_tests_feed_only_metrics_rotator_exports() -> None:
    """The unit tests' input series are all metrics rotator exports, so they test real names."""
    for group in _load(RULE_TESTS)["tests"]:
        for series in group.get("input_series") or []:
            name = series["series"].partition("{")[0]
            assert name in EXPORTED_METRICS, f"{group['name']}: {name}"


def test_prometheusrule_carries_the_same_groups() -> None:
    """kubernetes/prometheusrule.yaml holds exactly the groups of the plain rule file."""
    plain = _load(RULES)
    assert set(plain) == {"groups"}
    operator = _load(PROMETHEUS_RULE)
    assert operator["spec"]["groups"] == plain["groups"]


def test_prometheusrule_has_the_operator_shape() -> None:
    """The PrometheusRule (a CRD, no bundled schema) uses only fields its CRD defines."""
    obj = _load(PROMETHEUS_RULE)
    with pytest.raises(kubernetes_validate.SchemaNotFoundError):
        kubernetes_validate.validate(obj, kubernetes_validate.latest_version(), strict=True)

    assert obj["apiVersion"] == "monitoring.coreos.com/v1"
    assert obj["kind"] == "PrometheusRule"
    assert set(obj) == {"apiVersion", "kind", "metadata", "spec"}
    assert set(obj["metadata"]) == {"name", "labels"}, "applied with -n like the others"
    assert obj["metadata"]["labels"]["app.kubernetes.io/name"] == "rotator"
    assert set(obj["spec"]) <= OPERATOR_SPEC_FIELDS
    groups = obj["spec"]["groups"]
    assert len({g["name"] for g in groups}) == len(groups), "group names are a map key"
    for group in groups:
        assert set(group) <= OPERATOR_GROUP_FIELDS, group["name"]
        assert isinstance(group["name"], str)
        assert group["name"]
        for rule in group["rules"]:
            assert set(rule) <= OPERATOR_RULE_FIELDS, rule
            assert ("alert" in rule) != ("record" in rule), rule
            assert isinstance(rule["expr"], str | int)
            for key in ("for", "keep_firing_for"):
                if key in rule:
                    assert OPERATOR_DURATION.fullmatch(rule[key]), f"{key}: {rule[key]!r}"
            for key in ("labels", "annotations"):
                assert all(
                    isinstance(k, str) and isinstance(v, str)
                    for k, v in rule.get(key, {}).items()
                ), f"{rule.get('alert')}: {key} must map strings to strings"


def test_prometheusrule_sits_with_the_other_manifests() -> None:
    """Like every manifest in deploy/kubernetes, the PrometheusRule names no namespace and
    carries rotator's name label."""
    for path in sorted(KUBERNETES.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc:
                assert "namespace" not in doc["metadata"], f"{path.name}: kubectl -n decides"
                assert doc["metadata"]["labels"]["app.kubernetes.io/name"] == "rotator"


def test_make_installs_promtool_for_test_and_lint() -> None:
    """`make test` and `make lint` depend on the rule that installs .venv/bin/promtool."""
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^\$\(BIN\)/promtool:.*\n\t.*scripts/install-promtool", makefile, re.M)
    for target in ("test", "lint"):
        (line,) = re.findall(rf"^{target}:.*$", makefile, re.M)
        assert "$(BIN)/promtool" in line.split(), line


def test_deploy_readme_explains_every_alert() -> None:
    """deploy/README.md's Alerts section names every alert and how to run the rule tests."""
    readme = DEPLOY_README.read_text(encoding="utf-8")
    section = readme.partition("\n## Alerts\n")[2].partition("\n## ")[0]
    assert section, "deploy/README.md has no Alerts section"
    for name in _alerts():
        assert f"`{name}`" in section, name
    assert "promtool test rules deploy/prometheus/rotator-rules.test.yaml" in section
    assert "textfile" in section


# -- the shipped cron alerts read what rotator's --metrics-file wrote -------------------------


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
