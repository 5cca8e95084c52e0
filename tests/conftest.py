"""Shared fixtures: a clean environment, real keys, the real CLI in a subprocess."""

from __future__ import annotations

import ast
import contextlib
import io
import json
import os
import pty
import re
import select
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import pytest
import structlog
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from prometheus_client.parser import text_string_to_metric_families

from rotator.environment import PREFIXES
from rotator.secret import AppleKey, generate_throwaway_key, load_key

if TYPE_CHECKING:
    from auth0_env import EmulatedTenant

#: The Apple identities of the test key (``key_path`` is AuthKey_KEY_ID.p8) and its app.
TEAM_ID = "ABCDE12345"
KEY_ID = "ABC123DEFG"
SERVICES_ID = "com.example.webapp"
#: Kept in a child rotator's environment by child_env: the `lock_dir` fixture sets it.
LOCK_DIR = "ROTATOR_LOCK_DIR"
#: A day in seconds.
DAY = 86400
#: The repository's root, and the shipped artefacts more than one test file reads.
ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_CONFIG = ROOT / "config" / "rotator.example.toml"
RULES = ROOT / "deploy" / "prometheus" / "rotator-rules.yaml"
DASHBOARD = ROOT / "deploy" / "grafana" / "rotator-dashboard.json"
KUBERNETES = ROOT / "deploy" / "kubernetes"


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """No stray AUTH0_/APPLE_/ROTATOR_ variable or CA override leaks into a test."""
    for name in list(os.environ):
        if name.startswith(PREFIXES) or name in ("SSL_CERT_FILE", "SSL_CERT_DIR"):
            monkeypatch.delenv(name)


