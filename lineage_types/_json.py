"""Private helpers for reading the plain-dict JSON form back, with clear errors."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lineage_types.errors import LineageTypeError, _quoted


def _object(data: object, what: str) -> Mapping[str, Any]:
    """Return ``data`` if it is a JSON object (a mapping), else raise."""
    if not isinstance(data, Mapping):
        raise LineageTypeError(f"{what} must be a JSON object, got {type(data).__name__}")
    return data


def _field(data: Mapping[str, Any], key: str, expected: type | tuple[type, ...], what: str) -> Any:
    """Return ``data[key]`` after checking it is present and of the ``expected`` type."""
    if key not in data:
        raise LineageTypeError(f"{what} has no `{key}` field; it has {_quoted(data)}")
    value = data[key]
    # bool is an int subclass, but `true` is never a valid input index.
    if not isinstance(value, expected) or (isinstance(value, bool) and expected is int):
        raise LineageTypeError(f"{what} field `{key}` has the wrong type: {value!r}")
    return value


def _check_kind(data: Mapping[str, Any], kind: str, what: str) -> None:
    """Raise unless ``data["kind"] == kind``."""
    found = _field(data, "kind", str, what)
    if found != kind:
        raise LineageTypeError(f"{what} must have kind `{kind}`, got `{found}`")
