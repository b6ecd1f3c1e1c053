"""Rebuild a recorded step's DataFrame from its spec, over freshly read inputs.

Each node's result is renamed to the recorded output names, so the rebuilt DataFrame
has the same schema as the one the run computed. Used by capture (to check, once, that
a step's spec rebuilds to what the run computed) and by every reader of a recorded run.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import reduce
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from hippo.errors import HippoError
from hippo.py4j_lists import renamed, selected
from hippo.recorded import spec as S
from hippo.recorded.ids import (
    CARRY,
    COLUMN,
    ID,
    LEFT,
    RIGHT,
    content_hash,
    derived_id,
    is_hidden,
    pos_name,
    positional,
    quoted,
)
from hippo.recorded.pinned import check_readable
from hippo.session import session_conf

__all__ = ["PICKING", "build_step", "carries", "build_pairs", "rebuilt_plans", "register_udfs"]

_SETTINGS = {
    "spark.sql.constraintPropagation.enabled": "false",
    "spark.sql.limit.initialNumPartitions": "1000000",
}


@contextmanager
def rebuilt_plans(spark: SparkSession) -> Iterator[None]:
    """Plan and run what is made inside with settings for lineage plans.

    * No constraint propagation. A whole pipeline rebuilt step by step, with semi joins
      on row ids on top (trace, replay, removal), holds many aliases of the same
      columns; Spark's constraint propagation grows with their combinations and ran
      the demo's driver out of heap (4 GiB) on one trace. A local checkpoint computes
      the constraints of the plan it cuts: ~1 s of each on a replayed flights sink.
    * A ``limit`` read (``few``: at most 1,001 rows to the driver) reads every
      partition in one job. Its rows are sparse (the rows a lineage question chose), so
      Spark's default, one partition and then four times more per job, ran 2-4 jobs.

    What is computed inside must be computed there (answers are materialized before
    they leave), since the settings are restored on exit.
    """
    with session_conf(spark, _SETTINGS):
        yield


def _order(sql: str, ascending: bool, nulls_first: bool) -> Column:
    col = F.expr(sql)
    if ascending:
        return col.asc_nulls_first() if nulls_first else col.asc_nulls_last()
    return col.desc_nulls_first() if nulls_first else col.desc_nulls_last()


def _joined(node: S.Join, left: DataFrame, right: DataFrame, how: str,
            named: Callable[[DataFrame, str], DataFrame] = positional) -> DataFrame:
    """The join ``node`` of ``left`` and ``right``, each named by ``named`` first."""
    left, right = named(left, LEFT), named(right, RIGHT)
    if node.cond is None:
        return left.crossJoin(right) if how in ("inner", "cross") else left.join(right, how=how)
    return left.join(right, F.expr(node.cond), "inner" if how == "cross" else how)


# Nodes that pick some of their input rows in an order the run did not fix.
PICKING = (S.Limit, S.Offset, S.Dedup)


def build_step(node: S.Node, inputs: list[DataFrame], every_row: bool = False,
               refit: bool = False) -> DataFrame:
    """The DataFrame ``node`` describes, computed over ``inputs``.

    With ``every_row``, the nodes that pick rows in no fixed order (``PICKING``) pass
    every input row on instead: a replay over exactly the rows the run picked (and
    perhaps others it then drops by id) must not let them pick again. With ``refit``, a
    model fitted in the run is fitted again on its (rebuilt) training rows instead of
    loaded as the run saved it.

    Inputs may end in carried columns (``CARRY`` plus a source step's id: that source's
    row as one struct, see :meth:`hippo.recorded.run.RecordedRun.carried`): they pass
    through to the output's end where the node keeps its input rows whole.
    """
    if any(carries(i) for i in inputs):
        return _carried(node, inputs, every_row, refit)
    if isinstance(node, S.Input):
        return inputs[node.input]
    if isinstance(node, S.Fit):
        return build_step(node.child, inputs, every_row, refit)
    if isinstance(node, S.Explicit):
        child = build_step(node.child, inputs, every_row, refit)
        # Written once by the run (version 0); its files as Parquet where that gives the
        # same rows (no Delta scan planning), a clear error if they were vacuumed.
        rows = renamed(check_readable(child.sparkSession, node.path, 0, plain=True), node.names)
        return rows.join(child.select(F.col(ID).alias("__hippo_kept")).distinct(),
                         F.col(ID) == F.col("__hippo_kept"), "left_semi")
    if isinstance(node, S.Declared):
        child = build_step(node.child, inputs, every_row, refit)
        return declared_rows(child, unpickled(node.fn)(_user(child)), node.kind, node.keys,
                             node.slot)
    if isinstance(node, S.Transform):
        return _transformed(node, build_step(node.child, inputs, every_row, refit), inputs,
                            refit)
    if isinstance(node, S.Udfs):
        register_udfs(inputs[0].sparkSession, node.udfs)
        return build_step(node.child, inputs, every_row)
    if isinstance(node, S.Join):
        out = _joined(node, build_step(node.left, inputs, every_row),
                      build_step(node.right, inputs, every_row), node.how)
    elif isinstance(node, S.Union):
        out = reduce(DataFrame.union, [positional(build_step(c, inputs, every_row))
                                       for c in node.children])
    else:
        child = positional(build_step(node.child, inputs, every_row))  # type: ignore[attr-defined]
        out = child if every_row and isinstance(node, PICKING) else _unary(node, child)
    return renamed(out, node.names)  # type: ignore[attr-defined]


def carries(df: DataFrame) -> list[str]:
    """``df``'s carried columns (its last)."""
    return [c for c in df.columns if c.startswith(CARRY)]


