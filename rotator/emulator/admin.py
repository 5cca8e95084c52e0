"""The emulator's own admin endpoints: register and revoke Apple keys while it runs.

They live under ``/_emulator/``, answer only a request that carries the admin
token (``Authorization: Bearer TOKEN``) made at start, and are no part of an
emulated service: never faulted, rate limited or journalled.

* ``POST /_emulator/apple/keys`` ``{"team_id", "key_id", "public_key": PEM}``: 201;
* ``DELETE /_emulator/apple/keys/{key_id}``: 200, or 404 for an unknown key;
* ``POST /_emulator/apple/services-ids`` ``{"team_id", "services_id"}``: 201.

Errors are ``{"error": "..."}`` with 400, 401 or 404. A running emulator
writes an *admin file* (JSON: ``url``, ``ca``, ``token``) that :func:`call`
reads to reach it from another process.
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import ssl
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote, unquote, urlsplit

from rotator.emulator.apple import Apple
from rotator.emulator.exchange import Response

PREFIX: Final = "/_emulator/"
KEYS: Final = PREFIX + "apple/keys"
SERVICES_IDS: Final = PREFIX + "apple/services-ids"


def _fields(body: object, *names: str) -> list[str] | Response:
    """The named string fields of a JSON object body, or the 400 it earns."""
    values = [body.get(name) if isinstance(body, dict) else None for name in names]
    if not all(isinstance(value, str) and value for value in values):
        return Response(400, {"error": f"send a JSON object with {', '.join(names)}"})
    return [str(value) for value in values]


def handle(
    apple: Apple, token: str, method: str, path: str, headers: dict[str, str], body: object
) -> Response:
    """Answer one admin request (see the module docstring)."""
    sent = headers.get("authorization", "").removeprefix("Bearer ").strip()
    if not secrets.compare_digest(sent.encode(), token.encode()):
        return Response(401, {"error": "admin token required (Authorization: Bearer TOKEN)"})
    if method == "POST" and path == KEYS:
        fields = _fields(body, "team_id", "key_id", "public_key")
        if isinstance(fields, Response):
            return fields
        team_id, key_id, pem = fields
        try:
            apple.register_key(team_id, key_id, pem)
        except ValueError as exc:
            return Response(400, {"error": f"public_key: {exc}"})
        return Response(201, {"team_id": team_id, "key_id": key_id})
    if method == "DELETE" and path.startswith(KEYS + "/"):
        key_id = unquote(path.removeprefix(KEYS + "/"))
        try:
            apple.revoke_key(key_id)
        except KeyError:
            return Response(404, {"error": f"no key {key_id!r} is registered"})
        return Response(200, {"key_id": key_id, "revoked": True})
    if method == "POST" and path == SERVICES_IDS:
        fields = _fields(body, "team_id", "services_id")
        if isinstance(fields, Response):
            return fields
        try:
            apple.add_services_id(*fields)
        except ValueError as exc:
            return Response(400, {"error": str(exc)})
        return Response(201, {"team_id": fields[0], "services_id": fields[1]})
    return Response(404, {"error": f"no admin endpoint {method} {path}"})


def write_file(path: Path, url: str, ca: str, token: str) -> None:
    """Write the admin file (mode 600): how another process reaches these endpoints."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle_:
        json.dump({"url": url, "ca": ca, "token": token}, handle_)


def call(admin_file: Path, method: str, path: str, body: dict[str, str] | None = None) -> Any:
    """Call an admin endpoint of the emulator that wrote ``admin_file``; its JSON answer.

    Raises OSError when the file is unreadable or the emulator unreachable,
    and RuntimeError carrying the emulator's error when it answers 4xx.
    """
    try:
        info = json.loads(admin_file.read_text())
        url, ca, token = urlsplit(info["url"]), info["ca"], info["token"]
    except (ValueError, KeyError, TypeError) as exc:
        raise OSError(f"{admin_file} is not an emulator admin file") from exc
    context = ssl.create_default_context(cafile=ca)
    conn = http.client.HTTPSConnection(url.hostname or "", url.port, context=context, timeout=10)
    headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
    try:
        conn.request(method, quote(path), json.dumps(body) if body else None, headers)
        answer = conn.getresponse()
        status, data = answer.status, json.loads(answer.read() or b"null")
    except (http.client.HTTPException, ValueError) as exc:
        raise OSError(f"the emulator at {info['url']} gave no usable answer") from exc
    finally:
        conn.close()
    if status >= 400:
        error = data.get("error") if isinstance(data, dict) else None
        raise RuntimeError(str(error or f"the emulator answered {status}"))
    return data
