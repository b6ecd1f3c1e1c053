"""An independent lineage oracle: pipelines evaluated eagerly in plain Python.

Every source row gets an oracle id ``(source, row index)``. Each step computes its
output rows *and*, for every output row, (a) its row lineage, the source rows it came
from, and (b) its cell lineage, per output column the ``(source, row, column)`` cells
the column's expression is computed from. Nothing here reads Spark plans or calls
hippo's internals: steps say which columns an expression references by hand, so the
answers are computed another way than hippo computes them.

Semantics (DESIGN.md, "Lineage semantics"): filter/select/sort/repartition keep the row;
explode keeps the parent; joins pair the two sides (one side and nulls for unmatched
outer rows; for a left semi join the left row and the right rows it matched, for a left
anti join the left row alone); aggregates and distinct take every
row of the group; union the row of its side; limit after a total order the kept rows.
Filter predicates, join keys and group keys are influencing, not contributing, except
that a group or join key *output* column is computed from the key cells it references.

Windows: over whole partitions, and ordered (ranking, offset and framed aggregates;
an ordered window whose result depends on how ties are ordered is only used on order
keys unique in their partition). Not modelled: nondeterministic steps,
``dropDuplicates`` on a subset, a
``limit`` whose cut falls inside a tie of its order (:class:`AmbiguousLimit`).

The second half compares hippo's answers (public API only) with the oracle's.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

SourceRow = tuple[str, int]  # (source name, row index)
Cell = tuple[str, int, str]  # (source name, row index, column)
Values = tuple[Any, ...]


class AmbiguousLimit(Exception):
    """Raised when a limit's cut falls between rows its order does not tell apart."""


# -- expressions -----------------------------------------------------------------------
@dataclass(frozen=True)
class Expr:
    """A value computed from the columns ``refs`` by ``fn(*values)``."""

    refs: tuple[str, ...]
    fn: Callable[..., Any]

    def eval(self, row: Mapping[str, Any]) -> Any:
        return self.fn(*[row[r] for r in self.refs])


def col(name: str) -> Expr:
    return Expr((name,), lambda v: v)


def lit(value: Any) -> Expr:
    return Expr((), lambda: value)


def expr(fn: Callable[..., Any], *refs: str) -> Expr:
    """``fn`` over the values of ``refs``, null in -> null out (SQL arithmetic)."""

    def strict(*values: Any) -> Any:
        return None if any(v is None for v in values) else fn(*values)

    return Expr(tuple(refs), strict)


def raw(fn: Callable[..., Any], *refs: str) -> Expr:
    """``fn`` over the values of ``refs``, called on nulls too (coalesce, when, ...)."""
    return Expr(tuple(refs), fn)


def _as_expr(e: str | Expr) -> Expr:
    return col(e) if isinstance(e, str) else e


@dataclass(frozen=True)
class Explode:
    """``F.explode(array)`` inside a select: one row per element, none for null/empty."""

    array: Expr


@dataclass(frozen=True)
class Agg:
    """An aggregate function over an expression (``None``: over rows, like count(*))."""

    name: str
    arg: Expr | None

    def compute(self, values: list[Any], n_rows: int) -> Any:
        present = [v for v in values if v is not None]
        if self.name == "count":
            return n_rows if self.arg is None else len(present)
        if not present:
            return None
        if self.name == "sum":
            return sum(present)
        if self.name == "avg":
            return sum(present) / len(present)
        if self.name == "min":
            return min(present)
        if self.name == "max":
            return max(present)
        if self.name == "const":
            return present[0]
        raise ValueError(f"unknown aggregate `{self.name}`")


def sum_of(e: str | Expr) -> Agg:
    return Agg("sum", _as_expr(e))


def avg_of(e: str | Expr) -> Agg:
    return Agg("avg", _as_expr(e))


def min_of(e: str | Expr) -> Agg:
    return Agg("min", _as_expr(e))


def max_of(e: str | Expr) -> Agg:
    return Agg("max", _as_expr(e))


def count_of(e: str | Expr) -> Agg:
    return Agg("count", _as_expr(e))


def const(value: Any) -> Agg:
    """A constant among aggregates (``grouping_id()`` of a grouping set): made by its
    group's rows, reading no column."""
    return Agg("const", lit(value))


def count_rows() -> Agg:
    """``count(*)``, ``count(lit(1))``, ``groupBy().count()``: references no column."""
    return Agg("count", None)


