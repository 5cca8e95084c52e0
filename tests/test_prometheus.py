"""A real Prometheus scrapes a real `rotator start`, evaluates the shipped rules and the dashboard.

Prometheus (the server from Debian's prometheus package, `make test` puts it
at .venv/bin/prometheus) is started once for this module on 127.0.0.1, storage
in a temporary folder, scraping and evaluating every second, with
deploy/prometheus/rotator-rules.yaml loaded. It scrapes one `rotator start`
checking every second three connections on two emulated tenants:

* ``apple`` on tenant A, due at start (so a rotation is counted); later the
  emulated Apple refuses its live secret (its key revoked, a secret two days
  from expiry put in place);
* ``hooked`` on tenant A with a key of its own; later its secret is removed,
  so it rotates and the post-rotate hook, told to fail, fails;
* ``apple`` on tenant B; later Auth0 B stops answering.

What every alert's expression and every dashboard panel's query return is read
through Prometheus's HTTP API. The module runs in one worker, in file order:
the last test stops rotator.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from auth0_env import EmulatedTenant, register_apple
from conftest import (
    ANY_PORT,
    DASHBOARD,
    DAY,
    KEY_ID,
    RULES,
    SERVICES_ID,
    TEAM_ID,
    bound_listen,
    child_env,
    made_tool,
    wait_for,
)

from rotator import secret
from rotator.emulator import Emulator, Fault
from rotator.secret import generate_throwaway_key

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("prometheus")]

HOOKED_KEY_ID = "HOOKED0KEY"
HOOKED_SERVICES_ID = "com.example.ios"
# Seconds any awaited condition may take: generous, for a loaded machine (a
# deadline, not a wait: all is well within a few seconds on an idle one).
WITHIN = 90.0

# The metrics PRODUCT.md names for `rotator start`, with the labels each carries.
CONTRACT_METRICS = {
    "rotator_secret_expiry_timestamp_seconds": {"tenant", "connection"},
    "rotator_secret_issued_timestamp_seconds": {"tenant", "connection"},
    "rotator_secret_due_timestamp_seconds": {"tenant", "connection"},
    "rotator_last_success_timestamp_seconds": {"tenant", "connection"},
    "rotator_rotations_total": {"tenant", "connection", "result"},
    "rotator_checks_total": {"tenant", "connection", "result"},
    "rotator_check_success": {"tenant", "connection"},
    "rotator_secret_apple_accepted": {"tenant", "connection"},
    "rotator_build_info": {"version"},
}
# Which connection each alert names once the trouble starts (None: no labels to
# match: it fires for lack of rotator). Alerts on what only `run-once
# --metrics-file` writes, or on a log that cannot be written, are not raised by
# these scenarios: they must stay quiet here, and promtool's unit tests
# (deploy/prometheus/rotator-rules.test.yaml) make them fire.
FIRING = {
    "RotatorSecretExpiresSoon": ("A", "apple"),
    "RotatorSecretExpiryImminent": ("A", "apple"),
    "RotatorAppleRefusesSecret": ("A", "apple"),
    "RotatorCheckFailing": ("B", "apple"),
    "RotatorHookFailed": ("A", "hooked"),
}
ONLY_WHEN_ROTATOR_IS_GONE = {"RotatorMetricsAbsent"}
NOT_RAISED_BY_START = {"RotatorRunsStopped", "RotatorRunFailed", "RotatorLogWriteErrors",
                       "RotatorConfigReloadFailed"}


@dataclass
class Stack:
    """Prometheus, the rotator it scrapes, and the two tenants behind it."""

    prometheus: str  # http://127.0.0.1:PORT
    rotator_target: str  # 127.0.0.1:PORT
    a: EmulatedTenant
    b: EmulatedTenant
    hook_flag: Path  # the post-rotate hook fails while this file exists
    rotator: subprocess.Popen[bytes]
    rotator_log: Path
    quiet: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    troubled: bool = False

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's result vector (fails on any error Prometheus reports)."""
        answer = httpx.get(f"{self.prometheus}/api/v1/query", params={"query": expr}, timeout=10)
        body = answer.json()
        assert answer.status_code == 200, (expr, body)
        assert body["status"] == "success", (expr, body)
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def tenant(self, letter: str) -> str:
        return (self.a if letter == "A" else self.b).emu.domain