def _uncarried(df: DataFrame) -> DataFrame:
    extra = carries(df)
    return df.drop(*extra) if extra else df


def _positional_carried(df: DataFrame, prefix: str) -> DataFrame:
    """``df``'s columns named by position, its carried columns (its last) kept."""
    extra = carries(df)
    return renamed(df, [pos_name(i, prefix) for i in range(len(df.columns) - len(extra))]
                   + extra)


# Nodes whose rows are not their input rows passed on whole (new rows, rows merged or
# picked among equals): their output carries nothing. A carried row holds its position
# in its file, so rows equal in every value stay apart through the other nodes.
_ENDS_CARRY = (S.Explicit, S.Declared, S.Transform)
_MERGES = (S.Aggregate, S.Distinct, *PICKING)


def _carried(node: S.Node, inputs: list[DataFrame], every_row: bool, refit: bool
             ) -> DataFrame:
    """:func:`build_step` over inputs some of which carry source rows."""
    if isinstance(node, S.Input):
        return inputs[node.input]
    if isinstance(node, S.Fit):
        return build_step(node.child, inputs, every_row, refit)
    if isinstance(node, S.Udfs):
        register_udfs(inputs[0].sparkSession, node.udfs)
        return build_step(node.child, inputs, every_row)
    if isinstance(node, _ENDS_CARRY):
        return build_step(node, [_uncarried(i) for i in inputs], every_row, refit)
    if isinstance(node, S.Join):
        left = build_step(node.left, inputs, every_row)
        right = build_step(node.right, inputs, every_row)
        both = set(carries(left)) & set(carries(right))  # a source joined with itself
        if both:
            left, right = left.drop(*both), right.drop(*both)
        out = _joined(node, left, right, node.how, _positional_carried)
        kept = carries(out)
        out = out.select(*[F.col(c) for c in out.columns if c not in kept],
                         *[F.col(c) for c in kept])
    elif isinstance(node, S.Union):
        children = [_positional_carried(build_step(c, inputs, every_row), COLUMN)
                    for c in node.children]
        types = {f.name: f.dataType for c in children for f in c.schema.fields
                 if f.name.startswith(CARRY)}
        extra = list(dict.fromkeys(c for child in children for c in carries(child)))
        out = reduce(DataFrame.union, [
            c.select(*[F.col(n) for n in c.columns if n not in types],
                     *[F.col(n) if n in c.columns else F.lit(None).cast(types[n]).alias(n)
                       for n in extra])
            for c in children])
    else:
        child = build_step(node.child, inputs, every_row)  # type: ignore[attr-defined]
        extra = carries(child)
        if isinstance(node, _MERGES) and not (every_row and isinstance(node, PICKING)):
            out = _unary(node, positional(_uncarried(child)))
            return renamed(out, node.names)  # type: ignore[attr-defined]
        child = _positional_carried(child, COLUMN)
        kept = [F.col(c) for c in extra]
        if isinstance(node, S.Project):
            out = selected(child, [*node.exprs, *extra])
        elif isinstance(node, S.Generate):
            out = child.select(*[pos_name(p) for p in node.keep],
                               F.expr(node.gen).alias(*node.gen_names), *kept)
        elif isinstance(node, S.Window):
            out = child.select(*[F.col(c) for c in child.columns if c not in extra],
                               *[F.expr(e) for e in node.exprs], *kept)
        elif every_row and isinstance(node, PICKING):
            out = child
        else:  # a filter, sort or repartition: the input's columns, in their order
            out = _unary(node, child)
    return renamed(out, [*node.names, *carries(out)])  # type: ignore[attr-defined]


