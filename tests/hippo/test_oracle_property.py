"""Random pipelines: hippo's backward/forward answers, and its removals, equal the oracle's.

Hypothesis draws one or two small sources (nullable int and string columns, unique
rows) and a pipeline of one to four supported steps, applies each step through hippo's
tracked methods and through the oracle (``tests/hippo/oracle.py``), then compares, for a
random output row, a random output column and a random source row: the sink as written,
backward at row level, backward at cell level, and forward. A second test removes random
source rows from a random pipeline and compares the repaired sink (and the removal's
preview) with the oracle's pipeline over the sources without those rows.
"""

from __future__ import annotations

import functools
import itertools
import uuid
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any

from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st
from pyspark.sql import Window
from pyspark.sql import functions as F

import hippo
from tests.hippo.oracle import (
    AmbiguousLimit,
    Explode,
    Frame,
    Where,
    _norm,
    previewed,
    assert_backward_matches,
    assert_forward_matches,
    assert_sink_matches,
    avg_of,
    col,
    const,
    count_of,
    count_rows,
    expr,
    lit,
    max_of,
    min_of,
    OrderedFn,
    on,
    raw,
    sum_of,
)

KEYS = st.one_of(st.none(), st.integers(0, 2))
INTS = st.one_of(st.none(), st.integers(-2, 5))
STRS = st.one_of(st.none(), st.sampled_from(["x", "y", "z"]))

SOURCES = {  # name -> (schema, column types, row strategy)
    "a": ("k int, a int, s string", ["int", "int", "str"], st.tuples(KEYS, INTS, STRS)),
    "b": ("k int, b int, t string", ["int", "int", "str"], st.tuples(KEYS, INTS, STRS)),
}


@dataclass(frozen=True)
class Pipe:
    """The pipeline so far, in both worlds, with the user columns' types."""

    tracked: Any  # hippo.TrackedDataFrame
    frame: Frame
    types: dict[str, str]  # "int" (int or bigint), "str" or "float"
    limited: bool = False  # an earlier limit: hippo refuses aggregating its rows

    def of(self, kind: str) -> list[str]:
        return [c for c in self.frame.columns if self.types[c] == kind]


class Context:
    """What a step may use besides the pipe: the second source, fresh names."""

    def __init__(self, data: st.DataObject, other: Pipe | None) -> None:
        self.data = data
        self.other = other
        self._n = 0

    def draw(self, strategy: st.SearchStrategy, label: str) -> Any:
        return self.data.draw(strategy, label=label)

    def name(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}{self._n}"

    def take_other(self) -> Pipe | None:
        other, self.other = self.other, None
        return other


# -- steps: each returns the new pipe, or None when it does not apply ---------------------------
def _condition(ctx: Context, pipe: Pipe):
    """A random filter condition, as a Spark Column and an oracle Expr."""
    c = ctx.draw(st.sampled_from(pipe.of("int") + pipe.of("str")), "filter column")
    if pipe.types[c] == "int":
        t = ctx.draw(st.integers(-1, 4), "threshold")
        op = ctx.draw(st.sampled_from([">", "<=", "=="]), "operator")
        spark = {">": F.col(c) > t, "<=": F.col(c) <= t, "==": F.col(c) == t}[op]
        fn = {">": lambda v: v > t, "<=": lambda v: v <= t, "==": lambda v: v == t}[op]
        return spark, expr(fn, c)
    if ctx.draw(st.booleans(), "string test is `IS NOT NULL`"):
        return F.col(c).isNotNull(), raw(lambda v: v is not None, c)
    v = ctx.draw(st.sampled_from(["x", "y"]), "string value")
    return F.col(c) == v, expr(lambda s: s == v, c)


def step_filter(ctx: Context, pipe: Pipe) -> Pipe | None:
    if not pipe.of("int") + pipe.of("str"):
        return None
    spark, oracle = _condition(ctx, pipe)
    return replace(pipe, tracked=pipe.tracked.filter(spark), frame=pipe.frame.filter(oracle))