def _alerts() -> dict[str, str]:
    """Every alert of the shipped rules: its name and expression."""
    doc = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return {rule["alert"]: rule["expr"] for group in doc["groups"] for rule in group["rules"]}


def _config(stack_dir: Path, a: EmulatedTenant, b: EmulatedTenant, hooked_key: Path, listen: str,
            flag: Path) -> Path:
    def tenant_b(name: str) -> str:
        return (f'[[connections]]\nconnection = "{name}"\nclient_id = "{SERVICES_ID}"\n'
                f'domain = "{b.emu.domain}"\nca_bundle = "{b.emu.ca_pem_path}"\n'
                f'client_secret_file = "{b.secret_file}"\n'
                f'token_url = "{b.emu.apple_token_url}"\n'
                f'[connections.auth0]\nclient_id = "{b.client_id}"\n\n')

    hook = ["/bin/sh", "-c", f"cat >/dev/null; test ! -e '{flag}'"]
    body = (
        a.auth0_toml() + "\n" + a.apple_toml() + "\n"
        '[schedule]\ncheck_every = "1s"\ndeadline = "20s"\n\n'
        f'[server]\nlisten = "{listen}"\n\n'
        f"[hooks]\npost_rotate = {json.dumps(hook)}\n\n"
        f'[[connections]]\nconnection = "apple"\nclient_id = "{SERVICES_ID}"\n\n'
        f'[[connections]]\nconnection = "hooked"\nclient_id = "{HOOKED_SERVICES_ID}"\n'
        f'key_id = "{HOOKED_KEY_ID}"\nprivate_key_file = "{hooked_key}"\n\n'
        + tenant_b("apple")
    )
    path = stack_dir / "rotator.toml"
    path.write_text(body)
    return path