def register_udfs(spark: SparkSession, udfs: Iterable[Sequence[Any]]) -> None:
    """Register a spec's recorded Python functions under their recorded names (once per
    session; the names hash the pickled functions, so a name never changes meaning)."""
    from pyspark.serializers import CPickleSerializer
    from pyspark.sql.udf import _create_udf

    done: set[str] = spark.__dict__.setdefault("_hippo_udfs", set())
    for name, payload, eval_type, deterministic in udfs:
        if name in done:
            continue
        try:
            func, return_type = CPickleSerializer().loads(base64.b64decode(payload))
        except Exception as err:  # a module it was pickled by reference from is missing
            raise HippoError(
                f"the recorded Python function `{name}` cannot be loaded in this process: "
                f"{type(err).__name__}: {err}; a function defined in a module is recorded "
                "by reference, so that module must be importable here") from err
        # The recorded eval type, not one inferred again from the function's type hints
        # (a pickled function may no longer resolve them).
        fn = _create_udf(func, return_type, int(eval_type), name=name,
                         deterministic=bool(deterministic))
        spark.udf.register(name, fn)
        done.add(name)


def _user(df: DataFrame) -> DataFrame:
    return selected(df, [quoted(c) for c in df.columns if not is_hidden(c)])


def pickled(fn: Any) -> str:
    """A function as base64 of its cloudpickle."""
    from pyspark import cloudpickle

    return base64.b64encode(cloudpickle.dumps(fn)).decode()


def unpickled(text: str) -> Any:
    import pickle

    try:
        return pickle.loads(base64.b64decode(text))  # noqa: S301 -- the store's own code
    except Exception as err:  # noqa: BLE001 -- a module it names is missing here, say
        raise HippoError(f"a recorded function could not be loaded: {type(err).__name__}: "
                         f"{err}; a function defined in a module is recorded by reference, "
                         "so that module must be importable here") from err


def declared_rows(child: DataFrame, out: DataFrame, kind: str, keys: Sequence[str],
                  slot: str) -> DataFrame:
    """The rows ``out`` of a declared step over ``child``, with hippo's hidden columns:
    each row joined to its parent by ``keys`` (its id and slots; a row of a one-to-many
    step gets an id of its own), or given its group's key slot."""
    values = [F.col(quoted(c)) for c in out.columns]
    if kind in ("many_to_one", "many_to_many"):
        grouped = out.withColumn(slot, content_hash([quoted(k) for k in keys], "key"))
        return grouped.withColumn(ID, F.col(slot) if kind == "many_to_one"
                                  else derived_id("declared", F.col(slot), *values))
    hidden = [c for c in child.columns if is_hidden(c)]
    parents = child.select(*[F.col(quoted(k)).alias(f"__hippo_k{i}") for i, k in enumerate(keys)],
                           *[F.col(c) for c in hidden])
    cond = reduce(lambda a, b: a & b, [F.col(quoted(k)).eqNullSafe(F.col(f"__hippo_k{i}"))
                                       for i, k in enumerate(keys)])
    joined = out.join(parents, cond).select(*values, *[F.col(c) for c in hidden])
    if kind == "one_to_many":
        joined = joined.withColumn(ID, derived_id("declared", F.col(ID), *values))
    return joined


