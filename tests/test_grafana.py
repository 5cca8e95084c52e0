"""The Grafana dashboard imports as it is: one datasource input, no hard-coded datasource.

deploy/grafana/rotator-dashboard.json is what Grafana's "Import dashboard"
takes: the Prometheus datasource is asked for at import (``__inputs``,
``${DS_PROMETHEUS}``), and it shows what operators look at first. That every
panel's query returns data from a real Prometheus is proven in
tests/test_prometheus.py.
"""

from __future__ import annotations

import json
import re
from typing import Any

import yaml
from conftest import DASHBOARD, RULES

DATASOURCE = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}


def _dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return loaded


def _datasources(node: Any) -> list[Any]:
    """Every ``datasource`` value anywhere in the dashboard."""
    found: list[Any] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "datasource":
                found.append(value)
            found += _datasources(value)
    elif isinstance(node, list):
        for value in node:
            found += _datasources(value)
    return found


def test_datasource_is_an_import_input_not_hard_coded() -> None:
    """One Prometheus datasource input, and every panel, query and variable uses it."""
    dashboard = _dashboard()
    [source] = dashboard["__inputs"]
    assert (source["name"], source["type"], source["pluginId"]) == (
        "DS_PROMETHEUS", "datasource", "prometheus")
    used = _datasources(dashboard)
    assert used
    assert all(value == DATASOURCE for value in used), used
    for panel in dashboard["panels"]:
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], panel["title"]
        assert all(t["datasource"] == DATASOURCE for t in panel["targets"])
    assert dashboard["id"] is None  # Grafana gives it one at import


def test_panels_show_what_the_contract_exports() -> None:
    """Expiry in days, Apple's verdict, last success, check success, rotations and failures,
    hook failures: one panel each, each querying the metric it is about."""
    exprs = {p["title"]: " ".join(t["expr"] for t in p["targets"])
             for p in _dashboard()["panels"]}
    wanted = {
        "Days until each secret expires": "rotator_secret_expiry_timestamp_seconds",
        "Apple's verdict on the live secret": "rotator_secret_apple_accepted",
        "Last success": "rotator_last_success_timestamp_seconds",
        "Check success": "rotator_check_success",
        "Rotations and failures": "rotator_rotations_total",
        "Hook failures": "rotator_hook_failures_total",
    }
    assert set(exprs) == set(wanted)
    for title, metric in wanted.items():
        assert metric in exprs[title], title
    assert 'rotator_checks_total{result="failure"' in exprs["Rotations and failures"]


def _alert_days(name: str) -> float:
    doc = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    [expr] = [r["expr"] for g in doc["groups"] for r in g["rules"] if r.get("alert") == name]
    match = re.fullmatch(
        r"rotator_secret_expiry_timestamp_seconds - time\(\) < (\d+) \* 86400", expr.strip())
    assert match, expr
    return float(match.group(1))


def test_expiry_panel_draws_the_alert_thresholds() -> None:
    """The expiry panel draws, as threshold lines, the days at which the two expiry alerts fire."""
    [panel] = [p for p in _dashboard()["panels"]
               if p["title"] == "Days until each secret expires"]
    defaults = panel["fieldConfig"]["defaults"]
    assert defaults["custom"]["thresholdsStyle"]["mode"] in ("line", "dashed", "line+area",
                                                              "dashed+area")
    steps = {step["value"] for step in defaults["thresholds"]["steps"]} - {None}
    assert steps == {_alert_days("RotatorSecretExpiresSoon"),
                     _alert_days("RotatorSecretExpiryImminent")}
    assert "/ 86400" in panel["targets"][0]["expr"]
    assert defaults["unit"] == "d"


def test_panels_do_not_overlap() -> None:
    """Each panel has its own place on the 24-column grid."""
    taken: set[tuple[int, int]] = set()
    for panel in _dashboard()["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        cells = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"])
                 for y in range(grid["y"], grid["y"] + grid["h"])}
        assert not cells & taken, panel["title"]
        taken |= cells
