"""Pivot, unpivot/melt and grouping sets (cube, rollup), tracked exactly.

Spark plans these with nodes a recorded step cannot be rebuilt from (``PivotFirst``, an
``Expand`` with a grouping id, one ``Expand`` row per unpivoted column), so each is made
of tracked steps that compute the same rows, each with exact lineage:

- pivot: Spark's own two-phase plan (aggregate by the keys and the pivot value, then pick
  each value's results per key); where Spark computes the pivot as one conditional
  aggregate instead (its plan has no ``PivotFirst``), that aggregate itself. A pivot cell
  comes from its group's rows: their pivot column and the columns its aggregate reads.
- cube / rollup / grouping sets: one aggregate per grouping set (keys outside the set are
  null), unioned. A row comes from the rows of its group in its grouping set only.
  ``grouping(col)`` and ``grouping_id()`` as output columns are constants per set.
- unpivot / melt: one projection per value column, unioned. A value cell comes from the
  one column it was taken from, in its own row.

Each is checked against the schema Spark itself gives the same call, so the tracked
result has the user's column names and types.
"""

from __future__ import annotations

import json
from itertools import combinations
from typing import TYPE_CHECKING, Any

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from hippo.errors import HippoError, UnsupportedStepError
from hippo.recorded.ids import quoted

if TYPE_CHECKING:
    from hippo.capture.tracked import TrackedDataFrame, TrackedGroupedData

__all__ = ["agg_exprs", "grouping_sets", "pivot_agg", "unpivot"]

_PIVOT_FIRST = "org.apache.spark.sql.catalyst.expressions.aggregate.PivotFirst"
_ATTR = ".AttributeReference"


def agg_exprs(exprs: tuple[Any, ...]) -> list[Any]:
    """``agg``'s arguments as columns (pyspark's ``{column: function}`` form expanded)."""
    if len(exprs) == 1 and isinstance(exprs[0], dict):
        return [F.expr(f"{fn}({quoted(c)})").alias(f"{fn}({c})") for c, fn in exprs[0].items()]
    return list(exprs)


def _check_schema(step: str, got: TrackedDataFrame, want: DataFrame) -> TrackedDataFrame:
    if got.df.dtypes != want.dtypes:
        raise UnsupportedStepError(
            f"`{step}`: hippo's tracked form gives columns {got.df.dtypes}, Spark's "
            f"{want.dtypes}; use `.df.{step}(...)` for untracked work")
    return got


def _union_all(parts: list[TrackedDataFrame]) -> TrackedDataFrame:
    out = parts[0]
    for part in parts[1:]:
        out = out.union(part)
    return out


# -- pivot ---------------------------------------------------------------------------------
def _pivot_values(df: DataFrame, pivot_col: str) -> list[Any]:
    """The pivot's values when the user gives none, as Spark computes them: the column's
    distinct values, sorted, at most ``spark.sql.pivotMaxValues``."""
    most = int(df.sparkSession.conf.get("spark.sql.pivotMaxValues", "10000"))
    rows = df.select(pivot_col).distinct().limit(most + 1).sort(pivot_col).collect()
    if len(rows) > most:
        raise HippoError(
            f"pivot: column `{pivot_col}` has more than {most} distinct values "
            "(spark.sql.pivotMaxValues); pass the values to pivot")
    return [r[0] for r in rows]