_RANKS = ("rank", "dense_rank", "percent_rank")
_POSITIONS = ("row_number", "cume_dist", "ntile")


@dataclass(frozen=True)
class OrderedFn:
    """A window function over an ordered partition: ``kind`` is row_number, rank,
    dense_rank, percent_rank, cume_dist, ntile (``n``), lag/lead (``arg``, ``n``,
    ``default``), or an aggregate (``agg``) over a ``rows`` or ``range`` frame
    ``(lo, hi)`` (None: unbounded; ``range`` offsets apply to the one order key)."""

    kind: str
    arg: Expr | None = None
    n: int = 1
    default: Expr | None = None
    agg: Agg | None = None
    frame: tuple[str, int | None, int | None] | None = None

    def compute(self, ordered: list[ORow], i: int, key_of: Callable[[ORow], Any],
                frame_of: Frame) -> tuple[Any, list[ORow]]:
        n = len(ordered)
        me = key_of(ordered[i])
        before = [r for r in ordered if key_of(r) < me]
        if self.kind == "row_number":
            return i + 1, ordered[:i + 1]
        if self.kind == "rank":
            return len(before) + 1, before + [ordered[i]]
        if self.kind == "dense_rank":
            keys = [key_of(r) for r in before]  # in order: count the changes
            distinct = sum(1 for j, k in enumerate(keys) if j == 0 or k != keys[j - 1])
            return distinct + 1, before + [ordered[i]]
        if self.kind == "percent_rank":
            return (0.0 if n == 1 else len(before) / (n - 1)), ordered
        if self.kind == "cume_dist":
            return sum(1 for r in ordered if not me < key_of(r)) / n, ordered
        if self.kind == "ntile":
            q, extra = divmod(n, self.n)
            big = extra * (q + 1)
            tile = i // (q + 1) + 1 if i < big else extra + (i - big) // q + 1
            return tile, ordered
        if self.kind in ("lag", "lead"):
            j = i - self.n if self.kind == "lag" else i + self.n
            assert self.arg is not None
            if 0 <= j < n:
                return frame_of._eval(ordered[j], self.arg), [ordered[j]]
            default = None if self.default is None else frame_of._eval(ordered[i], self.default)
            return default, []
        assert self.agg is not None and self.frame is not None
        how, lo, hi = self.frame
        if how == "rows":
            start = 0 if lo is None else max(0, i + lo)
            stop = n if hi is None else min(n, i + hi + 1)
            frame = ordered[start:stop]
        elif (lo, hi) == (None, 0):  # up to the row and its peers
            frame = [r for r in ordered if not me < key_of(r)]
        else:  # offsets: one ascending order key, no nulls (what the tests use)
            mine = me[0][1]
            frame = [r for r in ordered
                     if (lo is None or key_of(r)[0][1] >= mine + lo)
                     and (hi is None or key_of(r)[0][1] <= mine + hi)]
        if self.agg.arg is None:
            return self.agg.compute([], len(frame)), frame
        return self.agg.compute([frame_of._eval(r, self.agg.arg) for r in frame],
                                len(frame)), frame


@dataclass(frozen=True)
class On:
    """A join condition ``fn(*left values, *right values)`` (null or False: no match)."""

    left: tuple[str, ...]
    right: tuple[str, ...]
    fn: Callable[..., Any]


def on(fn: Callable[..., Any], left: Sequence[str], right: Sequence[str]) -> On:
    return On(tuple(left), tuple(right), fn)


# -- rows and frames -----------------------------------------------------------------------
@dataclass(frozen=True)
class ORow:
    """One row: its values, its row lineage and, per column, its cell lineage."""

    values: Values
    rows: frozenset[SourceRow]
    cells: tuple[frozenset[Cell], ...]


@dataclass(frozen=True)
class Source:
    name: str
    columns: tuple[str, ...]
    rows: tuple[Values, ...]


_NO_CELLS: frozenset[Cell] = frozenset()
# The cell lineage of a value computed from no column (count(*), a literal): it is made
# by the lineage of the row that computed it (DESIGN, lineage semantics): a cell
# (source, row, _ROWS_COL) per source row, so a later join adds no row of the other side.
# Unlike _NO_CELLS (the absent side of an outer join), asking for such a cell returns
# the rows behind it.
_ROWS_COL = "\x00rows"  # no column's name


def _made_by(rows: frozenset[tuple[str, int]]) -> frozenset[Cell]:
    return frozenset((s, i, _ROWS_COL) for s, i in rows)