@functools.cache
def _udf() -> Any:
    """The arithmetic step as a Python function: recorded with the step, run again by
    queries (made once a session exists)."""
    return F.udf(lambda x, y: None if x is None or y is None else x + y * 2, "bigint")


def step_with_column(ctx: Context, pipe: Pipe) -> Pipe | None:
    ints = pipe.of("int")
    form = ctx.draw(st.sampled_from(["arithmetic", "python udf", "coalesce", "literal"]),
                    "expression")
    c1 = None
    if form in ("arithmetic", "python udf") and ints:
        c1 = ctx.draw(st.sampled_from(ints), "c1")
        c2 = ctx.draw(st.sampled_from(ints), "c2")
        made = F.col(c1) + F.col(c2) * 2 if form == "arithmetic" else _udf()(c1, c2)
        spark, oracle, kind = made, expr(lambda x, y: x + y * 2, c1, c2), "int"
    elif form == "literal":
        spark, oracle, kind = F.lit(7), raw(lambda: 7), "int"  # references no column
    else:
        kind = ctx.draw(st.sampled_from(sorted(set(pipe.types.values()))), "type")
        same = pipe.of(kind)
        c1 = ctx.draw(st.sampled_from(same), "c1")
        c2 = ctx.draw(st.sampled_from(same), "c2")
        spark = F.coalesce(F.col(c1), F.col(c2))
        oracle = raw(lambda x, y: x if x is not None else y, c1, c2)
    name = ctx.name("e")
    if c1 is not None and pipe.types[c1] == kind:
        name = ctx.draw(st.sampled_from([name, c1]), "new or replaced column")
    return Pipe(pipe.tracked.withColumn(name, spark), pipe.frame.with_column(name, oracle),
                {**pipe.types, name: kind}, pipe.limited)


def step_select(ctx: Context, pipe: Pipe) -> Pipe | None:
    cols = list(pipe.frame.columns)
    keep = [c for c in cols if ctx.draw(st.booleans(), f"keep {c}")] or cols[:1]
    how = ctx.draw(st.sampled_from(["select", "selectExpr", "drop"]), "method")
    if how == "select":
        tracked = pipe.tracked.select(*keep)
    elif how == "selectExpr":
        tracked = pipe.tracked.selectExpr(*[f"`{c}`" for c in keep])
    else:
        tracked = pipe.tracked.drop(*[c for c in cols if c not in keep])
    return Pipe(tracked, pipe.frame.select(*keep), {c: pipe.types[c] for c in keep},
                pipe.limited)


def step_explode(ctx: Context, pipe: Pipe) -> Pipe | None:
    ints = pipe.of("int")
    if not ints:
        return None
    c1 = ctx.draw(st.sampled_from(ints), "c1")
    c2 = ctx.draw(st.sampled_from(ints), "c2")
    name = ctx.name("x")
    cols = list(pipe.frame.columns)
    tracked = pipe.tracked.select(*cols, F.explode(F.array(c1, c2)).alias(name))
    frame = pipe.frame.select(*cols, (name, Explode(raw(lambda x, y: [x, y], c1, c2))))
    return Pipe(tracked, frame, {**pipe.types, name: "int"}, pipe.limited)