@pytest.fixture(autouse=True)
def lock_dir(clean_environ: None, monkeypatch: pytest.MonkeyPatch,
             tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A lock folder of the test's own (mode 0700): parallel tests never share a lock."""
    folder = tmp_path_factory.mktemp("locks")
    folder.chmod(0o700)
    monkeypatch.setenv(LOCK_DIR, str(folder))
    return folder


@pytest.fixture(autouse=True)
def reset_structlog() -> Iterator[None]:
    """Each test starts and ends with structlog's default configuration and no log state."""
    from rotator import logs

    structlog.reset_defaults()
    yield
    structlog.reset_defaults()
    logs.SECRETS.clear()
    logs.STREAM.reset()


@pytest.fixture
def key_path(tmp_path: Path) -> Path:
    """A real P-256 key in Apple's .p8 format, mode 600."""
    path = tmp_path / f"AuthKey_{KEY_ID}.p8"
    generate_throwaway_key(path)
    return path


@pytest.fixture
def apple_key(key_path: Path) -> AppleKey:
    """The key at ``key_path``, loaded."""
    return load_key(key_path.read_bytes(), "test key")


def other_key(tmp_path: Path, name: str = "other.p8") -> tuple[Path, AppleKey]:
    """Another real Apple key (a .p8 file in ``tmp_path``): its path and the key loaded."""
    path = tmp_path / name
    generate_throwaway_key(path)
    return path, load_key(path.read_bytes(), name)


def rsa_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    """A fresh RSA key (for a client authenticating to Auth0 with Private Key JWT)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


@pytest.fixture
def public_key(key_path: Path) -> ec.EllipticCurvePublicKey:
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key.public_key()


@pytest.fixture
def apple_env(key_path: Path) -> dict[str, str]:
    """Environment for one connection's Apple side (enough for `rotator mint`)."""
    return {
        "APPLE_TEAM_ID": TEAM_ID,
        "APPLE_KEY_ID": KEY_ID,
        "APPLE_PRIVATE_KEY_FILE": str(key_path),
        "APPLE_CLIENT_ID": SERVICES_ID,
    }


def child_env(**extra: str) -> dict[str, str]:
    """The environment for a rotator the test starts: this process's, without rotator's
    variables (but for :data:`LOCK_DIR`, the test's own lock folder) nor SSL_CERT_FILE;
    then ``extra``."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(PREFIXES) or k == LOCK_DIR}
    base.pop("SSL_CERT_FILE", None)
    return {**base, **extra}


def offline_config(tmp_path: Path, key_path: Path, names: tuple[str, ...] = ("apple",),
                   apple: str = "") -> Path:
    """``tmp_path``/rotator.toml: connections ``names`` on a tenant nobody serves.

    Its M2M client ``m2m`` has its secret in ``tmp_path``/m2m_secret (written unless
    there); ``apple`` is a line added to the [apple] section. For tests that load the
    settings and contact no server.
    """
    secret_file = tmp_path / "m2m_secret"
    if not secret_file.exists():
        secret_file.write_text("m2m-secret")
    lines = ["[auth0]", 'domain = "example.eu.auth0.com"', 'client_id = "m2m"',
             f"client_secret_file = {json.dumps(str(secret_file))}",
             "[apple]", f'team_id = "{TEAM_ID}"', f'key_id = "{KEY_ID}"',
             f"private_key_file = {json.dumps(str(key_path))}", *([apple] if apple else [])]
    for name in names:
        lines += ["[[connections]]", f'connection = "{name}"', f'client_id = "{SERVICES_ID}"']
    path = tmp_path / "rotator.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


class Run(NamedTuple):
    """A finished `rotator` run (unpacks as code, stdout, stderr)."""

    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run_rotator(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120, cwd: Path | None = None,
    process: bool = False,
) -> Run:
    """The real CLI with only ``env`` added to a clean environment.

    By default in this interpreter (``rotator.cli.main``, the function the console
    script runs, its output captured): the same code path, without half a second
    of interpreter start-up per call. ``process=True`` runs ``python -m rotator``
    as a child process, for tests where the process boundary is the point.
    """
    environ = child_env(**(env or {}))
    if not process:
        return _in_process(args, environ, cwd)
    proc = subprocess.run(
        [sys.executable, "-m", "rotator", *args],
        env=environ,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        cwd=cwd,
        check=False,
    )
    return Run(proc.returncode, proc.stdout, proc.stderr)


def run_cli(*args: str, capsys: pytest.CaptureFixture[str]) -> Run:
    """The CLI in this process (the console script's code path), JSON logs, output captured."""
    from rotator import cli

    code = cli.main([*args, "--log-format", "json"])
    out, err = capsys.readouterr()
    return Run(code, out, err)


def events(stderr: str) -> list[dict[str, Any]]:
    """The JSON log events among ``stderr``'s lines."""
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


def named(stderr: str, event: str) -> list[dict[str, Any]]:
    """The log events called ``event``."""
    return [e for e in events(stderr) if e["event"] == event]


def strict_events(stderr: str) -> list[dict[str, Any]]:
    """Every line of ``stderr`` as a JSON log event: a line that is not one raises."""
    return [json.loads(line) for line in stderr.splitlines()]


def strict_named(stderr: str, event: str) -> list[dict[str, Any]]:
    """The log events called ``event``, from a ``stderr`` that holds nothing else."""
    return [e for e in strict_events(stderr) if e["event"] == event]


def _in_process(args: tuple[str, ...], environ: dict[str, str], cwd: Path | None) -> Run:
    from rotator import cli, logs

    saved, here = dict(os.environ), Path.cwd()
    out, err = io.StringIO(), io.StringIO()
    os.environ.clear()
    os.environ.update(environ)
    try:
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = cli.main(list(args))
            except SystemExit as exc:  # argparse: --help, --version, usage errors
                code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 2
    finally:
        os.chdir(here)
        os.environ.clear()
        os.environ.update(saved)
        structlog.reset_defaults()
        logs.SECRETS.clear()
    return Run(code, out.getvalue(), err.getvalue())


@dataclass
class Terminal:
    """A running rotator whose stderr is a pseudo-terminal; what it has written so far."""

    process: subprocess.Popen[str]
    master: int
    chunks: list[bytes] = field(default_factory=list)

    @property
    def text(self) -> str:
        return b"".join(self.chunks).decode(errors="replace")

    def read_until_closed(self) -> None:
        while True:
            ready, _, _ = select.select([self.master], [], [], 0.1)
            if not ready:
                if self.process.poll() is not None:
                    return
                continue
            try:
                data = os.read(self.master, 4096)
            except OSError:  # EIO: every writer of the terminal is gone
                return
            if not data:
                return
            self.chunks.append(data)


@contextlib.contextmanager
def at_terminal(*args: str) -> Iterator[Terminal]:
    """``python -m rotator ARGS`` with stderr on a pty and stdout on a pipe."""
    master, slave = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "rotator", *args], stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=slave, env=child_env(), text=True,
    )
    os.close(slave)
    terminal = Terminal(process, master)
    reader = threading.Thread(target=terminal.read_until_closed, daemon=True)
    reader.start()
    try:
        yield terminal
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
        reader.join(timeout=10)
        os.close(master)
        if process.stdout is not None:
            process.stdout.close()


def finish(terminal: Terminal, timeout: float = 60) -> tuple[int, str]:
    """Wait for the process; its exit code and stdout."""
    assert terminal.process.stdout is not None
    out = terminal.process.stdout.read()
    return terminal.process.wait(timeout=timeout), out