def _union(sets: Iterable[frozenset[Any]]) -> frozenset[Any]:
    out: set[Any] = set()
    for s in sets:
        out |= s
    return frozenset(out)


def _sort_key(value: Any, ascending: bool) -> tuple[int, Any]:
    # Spark: ascending puts nulls first, descending puts them last.
    if value is None:
        return (0, 0) if ascending else (2, 0)
    return (1, value) if ascending else (1, _Desc(value))


class _Desc:
    def __init__(self, value: Any) -> None:
        self.value = value

    def __lt__(self, other: _Desc) -> bool:
        return other.value < self.value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Desc) and other.value == self.value


@dataclass(frozen=True)
class Frame:
    """A DataFrame of the oracle: columns, rows with lineage, the sources behind them.

    ``ties`` is set right after ``order_by`` (and kept by row-preserving steps): row i's
    tie group, so ``limit`` can tell whether its cut is well defined.
    """

    columns: tuple[str, ...]
    rows: tuple[ORow, ...]
    sources: Mapping[str, Source]
    ties: tuple[int, ...] | None = field(default=None)

    # -- construction ------------------------------------------------------------------
    @classmethod
    def source(cls, name: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> Frame:
        rows = tuple(tuple(r) for r in rows)
        if len(set(rows)) != len(rows):
            raise ValueError(f"source `{name}` has repeated rows; values must identify rows")
        columns = tuple(columns)
        out = tuple(
            ORow(values, frozenset({(name, i)}),
                 tuple(frozenset({(name, i, c)}) for c in columns))
            for i, values in enumerate(rows)
        )
        return cls(columns, out, {name: Source(name, columns, rows)})

    def _with(self, columns: Sequence[str], rows: Iterable[ORow],
              sources: Mapping[str, Source] | None = None,
              ties: tuple[int, ...] | None = None) -> Frame:
        return Frame(tuple(columns), tuple(rows), dict(sources or self.sources), ties)

    def _index(self, name: str) -> int:
        hits = [i for i, c in enumerate(self.columns) if c == name]
        if len(hits) != 1:
            raise KeyError(f"column `{name}` is {'ambiguous' if hits else 'unknown'} "
                           f"in {self.columns}")
        return hits[0]

    def dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, r.values, strict=True)) for r in self.rows]

    def values(self) -> list[Values]:
        return [r.values for r in self.rows]

    def _cells(self, row: ORow, refs: Iterable[str]) -> frozenset[Cell]:
        refs = list(refs)
        if not refs:
            return _made_by(row.rows)
        return _union(row.cells[self._index(r)] for r in refs)

    def _eval(self, row: ORow, e: Expr) -> Any:
        return e.fn(*[row.values[self._index(r)] for r in e.refs])

    # -- one row in, at most one row out ------------------------------------------------
    def select(self, *items: str | tuple[str, Expr | Explode]) -> Frame:
        """Columns by name, ``(name, Expr)`` computed columns, at most one Explode."""
        named = [(i, col(i)) if isinstance(i, str) else i for i in items]
        explodes = [p for p, (_, e) in enumerate(named) if isinstance(e, Explode)]
        if len(explodes) > 1:
            raise ValueError("one explode per select")
        out = []
        for row in self.rows:
            values = []
            cells = []
            for _, e in named:
                inner = e.array if isinstance(e, Explode) else e
                values.append(self._eval(row, inner))
                cells.append(self._cells(row, inner.refs))
            if not explodes:
                out.append(ORow(tuple(values), row.rows, tuple(cells)))
                continue
            p = explodes[0]
            for element in values[p] or []:
                vals = list(values)
                vals[p] = element
                out.append(ORow(tuple(vals), row.rows, tuple(cells)))
        ties = self.ties if not explodes else None
        return self._with([n for n, _ in named], out, ties=ties)

    def with_column(self, name: str, e: Expr) -> Frame:
        items: list[str | tuple[str, Expr]] = [
            (c, e) if c == name else (c, col(c)) for c in self.columns
        ]
        if name not in self.columns:
            items.append((name, e))
        return self.select(*items)

    def rename(self, existing: str, new: str) -> Frame:
        return self._with([new if c == existing else c for c in self.columns], self.rows,
                          ties=self.ties)

    def filter(self, cond: Expr) -> Frame:
        keep = [i for i, r in enumerate(self.rows) if self._eval(r, cond) is True]
        ties = None if self.ties is None else tuple(self.ties[i] for i in keep)
        return self._with(self.columns, [self.rows[i] for i in keep], ties=ties)

    def repartition(self) -> Frame:
        return self._with(self.columns, self.rows)

    def order_by(self, *keys: str | tuple[str, bool]) -> Frame:
        """Sort by columns (``(name, ascending)`` pairs; a bare name is ascending)."""
        pairs = [(k, True) if isinstance(k, str) else k for k in keys]
        idx = [(self._index(n), asc) for n, asc in pairs]

        def key(row: ORow) -> tuple[Any, ...]:
            return tuple(_sort_key(row.values[i], asc) for i, asc in idx)

        ordered = sorted(self.rows, key=key)
        ties: list[int] = []
        for n, row in enumerate(ordered):
            same = n > 0 and key(row) == key(ordered[n - 1])
            ties.append(ties[-1] if same else n)
        return self._with(self.columns, ordered, ties=tuple(ties))

    def limit(self, n: int) -> Frame:
        if self.ties is None:
            raise AmbiguousLimit("limit without a preceding order_by keeps arbitrary rows")
        if 0 < n < len(self.rows) and self.ties[n - 1] == self.ties[n]:
            raise AmbiguousLimit(f"limit({n}) cuts through rows its order does not tell apart")
        return self._with(self.columns, self.rows[:n], ties=self.ties[:n])

    # -- joins ----------------------------------------------------------------------------
    def join(self, other: Frame, on: str | Sequence[str] | On, how: str = "inner") -> Frame:
        """Spark's join: ``on`` column names (a USING join) or an :class:`On` condition."""
        how = {"outer": "full", "full_outer": "full", "left_outer": "left",
               "right_outer": "right", "semi": "left_semi", "anti": "left_anti"}.get(how, how)
        sources = {**self.sources, **other.sources}
        using = [on] if isinstance(on, str) else (list(on) if not isinstance(on, On) else None)

        def matches(lrow: ORow, rrow: ORow) -> bool:
            if using is not None:
                return all(
                    lrow.values[self._index(k)] is not None
                    and lrow.values[self._index(k)] == rrow.values[other._index(k)]
                    for k in using
                )
            lv = [lrow.values[self._index(c)] for c in on.left]
            rv = [rrow.values[other._index(c)] for c in on.right]
            return on.fn(*lv, *rv) is True

        pairs = [(li, ri) for li, lrow in enumerate(self.rows)
                 for ri, rrow in enumerate(other.rows) if matches(lrow, rrow)]
        if how == "left_semi":
            # The kept left row, and the right rows it matched (they contribute no cell:
            # they only decide that the left row exists).
            matched_rows: dict[int, set[SourceRow]] = {}
            for li, ri in pairs:
                matched_rows.setdefault(li, set()).update(other.rows[ri].rows)
            keep = [replace(r, rows=r.rows | frozenset(matched_rows[i]))
                    for i, r in enumerate(self.rows) if i in matched_rows]
            return self._with(self.columns, keep, sources)
        if how == "left_anti":
            hit = {li for li, _ in pairs}
            return self._with(self.columns, [r for i, r in enumerate(self.rows) if i not in hit],
                              sources)
        if how not in ("inner", "cross", "left", "right", "full"):
            raise ValueError(f"unknown join type `{how}`")
        matched: list[tuple[ORow | None, ORow | None]] = [
            (self.rows[li], other.rows[ri]) for li, ri in pairs]
        if how in ("left", "full"):
            hit_l = {li for li, _ in pairs}
            matched += [(r, None) for i, r in enumerate(self.rows) if i not in hit_l]
        if how in ("right", "full"):
            hit_r = {ri for _, ri in pairs}
            matched += [(None, r) for i, r in enumerate(other.rows) if i not in hit_r]
        if using is None:
            return self._with(self.columns + other.columns,
                              [self._cross_row(other, lr, rr) for lr, rr in matched], sources)
        l_rest = [c for c in self.columns if c not in using]
        r_rest = [c for c in other.columns if c not in using]
        out = []
        for lrow, rrow in matched:
            values: list[Any] = []
            cells: list[frozenset[Cell]] = []
            for k in using:
                lv = None if lrow is None else lrow.values[self._index(k)]
                rv = None if rrow is None else rrow.values[other._index(k)]
                lc = _NO_CELLS if lrow is None else lrow.cells[self._index(k)]
                rc = _NO_CELLS if rrow is None else rrow.cells[other._index(k)]
                # Spark's USING join key: the left key (inner, left), the right key
                # (right), coalesce(left, right) (full), referencing both sides.
                if how in ("inner", "cross", "left"):
                    value, cell = lv, lc
                elif how == "right":
                    value, cell = rv, rc
                else:
                    value, cell = (lv if lv is not None else rv), lc | rc
                values.append(value)
                cells.append(cell)
            for c in l_rest:
                values.append(None if lrow is None else lrow.values[self._index(c)])
                cells.append(_NO_CELLS if lrow is None else lrow.cells[self._index(c)])
            for c in r_rest:
                values.append(None if rrow is None else rrow.values[other._index(c)])
                cells.append(_NO_CELLS if rrow is None else rrow.cells[other._index(c)])
            rows = (_NO_CELLS if lrow is None else lrow.rows) | (
                _NO_CELLS if rrow is None else rrow.rows)
            out.append(ORow(tuple(values), rows, tuple(cells)))
        return self._with([*using, *l_rest, *r_rest], out, sources)

    def _cross_row(self, other: Frame, lrow: ORow | None, rrow: ORow | None) -> ORow:
        nl, nr = len(self.columns), len(other.columns)
        values = (lrow.values if lrow else (None,) * nl) + (rrow.values if rrow else (None,) * nr)
        cells = (lrow.cells if lrow else (_NO_CELLS,) * nl) + (
            rrow.cells if rrow else (_NO_CELLS,) * nr)
        rows = (lrow.rows if lrow else _NO_CELLS) | (rrow.rows if rrow else _NO_CELLS)
        return ORow(values, rows, cells)

    # -- many rows to one ----------------------------------------------------------------
    def group_by(self, *keys: str | tuple[str, Expr]) -> _Grouped:
        """Group by columns or ``(name, Expr)`` computed keys; then ``.agg(...)``."""
        return _Grouped(self, keys)

    def agg(self, *items: tuple[str, Agg]) -> Frame:
        return self.group_by().agg(*items)

    def distinct(self) -> Frame:
        return self.group_by(*self.columns).agg()

    # -- several inputs ----------------------------------------------------------------------
    def union(self, other: Frame) -> Frame:
        if len(self.columns) != len(other.columns):
            raise ValueError("union needs the same number of columns")
        return self._with(self.columns, self.rows + other.rows, {**self.sources, **other.sources})

    def union_by_name(self, other: Frame) -> Frame:
        return self.union(other.select(*self.columns))

    # -- windows ----------------------------------------------------------------------------
    def window(self, name: str, agg: Agg, partition: Sequence[str]) -> Frame:
        """``withColumn(name, agg.over(Window.partitionBy(*partition)))``: every row keeps
        its values and gains ``agg`` over its partition (null keys partition together);
        its row lineage is its own and its partition's rows, the new cell the partition
        rows' cells of what ``agg`` reads (made by those rows for ``count(*)``)."""
        parts: dict[Values, list[ORow]] = {}
        for row in self.rows:
            parts.setdefault(tuple(row.values[self._index(k)] for k in partition), []).append(row)
        out = []
        for row in self.rows:
            rows = parts[tuple(row.values[self._index(k)] for k in partition)]
            if agg.arg is None:
                value, cells = agg.compute([], len(rows)), _made_by(_union(r.rows for r in rows))
            else:
                value = agg.compute([self._eval(r, agg.arg) for r in rows], len(rows))
                cells = _union(self._cells(r, agg.arg.refs) for r in rows)
            out.append(ORow(row.values + (value,), _union(r.rows for r in rows),
                            row.cells + (cells,)))
        if name in self.columns:
            raise ValueError("window columns here are new columns")
        return self._with([*self.columns, name], out)

    def ordered_window(self, name: str, fn: OrderedFn, partition: Sequence[str],
                       order: Sequence[tuple[str, bool]]) -> Frame:
        """``withColumn(name, fn.over(Window.partitionBy(*partition).orderBy(*order)))``
        with ``order`` as ``(column, ascending)`` (nulls first ascending, last
        descending, as Spark). The row's lineage is its own row and the rows ``fn``
        reads (its frame); the cell, those rows' cells of what ``fn`` reads, and the
        own row's cells of a lag/lead default."""
        parts: dict[Values, list[ORow]] = {}
        for row in self.rows:
            parts.setdefault(tuple(row.values[self._index(k)] for k in partition), []).append(row)
        keys = [(self._index(c), asc) for c, asc in order]

        def key_of(row: ORow) -> tuple[Any, ...]:
            return tuple(_sort_key(row.values[i], asc) for i, asc in keys)

        result: dict[int, ORow] = {}
        for rows in parts.values():
            ordered = sorted(rows, key=key_of)
            for i, row in enumerate(ordered):
                value, frame = fn.compute(ordered, i, key_of, self)
                # rank, dense_rank and percent_rank read the order keys (Spark's rank
                # functions take them as arguments); row_number, cume_dist and ntile
                # read nothing: their cell is made by their rows.
                reads = ([c for c, _ in order] if fn.kind in _RANKS
                         else [] if fn.kind in _POSITIONS
                         else list((fn.arg if fn.agg is None else fn.agg.arg).refs)
                         if (fn.arg if fn.agg is None else fn.agg.arg) is not None else [])
                cells = _union(self._cells(r, reads) for r in frame) if reads \
                    else _made_by(row.rows | _union(r.rows for r in frame))
                if fn.default is not None:
                    cells = cells | self._cells(row, fn.default.refs)
                result[id(row)] = ORow(row.values + (value,),
                                       row.rows | _union(r.rows for r in frame),
                                       row.cells + (cells,))
        if name in self.columns:
            raise ValueError("window columns here are new columns")
        return self._with([*self.columns, name], [result[id(r)] for r in self.rows])

    def windows(self, *calls: Callable[[Frame], Frame]) -> Frame:
        """Several window columns computed in one step: each call (``lambda f:
        f.ordered_window(...)``) reads this frame's rows, not the columns or lineage the
        others add; a row's lineage is the union of what each gives it."""
        done = [call(self) for call in calls]
        columns = list(self.columns) + [d.columns[-1] for d in done]
        rows = [ORow(row.values + tuple(d.rows[j].values[-1] for d in done),
                     _union(d.rows[j].rows for d in done),
                     row.cells + tuple(d.rows[j].cells[-1] for d in done))
                for j, row in enumerate(self.rows)]
        return self._with(columns, rows)

    # -- answers --------------------------------------------------------------------------
    def chosen(self, where: Callable[[dict[str, Any]], Any]) -> list[ORow]:
        return [r for r, d in zip(self.rows, self.dicts(), strict=True) if where(d) is True]

    def backward(self, where: Callable[[dict[str, Any]], Any],
                 columns: Sequence[str] | None = None) -> dict[str, tuple[list[str], list[Values]]]:
        """source -> (columns, rows) that the chosen output rows (or their cells) come from.

        With ``columns``: only the source columns that contribute, and in each row the
        cells that contribute to none of the chosen cells are None.
        """
        chosen = self.chosen(where)
        if columns is None:
            ids = _union(r.rows for r in chosen)
            return {
                name: (list(src.columns), sorted((src.rows[i] for s, i in ids if s == name),
                                                 key=repr))
                for name, src in self.sources.items() if any(s == name for s, _ in ids)
            }
        positions = [self._index(c) for c in columns]
        cells = _union(r.cells[p] for r in chosen for p in positions)
        # A cell computed from no column (count(*), a literal) is made by its row's
        # lineage: those rows, with no value column (DESIGN, lineage semantics).
        out: dict[str, tuple[list[str], list[Values]]] = {}
        for name, src in self.sources.items():
            mine = {(i, c) for s, i, c in cells if s == name and c != _ROWS_COL}
            whole = {i for s, i, c in cells if s == name and c == _ROWS_COL}
            if not mine and not whole:
                continue
            keep = [c for c in src.columns if any(c == m for _, m in mine)]
            rows = sorted({i for i, _ in mine} | whole)
            out[name] = (keep, sorted(
                (tuple(src.rows[i][src.columns.index(c)] if (i, c) in mine else None
                       for c in keep) for i in rows),
                key=repr))
        return out

    def forward(self, source: str, where: Callable[[dict[str, Any]], Any]) -> list[Values]:
        """The output rows (with multiplicity) whose row lineage holds a chosen source row."""
        if source not in self.sources:
            return []
        src = self.sources[source]
        ids = {(source, i) for i, values in enumerate(src.rows)
               if where(dict(zip(src.columns, values, strict=True))) is True}
        return sorted((r.values for r in self.rows if r.rows & ids), key=repr)


