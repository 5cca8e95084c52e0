"""The deployment recipes stay valid and agree with each other and with rotator.

Dockerfile and .dockerignore, deploy/compose.yaml, deploy/kubernetes/*,
deploy/systemd/* and deploy/cron/rotator.crontab are checked with the real
tools where they run here (hadolint, kubernetes-validate's bundled schemas,
systemd-analyze, sh) and against each other: one uid, one port, one set of
secret file names, and only environment variables that rotator reads. No Docker
engine runs here, so the image build is replayed without it: the Dockerfile's
own builder commands, run on this machine, then the installed CLI.
"""

from __future__ import annotations

import fcntl
import json
import os
import queue
import re
import shlex
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import kubernetes_validate.utils as kubernetes_validate
import pytest
import yaml
from conftest import (
    ANY_PORT,
    KEY_ID,
    KUBERNETES,
    ROOT,
    SERVICES_ID,
    TEAM_ID,
    child_env,
    promtool,
    tool,
)

import rotator
from rotator import config, environment
from rotator.emulator import Emulator
from rotator.secret import generate_throwaway_key

DEPLOY = ROOT / "deploy"
SYSTEMD = DEPLOY / "systemd"
CRONTAB = DEPLOY / "cron" / "rotator.crontab"
FAILURE_TEMPLATE = "rotator-failure@.service"
FAILURE_INSTANCE = "rotator-failure@rotator.service.service"
# node_exporter's textfile collector directory, as the recipes use it.
TEXTFILES = "/var/lib/node_exporter/textfile_collector"
METRICS_FILE = f"{TEXTFILES}/rotator.prom"


# Every variable of rotator's own that it reads (the table in rotator.environment).
ROTATOR_ENV = {n for n in environment.NAMES if n.startswith(environment.PREFIXES)}
# What the image may set besides rotator's own: the interpreter's switches and PATH.
IMAGE_ENV = {"PATH", "PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED"}

# The oldest Kubernetes the manifests promise (CronJob timeZone is GA from 1.27)
# and the newest whose schemas kubernetes-validate ships.
KUBERNETES_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
# kubernetes-validate ships the core API schemas only; the Prometheus Operator
# CRDs are checked by their structure: the ServiceMonitor in
# test_servicemonitor_selects_the_service, the PrometheusRule in tests/test_alerts.py.
NOT_IN_KUBERNETES_SCHEMAS = {"ServiceMonitor", "PrometheusRule"}


# -- helpers ---------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction, continuation lines joined, in its build stage."""

    stage: int
    keyword: str
    args: str


def _dockerfile() -> list[Instruction]:
    logical: list[str] = []
    buffer = ""
    for raw in (ROOT / "Dockerfile").read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            buffer += line[:-1].strip() + " "
            continue
        logical.append(buffer + line)
        buffer = ""
    assert not buffer, "the Dockerfile ends inside a continued line"
    out, stage = [], -1
    for line in logical:
        keyword, _, args = line.partition(" ")
        if keyword.upper() == "FROM":
            stage += 1
        out.append(Instruction(stage, keyword.upper(), args.strip()))
    return out


def _final_stage() -> list[Instruction]:
    instructions = _dockerfile()
    last = instructions[-1].stage
    return [i for i in instructions if i.stage == last]


def _one(instructions: list[Instruction], keyword: str) -> str:
    found = [i.args for i in instructions if i.keyword == keyword]
    assert len(found) == 1, f"expected one {keyword} in the final stage, found {found}"
    return found[0]


def _env(instructions: list[Instruction]) -> dict[str, str]:
    env: dict[str, str] = {}
    for i in instructions:
        if i.keyword == "ENV":
            for token in shlex.split(i.args):
                name, sep, value = token.partition("=")
                assert sep, f"ENV {i.args!r}: use the NAME=value form"
                env[name] = value
    return env


def _image_uid() -> int:
    user = _one(_final_stage(), "USER")
    uid = user.partition(":")[0]
    assert uid.isdigit(), f"USER {user}: use a numeric uid so runAsNonRoot can verify it"
    return int(uid)


def _healthcheck_argv() -> list[str]:
    args = _one(_final_stage(), "HEALTHCHECK")
    _, sep, command = args.partition("CMD ")
    assert sep, f"HEALTHCHECK {args!r} has no CMD"
    argv = json.loads(command)
    assert isinstance(argv, list)
    return [str(a) for a in argv]


def _copy_sources() -> list[str]:
    """What the Dockerfile COPYs from the build context (not from another stage)."""
    sources: list[str] = []
    for i in _dockerfile():
        if i.keyword in ("COPY", "ADD") and "--from=" not in i.args:
            tokens = [t for t in shlex.split(i.args) if not t.startswith("--")]
            sources.extend(t.rstrip("/") for t in tokens[:-1])
    return sources


def _yaml_docs(path: Path) -> list[dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
    assert all(isinstance(d, dict) for d in docs), f"{path.name}: not a list of mappings"
    return docs


def _manifests() -> dict[str, dict[str, Any]]:
    """Every Kubernetes object in deploy/kubernetes, by kind."""
    by_kind: dict[str, dict[str, Any]] = {}
    for path in sorted(KUBERNETES.glob("*.yaml")):
        for doc in _yaml_docs(path):
            assert doc["kind"] not in by_kind, f"two {doc['kind']} objects"
            by_kind[doc["kind"]] = doc
    return by_kind


def _pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    if obj["kind"] == "CronJob":
        spec: dict[str, Any] = obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    else:
        spec = obj["spec"]["template"]["spec"]
    return spec


def _container(obj: dict[str, Any]) -> dict[str, Any]:
    containers = _pod_spec(obj)["containers"]
    assert len(containers) == 1
    container: dict[str, Any] = containers[0]
    assert container["name"] == "rotator"
    return container


def _container_env(obj: dict[str, Any]) -> dict[str, str]:
    env = _container(obj).get("env", [])
    assert all("value" in e for e in env), "secrets arrive as files, never as env values"
    return {e["name"]: e["value"] for e in env}


def _unit(path: Path) -> dict[str, list[tuple[str, str]]]:
    """A systemd unit as {section: [(key, value), ...]}, keeping repeated keys.

    configparser would keep only the last of the repeated keys systemd relies on
    (Environment=, LoadCredential=, SystemCallFilter=), so this reads the simple
    subset of the format these units use: sections, comments, key=value.
    """
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    for n, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        assert not line.endswith("\\"), f"{path.name}:{n}: keep each setting on one line"
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}:{n}: not key=value"
        assert current is not None, f"{path.name}:{n}: a setting before any [section]"
        current.append((key.strip(), value.strip()))
    return sections