def step_aggregate(ctx: Context, pipe: Pipe) -> Pipe | None:
    if pipe.limited:
        return None
    cols = list(pipe.frame.columns)
    keys = ctx.draw(st.lists(st.sampled_from(cols), max_size=2, unique=True), "group keys")
    spark_keys: list[Any] = list(keys)
    oracle_keys: list[Any] = list(keys)
    types = {k: pipe.types[k] for k in keys}
    if pipe.of("int") and ctx.draw(st.booleans(), "a computed group key"):
        c = ctx.draw(st.sampled_from(pipe.of("int")), "key column")
        name = ctx.name("m")
        spark_keys.append((F.col(c) % 2).alias(name))
        oracle_keys.append((name, expr(lambda v: v % 2 if v >= 0 else -(-v % 2), c)))
        types[name] = "int"
    choices = ["count(*)", "count"]
    if pipe.of("int"):
        choices += ["sum", "avg", "min", "max", "sum of a product"]
    if pipe.of("str"):
        choices += ["min_str", "max_str"]
    picked = ctx.draw(st.lists(st.sampled_from(choices), min_size=1, max_size=3), "aggregates")
    spark_aggs, oracle_aggs = [], []
    for fn in picked:
        name = ctx.name("g")
        types[name] = "int"
        if fn == "count(*)":
            spark_aggs.append(F.count(F.lit(1)).alias(name))
            oracle_aggs.append((name, count_rows()))
            continue
        if fn == "sum of a product":
            c1 = ctx.draw(st.sampled_from(pipe.of("int")), "c1")
            c2 = ctx.draw(st.sampled_from(pipe.of("int")), "c2")
            spark_aggs.append(F.sum(F.col(c1) * F.col(c2)).alias(name))
            oracle_aggs.append((name, sum_of(expr(lambda x, y: x * y, c1, c2))))
            continue
        pool = cols if fn == "count" else pipe.of("str" if fn.endswith("_str") else "int")
        c = ctx.draw(st.sampled_from(pool), f"{fn} column")
        base = fn.removesuffix("_str")
        spark_aggs.append(getattr(F, base)(c).alias(name))
        oracle_aggs.append((name, {"count": count_of, "sum": sum_of, "avg": avg_of,
                                   "min": min_of, "max": max_of}[base](c)))
        types[name] = {"count": "int", "avg": "float"}.get(base, pipe.types[c])
    return Pipe(pipe.tracked.groupBy(*spark_keys).agg(*spark_aggs),
                pipe.frame.group_by(*oracle_keys).agg(*oracle_aggs), types)


def step_distinct(ctx: Context, pipe: Pipe) -> Pipe | None:
    if pipe.limited:
        return None
    return replace(pipe, tracked=pipe.tracked.distinct(), frame=pipe.frame.distinct())


def step_join(ctx: Context, pipe: Pipe) -> Pipe | None:
    if ctx.other is None or not pipe.of("int"):
        return None
    other = ctx.take_other()
    how = ctx.draw(st.sampled_from(["inner", "left", "right", "full", "left_semi", "left_anti",
                                    "cross"]), "join type")
    if how == "cross":
        right = other.tracked.withColumnRenamed("k", "kb")
        tracked = pipe.tracked.crossJoin(right)
        frame = pipe.frame.join(other.frame.rename("k", "kb"), on(lambda: True, [], []))
        other = replace(other, types={("kb" if n == "k" else n): t
                                      for n, t in other.types.items()})
    elif "k" in pipe.of("int") and ctx.draw(st.booleans(), "join on the name `k`"):
        tracked = pipe.tracked.join(other.tracked, "k", how)
        frame = pipe.frame.join(other.frame, "k", how)
    else:
        c = ctx.draw(st.sampled_from(pipe.of("int")), "left join column")
        right = other.tracked.withColumnRenamed("k", "kb")
        r_frame = other.frame.rename("k", "kb")
        rc = ctx.draw(st.sampled_from(["kb", "b"]), "right join column")
        tracked = pipe.tracked.join(right, pipe.tracked[c] == right[rc], how)
        frame = pipe.frame.join(
            r_frame, on(lambda x, y: None if x is None or y is None else x == y, [c], [rc]), how)
        other = replace(other, types={("kb" if n == "k" else n): t
                                      for n, t in other.types.items()})
    types = dict(pipe.types)
    if how not in ("left_semi", "left_anti"):
        types.update(other.types)
    return Pipe(tracked, frame, {c: types[c] for c in frame.columns}, pipe.limited)