def pivot_agg(grouped: TrackedGroupedData, pivot_col: str, values: list[Any] | None,
              exprs: list[Any]) -> TrackedDataFrame:
    """``groupBy(keys).pivot(pivot_col, values).agg(*exprs)``, tracked."""
    from hippo.capture.tracked import TrackedGroupedData

    parent, keys = grouped._parent, list(grouped._keys)
    if values is None:
        values = _pivot_values(parent.df, pivot_col)
    values = list(values)
    real = parent.df.groupBy(*keys).pivot(pivot_col, values).agg(*exprs)
    plan = str(real._jdf.queryExecution().analyzed().toJSON())
    if _PIVOT_FIRST not in plan:
        # Spark computes this pivot as one aggregate of conditional aggregates, which a
        # step records and rebuilds as it is.
        out = TrackedGroupedData(parent, keys)._agg(
            lambda df: df.groupBy(*keys).pivot(pivot_col, values).agg(*exprs), "pivot")
        return _check_schema("pivot", out, real)
    # Spark's two phases: results per (keys, pivot value), then per key, each value's
    # result in its own column (null where the key has no row of that value).
    n = len(keys)
    named = [e.alias(f"_hippo_pivot_{i}") for i, e in enumerate(exprs)]
    first = TrackedGroupedData(parent, [*keys, pivot_col])._agg(
        lambda df: df.groupBy(*keys, pivot_col).agg(*named), "pivot")
    key_names, value_col = first.columns[:n], first.columns[n]
    pivot_type = first.df.schema[value_col].dataType
    picks = []
    out_names = iter(real.columns[n:])
    for v in values:
        is_v = F.col(quoted(value_col)).eqNullSafe(F.lit(v).cast(pivot_type))
        for i in range(len(exprs)):
            picks.append(F.first(F.when(is_v, F.col(f"_hippo_pivot_{i}")), ignorenulls=True)
                         .alias(next(out_names)))
    by_key = [F.col(quoted(k)) for k in key_names]
    out = TrackedGroupedData(first, by_key)._agg(
        lambda df: df.groupBy(*by_key).agg(*picks), "pivot")
    return _check_schema("pivot", out, real)


# -- grouping sets -------------------------------------------------------------------------
def _key_index(keys: list[Any], item: Any) -> int:
    for j, k in enumerate(keys):
        if k is item or (isinstance(k, str) and isinstance(item, str) and k == item) or (
                isinstance(k, Column) and isinstance(item, Column) and str(k) == str(item)):
            return j
    raise HippoError(f"groupingSets: {item!r} is not one of the grouping columns "
                     f"{[str(k) for k in keys]}")


def _sets(kind: str, n: int, keys: list[Any], given: Any) -> list[tuple[int, ...]]:
    if kind == "cube":  # Spark's order: all keys first, the empty set last
        return [s for size in range(n, -1, -1) for s in combinations(range(n), size)]
    if kind == "rollup":
        return [tuple(range(size)) for size in range(n, -1, -1)]
    return [tuple(_key_index(keys, item) for item in s) for s in given]


def _grouping_constants(real: DataFrame, n: int, n_exprs: int) -> dict[int, tuple[str, int]]:
    """Output expressions that are ``grouping_id()`` or ``grouping(col)``: index ->
    ("id", 0) or ("bit", shift). Any other use of the grouping id is refused."""
    plan = real._jdf.queryExecution().analyzed()
    while plan.getClass().getSimpleName() != "Aggregate":
        if plan.children().size() != 1:
            raise UnsupportedStepError("grouping sets: Spark's plan has no aggregate hippo "
                                       "can read")
        plan = plan.children().apply(0)
    groups = plan.groupingExpressions()
    aggs = plan.aggregateExpressions()
    if groups.size() == 0:  # no keys: one grouping set, no grouping id
        return {}
    if aggs.size() != n + n_exprs:
        raise UnsupportedStepError("grouping sets: Spark's aggregate does not list the keys "
                                   "then the aggregates")
    gid = json.loads(groups.apply(groups.size() - 1).toJSON())[0]["exprId"]["id"]
    found: dict[int, tuple[str, int]] = {}
    for i in range(n_exprs):
        tree = json.loads(aggs.apply(n + i).toJSON())
        uses = [node for node in tree if node["class"].endswith(_ATTR)
                and node["exprId"]["id"] == gid]
        if not uses:
            continue
        shape = [node["class"].rsplit(".", 1)[-1] for node in tree]
        if shape == ["Alias", "AttributeReference"]:
            found[i] = ("id", 0)
        elif shape == ["Alias", "Cast", "BitwiseAnd", "ShiftRight", "AttributeReference",
                       "Literal", "Literal"]:
            found[i] = ("bit", int(tree[5]["value"]))
        else:
            raise UnsupportedStepError(
                f"`{tree[0].get('name', 'grouping')}`: grouping() and grouping_id() are "
                "tracked as whole output columns of a cube, rollup or grouping sets; "
                "compute with them in a later step")
    return found


