"""Tests for rotator.lazy_imports: `rotator mint` never executes cryptography.x509, and any
later use still loads it. Each test runs in a fresh interpreter: imports are process-wide."""

from __future__ import annotations

import json
import os
import subprocess
import sys

#: Prints, as JSON, the deferred module's type name and whether its submodules ran.
REPORT = """
import json, sys
x509 = sys.modules.get("cryptography.x509")
print(json.dumps({"type": type(x509).__name__,
                  "executed": "cryptography.x509.base" in sys.modules}))
"""


def run(code: str, env: dict[str, str] | None = None) -> list[dict[str, object]]:
    """Run ``code`` in a fresh interpreter; each line it printed, parsed as JSON."""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=False, env={**os.environ, **(env or {})})
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


def test_signing_after_deferring_never_executes_cryptography_x509() -> None:
    """PyJWT imports cryptography.x509; deferred, signing with a key object runs none of it."""
    code = ("from rotator.lazy_imports import defer_unused_imports\n"
            "defer_unused_imports()\nimport jwt\n"
            "from cryptography.hazmat.primitives.asymmetric import ec\n"
            "key = ec.generate_private_key(ec.SECP256R1())\n"
            "assert jwt.encode({'sub': 'x'}, key, algorithm='ES256').count('.') == 2\n"
            + REPORT)
    assert run(code) == [{"type": "_LazyModule", "executed": False}]


def test_first_use_loads_the_deferred_module_transparently() -> None:
    """`import cryptography.x509` then an attribute: the real module, loaded on that access."""
    code = ("from rotator.lazy_imports import defer_unused_imports\n"
            "defer_unused_imports()\nimport jwt\n" + REPORT
            + "import cryptography.x509\n"
            "assert cryptography.x509.NameOID.COMMON_NAME.dotted_string == '2.5.4.3'\n"
            "from cryptography.x509 import load_pem_x509_certificate\n" + REPORT)
    before, after = run(code)
    assert before == {"type": "_LazyModule", "executed": False}
    assert after == {"type": "module", "executed": True}


def test_a_module_already_imported_is_left_alone() -> None:
    """Deferring a module that is already loaded keeps that very module object."""
    code = ("import cryptography.x509, sys\nloaded = sys.modules['cryptography.x509']\n"
            "from rotator.lazy_imports import defer_unused_imports\n"
            "defer_unused_imports()\n"
            "assert sys.modules['cryptography.x509'] is loaded\n" + REPORT)
    assert run(code) == [{"type": "module", "executed": True}]


def test_a_module_that_does_not_exist_is_skipped() -> None:
    """A name no finder knows is skipped without error and never enters sys.modules."""
    code = ("import json, sys\nfrom rotator.lazy_imports import defer_unused_imports\n"
            "defer_unused_imports(('rotator_no_such_module', 'json.no_such_child'))\n"
            "print(json.dumps({'in': sorted(m for m in sys.modules if 'no_such' in m)}))\n")
    assert run(code) == [{"in": []}]


def test_rotator_mint_prints_a_secret_without_executing_cryptography_x509(
    apple_env: dict[str, str],
) -> None:
    """The mint command defers the module, signs a secret, and leaves x509 unexecuted."""
    code = ("import contextlib, io, json, sys\nfrom rotator.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
            "    code = main(['mint'])\n"
            "print(json.dumps({'code': code, 'dots': out.getvalue().count('.')}))\n" + REPORT)
    minted, report = run(code, env=apple_env)
    assert minted == {"code": 0, "dots": 2}  # one JWT: header.claims.signature
    assert report == {"type": "_LazyModule", "executed": False}

