"""Column mappings: which input cells each output column of an operator comes from.

An operator's :class:`ColumnMapping` is metadata stored once per operator, never per row.
It maps every output column to the input columns its expression reads (*contributing*),
and separately lists the input columns that decide whether or where a row exists
(*influencing*: filter predicates, join keys, group keys, dedup keys, sort keys under a
limit). Input columns are :class:`ColumnRef` values naming the operator's input by index.

What is *not* checked: that referenced columns exist in the input schemas, that the
output columns are the operator's real output schema, or that input indices are within
the operator's arity. The mapping records what the caller says.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from lineage_types._json import _field, _object
from lineage_types.errors import LineageTypeError, _quoted

__all__ = ["ColumnRef", "ColumnMapping"]


@dataclass(frozen=True, order=True)
class ColumnRef:
    """A column of one of an operator's inputs.

    Parameters
    ----------
    input : int
        Index of the operator's input: 0 for single-input operators, 0 (left) or 1 (right)
        for joins, ``i`` for the i-th child of a union.
    column : str
        Column name in that input.

    Examples
    --------
    >>> ColumnRef(1, "tailnum").to_json()
    {'input': 1, 'column': 'tailnum'}
    """

    input: int
    column: str

    def __post_init__(self) -> None:
        if isinstance(self.input, bool) or not isinstance(self.input, int) or self.input < 0:
            raise LineageTypeError(f"input index must be a non-negative int, got {self.input!r}")
        if not isinstance(self.column, str):
            raise LineageTypeError(f"column name must be a str, got {self.column!r}")

    def to_json(self) -> dict[str, Any]:
        """Return the JSON form ``{"input": int, "column": str}``."""
        return {"input": self.input, "column": self.column}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ColumnRef:
        """Rebuild a reference from :meth:`to_json` output."""
        data = _object(data, "a column reference")
        return cls(
            _field(data, "input", int, "a column reference"),
            _field(data, "column", str, "a column reference"),
        )


class _FrozenMapping(Mapping[str, frozenset[ColumnRef]]):
    """A read-only, hashable dict that keeps insertion (output schema) order."""

    __slots__ = ("_items",)

    def __init__(self, items: dict[str, frozenset[ColumnRef]]) -> None:
        self._items = items

    def __getitem__(self, key: str) -> frozenset[ColumnRef]:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(frozenset(self._items.items()))

    def __repr__(self) -> str:
        return repr(self._items)


def _ref_set(refs: object, what: str) -> frozenset[ColumnRef]:
    """Return ``refs`` as a frozenset of ColumnRef, or raise naming ``what``."""
    if isinstance(refs, (str, bytes)) or not isinstance(refs, Iterable):
        raise LineageTypeError(f"{what} must be a set of ColumnRef, got {refs!r}")
    result = frozenset(refs)
    bad = [ref for ref in result if not isinstance(ref, ColumnRef)]
    if bad:
        raise LineageTypeError(f"{what} must be a set of ColumnRef, got {bad[0]!r}")
    return result


def _sorted_json(refs: Iterable[ColumnRef]) -> list[dict[str, Any]]:
    return [ref.to_json() for ref in sorted(refs)]


@dataclass(frozen=True)
class ColumnMapping:
    """Which input cells each output column is computed from, and which decide the rows.

    Parameters
    ----------
    contributing : Mapping[str, frozenset[ColumnRef]]
        Output column name -> input columns its value is computed from (empty for a
        constant). Kept in the given order, which should be the output schema order;
        equality ignores the order, like ``dict``.
    influencing : frozenset[ColumnRef], optional
        Input columns that decide whether or where a row exists. Default: none.

    Examples
    --------
    >>> m = ColumnMapping({"total": {ColumnRef(0, "a"), ColumnRef(0, "b")}},
    ...                   influencing={ColumnRef(0, "a")})
    >>> m.output_columns
    ('total',)
    >>> sorted(m.sources_of("total"))
    [ColumnRef(input=0, column='a'), ColumnRef(input=0, column='b')]
    """

    contributing: Mapping[str, frozenset[ColumnRef]]
    influencing: frozenset[ColumnRef] = frozenset()

    def __post_init__(self) -> None:
        if not isinstance(self.contributing, Mapping):
            raise LineageTypeError(
                f"contributing must map output column names to ColumnRef sets, "
                f"got {type(self.contributing).__name__}"
            )
        items: dict[str, frozenset[ColumnRef]] = {}
        for name, refs in self.contributing.items():
            if not isinstance(name, str):
                raise LineageTypeError(f"output column names must be str, got {name!r}")
            items[name] = _ref_set(refs, f"the sources of output column `{name}`")
        object.__setattr__(self, "contributing", _FrozenMapping(items))
        object.__setattr__(self, "influencing", _ref_set(self.influencing, "influencing"))

    @property
    def output_columns(self) -> tuple[str, ...]:
        """The output column names, in the order given."""
        return tuple(self.contributing)

    @property
    def inputs(self) -> frozenset[int]:
        """Indices of the inputs referenced by any contributing or influencing column."""
        refs = self.influencing.union(*self.contributing.values())
        return frozenset(ref.input for ref in refs)

    def sources_of(self, column: str) -> frozenset[ColumnRef]:
        """Return the input columns that output ``column`` is computed from.

        Raises
        ------
        LineageTypeError
            If ``column`` is not an output column.
        """
        try:
            return self.contributing[column]
        except KeyError:
            raise LineageTypeError(
                f"unknown output column `{column}`; the output columns are "
                f"{_quoted(self.output_columns)}"
            ) from None

    @classmethod
    def identity(cls, columns: Iterable[str], input: int = 0) -> ColumnMapping:
        """Return the mapping where each column comes from the same-named column of ``input``.

        Raises
        ------
        LineageTypeError
            If a column name repeats: a mapping by name cannot tell the copies apart.

        Examples
        --------
        >>> ColumnMapping.identity(["a", "b"]).sources_of("b")
        frozenset({ColumnRef(input=0, column='b')})
        """
        if isinstance(columns, str):
            raise LineageTypeError(f"columns must be a sequence of names, got {columns!r}")
        names = list(columns)
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise LineageTypeError(f"duplicate column names {_quoted(repeated)}")
        return cls({name: frozenset({ColumnRef(input, name)}) for name in names})

    def along(self, input: int) -> ColumnMapping:
        """Restrict to the refs of one input, renumbered as input 0.

        This is the view of a multi-input operator (join, union) from a path that enters it
        through ``input``, so it can be composed with :meth:`then`. Output columns that do
        not read ``input`` stay, with no sources.
        """
        def keep(refs: frozenset[ColumnRef]) -> frozenset[ColumnRef]:
            return frozenset(ColumnRef(0, ref.column) for ref in refs if ref.input == input)

        return ColumnMapping(
            {name: keep(refs) for name, refs in self.contributing.items()},
            keep(self.influencing),
        )

    def then(self, other: ColumnMapping) -> ColumnMapping:
        """Compose: the mapping of applying ``other`` to this mapping's output.

        ``other`` must be single-input (every ref is input 0, meaning this mapping's
        output). The result refers to this mapping's inputs: each output column of
        ``other`` gets the sources of the columns it reads, and the influencing columns are
        this mapping's plus the sources of ``other``'s influencing columns.

        Raises
        ------
        LineageTypeError
            If ``other`` reads another input or a column this mapping does not produce.

        Examples
        --------
        >>> project = ColumnMapping({"t": {ColumnRef(0, "a"), ColumnRef(0, "b")}})
        >>> filtered = ColumnMapping.identity(["t"]).with_influencing(["t"])
        >>> project.then(filtered).influencing == {ColumnRef(0, "a"), ColumnRef(0, "b")}
        True
        """
        if not isinstance(other, ColumnMapping):
            raise LineageTypeError(f"can only compose with a ColumnMapping, got {other!r}")
        others = sorted(other.inputs - {0})
        if others:
            raise LineageTypeError(
                f"cannot compose: the next mapping must read only input 0 (this mapping's "
                f"output) but it reads input {others[0]}; restrict it with `along(input)`"
            )

        def resolve(refs: frozenset[ColumnRef], role: str) -> frozenset[ColumnRef]:
            sources: set[ColumnRef] = set()
            for ref in refs:
                if ref.column not in self.contributing:
                    raise LineageTypeError(
                        f"cannot compose: the next mapping's {role} reads column "
                        f"`{ref.column}`, which this mapping does not produce; it produces "
                        f"{_quoted(self.output_columns)}"
                    )
                sources |= self.contributing[ref.column]
            return frozenset(sources)

        return ColumnMapping(
            {name: resolve(refs, f"column `{name}`") for name, refs in other.contributing.items()},
            self.influencing | resolve(other.influencing, "influencing columns"),
        )

    def with_influencing(self, columns: Iterable[str], input: int = 0) -> ColumnMapping:
        """Return a copy with the named columns of ``input`` added to the influencing set."""
        if isinstance(columns, str):
            raise LineageTypeError(f"columns must be a sequence of names, got {columns!r}")
        added = frozenset(ColumnRef(input, name) for name in columns)
        return ColumnMapping(self.contributing, self.influencing | added)

    def to_json(self) -> dict[str, Any]:
        """Return a plain, JSON-serializable dict with a deterministic order.

        Output columns keep their order; each set of refs is sorted by (input, column).
        """
        return {
            "contributing": {
                name: _sorted_json(refs) for name, refs in self.contributing.items()
            },
            "influencing": _sorted_json(self.influencing),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ColumnMapping:
        """Rebuild a mapping from :meth:`to_json` output."""
        data = _object(data, "a column mapping")
        contributing = _field(data, "contributing", Mapping, "a column mapping")
        influencing = _field(data, "influencing", list, "a column mapping")
        return cls(
            {
                name: frozenset(ColumnRef.from_json(ref) for ref in _refs_list(refs, name))
                for name, refs in contributing.items()
            },
            frozenset(ColumnRef.from_json(ref) for ref in influencing),
        )


def _refs_list(refs: object, name: str) -> list[Any]:
    if not isinstance(refs, list):
        raise LineageTypeError(f"the sources of output column `{name}` must be a JSON list")
    return refs