def _prometheus_config(stack_dir: Path, target: str) -> Path:
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s",
                   "scrape_timeout": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [{"job_name": "rotator", "static_configs": [{"targets": [target]}]}],
    }
    path = stack_dir / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def _start_prometheus(stack_dir: Path, config: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Prometheus on a port the system picks, and its URL (read back from its log)."""
    log_path = stack_dir / "prometheus.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [made_tool("prometheus", "install-promtool"), f"--config.file={config}",
             f"--storage.tsdb.path={stack_dir / 'data'}",
             f"--web.listen-address={ANY_PORT}", "--log.level=info"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log,
        )

    def listening() -> str | None:
        found = re.search(r'msg="Listening on" address=(\S+)', log_path.read_text())
        if found is None and proc.poll() is not None:
            pytest.fail(f"prometheus exited ({proc.returncode}): {log_path.read_text()}")
        return found[1] if found else None

    try:
        return proc, f"http://{wait_for(listening, WITHIN, 'Prometheus to listen')}"
    except BaseException:
        _stop(proc)
        raise


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Everything started once for this module, stopped when its last test ends (not at
    the worker's end, which would hold the run open); the alerts read once all is well."""
    stack_dir = tmp_path_factory.mktemp("prometheus")
    key_path, hooked_key = stack_dir / "AuthKey_A.p8", stack_dir / f"AuthKey_{HOOKED_KEY_ID}.p8"
    generate_throwaway_key(key_path)
    generate_throwaway_key(hooked_key)
    with Emulator() as emu_a, Emulator() as emu_b:
        (stack_dir / "a").mkdir()
        (stack_dir / "b").mkdir()
        a = EmulatedTenant(emu_a, stack_dir / "a", key_path, name="a")
        b = EmulatedTenant(emu_b, stack_dir / "b", key_path, name="b")
        register_apple(emu_a, secret.load_key(hooked_key.read_bytes(), "hooked key"),
                       key_id=HOOKED_KEY_ID)
        a.add("apple", client_secret=a.mint(age=40 * DAY))  # due: rotated at start-up
        hooked = secret.load_key(hooked_key.read_bytes(), "hooked key")
        a.add("hooked", services_id=HOOKED_SERVICES_ID, client_secret=secret.mint(
            hooked, team_id=TEAM_ID, key_id=HOOKED_KEY_ID,
            services_id=HOOKED_SERVICES_ID, lifetime=180 * DAY, now=int(time.time())))
        b.add("apple")
        flag = stack_dir / "hook-fails"
        config = _config(stack_dir, a, b, hooked_key, ANY_PORT, flag)
        env = child_env()
        rotator_log = stack_dir / "rotator.log"
        with rotator_log.open("wb") as log:
            rotator = subprocess.Popen(
                [sys.executable, "-m", "rotator", "start", "--config", str(config),
                 "--log-format", "json"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log, env=env,
            )
        prometheus = None
        try:
            listen = bound_listen(rotator_log, rotator)
            prometheus, url = _start_prometheus(stack_dir, _prometheus_config(stack_dir, listen))
            built = Stack(url, listen, a, b, flag, rotator, rotator_log)
            _await_all_well(built)
            built.quiet = {name: built.query(expr) for name, expr in _alerts().items()}
            yield built
        finally:
            _stop(rotator)
            if prometheus is not None:
                _stop(prometheus)


def _ready(stack: Stack) -> bool:
    try:
        return httpx.get(f"{stack.prometheus}/-/ready", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def _await_all_well(stack: Stack) -> None:
    """Prometheus up and holding, for every connection, a successful check and rotation."""
    wait_for(lambda: _ready(stack), WITHIN, "Prometheus to be ready")
    try:
        wait_for(lambda: len(stack.query("rotator_check_success == 1")) == 3
                 and len(stack.query('rotator_secret_apple_accepted == 1')) == 3
                 and stack.query('rotator_rotations_total{result="success"} > 0'),
                 WITHIN, "rotator's first checks and its start-up rotation, scraped")
    except pytest.fail.Exception as exc:
        failures = [line for line in stack.rotator_log.read_text().splitlines()
                    if '"rotation.failed"' in line or '"level": "error"' in line]
        pytest.fail(f"{exc}; rotator's failures: {failures[-5:]}")


def test_target_is_up(stack: Stack) -> None:
    """Prometheus scrapes `rotator start`: the target's up is 1 and /metrics parses."""
    [up] = stack.query(f'up{{instance="{stack.rotator_target}"}}')
    assert up["value"][1] == "1"
    targets = httpx.get(f"{stack.prometheus}/api/v1/targets", timeout=10).json()
    [target] = targets["data"]["activeTargets"]
    assert (target["health"], target["lastError"]) == ("up", "")


@pytest.mark.parametrize("metric", sorted(CONTRACT_METRICS))
def test_every_contract_metric_is_queryable_with_its_labels(stack: Stack, metric: str) -> None:
    """Each metric PRODUCT.md names is in Prometheus, with its labels, for every connection."""
    series = stack.query(metric)
    assert series, metric
    for one in series:
        assert CONTRACT_METRICS[metric] <= set(one["metric"]), one
    if "connection" in CONTRACT_METRICS[metric]:
        # the counters: at least the start-up rotation's, and checks of all three
        names = {(s["metric"]["tenant"], s["metric"]["connection"]) for s in series}
        expected = {(stack.tenant("A"), "apple")}
        if metric != "rotator_rotations_total":
            expected |= {(stack.tenant("A"), "hooked"), (stack.tenant("B"), "apple")}
        assert names >= expected, names


def test_rule_groups_load_with_health_ok(stack: Stack) -> None:
    """The shipped rule file loads into Prometheus and every rule evaluates with health ok."""
    def healthy() -> list[dict[str, Any]] | None:
        answer = httpx.get(f"{stack.prometheus}/api/v1/rules", timeout=10).json()
        rules = [r for g in answer["data"]["groups"] for r in g["rules"]]
        return rules if rules and all(r["health"] == "ok" for r in rules) else None

    rules = wait_for(healthy, WITHIN, "every rule evaluated with health ok")
    assert {r["name"] for r in rules} == set(_alerts())
    groups = httpx.get(f"{stack.prometheus}/api/v1/rules", timeout=10).json()["data"]["groups"]
    assert {g["file"] for g in groups} == {str(RULES)}


def test_alert_table_names_every_shipped_alert() -> None:
    """Every shipped alert is either raised by these scenarios or named as not raised here."""
    assert set(_alerts()) == set(FIRING) | ONLY_WHEN_ROTATOR_IS_GONE | NOT_RAISED_BY_START


def _trouble(stack: Stack) -> None:
    """Apple refuses A's secret (two days from expiry), A's hook fails, Auth0 B stops answering."""
    if stack.troubled:
        return
    stack.troubled = True
    a, b = stack.a, stack.b
    a.emu.apple_revoke_key(KEY_ID)
    short = a.mint(lifetime=2 * DAY)
    options = a.stored("apple")["options"] | {"client_secret": short}
    a.emu.set_connection_options("apple", options)
    stack.hook_flag.touch()
    hooked = a.stored("hooked")["options"]
    hooked.pop("client_secret")
    a.emu.set_connection_options("hooked", hooked)  # no secret: due at once
    for path in ("/api/v2/", "/oauth/"):
        b.emu.inject(Fault(path=path, drop=True, times=None))


@pytest.fixture
def troubled(stack: Stack) -> Stack:
    """The stack once trouble has started (once per module)."""
    _trouble(stack)
    return stack


def test_each_alert_is_quiet_while_all_is_well_and_fires_in_trouble(troubled: Stack) -> None:
    """Each alert's expression was empty while every check succeeded; once Apple refuses A's
    live secret, A's hook fails and Auth0 B stops answering, each names its connection."""
    alerts = _alerts()
    assert {name: result for name, result in troubled.quiet.items() if result} == {}
    for name, (letter, connection) in FIRING.items():
        def fired(name: str = name, letter: str = letter, connection: str = connection) -> bool:
            return any(s["metric"].get("tenant") == troubled.tenant(letter)
                       and s["metric"].get("connection") == connection
                       for s in troubled.query(alerts[name]))
        wait_for(fired, WITHIN, f"{name} to name {letter}/{connection}")
    for name in NOT_RAISED_BY_START | ONLY_WHEN_ROTATOR_IS_GONE:
        assert troubled.query(alerts[name]) == [], name


def _panel_queries() -> list[tuple[str, str]]:
    """(panel title, expression) of every query of the dashboard, Grafana's variables filled
    in as Grafana does for 'All' and a one-minute rate interval."""
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    found = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for variable, value in (("$__rate_interval", "1m"), ("$tenant", ".*"),
                                    ("$connection", ".*")):
                expr = expr.replace(variable, value)
            found.append((panel["title"], expr))
    return found


def test_every_dashboard_panel_query_returns_data(troubled: Stack) -> None:
    """Each panel query of deploy/grafana/rotator-dashboard.json returns data from the real
    Prometheus (once rotations, failures and a hook failure have happened)."""
    queries = _panel_queries()
    assert queries
    wait_for(lambda: troubled.query('rotator_rotations_total{result="failure"}'), WITHIN,
             "a failed rotation, scraped")
    wait_for(lambda: troubled.query("rotator_hook_failures_total > 0"), WITHIN,
             "a failed hook, scraped")
    for title, expr in queries:
        wait_for(lambda expr=expr: troubled.query(expr), WITHIN,  # type: ignore[misc]
                 f"panel {title!r} ({expr}) to return data")


def test_metrics_absent_fires_once_rotator_is_gone(stack: Stack) -> None:
    """RotatorMetricsAbsent, quiet while rotator was scraped, fires once it dies (runs last)."""
    expr = _alerts()["RotatorMetricsAbsent"]
    assert stack.quiet["RotatorMetricsAbsent"] == []
    assert stack.query(expr) == []
    # Killed, as a crash or an OOM kill ends it: SIGTERM would first wait for Auth0
    # B's dropped check, and a crash is what this alert is there for.
    stack.rotator.kill()
    stack.rotator.wait()
    wait_for(lambda: stack.query(expr), WITHIN, "absent(rotator_build_info) once rotator stopped")
