"""Tests for rotator.jsonvalue: JSON values compared with their JSON types included."""

from __future__ import annotations

from rotator.jsonvalue import differing, same


def test_same_tells_booleans_from_numbers() -> None:
    """`false` is not `0` and `true` is not `1`, though Python's == says they are."""
    assert not same(False, 0)
    assert not same(1, True)
    assert same(True, True)


def test_same_compares_numbers_by_value() -> None:
    """JSON has one number type: 1 and 1.0 are the same number, 1 and 2 are not."""
    assert same(1, 1.0)
    assert not same(1, 2)


def test_same_tells_strings_and_null_apart() -> None:
    """A string is not the number it spells, and null is only null."""
    assert not same("1", 1)
    assert not same(None, "")
    assert same(None, None)


def test_same_compares_arrays_and_objects_deeply() -> None:
    """Arrays compare element by element and objects key by key, types checked throughout."""
    assert same({"a": [1, {"b": True}]}, {"a": (1.0, {"b": True})})
    assert not same({"a": [1, {"b": True}]}, {"a": [1, {"b": 1}]})
    assert not same([1, 2], [1, 2, 3])
    assert not same({"a": 1}, {"a": 1, "b": 2})


def test_same_refuses_values_that_are_not_json() -> None:
    """A value with no JSON type (a set) is the same as no JSON value."""
    assert not same({1}, [1])


def test_differing_names_changed_retyped_and_missing_keys() -> None:
    """differing lists, sorted, the sent keys missing, changed or retyped in what is held."""
    sent = {"same": "x", "retyped": False, "changed": "a", "missing": None}
    held = {"same": "x", "retyped": 0, "changed": "b", "extra": 1}
    assert differing(sent, held) == ["changed", "missing", "retyped"]
    assert differing(sent, sent) == []
