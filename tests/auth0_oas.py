"""Auth0's published Management API description, as the contract tests read it.

``tests/contract/auth0-connections-oas.json`` is an extract of Auth0's own
OpenAPI 3.1 description (auth0/docs-v2,
``main/docs/oas/management/v2/management-api-oas.json``, commit
7025885d35775606d69cce7c5d428e2ab5d3e522; ``info.x-source`` in the file says
the same), cut by ``scripts/extract-auth0-oas``: the operations rotator uses
and every schema they reference, unchanged. Its schemas are JSON Schema
2020-12, checked here with ``jsonschema``'s ``Draft202012Validator``.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

EXTRACT = Path(__file__).with_name("contract") / "auth0-connections-oas.json"
API_PREFIX = "/api/v2"  # the description's server: https://{tenantDomain}/api/v2


@functools.cache
def description() -> dict[str, Any]:
    """The extract, parsed once."""
    loaded: dict[str, Any] = json.loads(EXTRACT.read_text(encoding="utf-8"))
    return loaded


def validator(schema: dict[str, Any]) -> Draft202012Validator:
    """A Draft 2020-12 validator of ``schema``, its ``$ref``s resolved in the extract."""
    return Draft202012Validator({**schema, "components": description()["components"]})


def schema_errors(name: str, instance: object) -> list[str]:
    """Every way ``instance`` breaks ``components.schemas[name]`` (empty: it validates)."""
    checker = validator({"$ref": f"#/components/schemas/{name}"})
    return [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
            for e in checker.iter_errors(instance)]


@dataclass(frozen=True)
class Operation:
    """One operation of the description, matched to a request path."""

    method: str  # lower-case, as in the description
    template: str  # e.g. "/connections/{id}"
    spec: dict[str, Any]
    path_params: dict[str, str]

    @property
    def name(self) -> str:
        return f"{self.method.upper()} {self.template}"

    def parameters(self, where: str) -> dict[str, dict[str, Any]]:
        return {p["name"]: p for p in self.spec.get("parameters", []) if p["in"] == where}

    def response_schema(self, status: int) -> dict[str, Any] | None:
        answer = self.spec["responses"].get(str(status), {})
        content = answer.get("content", {}).get("application/json")
        return None if content is None else dict(content["schema"])

    def request_schema(self) -> dict[str, Any]:
        return dict(self.spec["requestBody"]["content"]["application/json"]["schema"])


def operation(method: str, path: str) -> Operation | None:
    """The operation a request to ``path`` (under /api/v2) is, or None."""
    if not path.startswith(API_PREFIX + "/"):
        return None
    relative = path.removeprefix(API_PREFIX)
    for template, methods in description()["paths"].items():
        names = re.findall(r"\{([^}]+)\}", template)
        pattern = re.sub(r"\\\{[^}]+\\\}", "([^/]+)", re.escape(template))
        match = re.fullmatch(pattern, relative)
        if match and method.lower() in methods:
            return Operation(method.lower(), template, methods[method.lower()],
                             dict(zip(names, match.groups(), strict=True)))
    return None


def _coerce(value: str, schema: dict[str, Any]) -> object:
    """A query string value as the JSON value its schema types it (unchanged if it cannot be)."""
    kind = schema.get("type")
    if kind == "integer" and re.fullmatch(r"-?[0-9]+", value):
        return int(value)
    if kind == "boolean" and value in ("true", "false"):
        return value == "true"
    return value


def query_errors(op: Operation, query: dict[str, list[str]]) -> list[str]:
    """How a request's query breaks the operation's declared query parameters."""
    declared = op.parameters("query")
    errors: list[str] = []
    for name, values in query.items():
        param = declared.get(name)
        if param is None:
            errors.append(f"{op.name}: undeclared query parameter {name!r}")
            continue
        schema = param["schema"]
        exploded = schema.get("type") == "array" and param.get("explode", True)
        if len(values) > 1 and not exploded:
            errors.append(f"{op.name}: {name!r} given {len(values)} times")
        if schema.get("type") == "array":
            item_schema = schema.get("items", {})
            instance: object = [_coerce(v, item_schema) for v in values]
        else:
            instance = _coerce(values[-1], schema)
        errors += [f"{op.name}: {name}={values!r}: {e.message}"
                   for e in validator(schema).iter_errors(instance)]
    return errors