def step_union(ctx: Context, pipe: Pipe) -> Pipe | None:
    cols = list(pipe.frame.columns)
    if ctx.other is not None and ctx.draw(st.booleans(), "union with the other source"):
        other = ctx.take_other()
        spark_cols, oracle_cols = [], []
        for c in cols:
            kind = pipe.types[c]
            if kind == "float":
                spark_cols.append(F.col("b").cast("double").alias(c))
                oracle_cols.append((c, expr(float, "b")))
                continue
            src = ctx.draw(st.sampled_from(other.of(kind)), f"column for {c}")
            spark_cols.append(F.col(src).alias(c))
            oracle_cols.append((c, col(src)))
        side, side_frame = other.tracked.select(*spark_cols), other.frame.select(*oracle_cols)
    elif pipe.of("int") + pipe.of("str"):
        spark, oracle = _condition(ctx, pipe)  # a self-union: the pipe and part of itself
        side, side_frame = pipe.tracked.filter(spark), pipe.frame.filter(oracle)
    else:
        return None
    if ctx.draw(st.booleans(), "by name"):
        order = list(reversed(cols))
        return replace(pipe, tracked=pipe.tracked.unionByName(side.select(*order)),
                       frame=pipe.frame.union_by_name(side_frame.select(*order)))
    return replace(pipe, tracked=pipe.tracked.union(side), frame=pipe.frame.union(side_frame))


def step_order_limit(ctx: Context, pipe: Pipe) -> Pipe | None:
    cols = list(pipe.frame.columns)
    ascending = [ctx.draw(st.booleans(), f"{c} ascending") for c in cols]
    n = ctx.draw(st.integers(1, 4), "limit")
    try:
        frame = pipe.frame.order_by(*zip(cols, ascending, strict=True)).limit(n)
    except AmbiguousLimit:
        return None  # repeated rows straddle the cut: which one is kept is up to Spark
    orders = [F.col(c).asc() if a else F.col(c).desc() for c, a in zip(cols, ascending,
                                                                       strict=True)]
    return Pipe(pipe.tracked.orderBy(*orders).limit(n), frame, pipe.types, limited=True)


def step_repartition(ctx: Context, pipe: Pipe) -> Pipe | None:
    how = ctx.draw(st.sampled_from(["repartition", "by column", "coalesce"]), "repartition")
    if how == "repartition":
        tracked = pipe.tracked.repartition(2)
    elif how == "by column":
        tracked = pipe.tracked.repartition(2, pipe.frame.columns[0])
    else:
        tracked = pipe.tracked.coalesce(1)
    return replace(pipe, tracked=tracked, frame=pipe.frame.repartition())


def step_window(ctx: Context, pipe: Pipe) -> Pipe | None:
    if pipe.limited:
        return None
    cols = list(pipe.frame.columns)
    keys = ctx.draw(st.lists(st.sampled_from(cols), max_size=2, unique=True), "partition keys")
    choices = ["count(*)", "count"] + (["sum", "avg", "min", "max"] if pipe.of("int") else [])
    fn = ctx.draw(st.sampled_from(choices), "window function")
    name = ctx.name("w")
    if fn == "count(*)":
        spark_fn, agg, kind = F.count(F.lit(1)), count_rows(), "int"
    else:
        c = ctx.draw(st.sampled_from(cols if fn == "count" else pipe.of("int")), f"{fn} column")
        spark_fn = getattr(F, fn)(c)
        agg = {"count": count_of, "sum": sum_of, "avg": avg_of, "min": min_of,
               "max": max_of}[fn](c)
        kind = {"count": "int", "avg": "float"}.get(fn, pipe.types[c])
    tracked = pipe.tracked.withColumn(name, spark_fn.over(Window.partitionBy(*keys)))
    return Pipe(tracked, pipe.frame.window(name, agg, keys), {**pipe.types, name: kind})