#: Top-level packages `rotator --help` and `rotator mint` must not import.
HEAVY = ("auth0", "apscheduler", "prometheus_client", "httpx")
# Runs the command the entry point runs (rotator.cli.main: entry() then leaves with its
# code, for mint through os._exit) and reports which modules it imported.
PROBE = """
import json, sys
code = None
try:
    from rotator.cli import main
    code = main(json.loads(sys.argv[1]))
except SystemExit as exc:
    code = exc.code
sys.stdout.flush()
print("PROBE " + json.dumps({"code": code, "modules": sorted(sys.modules)}), file=sys.stderr)
"""


def probe(args: list[str]) -> tuple[int, set[str]]:
    """Run `rotator ARGS` in a fresh interpreter: its exit code and the modules it imported."""
    proc = subprocess.run([sys.executable, "-c", PROBE, json.dumps(args)], capture_output=True,
                          text=True, timeout=60, check=False)
    found = json.loads(proc.stderr.rsplit("PROBE ", 1)[1])
    return found["code"], set(found["modules"])


def tool(name: str, how: str = "pip install -e '.[test]' brings it") -> str:
    """A test tool from the project's venv (next to this Python) or PATH; if missing, fail
    saying ``how`` to install it."""
    beside = Path(sys.executable).with_name(name)
    found = str(beside) if beside.is_file() else shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: {how}")
    return found


def made_tool(name: str, installer: str, targets: str = "`make test`") -> str:
    """:func:`tool` for a binary the Makefile downloads to .venv/bin with ``installer``."""
    return tool(name, f"run {targets}, which puts it at .venv/bin/{name} (scripts/{installer})")


# -- metrics files (--metrics-file) -------------------------------------------------------


def samples(path: Path) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """The file's samples: metric name -> {sorted labels: value}."""
    found: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(path.read_text(encoding="utf-8")):
        for sample in family.samples:
            found.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def one(found: dict[str, dict[tuple[tuple[str, str], ...], float]], name: str) -> float:
    """The value of an unlabelled metric."""
    (value,) = found[name].values()
    return value


