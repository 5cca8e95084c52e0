"""Auth0's Management API connections endpoints, and its error bodies, in-process.

``GET /api/v2/connections`` (filters, checkpoint and page pagination),
``GET /api/v2/connections/{id}`` and ``PATCH /api/v2/connections/{id}``, as
plain functions of the stored connections and the caller's token scopes.
:class:`~rotator.emulator.auth0.Auth0` checks the token and calls :func:`route`.
"""

from __future__ import annotations

import base64
import copy
from typing import Any, Final
from urllib.parse import unquote

from rotator.emulator import payload
from rotator.emulator.exchange import REASONS, Response

Query = dict[str, list[str]]
Connections = dict[str, dict[str, Any]]
Scopes = frozenset[str]  # of the token the request carries
#: Keys a connection has in a GET or PATCH answer but not in a list's items
#: (``ConnectionForList`` in Auth0's description: the deprecated enabled_clients).
_NOT_LISTED: Final = frozenset({"enabled_clients"})
#: The query parameters each operation declares in Auth0's description; Auth0
#: refuses any other with 400 invalid_query_string.
_LIST_QUERY: Final = frozenset({"per_page", "page", "include_totals", "from", "take",
                                "strategy", "name", "fields", "include_fields"})
_GET_QUERY: Final = frozenset({"fields", "include_fields"})


def api_error(status: int, message: str, code: str) -> Response:
    """An Auth0 Management API error: statusCode, error, message, errorCode."""
    reason = REASONS.get(status, "Error")
    body = {"statusCode": status, "error": reason, "message": message, "errorCode": code}
    return Response(status, body)


def route(
    connections: Connections, scopes: Scopes, method: str, path: str, query: Query,
    body: object,
) -> Response:
    """Answer a request under ``/api/v2`` made with a valid token of these scopes."""
    parts = path.split("/")  # ["", "api", "v2", "connections", id?]
    if parts[3:4] != ["connections"] or len(parts) > 5:
        return api_error(404, "Not Found", "not_found")
    if len(parts) == 4 and method == "GET":
        return _undeclared(query, _LIST_QUERY) or _list(connections, scopes, query)
    if len(parts) == 5 and parts[4] and method in ("GET", "PATCH"):
        denied = _undeclared(query, _GET_QUERY if method == "GET" else frozenset())
        if denied:
            return denied
        conn_id = unquote(parts[4])
        if method == "GET":
            return _get(connections, scopes, conn_id, query)
        return _patch(connections, scopes, conn_id, body)
    return api_error(404, "Not Found", "not_found")


def _undeclared(query: Query, declared: frozenset[str]) -> Response | None:
    extra = [name for name in query if name not in declared]
    if not extra:
        return None
    return _query_error(f"'Additional properties not allowed: {','.join(extra)}'")


def _bool_param(query: Query, name: str, default: bool) -> bool | None:
    values = query.get(name)
    if not values:
        return default
    return {"true": True, "false": False}.get(values[-1].lower())


def _int_param(query: Query, name: str, default: int) -> int | None:
    values = query.get(name)
    if not values:
        return default
    return int(values[-1]) if values[-1].isdigit() else None


def _query_error(message: str) -> Response:
    return api_error(400, f"Query validation error: {message}", "invalid_query_string")


def _scope_error(scopes: Scopes, scope: str) -> Response | None:
    if scope in scopes:
        return None
    return api_error(403, f"Insufficient scope, expected any of: {scope}", "insufficient_scope")


def _show(
    conn: dict[str, Any], scopes: Scopes, query: Query | None = None, *, listed: bool = False,
) -> Any:
    """The connection as an answer shows it: options only with the scope, fields filtered."""
    shown = {k: copy.deepcopy(v) for k, v in conn.items() if not (listed and k in _NOT_LISTED)}
    if "read:connections_options" not in scopes:
        shown.pop("options", None)
    wanted = [f for f in ",".join((query or {}).get("fields", [])).split(",") if f]
    if wanted and query is not None:
        include = _bool_param(query, "include_fields", True) is not False
        shown = {k: v for k, v in shown.items() if (k in wanted) == include}
    return shown


def _bad_id(connections: Connections, conn_id: str, action: str) -> Response | None:
    valid = conn_id in connections or (
        len(conn_id) == 20 and conn_id.startswith("con_") and conn_id[4:].isalnum()
    )
    if valid:
        return None
    message = (
        "Path validation error: 'String does not match pattern ^con_[A-Za-z0-9]{16}$' "
        f"on property id (The id of the connection to {action})."
    )
    return api_error(400, message, "invalid_uri")


