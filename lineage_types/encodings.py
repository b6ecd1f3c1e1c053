"""Row-mapping encodings: how the rows of an output relate to the rows of an input.

The cheapest exact encoding wins (Hippo's higher-order function encoding):

* :class:`Passthrough` -- the input row id is carried through; nothing is stored.
* :class:`Key` -- output rows relate to the input rows with equal values of key columns;
  nothing is stored per row, the relation is resolved at query time.
* :class:`Explicit` -- a table of (output id, input id) pairs, for what nothing cheaper
  describes exactly.
* :class:`Chain` -- the encoding of a composite path: its non-trivial steps, in order.

What is *not* checked: that key columns exist in the input schema, or that an explicit
table exists. A :class:`Chain` keeps the non-passthrough steps but not where along the path
they sit; a :class:`Key` in it names columns at its own step's input, so resolving a chain
needs the per-step lineage types as well.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeAlias

from lineage_types._json import _check_kind, _field, _object
from lineage_types.errors import LineageTypeError, _quoted

__all__ = ["Passthrough", "Key", "Explicit", "Chain", "Encoding", "encoding_from_json"]


@dataclass(frozen=True)
class Passthrough:
    """The row id is carried through the operator: nothing is stored.

    Examples
    --------
    >>> Passthrough().to_json()
    {'kind': 'passthrough'}
    """

    kind: ClassVar[str] = "passthrough"

    def to_json(self) -> dict[str, Any]:
        """Return the JSON form ``{"kind": "passthrough"}``."""
        return {"kind": self.kind}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Passthrough:
        """Rebuild from :meth:`to_json` output."""
        _check_kind(_object(data, "an encoding"), cls.kind, "a passthrough encoding")
        return cls()


@dataclass(frozen=True)
class Key:
    """Output rows relate to the input rows with equal values of these input columns.

    Parameters
    ----------
    keys : tuple[str, ...]
        Input key column names. An empty tuple is a global aggregate: every output row
        relates to every input row.

    Examples
    --------
    >>> Key(("carrier", "origin")).to_json()
    {'kind': 'key', 'keys': ['carrier', 'origin']}
    """

    keys: tuple[str, ...]
    kind: ClassVar[str] = "key"

    def __post_init__(self) -> None:
        if isinstance(self.keys, str) or not isinstance(self.keys, Iterable):
            raise LineageTypeError(f"keys must be a sequence of column names, got {self.keys!r}")
        keys = tuple(self.keys)
        bad = [key for key in keys if not isinstance(key, str)]
        if bad:
            raise LineageTypeError(f"key column names must be str, got {bad[0]!r}")
        repeated = sorted({key for key in keys if keys.count(key) > 1})
        if repeated:
            raise LineageTypeError(f"duplicate key columns {_quoted(repeated)}")
        object.__setattr__(self, "keys", keys)

    def to_json(self) -> dict[str, Any]:
        """Return the JSON form ``{"kind": "key", "keys": [...]}``."""
        return {"kind": self.kind, "keys": list(self.keys)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Key:
        """Rebuild from :meth:`to_json` output."""
        data = _object(data, "an encoding")
        _check_kind(data, cls.kind, "a key encoding")
        return cls(tuple(_field(data, "keys", list, "a key encoding")))


@dataclass(frozen=True)
class Explicit:
    """Row relations stored as a table of id pairs.

    Parameters
    ----------
    table : str
        Name or path of the table of id pairs in the lineage store.

    Examples
    --------
    >>> Explicit("mappings/op_7").to_json()
    {'kind': 'explicit', 'table': 'mappings/op_7'}
    """

    table: str
    kind: ClassVar[str] = "explicit"

    def __post_init__(self) -> None:
        if not isinstance(self.table, str) or not self.table:
            raise LineageTypeError(f"table must be a non-empty str, got {self.table!r}")

    def to_json(self) -> dict[str, Any]:
        """Return the JSON form ``{"kind": "explicit", "table": str}``."""
        return {"kind": self.kind, "table": self.table}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Explicit:
        """Rebuild from :meth:`to_json` output."""
        data = _object(data, "an encoding")
        _check_kind(data, cls.kind, "an explicit encoding")
        return cls(_field(data, "table", str, "an explicit encoding"))


@dataclass(frozen=True)
class Chain:
    """The encoding of a composite path: two or more Key or Explicit steps, in path order.

    Build chains with :meth:`Chain.of`, which normalizes; the constructor only accepts
    the normal form, so equal paths give equal chains.

    Parameters
    ----------
    steps : tuple[Encoding, ...]
        At least two steps, none of them Passthrough or Chain.
    """

    steps: tuple[Encoding, ...]
    kind: ClassVar[str] = "chain"

    def __post_init__(self) -> None:
        if isinstance(self.steps, (str, bytes)) or not isinstance(self.steps, Iterable):
            raise LineageTypeError(f"steps must be a sequence of encodings, got {self.steps!r}")
        steps = tuple(self.steps)
        if len(steps) < 2 or not all(isinstance(step, (Key, Explicit)) for step in steps):
            raise LineageTypeError(
                f"a Chain holds two or more Key or Explicit steps, got {steps!r}; build "
                f"one with `Chain.of(steps)`, which flattens chains and drops Passthrough"
            )
        object.__setattr__(self, "steps", steps)

    @classmethod
    def of(cls, steps: Iterable[Encoding]) -> Encoding:
        """Return the encoding of applying ``steps`` in order, in normal form.

        Nested chains are flattened and Passthrough steps dropped; no steps left gives
        Passthrough, one step left gives that step.

        Examples
        --------
        >>> Chain.of([Passthrough(), Key(("k",))])
        Key(keys=('k',))
        >>> Chain.of([Key(("k",)), Chain.of([Passthrough(), Explicit("t")])])
        Chain(steps=(Key(keys=('k',)), Explicit(table='t')))
        """
        flat: list[Encoding] = []
        for step in steps:
            if isinstance(step, Chain):
                flat.extend(step.steps)
            elif isinstance(step, (Key, Explicit)):
                flat.append(step)
            elif not isinstance(step, Passthrough):
                raise LineageTypeError(f"not an encoding: {step!r}")
        if not flat:
            return Passthrough()
        if len(flat) == 1:
            return flat[0]
        return cls(tuple(flat))

    def to_json(self) -> dict[str, Any]:
        """Return the JSON form ``{"kind": "chain", "steps": [...]}``."""
        return {"kind": self.kind, "steps": [step.to_json() for step in self.steps]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Chain:
        """Rebuild from :meth:`to_json` output."""
        data = _object(data, "an encoding")
        _check_kind(data, cls.kind, "a chain encoding")
        steps = _field(data, "steps", list, "a chain encoding")
        return cls(tuple(encoding_from_json(step) for step in steps))


Encoding: TypeAlias = Passthrough | Key | Explicit | Chain
"""Any row-mapping encoding."""

_BY_KIND: dict[str, type[Passthrough] | type[Key] | type[Explicit] | type[Chain]] = {
    cls.kind: cls for cls in (Passthrough, Key, Explicit, Chain)
}


def encoding_from_json(data: Mapping[str, Any]) -> Encoding:
    """Rebuild any encoding from its ``to_json()`` output, dispatching on ``kind``.

    Raises
    ------
    LineageTypeError
        If ``data`` is malformed or its kind is unknown.

    Examples
    --------
    >>> encoding_from_json({"kind": "key", "keys": ["carrier"]})
    Key(keys=('carrier',))
    """
    kind = _field(_object(data, "an encoding"), "kind", str, "an encoding")
    if kind not in _BY_KIND:
        known = _quoted(_BY_KIND)
        raise LineageTypeError(f"unknown encoding kind `{kind}`; known kinds are {known}")
    return _BY_KIND[kind].from_json(data)
