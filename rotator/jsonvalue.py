"""Comparing JSON values the way JSON sees them, types included.

Python's ``==`` says ``0 == False`` and ``1 == 1.0 == True``; JSON has
distinct types for booleans, numbers, strings, null, arrays and objects. An
option stored as ``0`` where ``false`` was sent is a changed option, so every
comparison of what was sent with what is stored goes through :func:`same`.
Numbers compare by value (JSON has one number type: ``1`` and ``1.0`` are the
same number).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return f"not JSON ({type(value).__name__})"


def same(a: Any, b: Any) -> bool:
    """Whether ``a`` and ``b`` are the same JSON value, with the same JSON types throughout."""
    kind = _kind(a)
    if kind != _kind(b):
        return False
    if kind == "array":
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if kind == "object":
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


def differing(sent: Mapping[str, Any], held: Mapping[str, Any]) -> list[str]:
    """The keys of ``sent`` that ``held`` lacks or holds with another value or type."""
    missing = object()
    return sorted(k for k in sent if not same(sent[k], held.get(k, missing)))
