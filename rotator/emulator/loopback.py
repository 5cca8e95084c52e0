"""The emulator on loopback: a :class:`Backend` served over real TLS.

The certificate comes from a throwaway ``trustme`` CA that only clients
loading :attr:`Emulator.ca_pem_path` trust; ``trustme`` is imported when the
emulator starts. At start the emulator also writes an *admin file* next to the
CA (see :mod:`rotator.emulator.admin`), so that another process can register
and revoke Apple keys while it runs.
"""

from __future__ import annotations

import shutil
import ssl
import tempfile
import threading
from pathlib import Path
from types import TracebackType

from rotator.emulator import admin
from rotator.emulator.apple import TOKEN_PATH
from rotator.emulator.backend import Backend
from rotator.emulator.server import EmulatorServer


class Emulator(Backend):
    """Auth0 (and Apple's token endpoint) on ``https://localhost:PORT``.

    ``audience`` is the Management API identifier a token request must name;
    by default ``https://localhost:PORT/api/v2/``. Give another one (such as
    ``https://tenant.example.com/api/v2/``) to emulate rotator pointed at a
    custom domain: a token request naming the default is then refused with
    403 ``Service not enabled within domain``, as Auth0 does.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        rate_limit_burst: int | None = None,
        rate_limit_per_second: float | None = None,
        audience: str | None = None,
    ) -> None:
        super().__init__(rate_limit_burst, rate_limit_per_second, audience)
        self._host = host
        self._port = port
        self._custom_audience = audience
        self._server: EmulatorServer | None = None
        self._bound_port = 0
        self._thread: threading.Thread | None = None
        self._tmpdir: Path | None = None
        self._ca_pem = b""

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> Emulator:
        """Create the CA and certificate, bind, and serve in a daemon thread."""
        import trustme  # imported here to keep `import rotator.emulator` fast

        if self._server is not None:
            raise RuntimeError("emulator already started")
        ca = trustme.CA()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
        self._ca_pem = ca.cert_pem.bytes()
        self._tmpdir = Path(tempfile.mkdtemp(prefix="rotator-emulator-"))
        (self._tmpdir / "ca.pem").write_bytes(self._ca_pem)
        self._stopping.clear()
        self._server = EmulatorServer((self._host, self._port), self, context, self._stopping)
        self._bound_port = int(self._server.server_address[1])
        self.auth0.audience = self._custom_audience or f"https://{self.domain}/api/v2/"
        self.auth0.domains.add(self.domain)
        admin.write_file(self.admin_file, self.base_url, self.ca_pem_path, self.admin_token)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.01},  # how soon stop() is noticed
            name="auth0-emulator",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, cut open connections and remove the CA file; idempotent."""
        server, self._server = self._server, None
        self._stopping.set()
        if server is not None:
            server.shutdown()
            server.server_close()
            server.close_all()
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- addresses and trust -----------------------------------------------------------

    @property
    def port(self) -> int:
        """The TCP port the emulator listens on."""
        if not self._bound_port:
            raise RuntimeError("emulator not started")
        return self._bound_port

    @property
    def domain(self) -> str:
        """``localhost:PORT``: the value for rotator's ``domain`` setting."""
        return f"localhost:{self.port}"

    @property
    def base_url(self) -> str:
        """``https://localhost:PORT``."""
        return f"https://{self.domain}"

    @property
    def apple_token_url(self) -> str:
        """``https://localhost:PORT/auth/token``: the value for rotator's ``apple.token_url``."""
        return self.base_url + TOKEN_PATH

    @property
    def ca_pem_path(self) -> str:
        """Path of the throwaway CA's PEM file (removed at stop)."""
        return str(self._file("ca.pem"))

    @property
    def admin_file(self) -> Path:
        """Path of the admin file (URL, CA path, admin token; mode 600; removed at stop)."""
        return self._file("admin.json")

    @property
    def ca_pem(self) -> bytes:
        """The throwaway CA certificate, PEM."""
        if not self._ca_pem:
            raise RuntimeError("emulator not started")
        return self._ca_pem

    def client_ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts this emulator's CA (and nothing else)."""
        return ssl.create_default_context(cadata=self.ca_pem.decode("ascii"))

    def _file(self, name: str) -> Path:
        if self._tmpdir is None:
            raise RuntimeError("emulator not started")
        return self._tmpdir / name