class _Grouped:
    def __init__(self, frame: Frame, keys: Sequence[str | tuple[str, Expr]]) -> None:
        self._frame = frame
        self._keys = [(k, col(k)) if isinstance(k, str) else k for k in keys]

    def agg(self, *items: tuple[str, Agg]) -> Frame:
        """``(output name, Agg)`` pairs; the output is the keys, then the aggregates."""
        f = self._frame
        groups: dict[Values, list[ORow]] = {}
        for row in f.rows:  # None keys group together, as in Spark
            key = tuple(f._eval(row, e) for _, e in self._keys)
            groups.setdefault(key, []).append(row)
        if not self._keys and not groups:
            groups[()] = []  # a global aggregate of no rows is one row
        out = []
        for key, rows in groups.items():
            values = list(key)
            cells = [_union(f._cells(r, e.refs) for r in rows) for _, e in self._keys]
            for _, a in items:
                if a.arg is None:
                    values.append(a.compute([], len(rows)))
                    cells.append(_made_by(_union(r.rows for r in rows)))
                else:
                    values.append(a.compute([f._eval(r, a.arg) for r in rows], len(rows)))
                    cells.append(_union(f._cells(r, a.arg.refs) for r in rows))
            out.append(ORow(tuple(values), _union(r.rows for r in rows), tuple(cells)))
        return f._with([*[n for n, _ in self._keys], *[n for n, _ in items]], out)

    def pivot(self, pivot: str, values: Sequence[Any], *items: tuple[str, Agg],
              missing_is_null: bool) -> Frame:
        """``groupBy(keys).pivot(pivot, values).agg(...)``: per group, one column per
        (value, aggregate), named ``value`` (one aggregate) or ``value_name``: the
        aggregate over the group's rows whose pivot column equals the value (nulls equal).
        Where the group has no such row Spark's two-phase plan (numeric results) gives
        null, its one-phase plan the aggregate of no rows (a count of 0). Each cell reads
        the pivot column and the aggregate's columns in every row of its group; a
        ``count(*)`` cell of the two-phase plan is also made by those rows (it picks, by
        the pivot column, one of the counts its group's rows made)."""
        f = self._frame
        groups: dict[Values, list[ORow]] = {}
        for row in f.rows:
            groups.setdefault(tuple(f._eval(row, e) for _, e in self._keys), []).append(row)
        if not self._keys and not groups:
            groups[()] = []  # a global aggregate of no rows is one row
        names = [str(v) if v is not None else "null" for v in values]
        out = []
        for key, rows in groups.items():
            vals = list(key)
            cells = [_union(f._cells(r, e.refs) for r in rows) for _, e in self._keys]
            for v in values:
                picked = [r for r in rows if f._eval(r, col(pivot)) == v]
                for _, a in items:
                    refs = (pivot, *(a.arg.refs if a.arg is not None else ()))
                    made = _union(f._cells(r, refs) for r in rows)
                    if a.arg is None and missing_is_null:
                        made |= _made_by(_union(r.rows for r in rows))
                    cells.append(made)
                    if missing_is_null and not picked:
                        vals.append(None)
                    elif a.arg is None:
                        vals.append(a.compute([], len(picked)))
                    else:
                        vals.append(a.compute([f._eval(r, a.arg) for r in picked], len(picked)))
            out.append(ORow(tuple(vals), _union(r.rows for r in rows), tuple(cells)))
        columns = [n for n, _ in self._keys]
        for name in names:
            columns += [name if len(items) == 1 else f"{name}_{n}" for n, _ in items]
        return f._with(columns, out)

    def count(self) -> Frame:
        return self.agg(("count", count_rows()))

    def _each(self, fn: Callable[[str], Agg], label: str, cols: Sequence[str]) -> Frame:
        return self.agg(*[(f"{label}({c})", fn(c)) for c in cols])

    def sum(self, *cols: str) -> Frame:
        return self._each(sum_of, "sum", cols)

    def avg(self, *cols: str) -> Frame:
        return self._each(avg_of, "avg", cols)

    def min(self, *cols: str) -> Frame:
        return self._each(min_of, "min", cols)

    def max(self, *cols: str) -> Frame:
        return self._each(max_of, "max", cols)