def step_ordered_window(ctx: Context, pipe: Pipe) -> Pipe | None:
    """A window over an ordered partition. A function whose value depends on how ties
    are ordered is ordered by every column and drawn only where no partition holds two
    equal rows (which of two equal rows comes first is up to Spark)."""
    if pipe.limited:
        return None
    cols = list(pipe.frame.columns)
    keys = ctx.draw(st.lists(st.sampled_from(cols), max_size=1, unique=True), "partition keys")
    ints = pipe.of("int")
    choices = ["rank", "dense_rank", "running count"] + (
        ["running sum", "row_number", "lag", "lead", "rows sum"] if ints else [])
    fn = ctx.draw(st.sampled_from(choices), "ordered window function")
    name = ctx.name("o")
    tie_free = fn in ("row_number", "lag", "lead", "rows sum")
    if tie_free:
        by = [(c, ctx.draw(st.booleans(), f"{c} ascending")) for c in cols]
        worlds = [pipe.frame.now, pipe.frame.clean] if hasattr(pipe.frame, "now") \
            else [pipe.frame]
        for world in worlds:  # both worlds of a removal test
            seen = set()
            for row in world.rows:
                part_row = (tuple(row.values[cols.index(k)] for k in keys), row.values)
                if part_row in seen:
                    return None
                seen.add(part_row)
    else:
        c = ctx.draw(st.sampled_from(cols), "order column")
        by = [(c, ctx.draw(st.booleans(), f"{c} ascending"))]
    order = [F.col(c).asc() if a else F.col(c).desc() for c, a in by]
    w = Window.partitionBy(*keys).orderBy(*order)
    value = ctx.draw(st.sampled_from(ints), "window value") if ints else None
    spark_fn, ofn, kind = {
        "rank": lambda: (F.rank(), OrderedFn("rank"), "int"),
        "dense_rank": lambda: (F.dense_rank(), OrderedFn("dense_rank"), "int"),
        "running count": lambda: (F.count(F.lit(1)), OrderedFn(
            "agg", agg=count_rows(), frame=("range", None, 0)), "int"),
        "running sum": lambda: (F.sum(value), OrderedFn(
            "agg", agg=sum_of(value), frame=("range", None, 0)), "int"),
        "row_number": lambda: (F.row_number(), OrderedFn("row_number"), "int"),
        "lag": lambda: (F.lag(value), OrderedFn("lag", col(value), 1), "int"),
        "lead": lambda: (F.lead(value, 2), OrderedFn("lead", col(value), 2), "int"),
        "rows sum": lambda: (F.sum(value), OrderedFn(
            "agg", agg=sum_of(value), frame=("rows", -1, 1)), "int"),
    }[fn]()
    if fn == "rows sum":
        w = w.rowsBetween(-1, 1)
    tracked = pipe.tracked.withColumn(name, spark_fn.over(w))
    return Pipe(tracked, pipe.frame.ordered_window(name, ofn, keys, by),
                {**pipe.types, name: kind})


def step_nondeterministic(ctx: Context, pipe: Pipe) -> Pipe | None:
    """A step Spark's plan calls nondeterministic, whose result the oracle still knows:
    ``sample(fraction=1.0)`` keeps every row, and ``when(rand() >= 0, c)`` is ``c``.
    hippo records both with an explicit encoding (their output copied into the store)."""
    how = ctx.draw(st.sampled_from(["sample", "rand"]), "nondeterministic step")
    if how == "sample":
        return replace(pipe, tracked=pipe.tracked.sample(fraction=1.0, seed=7))
    c = ctx.draw(st.sampled_from(list(pipe.frame.columns)), "rand-guarded column")
    name = ctx.name("r")
    tracked = pipe.tracked.withColumn(name, F.when(F.rand(3) >= 0, F.col(c)))
    return Pipe(tracked, pipe.frame.with_column(name, col(c)), {**pipe.types, name: pipe.types[c]},
                pipe.limited)


