"""Auth0's validation of a ``PATCH /api/v2/connections/{id}`` body, in-process.

The rules are those of ``UpdateConnectionRequestContent`` in Auth0's published
OpenAPI description of the Management API v2 (auth0/docs-v2,
``main/docs/oas/management/v2/management-api-oas.json``; the contract tests
hold this module against an extract of it, ``tests/contract/``): an object of
at least one known key, each of its type and shape. A body that breaks one is
refused the way Auth0 refuses it: 400 ``invalid_body`` with a ``Payload
validation error`` message. ``options`` is checked to be an object (or null);
its keys depend on the connection's strategy and are Auth0's to judge.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from rotator.emulator.exchange import INVALID


@dataclass(frozen=True)
class _Rule:
    """What one key of the body may hold."""

    types: tuple[str, ...]  # JSON type names allowed
    max_length: int | None = None  # of a string
    items: str | None = None  # JSON type of an array's items
    fields: dict[str, str] = field(default_factory=dict)  # an object's own keys, typed
    required: tuple[str, ...] = ()
    values: tuple[str, ...] | None = None  # JSON types of any other key's value
    value_max_length: int | None = None  # of such a value, when a string
    max_properties: int | None = None


_ACTIVE: Final = _Rule(("object",), fields={"active": "boolean"}, required=("active",))
RULES: Final[dict[str, _Rule]] = {
    "display_name": _Rule(("string",), max_length=128),
    "options": _Rule(("object", "null"), values=("any",)),
    "enabled_clients": _Rule(("array", "null"), items="string"),
    "is_domain_connection": _Rule(("boolean",)),
    "show_as_button": _Rule(("boolean",)),
    "realms": _Rule(("array",), items="string"),
    "metadata": _Rule(("object",), values=("string", "null"), value_max_length=255,
                      max_properties=10),
    "authentication": _ACTIVE,
    "connected_accounts": _Rule(
        ("object",), fields={"active": "boolean", "cross_app_access": "boolean"},
        required=("active",),
    ),
    "cross_app_access_requesting_app": _ACTIVE,
}


def json_type(value: object) -> str:
    """The JSON type name of a parsed value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    names = {float: "number", str: "string", list: "array", dict: "object"}
    return names.get(type(value), type(value).__name__)


def _type_error(expected: tuple[str, ...], value: object, where: str) -> str:
    return (f"'Expected type {','.join(expected)} but found type {json_type(value)}' "
            f"on property {where}")


def _check(rule: _Rule, value: object, where: str) -> str | None:
    """What is wrong with ``value`` under ``rule``, or None."""
    if json_type(value) not in rule.types:
        return _type_error(rule.types, value, where)
    if isinstance(value, str) and rule.max_length is not None and len(value) > rule.max_length:
        return (f"'String is too long ({len(value)} chars), maximum {rule.max_length}' "
                f"on property {where}")
    if isinstance(value, list) and rule.items is not None:
        for index, item in enumerate(value):
            if json_type(item) != rule.items:
                return _type_error((rule.items,), item, f"{where}[{index}]")
    if isinstance(value, dict):
        return _check_object(rule, value, where)
    return None


def _check_object(rule: _Rule, value: dict[str, object], where: str) -> str | None:
    if rule.max_properties is not None and len(value) > rule.max_properties:
        return (f"'Too many properties defined ({len(value)}), maximum {rule.max_properties}' "
                f"on property {where}")
    for name in rule.required:
        if name not in value:
            return f"'Missing required property: {name}' on property {where}"
    for name, item in value.items():
        if name in rule.fields:
            if json_type(item) != rule.fields[name]:
                return _type_error((rule.fields[name],), item, f"{where}.{name}")
        elif rule.values is None:
            return f"'Additional properties not allowed: {name}' on property {where}"
        elif "any" not in rule.values and json_type(item) not in rule.values:
            return _type_error(rule.values, item, f"{where}.{name}")
        elif isinstance(item, str) and len(item) > (rule.value_max_length or len(item)):
            return (f"'String is too long ({len(item)} chars), maximum "
                    f"{rule.value_max_length}' on property {where}.{name}")
    return None


def problem(body: object) -> str | None:
    """Auth0's message for a PATCH body it refuses (400 ``invalid_body``), or None."""
    if body is INVALID:
        return "Invalid request payload JSON format"
    if not isinstance(body, dict):
        return f"Payload validation error: 'Expected type object but found type {json_type(body)}'."
    if not body:
        return "Payload validation error: 'Too few properties defined (0), minimum 1'."
    extra = [key for key in body if key not in RULES]
    if extra:
        return f"Payload validation error: 'Additional properties not allowed: {','.join(extra)}'."
    for key, value in body.items():
        said = _check(RULES[key], value, key)
        if said is not None:
            return f"Payload validation error: {said}."
    return None