# -- choosing rows in both worlds ----------------------------------------------------------
@dataclass(frozen=True)
class Where:
    """One row predicate, as SQL for hippo and as a Python function for the oracle."""

    sql: str
    test: Callable[[dict[str, Any]], Any]

    @classmethod
    def eq(cls, values: Mapping[str, Any]) -> Where:
        """Rows whose columns equal ``values`` (null-safe; floats to 1e-9)."""
        if not values:
            return cls("true", lambda _: True)
        parts = [_sql_eq(c, v) for c, v in values.items()]

        def test(row: dict[str, Any]) -> bool:
            return all(_py_eq(row[c], v) for c, v in values.items())

        return cls(" AND ".join(parts), test)

    @classmethod
    def row(cls, columns: Sequence[str], values: Sequence[Any]) -> Where:
        return cls.eq(dict(zip(columns, values, strict=True)))


def _quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _sql_literal(value: Any) -> str:
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


def _sql_eq(column: str, value: Any) -> str:
    if value is None:
        return f"{_quote(column)} IS NULL"
    if isinstance(value, float):
        return f"abs({_quote(column)} - {value!r}) < 1e-9"
    return f"{_quote(column)} = {_sql_literal(value)}"


def _py_eq(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(a, b, rel_tol=0, abs_tol=1e-9)
    return a == b


# -- sources and comparisons (hippo's public API only) --------------------------------------
def spark_source(spark: Any, name: str, schema: str, rows: Sequence[Sequence[Any]],
                 folder: Any = None) -> tuple[Any, Frame]:
    """A source for ``run.source`` and its oracle frame.

    With ``folder`` the rows are written as a Delta table there and its path is returned
    (a pinned Delta source); without, the DataFrame itself (a snapshotted source).
    """
    df = spark.createDataFrame([tuple(r) for r in rows], schema)
    frame = Frame.source(name, df.columns, rows)
    if folder is None:
        return df, frame
    path = str(folder / name)
    df.write.format("delta").save(path)
    return path, frame


def _norm(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 9)
    if isinstance(value, list):
        return tuple(_norm(v) for v in value)
    return value


def previewed(before: Counter, preview: Any) -> Counter:
    """``before`` (a multiset of normalized sink rows) with a removal preview's changes
    applied: each row's ``before`` values lose ``rows_before``, its ``after`` values gain
    ``rows_after``."""
    out = Counter(before)
    for r in preview.collect():
        if r.before is not None:
            out[tuple(_norm(v) for v in r.before)] -= r.rows_before
        if r.after is not None:
            out[tuple(_norm(v) for v in r.after)] += r.rows_after
    return +out


def _norm_rows(rows: Iterable[Sequence[Any]]) -> list[Values]:
    return sorted((tuple(_norm(v) for v in r) for r in rows), key=repr)


def _collect(df: Any, drop: str = "hippo_row_id") -> tuple[list[str], list[Values]]:
    columns = [c for c in df.columns if c != drop]
    return columns, _norm_rows(tuple(r[c] for c in columns) for r in df.collect())


def assert_sink_matches(spark: Any, path: str, frame: Frame) -> None:
    """The sink as written holds exactly the oracle's output rows (checks the oracle too)."""
    columns, rows = _collect(spark.read.format("delta").load(path))
    assert columns == list(frame.columns)
    assert rows == _norm_rows(frame.values()), "the oracle models another pipeline than ran"


def assert_backward_matches(store: Any, sink: str, frame: Frame, where: Where,
                            columns: Sequence[str] | None = None,
                            only: Iterable[str] | None = None) -> dict[str, Any]:
    """hippo's backward answer equals the oracle's, source by source.

    ``only`` limits the comparison to some sources (the others are not checked).
    Returns hippo's answer, collected, for further assertions.
    """
    got = store.backward(sink, where=where.sql,
                         columns=None if columns is None else list(columns))
    actual = {name: _collect(df) for name, df in got.items()}
    expected = {name: (cols, _norm_rows(rows))
                for name, (cols, rows) in frame.backward(where.test, columns).items()}
    if only is not None:
        keep = set(only)
        actual = {k: v for k, v in actual.items() if k in keep}
        expected = {k: v for k, v in expected.items() if k in keep}
    assert actual == expected, (
        f"backward({sink!r}, where={where.sql!r}, columns={columns!r}) differs from the "
        f"oracle:\nhippo  {actual}\noracle {expected}")
    return actual


def assert_forward_matches(store: Any, source: str, sinks: Mapping[str, Frame],
                           where: Where) -> dict[str, list[Values]]:
    """hippo's forward answer equals the oracle's for every sink of the run."""
    got = store.forward(source, where=where.sql)
    actual = {}
    for name, df in got.items():
        cols, rows = _collect(df)
        assert cols == list(sinks[name].columns)
        actual[name] = rows
    expected = {}
    for name, frame in sinks.items():
        rows = _norm_rows(frame.forward(source, where.test))
        if rows:
            expected[name] = rows
    assert actual == expected, f"forward({source!r}, where={where.sql!r}) differs from the oracle"
    return actual