def step_unpivot(ctx: Context, pipe: Pipe) -> Pipe | None:
    """unpivot / melt: one row per value column, each value cell from its own column."""
    cols = list(pipe.frame.columns)
    kind = ctx.draw(st.sampled_from(["int", "str"]), "value type")
    values = ctx.draw(st.lists(st.sampled_from(pipe.of(kind) or [None]), min_size=1,
                               max_size=2, unique=True), "value columns")
    if None in values:
        return None
    rest = [c for c in cols if c not in values]
    ids = ctx.draw(st.lists(st.sampled_from(rest or [None]), max_size=2, unique=True), "ids")
    if None in ids:
        return None
    var, val = ctx.name("var"), ctx.name("val")
    frame = None
    for v in values:
        part = pipe.frame.select(*ids, (var, lit(v)), (val, col(v)))
        frame = part if frame is None else frame.union(part)
    return Pipe(pipe.tracked.unpivot(ids, values, var, val), frame,
                {**{i: pipe.types[i] for i in ids}, var: "str", val: kind}, pipe.limited)


def step_grouping_sets(ctx: Context, pipe: Pipe) -> Pipe | None:
    """cube / rollup: one aggregate per grouping set (keys outside it null), unioned."""
    if pipe.limited:
        return None
    cols = list(pipe.frame.columns)
    keys = ctx.draw(st.lists(st.sampled_from(cols), min_size=1, max_size=2, unique=True),
                    "grouping keys")
    how = ctx.draw(st.sampled_from(["cube", "rollup"]), "grouping sets")
    n = len(keys)
    if how == "cube":
        sets = [set(s) for size in range(n, -1, -1) for s in itertools.combinations(keys, size)]
    else:
        sets = [set(keys[:size]) for size in range(n, -1, -1)]
    ints = pipe.of("int")
    picked = ctx.draw(st.lists(st.sampled_from(["count(*)", "grouping_id"] + (
        ["sum"] if ints else [])), min_size=1, max_size=2, unique=True), "aggregates")
    spark_aggs, oracle_aggs, types = [], [], {k: pipe.types[k] for k in keys}
    for fn in picked:
        name = ctx.name("g")
        types[name] = "int"
        if fn == "count(*)":
            spark_aggs.append(F.count(F.lit(1)).alias(name))
            oracle_aggs.append((name, lambda gid: count_rows()))
        elif fn == "grouping_id":
            spark_aggs.append(F.grouping_id().alias(name))
            oracle_aggs.append((name, const))
        else:
            c = ctx.draw(st.sampled_from(ints), "sum column")
            spark_aggs.append(F.sum(c).alias(name))
            oracle_aggs.append((name, lambda gid, c=c: sum_of(c)))
    frame = None
    for chosen in sets:
        gid = sum(1 << (n - 1 - j) for j, k in enumerate(keys) if k not in chosen)
        part = pipe.frame.group_by(*[k if k in chosen else (k, lit(None)) for k in keys]).agg(
            *[(name, make(gid)) for name, make in oracle_aggs])
        frame = part if frame is None else frame.union(part)
    grouped = pipe.tracked.cube(*keys) if how == "cube" else pipe.tracked.rollup(*keys)
    return Pipe(grouped.agg(*spark_aggs), frame, types)