def _list(connections: Connections, scopes: Scopes, query: Query) -> Response:
    denied = _scope_error(scopes, "read:connections")
    if denied:
        return denied
    if _bool_param(query, "include_fields", True) is None:
        return _query_error("'include_fields' must be true or false")
    strategies = {s for v in query.get("strategy", []) for s in v.split(",") if s}
    names = query.get("name", [])
    found = [
        conn
        for conn in connections.values()
        if (not strategies or conn.get("strategy") in strategies)
        and (not names or conn["name"] == names[-1])
    ]
    if "from" in query or "take" in query:
        return _checkpoint_page(found, scopes, query)
    page_no = _int_param(query, "page", 0)
    per_page = _int_param(query, "per_page", 100)  # the description's default
    if page_no is None or per_page is None or not 1 <= per_page <= 100:
        return _query_error("'page' must be >= 0 and 'per_page' from 1 to 100")
    totals = _bool_param(query, "include_totals", False)
    if totals is None:
        return _query_error("'include_totals' must be true or false")
    start = page_no * per_page
    page = [_show(conn, scopes, query, listed=True) for conn in found[start : start + per_page]]
    if totals:
        summary = {"total": len(found), "start": start, "limit": per_page, "connections": page}
        return Response(200, summary)
    return Response(200, page)


def _checkpoint_page(found: list[dict[str, Any]], scopes: Scopes, query: Query) -> Response:
    """One page of ``from``/``take`` pagination, with an opaque ``next`` unless it is the last."""
    take = _int_param(query, "take", 50)
    if take is None or not 1 <= take <= 100:
        return _query_error("'take' must be an integer from 1 to 100")
    start = 0
    cursor = query.get("from", [""])[-1]
    if cursor:
        try:
            after_id = base64.urlsafe_b64decode(cursor.encode()).decode()
        except ValueError:
            after_id = ""
        ids = [conn["id"] for conn in found]
        if after_id not in ids:
            return _query_error("'from' is not a valid checkpoint")
        start = ids.index(after_id)
    page = [_show(conn, scopes, query, listed=True) for conn in found[start : start + take]]
    result: dict[str, Any] = {"connections": page}
    if start + take < len(found):
        next_id = found[start + take]["id"]
        result["next"] = base64.urlsafe_b64encode(next_id.encode()).decode()
    return Response(200, result)


def _get(connections: Connections, scopes: Scopes, conn_id: str, query: Query) -> Response:
    denied = _scope_error(scopes, "read:connections") or _bad_id(connections, conn_id, "retrieve")
    if denied:
        return denied
    if conn_id not in connections:
        return api_error(404, "The connection does not exist.", "inexistent_connection")
    return Response(200, _show(connections[conn_id], scopes, query))


def _patch_body_error(body: object) -> Response | None:
    """Auth0's payload validation of a PATCH body (:mod:`~rotator.emulator.payload`)."""
    said = payload.problem(body)
    return None if said is None else api_error(400, said, "invalid_body")


def _patch(connections: Connections, scopes: Scopes, conn_id: str, body: object) -> Response:
    denied = _scope_error(scopes, "update:connections") or _bad_id(connections, conn_id, "update")
    denied = denied or _patch_body_error(body)
    if denied:
        return denied
    body = body if isinstance(body, dict) else {}  # anything else was refused just above
    if "options" in body:
        denied = _scope_error(scopes, "update:connections_options")
        if denied:
            return denied
    conn = connections.get(conn_id)
    if conn is None:
        return api_error(404, "The connection does not exist.", "inexistent_connection")
    # What Auth0 documents beyond the schema
    # (https://auth0.com/docs/api/management/v2/connections/patch-connections-by-id):
    # `options` sent replaces the whole object, and a PATCH without display_name
    # overwrites it with the connection's name.
    conn.update(copy.deepcopy(body))
    if "display_name" not in body:
        conn["display_name"] = conn["name"]
    # The description lets options and enabled_clients be null and says no more;
    # the emulator takes null as "none", so answers keep their documented types.
    for key, empty in (("options", {}), ("enabled_clients", [])):
        if key in body and body[key] is None:
            conn[key] = empty
    return Response(200, _show(conn, scopes))