def _get(unit: dict[str, list[tuple[str, str]]], section: str, key: str) -> list[str]:
    return [v for k, v in unit.get(section, []) if k == key]


# -- Dockerfile and .dockerignore -------------------------------------------


def test_hadolint_passes() -> None:
    """hadolint finds nothing to complain about in the Dockerfile."""
    proc = subprocess.run(
        [tool("hadolint"), "--no-color", str(ROOT / "Dockerfile")],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_dockerfile_runs_rotator_start_as_non_root() -> None:
    """The image runs `rotator start` as a numeric non-root user, probing /healthz."""
    instructions = _dockerfile()
    images = [i.args.split()[0] for i in instructions if i.keyword == "FROM"]
    assert len(images) == 2, "a builder stage and a runtime stage"
    assert images[0] == images[1], "the venv copied across keeps symlinks to the base's python"
    assert re.fullmatch(r"python:3\.1[2-9]-slim(-\w+)?", images[0]), images[0]

    final = _final_stage()
    assert json.loads(_one(final, "ENTRYPOINT")) == ["rotator"]
    assert json.loads(_one(final, "CMD")) == ["start"]
    assert _image_uid() != 0
    assert f"--uid {_image_uid()}" in " ".join(i.args for i in final if i.keyword == "RUN")
    assert _one(final, "EXPOSE") == "8080"
    assert any(
        i.keyword == "COPY" and i.args.split() == ["--from=builder", "/opt/venv", "/opt/venv"]
        for i in final
    )
    env = _env(final)
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["ROTATOR_LOG_FORMAT"] == "json"
    assert env["PATH"].startswith("/opt/venv/bin:")

    probe = _healthcheck_argv()
    assert probe[0] == "python"
    assert "http://127.0.0.1:8080/healthz" in probe[-1]


def test_dockerfile_bakes_in_no_secret() -> None:
    """No ENV or ARG carries a secret, and nothing key-like is copied in."""
    instructions = _dockerfile()
    for i in instructions:
        if i.keyword in ("ENV", "ARG"):
            assert not re.search(r"SECRET|PRIVATE_KEY|TOKEN|PASSWORD", i.args, re.I), i.args
    for source in _copy_sources():
        assert not re.search(r"\.(p8|pem|key)$|secret|\.env$", source, re.I), source
    names = set(_env(instructions))
    assert names & ROTATOR_ENV <= {"ROTATOR_LOG_FORMAT"}, "config arrives at run time"


def _dockerignore() -> list[tuple[re.Pattern[str], bool]]:
    rules = []
    for raw in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = os.path.normpath(line.lstrip("!").strip()).lstrip("/")
        regex, i = "", 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                regex, i = regex + "(?:.*/)?", i + 3
            elif pattern.startswith("**", i):
                regex, i = regex + ".*", i + 2
            elif pattern[i] == "*":
                regex, i = regex + "[^/]*", i + 1
            elif pattern[i] == "?":
                regex, i = regex + "[^/]", i + 1
            elif pattern[i] == "[":
                end = pattern.index("]", i)
                regex, i = regex + pattern[i : end + 1], end + 1
            else:
                regex, i = regex + re.escape(pattern[i]), i + 1
        rules.append((re.compile(regex + r"\Z"), negate))
    return rules


def _ignored(path: str, rules: list[tuple[re.Pattern[str], bool]]) -> bool:
    """Docker's rule: the last pattern matching the path or a parent of it decides."""
    parts = path.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    ignored = False
    for regex, negate in rules:
        if any(regex.match(c) for c in candidates):
            ignored = not negate
    return ignored


def test_dockerignore_sends_only_the_sources() -> None:
    """The build context holds what the Dockerfile copies, and no VCS, venv, cache or key."""
    rules = _dockerignore()
    needed = _copy_sources()
    assert {"pyproject.toml", "rotator"} <= set(needed)
    sources = [s for s in needed if (ROOT / s).is_file()]
    sources += [
        str(p.relative_to(ROOT)) for s in needed if (ROOT / s).is_dir()
        for p in (ROOT / s).rglob("*.py") if "__pycache__" not in p.parts
    ]
    for path in sources:
        assert not _ignored(path, rules), f"{path} is copied by the Dockerfile but ignored"
    for path in (
        ".git/HEAD", ".venv/bin/python", "tests/test_deploy.py", ".pytest_cache/v/x",
        ".mypy_cache/3.12/x.json", ".ruff_cache/x", ".hypothesis/examples/x",
        "bench/node_modules/undici/index.js", "bench/results/run.json", "build/lib/x.py",
        "dist/rotator-0.1.0-py3-none-any.whl", "rotator.egg-info/PKG-INFO",
        "rotator/__pycache__/cli.cpython-312.pyc", "AuthKey_ABC123DEFG.p8",
        "rotator/AuthKey_ABC123DEFG.p8", ".env", "deploy/secrets/auth0_client_secret",
        "deploy/rotator.toml",
    ):
        assert _ignored(path, rules), f"{path} would be sent to the Docker daemon"


# -- Kubernetes --------------------------------------------------------------


def _schema_cases() -> list[Any]:
    """Every built-in resource; CRDs (the ServiceMonitor, the PrometheusRule) have no
    bundled schema and are checked by structure (see NOT_IN_KUBERNETES_SCHEMAS) instead."""
    cases = []
    for path in sorted(KUBERNETES.glob("*.yaml")):
        for doc in _yaml_docs(path):
            if doc["kind"] in NOT_IN_KUBERNETES_SCHEMAS:
                continue
            for version in KUBERNETES_VERSIONS:
                cases.append(pytest.param(path.name, doc, version,
                                          id=f"{doc['kind']}-{version}"))
    return cases


@pytest.mark.parametrize(("filename", "resource", "version"), _schema_cases())
def test_kubernetes_manifest_validates(filename: str, resource: dict[str, Any],
                                       version: str) -> None:
    """Each manifest is valid against the Kubernetes schema, unknown fields refused."""
    try:
        kubernetes_validate.validate(resource, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        where = ".".join(str(p) for p in exc.path)
        pytest.fail(f"{filename} ({resource['kind']}, Kubernetes {exc.version}): "
                    f"{where}: {exc.message}")


def test_strict_schema_validation_catches_a_typo() -> None:
    """The validator really is strict: a misspelt field in the Deployment fails."""
    deployment = _manifests()["Deployment"]
    broken = json.loads(json.dumps(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[0], strict=True)


def test_kubernetes_has_every_recipe() -> None:
    """deploy/kubernetes holds exactly the expected objects, each labelled as rotator's."""
    manifests = _manifests()
    assert set(manifests) == {
        "Secret", "ConfigMap", "CronJob", "Deployment", "Service", "ServiceMonitor",
        "PrometheusRule",
    }
    for obj in manifests.values():
        assert obj["metadata"]["labels"]["app.kubernetes.io/name"] == "rotator"
    assert (KUBERNETES / "secret.example.yaml").is_file(), "the Secret is only an example"


def test_deployment_is_one_replica_probed_on_the_metrics_port() -> None:
    """The Deployment runs `start` once, never two at a time, probed on port `metrics`."""
    deployment = _manifests()["Deployment"]
    spec = deployment["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()

    container = _container(deployment)
    assert container["args"] == ["start"]
    assert "command" not in container, "the image's ENTRYPOINT is rotator"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"metrics": 8080}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    resources = container["resources"]
    assert resources["requests"]["memory"] == "64Mi"
    assert resources["limits"]["memory"] == "128Mi"


def test_service_and_servicemonitor_select_the_deployment() -> None:
    """The Service picks the Deployment's pods by label and serves the port named `metrics`."""
    manifests = _manifests()
    service, pod_labels = manifests["Service"], (
        manifests["Deployment"]["spec"]["template"]["metadata"]["labels"]
    )
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["selector"].items() <= pod_labels.items()
    cronjob_labels = manifests["CronJob"]["spec"]["jobTemplate"]["spec"]["template"]["metadata"]
    assert not service["spec"]["selector"].items() <= cronjob_labels["labels"].items()
    (port,) = service["spec"]["ports"]
    assert port["name"] == "metrics"
    assert port["targetPort"] == "metrics"
    assert service["spec"]["publishNotReadyAddresses"] is True, "scrape while not ready"


def test_servicemonitor_selects_the_service() -> None:
    """The ServiceMonitor (a CRD, no bundled schema) has the shape Prometheus Operator reads."""
    manifests = _manifests()
    monitor, service = manifests["ServiceMonitor"], manifests["Service"]
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert set(monitor) == {"apiVersion", "kind", "metadata", "spec"}
    assert isinstance(monitor["metadata"]["name"], str)
    assert set(monitor["spec"]) <= {"selector", "endpoints", "namespaceSelector", "jobLabel"}
    assert set(monitor["spec"]["selector"]) == {"matchLabels"}
    assert monitor["spec"]["selector"]["matchLabels"].items() <= (
        service["metadata"]["labels"].items()
    )
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == "metrics"
    assert endpoint["path"] == "/metrics"
    assert set(endpoint) <= {"port", "path", "interval", "scrapeTimeout", "scheme"}
    assert re.fullmatch(r"\d+[sm]", endpoint["interval"])


def test_cronjob_runs_once_and_never_overlaps() -> None:
    """The CronJob runs `run-once` on a schedule, one at a time, failing fast on exit 2."""
    cronjob = _manifests()["CronJob"]
    spec = cronjob["spec"]
    assert spec["concurrencyPolicy"] == "Forbid"
    assert len(spec["schedule"].split()) == 5
    assert isinstance(spec["startingDeadlineSeconds"], int)
    job = spec["jobTemplate"]["spec"]
    assert isinstance(job["backoffLimit"], int)
    assert job["template"]["spec"]["restartPolicy"] in ("Never", "OnFailure")
    container = _container(cronjob)
    assert container["args"] == ["run-once"]
    assert "command" not in container, "the image's ENTRYPOINT is rotator"
    assert "ports" not in container
    assert "livenessProbe" not in container
    (rule,) = job["podFailurePolicy"]["rules"]
    assert rule["action"] == "FailJob"
    assert rule["onExitCodes"] == {"containerName": "rotator", "operator": "In", "values": [2]}


@pytest.mark.parametrize("kind", ["CronJob", "Deployment"])
def test_pods_are_locked_down_and_read_secrets_as_files(kind: str) -> None:
    """Non-root as the image's uid, read-only root, secrets as 0400 files from the Secret."""
    manifests = _manifests()
    obj = manifests[kind]
    pod, container = _pod_spec(obj), _container(obj)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == _image_uid()
    assert pod["automountServiceAccountToken"] is False
    ctx = container["securityContext"]
    assert ctx["readOnlyRootFilesystem"] is True
    assert ctx["allowPrivilegeEscalation"] is False
    assert ctx["capabilities"]["drop"] == ["ALL"]
    assert container["image"] == _container(manifests["Deployment"])["image"]

    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    files: dict[str, str] = {}  # path in the container -> "Secret/key" or "ConfigMap/key"
    for name, volume in volumes.items():
        for source, ref in (("secret", "secretName"), ("configMap", "name")):
            if source in volume:
                assert mounts[name]["readOnly"] is True
                for item in volume[source]["items"]:
                    path = f"{mounts[name]['mountPath']}/{item['path']}"
                    files[path] = f"{volume[source][ref]}/{item['key']}"
    (secret_volume,) = [v["secret"] for v in volumes.values() if "secret" in v]
    assert secret_volume["defaultMode"] == 0o400

    secret, configmap = manifests["Secret"], manifests["ConfigMap"]
    env = _container_env(obj)
    assert set(env) <= ROTATOR_ENV
    name, data = secret["metadata"]["name"], secret["stringData"]
    for var in ("AUTH0_CLIENT_SECRET_FILE", "APPLE_PRIVATE_KEY_FILE"):
        source = files[env[var]]
        assert source.startswith(f"{name}/"), var
        assert source.split("/", 1)[1] in data, var
    source = files[env["ROTATOR_CONFIG"]]
    assert source.startswith(f"{configmap['metadata']['name']}/")
    assert source.split("/", 1)[1] in configmap["data"]


def test_configmap_config_loads_with_the_pod_environment(tmp_path: Path) -> None:
    """rotator.toml from the ConfigMap, with the Deployment's env, makes valid settings."""
    manifests = _manifests()
    env = _container_env(manifests["Deployment"])
    secret_dir = os.path.dirname(env["APPLE_PRIVATE_KEY_FILE"])
    key = tmp_path / os.path.basename(env["APPLE_PRIVATE_KEY_FILE"])
    generate_throwaway_key(key)
    m2m = tmp_path / os.path.basename(env["AUTH0_CLIENT_SECRET_FILE"])
    m2m.write_text("a-made-up-m2m-client-secret\n")
    toml = tmp_path / "rotator.toml"
    toml.write_text(manifests["ConfigMap"]["data"][os.path.basename(env["ROTATOR_CONFIG"])])
    local = {
        name: value.replace(secret_dir, str(tmp_path)) if name.endswith("_FILE") else value
        for name, value in env.items()
    }
    local["ROTATOR_CONFIG"] = str(toml)

    settings = config.load(config.Overrides(), environ=local)

    assert [c.connection for c in settings.connections] == ["apple"]
    assert str(settings.listen).rpartition(":")[2] == "8080"
    assert settings.log_format == "json"
    assert settings.warnings == ()


# -- Compose ---------------------------------------------------------------------


def test_compose_runs_start_with_secrets_as_files() -> None:
    """compose.yaml runs `start` with the config read-only and both secrets from files."""
    (doc,) = _yaml_docs(DEPLOY / "compose.yaml")
    (name,) = doc["services"]
    service = doc["services"][name]
    assert service["command"] == ["start"]
    assert service["restart"] == "unless-stopped"
    assert service["user"] == f"{_image_uid()}:{_image_uid()}"
    assert service["read_only"] is True
    env = service["environment"]
    assert set(env) <= ROTATOR_ENV

    assert env["AUTH0_CLIENT_SECRET_FILE"] == "/run/secrets/auth0_client_secret"
    assert env["APPLE_PRIVATE_KEY_FILE"] == "/run/secrets/apple_p8"
    assert set(service["secrets"]) == {"auth0_client_secret", "apple_p8"}
    for secret in service["secrets"]:
        assert "file" in doc["secrets"][secret]

    (volume,) = service["volumes"]
    assert volume["type"] == "bind"
    assert volume["read_only"] is True
    assert volume["target"] == env["ROTATOR_CONFIG"]

    assert any(str(p).endswith(":8080") for p in service["ports"])
    check = service["healthcheck"]
    assert check["test"] == ["CMD", *_healthcheck_argv()], "same probe as the image"


# -- systemd ---------------------------------------------------------------------

HARDENING = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "DynamicUser": "yes",
}


@pytest.mark.parametrize(
    ("unit", "command"), [("rotator.service", "run-once"), ("rotator-start.service", "start")],
)
def test_systemd_service_settings(unit: str, command: str) -> None:
    """Each service runs its command sandboxed, with secrets from LoadCredential= files."""
    parsed = _unit(SYSTEMD / unit)
    (exec_start,) = _get(parsed, "Service", "ExecStart")
    argv = shlex.split(exec_start)
    assert argv[0].startswith("/")
    assert argv[0].endswith("/rotator")
    assert argv[1] == command
    assert "--config" in argv
    for key, value in HARDENING.items():
        assert _get(parsed, "Service", key) == [value], key

    env = dict(e.split("=", 1) for e in _get(parsed, "Service", "Environment"))
    assert set(env) <= ROTATOR_ENV
    credentials = {c.split(":", 1)[0] for c in _get(parsed, "Service", "LoadCredential")}
    for var in ("AUTH0_CLIENT_SECRET_FILE", "APPLE_PRIVATE_KEY_FILE"):
        assert env[var].startswith("%d/"), f"{var} must point into the credentials directory"
        assert env[var].removeprefix("%d/") in credentials
    if command == "run-once":
        assert _get(parsed, "Service", "Type") == ["oneshot"]
        assert "Install" not in parsed, "the timer starts it"
    else:
        assert _get(parsed, "Service", "Restart") == ["on-failure"]
        assert _get(parsed, "Service", "RestartPreventExitStatus") == ["2"]
        assert _get(parsed, "Unit", "Conflicts") == ["rotator.timer"]


def test_systemd_timer_starts_the_oneshot_twice_a_day() -> None:
    """rotator.timer starts rotator.service twice a day with a random delay, catching up."""
    parsed = _unit(SYSTEMD / "rotator.timer")
    (calendar,) = _get(parsed, "Timer", "OnCalendar")
    assert re.fullmatch(r"\*-\*-\* \d\d,\d\d:\d\d:00", calendar)
    assert _get(parsed, "Timer", "RandomizedDelaySec")
    assert _get(parsed, "Timer", "Persistent") == ["true"]
    assert _get(parsed, "Timer", "Unit") == ["rotator.service"]
    assert _get(parsed, "Install", "WantedBy") == ["timers.target"]


def _units_for_systemd_analyze(tmp_path: Path) -> list[Path]:
    """The units with ExecStart= pointing at this venv's rotator, which exists here.

    The failure template runs no rotator; an instance of it (the one
    rotator.service's OnFailure= starts) is added, so its ExecStart= is checked too.
    """
    executable = tool("rotator")
    out = []
    for path in sorted(SYSTEMD.iterdir()):
        text = path.read_text(encoding="utf-8")
        assert "/opt/rotator/bin/rotator" in text or path.suffix == ".timer" or (
            path.name == FAILURE_TEMPLATE
        )
        target = tmp_path / path.name
        target.write_text(text.replace("/opt/rotator/bin/rotator", executable))
        out.append(target)
    out.append(tmp_path / FAILURE_INSTANCE)
    return out


def test_systemd_units_verify(tmp_path: Path) -> None:
    """`systemd-analyze verify` accepts the units without a single warning."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed; test_systemd_* still parse the units")
    units = _units_for_systemd_analyze(tmp_path)
    proc = subprocess.run(
        [analyze, "verify", "--man=no", *map(str, units)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert (proc.returncode, proc.stdout + proc.stderr) == (0, "")


@pytest.mark.parametrize("unit", ["rotator.service", "rotator-start.service", FAILURE_INSTANCE])
def test_systemd_units_are_sandboxed(tmp_path: Path, unit: str) -> None:
    """`systemd-analyze security` rates each service's exposure 2.0 or lower ("OK")."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed; test_systemd_* still parse the units")
    _units_for_systemd_analyze(tmp_path)
    proc = subprocess.run(
        # --threshold is on a 0-100 scale: 20 is the 2.0 that the report prints.
        [analyze, "security", "--offline=yes", "--threshold=20", str(tmp_path / unit)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr


# -- cron ------------------------------------------------------------------------


def _cron_job() -> tuple[list[str], str, dict[str, str]]:
    """The crontab's time fields, its command as cron hands it to sh, its variables."""
    env, jobs = {}, []
    for raw in CRONTAB.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if match := re.fullmatch(r"([A-Z_]+)=(.*)", line):
            env[match.group(1)] = match.group(2).strip('"')
        else:
            jobs.append(line)
    (job,) = jobs
    fields = job.split(maxsplit=5)
    command = fields[5]
    assert not re.search(r"(?<!\\)%", command), "cron turns a bare % into a newline"
    return fields[:5], command.replace("\\%", "%"), env


def test_crontab_runs_run_once_twice_a_day() -> None:
    """The crontab runs `rotator run-once --config` twice a day, off the full hour."""
    (minute, hour, *rest), command, env = _cron_job()
    assert minute.isdigit()
    assert int(minute) % 15 != 0
    assert len(hour.split(",")) == 2
    assert rest == ["*", "*", "*"]
    argv = shlex.split(command.split(";")[0].removeprefix("out=$(").rstrip(")"))
    assert argv[:2] == ["/opt/rotator/bin/rotator", "run-once"], "not left to cron's PATH"
    assert "--config" in argv
    assert argv[argv.index("--metrics-file") + 1] == METRICS_FILE
    assert env["SHELL"] == "/bin/sh"
    assert "/opt/rotator/bin" in env["PATH"].split(":")
    text = CRONTAB.read_text(encoding="utf-8")
    for code in ("0 ", "1 ", "2 "):
        assert f"#   {code}" in text, f"the comment explains exit code {code.strip()}"


def _run_cron_job(
    tmp_path: Path, rotator_script: str, *, shell: str | None = None,
    paths: dict[str, str] | None = None,
) -> tuple[int, str, str]:
    """Run the crontab's command as cron would, `rotator` and `logger` stood in by scripts.

    The stand-in rotator takes the place of /opt/rotator/bin/rotator; ``paths``
    maps other paths of the command (the config, the metrics file) to real ones.
    """
    _, command, env = _cron_job()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "logger.txt"
    (bin_dir / "logger").write_text(
        f'#!/bin/sh\n{{ echo "ARGS $*"; [ $# -gt 4 ] || cat; }} >> "{log}"\n'
    )
    (bin_dir / "rotator").write_text("#!/bin/sh\n" + rotator_script)
    for script in bin_dir.iterdir():
        script.chmod(0o755)
    for old, new in {"/opt/rotator/bin/rotator": str(bin_dir / "rotator"),
                     **(paths or {})}.items():
        assert old in command
        command = command.replace(old, new)
    proc = subprocess.run(
        [shell or env["SHELL"], "-c", command],
        env=child_env(PATH=f"{bin_dir}:{env['PATH']}"),
        capture_output=True, text=True, timeout=120, check=False,
    )
    return proc.returncode, proc.stdout, log.read_text() if log.exists() else ""


def test_crontab_job_logs_a_clean_run_and_mails_nothing(tmp_path: Path) -> None:
    """A run that exits 0 sends its output to syslog and prints nothing for cron to mail."""
    code, stdout, logged = _run_cron_job(
        tmp_path, 'echo \'{"event": "rotation.checked", "due": false}\' >&2\nexit 0\n'
    )
    assert (code, stdout) == (0, "")
    assert "ARGS -t rotator -p user.info" in logged
    assert '"event": "rotation.checked"' in logged
    assert "user.err" not in logged


def test_crontab_job_reports_the_real_exit_code_2(tmp_path: Path) -> None:
    """The real CLI's exit 2 (config missing) is logged at user.err and printed for mail."""
    code, stdout, logged = _run_cron_job(tmp_path, f'exec "{sys.executable}" -m rotator "$@"\n')
    assert code == 2, "the job ends with rotator's own exit code"
    assert "run-once failed with exit code 2" in stdout
    assert "ARGS -t rotator -p user.err rotator run-once failed with exit code 2" in logged
    assert "/etc/rotator/rotator.toml" in logged, "rotator's own message reached syslog"


def test_crontab_job_reports_exit_code_1(tmp_path: Path) -> None:
    """A failed connection (exit 1) is logged at user.err and printed, the log kept."""
    code, stdout, logged = _run_cron_job(
        tmp_path, 'echo \'{"event": "rotation.failed", "step": "read"}\' >&2\nexit 1\n'
    )
    assert code == 1
    assert "exit code 1" in stdout
    assert '"event": "rotation.failed"' in logged
    assert "-p user.err" in logged


@pytest.mark.parametrize("shell", ["/bin/sh", "bash"])
def test_crontab_mail_names_the_reason_of_a_real_bad_config(tmp_path: Path, shell: str) -> None:
    """The real CLI refusing a setting: the one line cron mails names it; exit 2 is kept."""
    toml = tmp_path / "rotator.toml"
    toml.write_text('[schedule]\nrotate_every = "soon"\n')
    code, stdout, logged = _run_cron_job(
        tmp_path, f'exec "{sys.executable}" -m rotator "$@"\n', shell=shell,
        paths={"/etc/rotator/rotator.toml": str(toml)},
    )
    assert code == 2
    [mail] = stdout.splitlines()
    assert mail.startswith("rotator run-once failed with exit code 2: rotator: error: ")
    assert "rotate_every" in mail, "the reason names the setting to fix"
    assert f"-p user.err {mail}" in logged


def _cron_config(tmp_path: Path, emulator: Emulator, key_path: Path, connection: str) -> Path:
    """A config for the cron tests: ``connection`` on ``emulator``, its secret in a file."""
    m2m = tmp_path / "auth0_client_secret"
    m2m.write_text("image-test-m2m-secret\n")
    toml = tmp_path / "rotator.toml"
    toml.write_text(
        f'[auth0]\ndomain = "{emulator.domain}"\n'
        'client_id = "imageTestM2MClient00000000000001"\n'
        f'client_secret_file = "{m2m}"\nca_bundle = "{emulator.ca_pem_path}"\n\n'
        f'[apple]\nteam_id = "{TEAM_ID}"\nkey_id = "{KEY_ID}"\nprivate_key_file = "{key_path}"\n'
        f'token_url = "{emulator.apple_token_url}"\n\n'
        f'[[connections]]\nconnection = "{connection}"\nclient_id = "{SERVICES_ID}"\n'
    )
    return toml


def test_crontab_mail_names_the_failed_step_of_a_real_run(
    tmp_path: Path, emulator: Emulator, key_path: Path
) -> None:
    """A real run whose connection cannot be read (exit 1): the mail carries rotation.failed."""
    toml = _cron_config(tmp_path, emulator, key_path, "no-such-connection")
    textfiles = tmp_path / "textfile_collector"
    textfiles.mkdir()
    code, stdout, _ = _run_cron_job(
        tmp_path, f'exec "{sys.executable}" -m rotator "$@"\n', shell=shutil.which("bash"),
        paths={"/etc/rotator/rotator.toml": str(toml), TEXTFILES: str(textfiles)},
    )
    assert code == 1
    [mail] = stdout.splitlines()
    assert mail.startswith("rotator run-once failed with exit code 1: {")
    assert '"event": "rotation.failed"' in mail
    assert "no-such-connection" in mail


@pytest.mark.parametrize("shell", ["/bin/sh", "bash"])
@pytest.mark.parametrize("rc", [0, 1, 2, 143])
def test_crontab_job_ends_with_rotators_exit_code(tmp_path: Path, shell: str, rc: int) -> None:
    """Under sh (cron's SHELL here) and bash alike, the job exits with rotator's code."""
    code, stdout, logged = _run_cron_job(
        tmp_path, f'echo \'{{"event": "run.finished"}}\' >&2\nexit {rc}\n', shell=shell
    )
    assert code == rc
    assert '"event": "run.finished"' in logged, "the log still reaches syslog"
    assert (stdout == "") is (rc == 0), "only a failure prints, so cron mails only failures"


def test_crontab_job_runs_rotator_for_real_and_leaves_its_metrics(
    tmp_path: Path, emulator: Emulator, key_path: Path
) -> None:
    """The crontab line, its paths pointed here, rotates for real: exit 0, no mail, metrics."""
    toml = _cron_config(tmp_path, emulator, key_path, "apple")
    textfiles = tmp_path / "textfile_collector"
    textfiles.mkdir()
    code, stdout, logged = _run_cron_job(
        tmp_path, f'exec "{sys.executable}" -m rotator "$@"\n',
        paths={"/etc/rotator/rotator.toml": str(toml), TEXTFILES: str(textfiles)},
    )

    assert (code, stdout) == (0, ""), logged
    assert '"event": "secret.rotated"' in logged
    assert "rotator_last_run_success 1.0" in (textfiles / "rotator.prom").read_text()
    assert emulator.connection("apple")["options"]["client_secret"] != "pasted-by-hand"


# -- watching the one-shot runs ---------------------------------------------------------


def test_oneshot_unit_reports_failure_through_the_shipped_template() -> None:
    """rotator.service and rotator-start.service name OnFailure= a template shipped beside them."""
    template = _unit(SYSTEMD / FAILURE_TEMPLATE)
    assert _get(template, "Service", "Type") == ["oneshot"]
    (exec_start,) = _get(template, "Service", "ExecStart")
    assert "%i" in exec_start, "it says which unit failed"
    for unit in ("rotator.service", "rotator-start.service"):
        assert _get(_unit(SYSTEMD / unit), "Unit", "OnFailure") == [
            FAILURE_TEMPLATE.replace("@", "@%n")
        ], unit
    assert "Install" not in template, "OnFailure= starts it"


def _writable_in_sandbox(unit: dict[str, list[tuple[str, str]]], path: str) -> bool:
    """Whether the unit's sandbox lets it create files in directory ``path``.

    ProtectSystem=strict mounts everything read-only but ReadWritePaths= (and the
    unit's own state, cache, logs and runtime directories); ProtectHome= hides
    the homes; PrivateTmp= gives the unit /tmp and /var/tmp of its own, which no
    other process (node_exporter) would see; InaccessiblePaths= and
    ReadOnlyPaths= win over a wider ReadWritePaths=.
    """

    def under(roots: list[str]) -> bool:
        return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)

    def paths(key: str) -> list[str]:
        return [p.lstrip("-+") for v in _get(unit, "Service", key) for p in v.split()]

    if _get(unit, "Service", "ProtectHome") in (["yes"], ["read-only"], ["tmpfs"]) and under(
        ["/home", "/root", "/run/user"]
    ):
        return False
    if _get(unit, "Service", "PrivateTmp") == ["yes"] and under(["/tmp", "/var/tmp"]):
        return False
    if under(paths("InaccessiblePaths") + paths("ReadOnlyPaths")):
        return False
    if _get(unit, "Service", "ProtectSystem") == ["strict"]:
        return under(paths("ReadWritePaths"))
    return True


def test_oneshot_unit_writes_its_metrics_where_its_sandbox_allows() -> None:
    """rotator.service's --metrics-file lies in a ReadWritePaths= directory, as user rotator."""
    unit = _unit(SYSTEMD / "rotator.service")
    (exec_start,) = _get(unit, "Service", "ExecStart")
    argv = shlex.split(exec_start)
    metrics_file = argv[argv.index("--metrics-file") + 1]
    assert metrics_file == METRICS_FILE
    assert metrics_file.endswith(".prom"), "the textfile collector reads *.prom only"
    assert _writable_in_sandbox(unit, os.path.dirname(metrics_file))
    # The check itself tells a sandbox that allows it from one that does not.
    for denied in ("/var/lib/rotator", "/tmp", "/home/rotator"):
        assert not _writable_in_sandbox(unit, denied), denied
    # A fixed identity that the directory's permissions (an ACL) can name.
    assert _get(unit, "Service", "User") == ["rotator"]
    assert _get(unit, "Service", "DynamicUser") == ["yes"]


def test_recipes_and_readme_agree_on_watching_runs() -> None:
    """The crontab and the unit write one metrics path; deploy/README.md says how to alert."""
    readme = (DEPLOY / "README.md").read_text(encoding="utf-8")
    assert METRICS_FILE in CRONTAB.read_text(encoding="utf-8")
    assert f"ReadWritePaths=-{TEXTFILES}" in (SYSTEMD / "rotator.service").read_text()
    for needle in ("OnFailure=", FAILURE_TEMPLATE, METRICS_FILE,
                   "kube_cronjob_status_last_successful_time", "kube_job_status_failed",
                   "--collector.textfile.directory", "setfacl"):
        assert needle in readme, needle
    cronjob = _container(_manifests()["CronJob"])
    assert "--metrics-file" not in cronjob["args"], "a pod's file vanishes with the pod"


def test_readme_cronjob_alerts_are_valid_prometheus_rules(tmp_path: Path) -> None:
    """The kube-state-metrics alerts deploy/README.md gives for the CronJob pass promtool."""
    readme = (DEPLOY / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```yaml\n(.*?)```", readme, re.S)
    (block,) = [b for b in blocks if "kube_cronjob_status_last_successful_time" in b]
    rules = yaml.safe_load(textwrap.dedent(block))
    assert {r["alert"] for r in rules} == {"RotatorCronJobNotSucceeding", "RotatorCronJobFailed"}
    path = tmp_path / "cronjob-rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "rotator-cronjob", "rules": rules}]}))
    proc = promtool("check", "rules", str(path))
    assert proc.returncode == 0, proc.stdout + proc.stderr


# -- every recipe --------------------------------------------------------------


def test_recipes_use_only_variables_rotator_reads() -> None:
    """Every AUTH0_/APPLE_/ROTATOR_ variable any recipe sets is one rotator reads."""
    found: dict[str, set[str]] = {}
    final, builder = _final_stage(), [i for i in _dockerfile() if i.stage == 0]
    found["Dockerfile"] = set(_env(final))
    assert found["Dockerfile"] <= ROTATOR_ENV | IMAGE_ENV
    assert all(n.startswith(("PIP_", "PYTHON")) for n in _env(builder))
    (compose,) = _yaml_docs(DEPLOY / "compose.yaml")
    for service in compose["services"].values():
        found["compose.yaml"] = set(service["environment"])
    for kind in ("CronJob", "Deployment"):
        found[kind] = set(_container_env(_manifests()[kind]))
    for unit in ("rotator.service", "rotator-start.service"):
        env = _get(_unit(SYSTEMD / unit), "Service", "Environment")
        found[unit] = {e.split("=", 1)[0] for e in env}
    found["crontab"] = {
        v for v in re.findall(r"\b[A-Z][A-Z0-9_]+\b", _cron_job()[1])
        if v.startswith(environment.PREFIXES)
    }
    for recipe, names in found.items():
        ours = {n for n in names if n.startswith(environment.PREFIXES)}
        assert ours <= ROTATOR_ENV, f"{recipe} sets {sorted(ours - ROTATOR_ENV)}"
        if recipe != "Dockerfile":
            assert names <= ROTATOR_ENV, f"{recipe} sets {sorted(names - ROTATOR_ENV)}"


# -- the image, replayed without Docker ---------------------------------------------


def _replay(command: str, *, src: Path, wheels: Path, venv: Path) -> list[str]:
    """One builder `RUN` step with the image's paths mapped into the work directory."""
    argv: list[str] = []
    for n, token in enumerate(shlex.split(command)):
        if n == 0 and token == "pip":
            argv += [sys.executable, "-m", "pip"]
        elif n == 0 and token == "python":
            argv.append(sys.executable)
        elif token.startswith("/opt/venv"):
            argv.append(str(venv) + token.removeprefix("/opt/venv"))
        elif token.startswith("/wheels"):
            path = str(wheels) + token.removeprefix("/wheels")
            matches = sorted(Path(path).parent.glob(Path(path).name)) if "*" in path else []
            argv += [str(m) for m in matches] or [path]
        elif token == ".":
            argv.append(str(src))
        else:
            argv.append(token)
    return argv


@pytest.fixture(scope="session")
def image_venv(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Path:
    """/opt/venv as the Dockerfile's builder stage makes it, made here with this Python.

    Built once per run: the first process to get here (of all xdist workers,
    which share the run's temporary root) builds it under a file lock; the
    others wait for that lock and use what it built.
    """
    shared = tmp_path_factory.getbasetemp()  # this run's own
    if worker_id != "master":
        shared = shared.parent  # a worker's is popen-gwN, inside the run's
    with (shared / "image-venv.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        venv = shared / "image" / "venv"
        if not (venv / "bin" / "rotator").is_file():
            shutil.rmtree(shared / "image", ignore_errors=True)
            _build_image_venv(shared / "image")
    return venv


def _build_image_venv(work: Path) -> Path:
    """The build context is what the Dockerfile COPYs; each `&&` step of its RUN is
    run in turn, `pip` and `python` being this interpreter (3.11 here, the
    image's 3.12 there), dependencies coming from the package index as usual.
    """
    work.mkdir(parents=True)
    src, wheels, venv = work / "src", work / "wheels", work / "venv"
    src.mkdir()
    for source in _copy_sources():
        origin = ROOT / source
        if not origin.exists():
            pytest.fail(f"the Dockerfile copies {source}, which the project lacks")
        if origin.is_dir():
            shutil.copytree(origin, src / source,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(origin, src / source)
    builder = [i for i in _dockerfile() if i.stage == 0]
    (run,) = [i.args for i in builder if i.keyword == "RUN"]
    steps = [s.strip() for s in run.split("&&")]
    assert any(s.startswith("pip wheel") and "--no-deps" in s for s in steps)
    assert "python -m venv --without-pip /opt/venv" in steps
    assert any(s.startswith("pip --python /opt/venv/bin/python install") for s in steps)
    env = child_env(**_env(builder))
    for step in steps:
        argv = _replay(step, src=src, wheels=wheels, venv=venv)
        proc = subprocess.run(argv, cwd=src, capture_output=True, text=True, timeout=600,
                              env=env, check=False)
        assert proc.returncode == 0, f"{step}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert (venv / "bin" / "rotator").is_file()
    # Byte-compiled at install time: the image's read-only venv never writes .pyc.
    assert list(venv.glob("lib/python3*/site-packages/rotator/__pycache__/cli.*.pyc"))
    return venv


def _image_env(venv: Path, **extra: str) -> dict[str, str]:
    """The runtime stage's ENV, /opt/venv mapped to ``venv``, on a clean environment."""
    env = _env(_final_stage())
    env["PATH"] = env["PATH"].replace("/opt/venv", str(venv)).replace(
        "${PATH}", os.environ["PATH"]
    )
    return child_env(**env, **extra)


def _entrypoint(venv: Path) -> list[str]:
    entrypoint = json.loads(_one(_final_stage(), "ENTRYPOINT"))
    return [str(venv / "bin" / entrypoint[0]), *entrypoint[1:]]


@pytest.mark.slow
@pytest.mark.xdist_group("image")  # one worker builds the image's venv once
def test_installed_image_cli_answers(image_venv: Path, tmp_path: Path) -> None:
    """The venv the image ships answers --version and --help and mints a verifiable secret."""
    rotator_cmd = _entrypoint(image_venv)

    def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*rotator_cmd, *args], env=_image_env(image_venv, **env),
                              capture_output=True, text=True, timeout=60, check=False)

    version = run("--version")
    assert (version.returncode, version.stdout.strip()) == (0, f"rotator {rotator.__version__}")
    helped = run("--help")
    assert helped.returncode == 0
    for command in ("start", "run-once", "mint", "status", "check-config"):
        assert command in helped.stdout

    key = tmp_path / f"AuthKey_{KEY_ID}.p8"
    generate_throwaway_key(key)
    minted = run("mint", APPLE_TEAM_ID=TEAM_ID, APPLE_KEY_ID=KEY_ID,
                 APPLE_CLIENT_ID=SERVICES_ID, APPLE_PRIVATE_KEY_FILE=str(key))
    assert minted.returncode == 0, minted.stderr
    token = minted.stdout.strip()
    from cryptography.hazmat.primitives import serialization

    public = serialization.load_pem_private_key(key.read_bytes(), password=None).public_key()
    claims = jwt.decode(token, public, algorithms=["ES256"],  # type: ignore[arg-type]
                        audience="https://appleid.apple.com", issuer=TEAM_ID)
    assert claims["sub"] == SERVICES_ID
    assert jwt.get_unverified_header(token)["kid"] == KEY_ID
    # The whole package is in the image: the demo needs its emulator subpackage.
    demo = run("demo")
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "new secret stored: yes" in demo.stdout


class _Events:
    """JSON log lines of a running process, read by a thread, awaited by event name."""

    def __init__(self, stream: Any) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self._thread.start()

    def _pump(self, stream: Any) -> None:
        for line in stream:
            self.lines.put(line)

    def join(self) -> None:
        """Wait for the reader to see the end of the stream (the process has exited)."""
        self._thread.join(timeout=10)

    def wait_for(self, *names: str, timeout: float = 60) -> dict[str, Any]:
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                pytest.fail(f"no {names} event within {timeout}s; saw {self.seen}")
            event: dict[str, Any] = json.loads(line)
            self.seen.append(event)
            if event.get("event") in names:
                return event


@pytest.fixture
def emulator(key_path: Path) -> Iterator[Emulator]:
    """An Auth0 tenant (and Apple) on loopback with one custom social connection for Apple."""
    with Emulator() as emu:
        emu.apple_register_key(TEAM_ID, KEY_ID, key_path.read_bytes())
        emu.apple_add_services_id(TEAM_ID, SERVICES_ID)
        emu.add_client("imageTestM2MClient00000000000001", "image-test-m2m-secret")
        emu.add_connection({
            "name": "apple",
            "strategy": "oauth2",
            "options": {"client_id": SERVICES_ID, "client_secret": "pasted-by-hand",
                        "scope": "name email"},
        })
        yield emu


@pytest.mark.slow
@pytest.mark.xdist_group("image")
def test_installed_image_starts_and_passes_its_healthcheck(
    image_venv: Path, tmp_path: Path, emulator: Emulator, key_path: Path,
) -> None:
    """ENTRYPOINT + CMD serve /healthz, the image's HEALTHCHECK passes, SIGTERM exits 0."""
    key = key_path
    m2m = tmp_path / "auth0_client_secret"
    m2m.write_text("image-test-m2m-secret\n")
    m2m.chmod(0o600)
    toml = tmp_path / "rotator.toml"
    toml.write_text(
        f'[auth0]\ndomain = "{emulator.domain}"\n'
        'client_id = "imageTestM2MClient00000000000001"\n'
        f'ca_bundle = "{emulator.ca_pem_path}"\n\n'
        f'[apple]\nteam_id = "{TEAM_ID}"\nkey_id = "{KEY_ID}"\n'
        f'token_url = "{emulator.apple_token_url}"\n\n'
        f'[[connections]]\nconnection = "apple"\nclient_id = "{SERVICES_ID}"\n'
    )
    env = _image_env(
        image_venv, ROTATOR_CONFIG=str(toml), AUTH0_CLIENT_SECRET_FILE=str(m2m),
        APPLE_PRIVATE_KEY_FILE=str(key), ROTATOR_LISTEN=ANY_PORT,
    )
    cmd = json.loads(_one(_final_stage(), "CMD"))
    with subprocess.Popen([*_entrypoint(image_venv), *cmd], env=env, text=True,
                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE) as proc:
        assert proc.stderr is not None
        events = _Events(proc.stderr)
        try:
            started = events.wait_for("scheduler.started")
            host, _, port = started["listen"].rpartition(":")
            assert (host, int(port) > 0) == ("127.0.0.1", True), started
            rotated = events.wait_for("secret.rotated", "rotation.failed")
            assert rotated["event"] == "secret.rotated", rotated

            probe = _healthcheck_argv()
            probe = [str(image_venv / "bin" / probe[0]), *probe[1:-1],
                     probe[-1].replace("127.0.0.1:8080", f"127.0.0.1:{port}")]
            # An HTTP proxy in the environment must not capture the loopback probe.
            healthy = subprocess.run(probe, env={**env, "http_proxy": "http://127.0.0.1:9"},
                                     capture_output=True, text=True, timeout=30, check=False)
            assert healthy.returncode == 0, healthy.stderr
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            with opener.open(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
                assert b"rotator_secret_expiry_timestamp_seconds" in answer.read()

            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0
            events.wait_for("scheduler.stopped")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
            events.join()
    stored = emulator.connection("apple")["options"]["client_secret"]
    assert stored != "pasted-by-hand"