def step_pivot(ctx: Context, pipe: Pipe) -> Pipe | None:
    """groupBy(...).pivot(c).agg(...): Spark's two-phase plan for numeric results (null
    where a group lacks the value), its one-phase plan when a result is a string."""
    if pipe.limited:
        return None
    cols = list(pipe.frame.columns)
    keys = ctx.draw(st.lists(st.sampled_from(cols), max_size=1, unique=True), "group keys")
    pool = [c for c in pipe.of("int") + pipe.of("str") if c not in keys]
    if not pool:
        return None
    p = ctx.draw(st.sampled_from(pool), "pivot column")
    now = getattr(pipe.frame, "now", pipe.frame)  # a removal test's recorded world
    found = sorted({r.values[list(now.columns).index(p)] for r in now.rows},
                   key=lambda v: (v is not None, v))
    if not found or len(found) > 4:
        return None
    given = ctx.draw(st.booleans(), "values given")
    choices = ["count(*)"] + (["sum"] if pipe.of("int") else []) + (
        ["max_str"] if pipe.of("str") else [])
    picked = ctx.draw(st.lists(st.sampled_from(choices), min_size=1, max_size=2, unique=True),
                      "aggregates")
    spark_aggs, oracle_aggs, kinds = [], [], []
    for fn in picked:
        name = ctx.name("p")
        if fn == "count(*)":
            spark_aggs.append(F.count(F.lit(1)).alias(name))
            oracle_aggs.append((name, count_rows()))
            kinds.append("int")
        else:
            c = ctx.draw(st.sampled_from(pipe.of("int" if fn == "sum" else "str")),
                         f"{fn} column")
            spark_aggs.append((F.sum(c) if fn == "sum" else F.max(c)).alias(name))
            oracle_aggs.append((name, sum_of(c) if fn == "sum" else max_of(c)))
            kinds.append("int" if fn == "sum" else "str")
    grouped = pipe.tracked.groupBy(*keys).pivot(p, found if given else None)
    frame = pipe.frame.group_by(*keys).pivot(p, found, *oracle_aggs,
                                             missing_is_null="max_str" not in picked)
    types = {k: pipe.types[k] for k in keys}
    for v in found:
        label = "null" if v is None else str(v)
        for (name, _), kind in zip(oracle_aggs, kinds, strict=True):
            types[label if len(picked) == 1 else f"{label}_{name}"] = kind
    return Pipe(grouped.agg(*spark_aggs), frame, types)


STEPS = [step_filter, step_with_column, step_select, step_explode, step_aggregate,
         step_distinct, step_join, step_union, step_order_limit, step_repartition,
         step_window, step_ordered_window, step_nondeterministic, step_unpivot,
         step_grouping_sets, step_pivot]


def _source_rows(name: str) -> st.SearchStrategy:
    rows = SOURCES[name][2]
    return st.lists(rows, min_size=1, max_size=6, unique=True)


