"""Exceptions raised by :mod:`lineage_types`.

Every error this package raises on bad input is a :class:`LineageTypeError`, so callers
(``hippo`` in particular) can catch the package's failures with one ``except`` clause and
re-raise them as their own errors.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["LineageTypeError"]


class LineageTypeError(ValueError):
    """Raised when a lineage type, column mapping or encoding is malformed or cannot compose."""


def _quoted(names: Iterable[object]) -> str:
    """Format names for an error message: ```a`, `b``` in the given order, or ``(none)``."""
    listed = [f"`{name}`" for name in names]
    return ", ".join(listed) if listed else "(none)"