def ml_class(name: str) -> Any:
    """A pyspark.ml class by its recorded ``module.Class`` name (pyspark.ml's only: a
    store names it, and importing what a store names runs code)."""
    import importlib

    module, _, cls = name.rpartition(".")
    if module != "pyspark.ml" and not module.startswith("pyspark.ml."):
        raise HippoError(f"model class `{name}` is not a pyspark.ml class; hippo loads "
                         "only those")
    return getattr(importlib.import_module(module), cls)


def _transformed(node: S.Transform, child: DataFrame, inputs: list[DataFrame],
                 refit: bool) -> DataFrame:
    if node.fitted and refit:
        training = inputs[1]
        user = [c for c in training.columns if not is_hidden(c)]
        model = ml_class(node.estimator_class).load(node.estimator).fit(
            training.select(*[F.col(quoted(c)) for c in user]))
    else:
        model = ml_class(node.model_class).load(node.model)
    if node.slot:
        child = child.withColumn(node.slot, content_hash([], "key"))
    return model.transform(child)


def build_pairs(node: S.Node, inputs: list[DataFrame]) -> DataFrame:
    """For a step containing a semi join: every (left row, right row) pair it matched.

    The join node is rebuilt as an inner join, so the result has the left side's columns
    then the right side's (both with their hidden columns).
    """
    while not isinstance(node, S.Join):
        if not hasattr(node, "child"):
            raise ValueError("the step has no join to pair rows of")
        if isinstance(node, S.Udfs):  # the join condition may call them
            register_udfs(inputs[0].sparkSession, node.udfs)
        node = node.child  # type: ignore[attr-defined]
    left = build_step(node.left, inputs)
    right = build_step(node.right, inputs)
    return renamed(_joined(node, left, right, "inner"), [*left.columns, *right.columns])


def _unary(node: S.Node, child: DataFrame) -> DataFrame:
    if isinstance(node, S.Project):
        return selected(child, node.exprs)
    if isinstance(node, S.Filter):
        return child.filter(F.expr(node.cond))
    if isinstance(node, S.Aggregate):
        groups = [F.expr(g) for g in node.groups]
        aggs = [F.expr(a) for a in node.aggs]
        grouped = child.groupBy(*groups).agg(*aggs)
        names = [f"__g{i}" for i in range(len(groups))] + [f"__a{i}" for i in range(len(aggs))]
        return selected(renamed(grouped, names), names[len(groups):])
    if isinstance(node, S.Distinct):
        return child.distinct()
    if isinstance(node, S.Dedup):
        return child.dropDuplicates([pos_name(p) for p in node.keys])
    if isinstance(node, S.Generate):
        kept = [pos_name(p) for p in node.keep]
        return child.select(*kept, F.expr(node.gen).alias(*node.gen_names))
    if isinstance(node, S.Sort):
        orders = [_order(*o) for o in node.orders]
        return child.orderBy(*orders) if node.global_ else child.sortWithinPartitions(*orders)
    if isinstance(node, S.Limit):
        return child.limit(node.n)
    if isinstance(node, S.Offset):
        return child.offset(node.n)
    if isinstance(node, S.Repartition):
        return child.repartition(node.n) if node.shuffle else child.coalesce(node.n)
    if isinstance(node, S.RepartitionBy):
        exprs = [F.expr(e) for e in node.exprs]
        return child.repartition(node.n, *exprs) if node.n else child.repartition(*exprs)
    if isinstance(node, S.Window):
        return child.select("*", *[F.expr(e) for e in node.exprs])
    if isinstance(node, S.Pass):
        return child
    raise ValueError(f"unknown spec node `{node.op}`")