@settings(max_examples=16, deadline=None, print_blob=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_random_pipelines_answer_backward_and_forward_like_the_oracle(
    spark, tmp_path_factory, data
):
    folder = tmp_path_factory.mktemp("oracle_property") / uuid.uuid4().hex
    names = ["a"] + (["b"] if data.draw(st.booleans(), label="two sources") else [])
    raw_rows = {n: data.draw(_source_rows(n), label=f"rows of {n}") for n in names}
    as_path = {n: data.draw(st.booleans(), label=f"{n} as a Delta path") for n in names}
    store = hippo.LineageStore(spark, str(folder / "lineage"))

    with store.run("random") as run:
        pipes = {}
        for n in names:
            schema, kinds, _ = SOURCES[n]
            df = spark.createDataFrame(raw_rows[n], schema)
            if as_path[n]:
                df.write.format("delta").save(str(folder / n))
                df = str(folder / n)
            frame = Frame.source(n, [c.split()[0] for c in schema.split(", ")], raw_rows[n])
            pipes[n] = Pipe(run.source(n, df), frame, dict(zip(frame.columns, kinds,
                                                               strict=True)))
        ctx = Context(data, pipes.get("b"))
        pipe = pipes["a"]
        n_steps = data.draw(st.integers(1, 4), label="number of steps")
        applied = []
        for _ in range(n_steps):
            step = data.draw(st.sampled_from(STEPS), label="step")
            new = step(ctx, pipe)
            if new is not None:
                pipe = new
                applied.append(step.__name__)
                event(step.__name__)
        run.sink("out", pipe.tracked, str(folder / "out"))
    oracle = pipe.frame
    note(f"steps applied: {applied}")

    assert_sink_matches(spark, str(folder / "out"), oracle)
    if oracle.rows:
        i = data.draw(st.integers(0, len(oracle.rows) - 1), label="output row")
        where = Where.row(oracle.columns, oracle.rows[i].values)
        assert_backward_matches(store, "out", oracle, where)
        c = data.draw(st.sampled_from(oracle.columns), label="output column")
        assert_backward_matches(store, "out", oracle, where, columns=[c])
    source = data.draw(st.sampled_from(names), label="forward from")
    j = data.draw(st.integers(0, len(raw_rows[source]) - 1), label="source row")
    src = pipes[source].frame.sources[source]
    assert_forward_matches(store, source, {"out": oracle}, Where.row(src.columns, src.rows[j]))


# -- random removals ------------------------------------------------------------------------
class Both:
    """Two oracle frames stepped alike: the pipeline over the sources as recorded
    (``now``) and over the sources with the removed rows left out (``clean``)."""

    def __init__(self, now: Any, clean: Any) -> None:
        self.now, self.clean = now, clean

    @property
    def columns(self) -> tuple[str, ...]:
        return self.now.columns

    def __getattr__(self, name: str) -> Any:
        def both(*args: Any, **kwargs: Any) -> Both:
            pick = (lambda v, side: getattr(v, side) if isinstance(v, Both) else v)
            out = [getattr(getattr(self, side), name)(
                *[pick(a, side) for a in args], **{k: pick(v, side) for k, v in kwargs.items()})
                for side in ("now", "clean")]
            return Both(*out)
        return both


def _rows_of(df) -> Counter:
    return Counter(tuple(_norm(v) for v in r) for r in df.collect())


@settings(max_examples=8, deadline=None, print_blob=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_random_removals_repair_random_pipelines_like_a_recompute(spark, tmp_path_factory, data):
    """A removal of random source rows, previewed then applied, leaves the sink equal
    to the oracle's pipeline over the sources without those rows."""
    folder = tmp_path_factory.mktemp("removal_property") / uuid.uuid4().hex
    names = ["a"] + (["b"] if data.draw(st.booleans(), label="two sources") else [])
    raw_rows = {n: data.draw(_source_rows(n), label=f"rows of {n}") for n in names}
    target = data.draw(st.sampled_from(names), label="remove from")
    gone = data.draw(st.sets(st.sampled_from(raw_rows[target]), min_size=1), label="removed")
    store = hippo.LineageStore(spark, str(folder / "lineage"))

    with store.run("random") as run:
        pipes = {}
        for n in names:
            schema, kinds, _ = SOURCES[n]
            spark.createDataFrame(raw_rows[n], schema).write.format("delta").save(
                str(folder / n))
            cols = [c.split()[0] for c in schema.split(", ")]
            kept = [r for r in raw_rows[n] if n != target or r not in gone]
            frame = Both(Frame.source(n, cols, raw_rows[n]), Frame.source(n, cols, kept))
            pipes[n] = Pipe(run.source(n, str(folder / n)), frame,
                            dict(zip(cols, kinds, strict=True)))
        ctx = Context(data, pipes.get("b"))
        pipe = pipes["a"]
        applied = []
        for _ in range(data.draw(st.integers(1, 4), label="number of steps")):
            step = data.draw(st.sampled_from(STEPS), label="step")
            new = step(ctx, pipe)
            if new is not None:
                pipe = new
                applied.append(step.__name__)
        run.sink("out", pipe.tracked, str(folder / "out"))
    note(f"steps applied: {applied}")
    out = str(folder / "out")
    assert_sink_matches(spark, out, pipe.frame.now)
    cols = pipes[target].frame.columns
    where = " OR ".join(f"({Where.row(cols, r).sql})" for r in sorted(gone, key=repr))
    clean = Counter(tuple(_norm(v) for v in r) for r in pipe.frame.clean.values())

    before = _rows_of(spark.read.format("delta").load(out))
    preview = store.remove(target, where=where, dry_run=True)
    assert preview.removed == len(gone)
    if "out" in preview.sinks:
        event(f"repair: {preview.sinks['out'].how}")
        assert previewed(before, preview.sinks["out"].preview) == clean
    else:
        assert before == clean  # the removed rows reach no output
    report = store.remove(target, where=where)
    assert report.removed == len(gone)
    assert_sink_matches(spark, out, pipe.frame.clean)
    left = spark.read.format("delta").load(str(folder / target)).count()
    assert left == len(raw_rows[target]) - len(gone)
