"""Lineage types: an operator's row cardinality, column mapping and row-mapping encoding.

A lineage type is what is the same for every row of an operator, stored once per
operator. Its class says how output rows relate to input rows:

* :class:`OneToOne` -- each output row comes from one input row (project, filter, sort);
  :class:`Identity` is the trivial case (same columns, row id carried through);
* :class:`OneToMany` -- one input row gives several output rows (explode);
* :class:`ManyToOne` -- one output row comes from several input rows (aggregate, distinct);
* :class:`ManyToMany` -- both (window aggregates, or composites of the above).

:func:`compose` gives the type of a path of two operators, :func:`compose_path` of a
whole path. The kind of a composite fans out if a step does and fans in if a step does.

What is *not* checked: that the kind agrees with the encoding or the column mapping
(e.g. a ManyToOne with a Passthrough encoding), that key columns exist in the input
schema, that referenced columns or inputs exist, or that an explicit table exists.
Composition checks only that each step reads columns the previous step produces.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import InitVar, dataclass
from functools import reduce
from typing import Any, ClassVar, TypeVar

from lineage_types._json import _field, _object
from lineage_types.columns import ColumnMapping, ColumnRef
from lineage_types.encodings import (
    Chain,
    Encoding,
    Explicit,
    Key,
    Passthrough,
    encoding_from_json,
)
from lineage_types.errors import LineageTypeError, _quoted

__all__ = [
    "LineageType",
    "OneToOne",
    "OneToMany",
    "ManyToOne",
    "ManyToMany",
    "Identity",
    "compose",
    "compose_path",
    "lineage_type_from_json",
]

_T = TypeVar("_T", bound="LineageType")


@dataclass(frozen=True)
class LineageType:
    """Abstract base of the lineage types; instantiate one of its subclasses.

    Parameters
    ----------
    columns : ColumnMapping
        Which input cells each output column comes from, and which decide the rows.
        May be left out of a *declaration* (``OneToOne(key="id")``): whoever applies
        the declaration fills it in.
    encoding : Encoding
        How output rows are related to input rows.
    key : str or sequence of str, keyword only
        Shorthand for ``encoding=Key(...)``: output rows relate to the input rows with
        equal values of these columns (the parent's key for OneToOne and OneToMany, the
        group keys for ManyToOne and ManyToMany).
    """

    columns: ColumnMapping | None = None
    encoding: Encoding | None = None
    key: InitVar[str | Sequence[str] | None] = None

    kind: ClassVar[str]
    """Name of the type in JSON."""
    fans_out: ClassVar[bool]
    """Whether one input row may give several output rows."""
    fans_in: ClassVar[bool]
    """Whether one output row may come from several input rows."""

    def __post_init__(self, key: str | Sequence[str] | None = None) -> None:
        if type(self) is LineageType:
            raise TypeError(
                "LineageType is abstract; use OneToOne, OneToMany, ManyToOne, ManyToMany "
                "or Identity"
            )
        if key is not None:
            if self.encoding is not None:
                raise LineageTypeError("give `key` or `encoding`, not both")
            object.__setattr__(self, "encoding", Key((key,) if isinstance(key, str)
                                                     else tuple(key)))
        if self.columns is None and self.encoding is not None:
            return  # a declaration: its column mapping is filled in where it is applied
        if not isinstance(self.columns, ColumnMapping):
            raise LineageTypeError(f"columns must be a ColumnMapping, got {self.columns!r}")
        if not isinstance(self.encoding, (Passthrough, Key, Explicit, Chain)):
            raise LineageTypeError(f"encoding must be an Encoding, got {self.encoding!r}")

    @property
    def declared(self) -> bool:
        """Whether this is a declaration without a column mapping yet."""
        return self.columns is None

    def with_columns(self: _T, columns: ColumnMapping) -> _T:
        """The same type with ``columns`` as its column mapping."""
        return type(self)(columns, self.encoding)

    def then(self, second: LineageType) -> LineageType:
        """Return the type of applying ``second`` after this one; see :func:`compose`."""
        return compose(self, second)

    def to_json(self) -> dict[str, Any]:
        """Return a plain, JSON-serializable dict: ``kind``, ``columns`` and ``encoding``."""
        if self.columns is None:
            raise LineageTypeError(f"a {type(self).__name__} declaration has no column "
                                   "mapping to write yet")
        return {
            "kind": self.kind,
            "columns": self.columns.to_json(),
            "encoding": self.encoding.to_json(),
        }

    @classmethod
    def from_json(cls: type[_T], data: Mapping[str, Any]) -> _T:
        """Rebuild a lineage type from :meth:`to_json` output.

        Called on a subclass, also checks that the JSON holds that kind (or a subkind).

        Raises
        ------
        LineageTypeError
            If ``data`` is malformed or holds another kind.
        """
        result = lineage_type_from_json(data)
        if not isinstance(result, cls):
            raise LineageTypeError(f"expected a {cls.__name__}, the JSON holds `{result.kind}`")
        return result


@dataclass(frozen=True)
class OneToOne(LineageType):
    """Each output row comes from exactly one input row (project, filter, sort, ...).

    Examples
    --------
    >>> OneToOne(ColumnMapping.identity(["a"]), Passthrough()).to_json()["kind"]
    'one_to_one'
    """

    kind: ClassVar[str] = "one_to_one"
    fans_out: ClassVar[bool] = False
    fans_in: ClassVar[bool] = False


@dataclass(frozen=True)
class OneToMany(LineageType):
    """One input row may give several output rows; each output row has one parent (explode)."""

    kind: ClassVar[str] = "one_to_many"
    fans_out: ClassVar[bool] = True
    fans_in: ClassVar[bool] = False


@dataclass(frozen=True)
class ManyToOne(LineageType):
    """Each output row comes from a group of input rows; each input row is in one group.

    Examples
    --------
    >>> agg = ManyToOne(ColumnMapping({"n": set()}), Key(()))  # a global count
    >>> agg.encoding.keys
    ()
    """

    kind: ClassVar[str] = "many_to_one"
    fans_out: ClassVar[bool] = False
    fans_in: ClassVar[bool] = True


@dataclass(frozen=True)
class ManyToMany(LineageType):
    """Output rows come from several input rows, and input rows reach several output rows."""

    kind: ClassVar[str] = "many_to_many"
    fans_out: ClassVar[bool] = True
    fans_in: ClassVar[bool] = True


@dataclass(frozen=True)
class Identity(OneToOne):
    """The trivial type: every column from its same-named input column, row id carried through.

    Build one with :meth:`Identity.of`. The constructor checks the column mapping is an
    identity over one input, with nothing influencing, and the encoding is Passthrough.

    Examples
    --------
    >>> Identity.of(["a", "b"]).then(Identity.of(["b"])) == Identity.of(["b"])
    True
    """

    kind: ClassVar[str] = "identity"

    def __post_init__(self, key: str | Sequence[str] | None = None) -> None:
        super().__post_init__(key)
        if self.columns is None:
            raise LineageTypeError("an Identity needs its column mapping")
        if not isinstance(self.encoding, Passthrough):
            raise LineageTypeError(f"an Identity's encoding is Passthrough, got {self.encoding!r}")
        if self.columns.influencing:
            raise LineageTypeError(
                f"an Identity has no influencing columns, got "
                f"{_quoted(ref.column for ref in sorted(self.columns.influencing))}"
            )
        inputs = self.columns.inputs or {0}
        for name, refs in self.columns.contributing.items():
            if len(inputs) != 1 or refs != {ColumnRef(min(inputs), name)}:
                raise LineageTypeError(
                    f"an Identity maps each column to the same-named column of one input, "
                    f"but output column `{name}` comes from "
                    f"{_quoted(f'{ref.input}.{ref.column}' for ref in sorted(refs))}"
                )

    @classmethod
    def of(cls, columns: Sequence[str], input: int = 0) -> Identity:
        """Return the identity over ``columns`` of ``input``."""
        return cls(ColumnMapping.identity(columns, input), Passthrough())


_KINDS: dict[str, type[LineageType]] = {
    cls.kind: cls for cls in (OneToOne, OneToMany, ManyToOne, ManyToMany, Identity)
}
_BY_SHAPE: dict[tuple[bool, bool], type[LineageType]] = {
    (cls.fans_out, cls.fans_in): cls for cls in (OneToOne, OneToMany, ManyToOne, ManyToMany)
}


def compose(first: LineageType, second: LineageType) -> LineageType:
    """Return the lineage type of applying ``second`` to the output of ``first``.

    The kind follows the row-cardinality algebra: OneToOne (and Identity) is neutral,
    OneToMany and ManyToOne compose with themselves, and mixing them or any ManyToMany
    gives ManyToMany; Identity after Identity stays Identity. Columns compose with
    :meth:`ColumnMapping.then`; encodings with :meth:`Chain.of`.

    Raises
    ------
    LineageTypeError
        If an argument is not a lineage type, or ``second`` reads a column ``first`` does
        not produce or an input other than 0.

    Examples
    --------
    >>> explode = OneToMany(ColumnMapping.identity(["k"]), Passthrough())
    >>> group = ManyToOne(ColumnMapping.identity(["k"]), Key(("k",)))
    >>> both = compose(explode, group)
    >>> both.kind, both.encoding
    ('many_to_many', Key(keys=('k',)))
    """
    for name, arg in (("first", first), ("second", second)):
        if not isinstance(arg, LineageType):
            raise LineageTypeError(f"`{name}` must be a LineageType, got {arg!r}")
    if first.columns is None or second.columns is None:
        raise LineageTypeError("a declaration without a column mapping does not compose")
    columns = first.columns.then(second.columns)
    encoding = Chain.of((first.encoding, second.encoding))
    if isinstance(first, Identity) and isinstance(second, Identity):
        return Identity(columns, encoding)
    shape = (first.fans_out or second.fans_out, first.fans_in or second.fans_in)
    return _BY_SHAPE[shape](columns, encoding)


def compose_path(types: Sequence[LineageType]) -> LineageType:
    """Return the lineage type of a path of operators, first to last.

    Raises
    ------
    LineageTypeError
        If the path is empty or a step cannot compose with the one before.

    Examples
    --------
    >>> compose_path([Identity.of(["a"])] * 3) == Identity.of(["a"])
    True
    """
    if isinstance(types, LineageType):
        raise LineageTypeError("compose_path takes a sequence of lineage types, got one type")
    path = list(types)
    if not path:
        raise LineageTypeError("cannot compose an empty path: give at least one lineage type")
    if len(path) == 1 and not isinstance(path[0], LineageType):
        raise LineageTypeError(f"a path holds LineageType values, got {path[0]!r}")
    return reduce(compose, path)


def lineage_type_from_json(data: Mapping[str, Any]) -> LineageType:
    """Rebuild any lineage type from its ``to_json()`` output, dispatching on ``kind``.

    Raises
    ------
    LineageTypeError
        If ``data`` is malformed or its kind is unknown.

    Examples
    --------
    >>> t = Identity.of(["a"])
    >>> lineage_type_from_json(t.to_json()) == t
    True
    """
    data = _object(data, "a lineage type")
    kind = _field(data, "kind", str, "a lineage type")
    if kind not in _KINDS:
        known = _quoted(_KINDS)
        raise LineageTypeError(f"unknown lineage type kind `{kind}`; known kinds are {known}")
    return _KINDS[kind](
        ColumnMapping.from_json(_field(data, "columns", Mapping, "a lineage type")),
        encoding_from_json(_field(data, "encoding", Mapping, "a lineage type")),
    )