def promtool(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """``promtool ARGS``, ``stdin`` fed to it; never raises on exit."""
    return subprocess.run([made_tool("promtool", "install-promtool"), *args], input=stdin,
                          capture_output=True, text=True, timeout=120, check=False)


def break_services_id(tenant: EmulatedTenant, connection: str) -> None:
    """Make the stored connection name another Services ID: rotator refuses it at step read."""
    options = dict(tenant.stored(connection)["options"])
    options["client_id"] = "com.example.somebody-else"
    tenant.emu.set_connection_options(connection, options)


# -- the environment variables rotator's source reads (test_docs, test_environment) ----------

#: Shaped like an environment variable (PATH, the one without an underscore, aside).
_ENV_NAME = re.compile(r"^[A-Z][A-Z0-9]*_[A-Z0-9_]+$")
#: Constants shaped like variables that are not (an ssl error name; os.open flags).
NOT_VARIABLES = {"CERTIFICATE_VERIFY_FAILED", "O_NONBLOCK", "O_NOCTTY"}


def variables_read() -> set[str]:
    """Every environment variable rotator reads, found by parsing its source.

    A variable is a string constant of rotator's modules (the emulator aside)
    shaped like one, except: the names rotator only *sets* for its hooks (the
    keys of an ``env={...}`` argument), the names in ``__all__``, and
    :data:`NOT_VARIABLES`. ``PATH`` counts where it is looked up (``.get``),
    and the proxy variables wherever ``urllib.request.getproxies_environment``
    reads them.
    """
    found: set[str] = set()
    for path in (ROOT / "rotator").rglob("*.py"):
        if "emulator" in path.parts:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skipped = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.keyword) and node.arg == "env" \
                    and isinstance(node.value, ast.Dict):
                skipped |= {id(key) for key in node.value.keys}
            if isinstance(node, ast.Assign) and any(
                    isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
                skipped |= {id(n) for n in ast.walk(node.value)}
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                    and node.func.attr == "get" and node.args \
                    and isinstance(node.args[0], ast.Constant) and node.args[0].value == "PATH":
                found.add("PATH")
            if isinstance(node, ast.Attribute) and node.attr == "getproxies_environment":
                found |= {"HTTPS_PROXY", "NO_PROXY"}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                    and _ENV_NAME.match(node.value) and id(node) not in skipped \
                    and node.value not in NOT_VARIABLES:
                found.add(node.value)
    return found


def wait_for(predicate: Callable[[], object], timeout: float, what: str) -> Any:
    """Poll ``predicate`` every 0.1 s; its first truthy answer, or fail at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        answer = predicate()
        if answer:
            return answer
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.1)


#: ``server.listen`` for a ``rotator start`` under test: port 0, so the system picks a free
#: port as it binds (no port number to race for); :func:`bound_listen` reads back which.
ANY_PORT = "127.0.0.1:0"


def bound_listen(log: Path, proc: subprocess.Popen[Any], within: float = 30) -> str:
    """HOST:PORT a ``rotator start --log-format json`` serves on, from its scheduler.started.

    ``log`` is the file its stderr goes to; fails if the process ends before the event.
    """
    def listen() -> str | None:
        text = log.read_text(encoding="utf-8")
        for line in text.splitlines(keepends=True):
            try:
                event = json.loads(line) if line.endswith("\n") else None
            except ValueError:
                continue
            if isinstance(event, dict) and event.get("event") == "scheduler.started":
                return str(event["listen"])
        if proc.poll() is not None:
            pytest.fail(f"rotator start exited ({proc.returncode}) before serving: {text}")
        return None

    return str(wait_for(listen, within, "rotator start's scheduler.started event"))


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A port on 127.0.0.1 that refuses connections for the whole test.

    Held bound and never listening, so nothing else can take it meanwhile (binding port
    0, closing the socket and reusing the number leaves that window open).
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


def assert_refused(run: Run, *needles: str, secrets: tuple[str, ...] | list[str] = ()) -> None:
    """Exit 2, one plain line on stderr naming every needle, no secret, no traceback."""
    assert run.code == 2, run.output
    assert "Traceback" not in run.output
    assert run.stdout == ""
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("rotator: error: ")
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    for secret in secrets:
        assert secret not in run.output


def pieces(value: str, size: int = 20) -> set[str]:
    """Every ``size``-character piece of a secret."""
    return {value[i:i + size] for i in range(max(1, len(value) - size + 1))}


def pem_lines(pem: Path | bytes) -> list[str]:
    """The lines of a PEM file (or its bytes) that would betray it: all but the ----- ones."""
    text = (pem.read_bytes() if isinstance(pem, Path) else pem).decode(errors="replace")
    return [line.strip() for line in text.splitlines()
            if line.strip() and not line.startswith("-----")]


def assert_no_piece(output: str, *secrets: str) -> None:
    """No secret, nor any 20-character piece of one, anywhere in ``output``."""
    for value in secrets:
        leaked = [p for p in pieces(value) if p in output]
        assert not leaked, leaked[:3]


def script(path: Path, body: str, interpreter: str = "/bin/sh") -> Path:
    """An executable script at ``path`` running ``body`` with ``interpreter``."""
    path.write_text(f"#!{interpreter}\n{body}")
    path.chmod(0o755)
    return path


def dump_hook(tmp_path: Path, body: str) -> Path:
    """An executable ``/bin/sh`` script ``hook.sh`` in ``tmp_path`` running ``body``."""
    return script(tmp_path / "hook.sh", body)


@pytest.fixture
def rotator() -> object:
    """The `run_rotator` helper, as a fixture."""
    return run_rotator


@pytest.fixture
def emu() -> Iterator[object]:
    """A fresh Auth0 emulator on loopback over TLS, stopped after the test."""
    from rotator.emulator import Emulator

    with Emulator() as emulator:
        yield emulator


@pytest.fixture
def tenant(emu: object, tmp_path: Path, key_path: Path) -> object:
    """An emulated tenant with a fully-scoped M2M client, and files to reach it."""
    from auth0_env import EmulatedTenant

    return EmulatedTenant(emu, tmp_path, key_path)  # type: ignore[arg-type]


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run the groups first, then the slow tests; stop a worker whose `--dist loadgroup`
    would not group.

    Longest first (xdist hands the groups out first, then single tests in this
    order): the groups and the tests marked slow then overlap everything else
    instead of starting last and holding the whole run open.

    pytest-xdist groups by appending ``@group`` to each marked test's node id; on
    pytest 9.2 that change no longer takes effect (pytest-xdist#1386), and each
    group's tests are then spread over every worker: Prometheus and the image's
    virtualenv set up once per worker, silently. pyproject.toml keeps pytest
    below 9.2 for this; the check says so if that ever slips. It runs after
    xdist's hook (trylast), which is what it inspects.
    """
    items.sort(key=lambda item: (item.get_closest_marker("xdist_group") is None,
                                 item.get_closest_marker("slow") is None))
    if not getattr(config.option, "loadgroup", False):
        return
    for item in items:
        if item.get_closest_marker("xdist_group") and "@" not in item.nodeid:
            item.stash[_UNGROUPED] = (
                f"--dist loadgroup does not group this test on pytest {pytest.__version__} "
                "(pytest-xdist#1386): install the test extras again (pytest<9.2)"
            )


_UNGROUPED = pytest.StashKey[str]()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Fail an ungrouped group member before its fixtures start anything."""
    if _UNGROUPED in item.stash:
        pytest.fail(item.stash[_UNGROUPED], pytrace=False)