def grouping_sets(grouped: TrackedGroupedData, exprs: list[Any]) -> TrackedDataFrame:
    """``cube / rollup / groupingSets(...).agg(*exprs)``, tracked as one aggregate per
    grouping set, unioned."""
    from hippo.capture.tracked import TrackedGroupedData

    parent, keys = grouped._parent, list(grouped._keys)
    kind, given = grouped._sets
    df = parent.df
    if kind == "cube":
        real = df.cube(*keys).agg(*exprs)
    elif kind == "rollup":
        real = df.rollup(*keys).agg(*exprs)
    else:
        real = df.groupingSets(given, *keys).agg(*exprs)
    n = len(keys)
    fields = real.schema.fields
    constants = _grouping_constants(real, n, len(exprs))
    parts = []
    for chosen in _sets(kind, n, keys, given):
        gid = sum(1 << (n - 1 - j) for j in range(n) if j not in chosen)
        by = [keys[j] if j in chosen
              else F.lit(None).cast(fields[j].dataType).alias(fields[j].name)
              for j in range(n)]
        cols = []
        for i, e in enumerate(exprs):
            if i in constants:
                how, shift = constants[i]
                value = gid if how == "id" else (gid >> shift) & 1
                field = fields[n + i]
                e = F.lit(value).cast(field.dataType).alias(field.name)
            cols.append(e)
        parts.append(TrackedGroupedData(parent, by)._agg(
            lambda d, by=by, cols=cols: d.groupBy(*by).agg(*cols), kind))
    return _check_schema(kind, _union_all(parts), real)


# -- unpivot -------------------------------------------------------------------------------
def _listed(cols: Any) -> list[Any]:
    if cols is None:
        return []
    return list(cols) if isinstance(cols, list | tuple) else [cols]


def unpivot(tdf: TrackedDataFrame, ids: Any, values: Any, variable: str,
            value: str) -> TrackedDataFrame:
    """``unpivot(ids, values, variableColumnName, valueColumnName)``, tracked as one
    projection per value column, unioned."""
    ids_l, values_l = _listed(ids), (None if values is None else _listed(values))
    real = tdf.df.unpivot(ids_l, values_l, variable, value)
    plan = real._jdf.queryExecution().analyzed()
    if plan.getClass().getSimpleName() != "Expand":
        raise UnsupportedStepError("unpivot: Spark's plan is not one Expand; use "
                                   "`.df.unpivot(...)` for untracked work")
    n = len(ids_l)
    projections = plan.projections()
    # Each Expand row holds the ids, the value column's name, then its value.
    names = [str(projections.apply(k).apply(n).value())
             for k in range(projections.size())]
    if values_l is None:
        values_l = [F.col(quoted(name)) for name in names]
    if len(values_l) != len(names):
        raise UnsupportedStepError("unpivot: Spark's plan does not hold one row per value "
                                   "column")
    value_type = real.schema[n + 1].dataType
    id_names = real.columns[:n]
    parts = []
    for name, v in zip(names, values_l, strict=True):
        v = F.col(quoted(v)) if isinstance(v, str) else v
        if tdf.df.select(v).schema[0].dataType != value_type:
            v = v.cast(value_type)
        parts.append(tdf.select(
            *[F.col(quoted(i)) if isinstance(i, str) else i.alias(nm)
              for i, nm in zip(ids_l, id_names, strict=True)],
            F.lit(name).alias(variable), v.alias(value)))
    return _check_schema("unpivot", _union_all(parts), real)
