"""Repair by subtraction: a removal's effect on an aggregate sink, from the removed rows alone.

``count`` and sums of exact types (integers, decimals) are invertible: a group's value
after a removal is its value before less what the removed rows contributed. When every
step from the source to the aggregate is *linear* (each output row is made by one row of
the source, and the other inputs do not change: filters, projections, explode, unions,
joins with an unchanged side), the removed rows' contributions are the aggregate computed
over the pipeline rebuilt on the removed rows alone. So a sink written straight from such
an aggregate is repaired without lineage queries and without rebuilding any group: what
is read is the removed rows (the source filtered by the removal's ``where``), the
unchanged inputs the path joins them with, and the sink:

    new value = written value - the removed rows' aggregate, per group key hash;

a group whose row count reaches 0 is deleted. Doubles (not associative: a subtraction
does not give the sum a recompute gives), ``min``/``max``, ``avg`` and distinct
aggregates are not invertible; those sinks take the lineage-based repair.

Integer sums: without ANSI mode both sides wrap alike; with it (Spark's default) a sum
of the removed rows alone that overflows a long raises, where a recompute may not.
Decimal sums are taken only while Spark's sum type and the subtraction's stay exact
(input precision up to 27; wider ones are capped at 38 digits and rounded or overflow).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from typing import Any

import networkx as nx
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from hippo.recorded import spec as S
from hippo.recorded.ids import KEY, content_hash, positional, quoted
from hippo.recorded.rebuild import build_step
from hippo.recorded.run import RecordedRun
from hippo.recorded.sink_rows import ROW_HASH
from hippo.recorded.state import KeySlot
from hippo.recorded.steps import Step

__all__ = ["Inversion", "invertible", "subtracted", "NOT_GROUP_BY"]

NOT_GROUP_BY = "the sink is not written straight from a group-by"
_OLD = "__hippo_old_hash"  # not names a user column can take
_KEPT = "__hippo_kept"

_EXACT = ("byte", "short", "integer", "long")
# A sum of decimal(p, s) is decimal(p + 10, s), a subtraction of two adds one digit: up
# to 38 digits, both are exact.
_DECIMAL_DIGITS = 27
# Join types whose output rows each come from one row of this side (the other unchanged).
_LINEAR_SIDE = {"inner": ("left", "right"), "cross": ("left", "right"),
                "left": ("left",), "left_outer": ("left",), "left_semi": ("left",),
                "left_anti": ("left",), "right": ("right",), "right_outer": ("right",)}
_LINEAR_NODES = (S.Input, S.Project, S.Filter, S.Generate, S.Sort, S.Union, S.Repartition,
                 S.RepartitionBy, S.Pass, S.Join, S.Udfs)


@dataclass(frozen=True)
class Inversion:
    """How to repair one sink by subtraction."""

    sink: Step
    origin: KeySlot  # the aggregate's key slot: its input step and group keys
    aggs: tuple[str, ...]  # the aggregate's output expressions (SQL, positional names)
    kinds: tuple[str, ...]  # per output column: "keep", "count" or "sum"
    rows: int  # the position of a count of every row: 0 deletes the group
    counts: dict[int, int]  # a nullable sum's position -> the position counting its values


def invertible(run: RecordedRun, source_op: int, sink: Step) -> Inversion | str:
    """The inversion repairing ``sink`` after removing rows of ``source_op``, or why
    there is none (a sentence)."""
    info = sink.sink
    state = sink.state
    origin = state.slots.get(state.id_slot) if state.id_slot else None
    if info is None or info.rows != "keyed" or not isinstance(origin, KeySlot):
        return NOT_GROUP_BY
    agg_step = run.steps[origin.op]
    if sink.inputs != (origin.op,) or agg_step.spec is None:
        return NOT_GROUP_BY
    if not origin.keys:  # it writes its one row even when no input row is left
        return f"`{agg_step.step}` at {agg_step.code_location} is an aggregate without keys"
    if not agg_step.deterministic or not agg_step.state.replay_exact:
        return f"`{agg_step.step}` at {agg_step.code_location} is not deterministic"
    node = _aggregate_of(agg_step.spec, len(sink.columns))
    if node is None:
        return (f"`{agg_step.step}` at {agg_step.code_location} is not a group-by alone "
                "over its input")
    why = _linear_path(run, source_op, origin.input_op)
    if why is not None:
        return why
    kinds, rows, counts, why = _classify(run, origin, node)
    if why is not None:
        return f"`{agg_step.step}` at {agg_step.code_location} {why}"
    return Inversion(sink, origin, node.aggs, kinds, rows, counts)


def _aggregate_of(spec: S.Node, n: int) -> S.Aggregate | None:
    """The spec's Aggregate over its input, if the step is that aggregate with its first
    ``n`` output columns passed through projections unchanged."""
    node = spec
    while isinstance(node, S.Project):
        bare = all(re.fullmatch(rf"__c{i} AS .+", str(e)) for i, e in enumerate(node.exprs[:n]))
        if not bare:
            return None
        node = node.child
    if not isinstance(node, S.Aggregate) or not isinstance(node.child, S.Input):
        return None
    return node if len(node.aggs) == n else None


def _linear_path(run: RecordedRun, source_op: int, input_op: int) -> str | None:
    """Why the rows reaching ``input_op`` from ``source_op`` are not each made by one
    source row (or None when they are)."""
    reached = nx.descendants(run.graph, source_op) | {source_op}
    for n in run.upstream(input_op):
        step = run.steps[n]
        if n not in reached or n == source_op:
            continue
        where = f"`{step.step}` at {step.code_location}"
        if step.spec is None:
            continue
        if not step.state.replay_exact or not step.deterministic:
            return f"{where} is not deterministic"
        for node in S.walk(step.spec):
            if not isinstance(node, _LINEAR_NODES):
                return f"{where} ({node.op}) makes rows from several input rows"
        fed = [i for i, inp in enumerate(step.inputs) if inp in reached]
        for node in S.walk(step.spec):
            if not isinstance(node, S.Join):
                continue
            sides = {"left": _feeds(node.left, fed), "right": _feeds(node.right, fed)}
            hit = [s for s, on in sides.items() if on]
            if len(hit) > 1 or (hit and hit[0] not in _LINEAR_SIDE.get(node.how, ())):
                return (f"{where} is a {node.how.replace('_', ' ')} join the removal reaches "
                        "on " + (" and ".join(hit)) + " side(s)")
    return None


def _feeds(node: S.Node, fed: list[int]) -> bool:
    return any(isinstance(n, S.Input) and n.input in fed for n in S.walk(node))


def _classify(run: RecordedRun, origin: KeySlot, node: S.Aggregate
              ) -> tuple[tuple[str, ...], int, dict[int, int], str | None]:
    """Per output column of the aggregate: kept, a count, or an exact sum; from the
    analysed plan of the aggregate rebuilt over its input (a few JVM calls per column)."""
    pos = positional(run.frame(origin.input_op))
    grouped = pos.groupBy(*[F.expr(g) for g in node.groups]).agg(*[F.expr(a) for a in node.aggs])
    plan = grouped._jdf.queryExecution().analyzed()
    exprs = _seq(plan.aggregateExpressions())[len(node.groups):]
    kinds: list[str] = []
    rows = -1
    count_of: dict[int, Any] = {}  # position -> the counted expression (plain counts)
    sums: dict[int, Any] = {}
    for i, e in enumerate(exprs):
        classes = [str(n["class"]).rsplit(".", 1)[-1] for n in _tree(e)]
        if "AggregateExpression" not in classes:
            kinds.append("keep")
            continue
        agg = e.child() if classes[0] == "Alias" else None
        if agg is None or classes[1] != "AggregateExpression" or agg.isDistinct():
            return (), -1, {}, f"computes `{node.aggs[i]}`, which a subtraction cannot undo"
        fn = agg.aggregateFunction()
        name = classes[2]
        filtered = agg.filter().isDefined()
        if name == "Sum" and filtered:
            return (), -1, {}, (f"computes `{node.aggs[i]}`, a sum with a FILTER, which a "
                                "subtraction cannot tell is left with no value")
        if name == "Count":
            kinds.append("count")
            children = _seq(fn.children())
            if not filtered and all(not c.nullable() for c in children):
                rows = i if rows < 0 else rows
            if not filtered and len(children) == 1:
                count_of[i] = children[0]
        elif name == "Sum" and _exact(fn.child().dataType()):
            kinds.append("sum")
            if fn.child().nullable():
                sums[i] = fn.child()
        else:
            return (), -1, {}, (f"computes `{node.aggs[i]}`: only counts and sums of integers "
                                f"or of decimals up to {_DECIMAL_DIGITS} digits are undone by "
                                "a subtraction")
    if rows < 0:
        return (), -1, {}, "has no count of its rows, so a group that loses them all is not seen"
    counts: dict[int, int] = {}
    for i, child in sums.items():
        match = [j for j, c in count_of.items() if c.semanticEquals(child)]
        if not match:
            return (), -1, {}, (f"sums a column that may be null (`{node.aggs[i]}`) and does "
                                "not count its values, so a sum that loses them all is not seen")
        counts[i] = match[0]
    return tuple(kinds), rows, counts, None


def _exact(dtype: Any) -> bool:
    """Whether a sum of this type (a JVM DataType) and a subtraction from it are exact."""
    kind = dtype.typeName().split("(")[0]
    if kind == "decimal":
        return int(dtype.precision()) <= _DECIMAL_DIGITS
    return kind in _EXACT


def _seq(seq: Any) -> list[Any]:
    it = seq.iterator()
    out = []
    while it.hasNext():
        out.append(it.next())
    return out


def _tree(expr: Any) -> list[dict[str, Any]]:
    return json.loads(expr.toJSON())


def _removed_through(run: RecordedRun, source_op: int, removed: DataFrame,
                     op_id: int) -> DataFrame:
    """The rows the removed source rows make at step ``op_id``: the steps rebuilt over
    the removed rows, every other input as the run read it, except that a union's
    branches the removal does not reach add nothing."""
    reached = nx.descendants(run.graph, source_op) | {source_op}
    built: dict[int, DataFrame] = {}
    for n in run.upstream(op_id):
        step = run.steps[n]
        if n == source_op:
            built[n] = removed
        elif n not in reached:
            built[n] = run.frame(n)
        elif step.spec is None:
            built[n] = built[step.inputs[0]]
        else:
            inputs = [built[i] for i in step.inputs]
            fed = [i for i, inp in enumerate(step.inputs) if inp in reached]
            built[n] = build_step(_unfed_unions_empty(step.spec, fed, inputs), inputs)
    return built[op_id]


def _unfed_unions_empty(node: S.Node, fed: list[int], inputs: list[DataFrame]) -> S.Node:
    if isinstance(node, S.Union):
        return replace(node, children=tuple(
            _unfed_unions_empty(c, fed, inputs) if _feeds(c, fed) else S.Filter(
                c, tuple(inputs[c.input].columns) if isinstance(c, S.Input) else c.names,
                "false")
            for c in node.children))
    changes = {name: _unfed_unions_empty(getattr(node, name), fed, inputs)
               for name in node._CHILDREN if isinstance(getattr(node, name), S.Node)}
    return replace(node, **changes) if changes else node


def subtracted(run: RecordedRun, inv: Inversion, source_op: int, removed: DataFrame,
               written: DataFrame) -> DataFrame:
    """The change of every group the removed rows reach, one row per group:
    ``hippo_row_id``, ``old_hash``, ``old_n`` (1), ``new_n`` (1, or null for a group left
    with no row), ``new_hash``, ``change`` (``changed``, ``deleted`` or ``unchanged``),
    and the sink's values before and after as the structs ``before`` and ``after``."""
    origin = inv.origin
    pos = positional(_removed_through(run, source_op, removed, origin.input_op))
    names = [f"__hippo_d{i}" for i in range(len(inv.aggs))]
    linear = [i for i, k in enumerate(inv.kinds) if k != "keep"]
    delta = pos.groupBy(run.key_hash(origin).alias(KEY)).agg(
        *[F.expr(inv.aggs[i]).alias(names[i]) for i in linear])
    cols = list(inv.sink.columns)
    state = inv.sink.state
    rid = content_hash([quoted(cols[p]) for p in state.keyed[state.id_slot]], "key")
    hit = written.select(rid.alias("hippo_row_id"), F.col(ROW_HASH).alias(_OLD),
                         *[F.col(quoted(c)) for c in cols]).join(
        delta, F.col("hippo_row_id") == F.col(KEY))
    types = dict(written.dtypes)
    after: list[Column] = []
    for i, (c, kind) in enumerate(zip(cols, inv.kinds, strict=True)):
        old = F.col(quoted(c))
        if kind == "keep":
            after.append(old.alias(c))
            continue
        value = old - F.coalesce(F.col(names[i]), F.lit(0))
        if i in inv.counts:  # a nullable sum: null once no value is left to sum
            left = F.col(quoted(cols[inv.counts[i]])) - F.coalesce(
                F.col(names[inv.counts[i]]), F.lit(0))
            value = F.when(left > 0, value)
        after.append(value.cast(types[c]).alias(c))
    rows_left = F.col(quoted(cols[inv.rows])) - F.coalesce(F.col(names[inv.rows]), F.lit(0))
    # The user's columns only inside structs: no name of theirs meets one of these.
    vals = hit.select("hippo_row_id", F.col(_OLD).alias("old_hash"),
                      F.struct(*[F.col(quoted(c)) for c in cols]).alias("before"),
                      F.struct(*after).alias("after"), (rows_left > 0).alias(_KEPT))
    new_hash = content_hash([f"after.{quoted(c)}" for c in cols], "row")
    kept = F.col(_KEPT)
    return vals.select(
        "hippo_row_id", "old_hash", F.lit(1).cast("long").alias("old_n"),
        F.when(kept, F.lit(1).cast("long")).alias("new_n"),
        F.when(kept, new_hash).alias("new_hash"),
        F.when(~kept, "deleted").when(new_hash != F.col("old_hash"), "changed")
        .otherwise("unchanged").alias("change"),
        "before", F.when(kept, F.col("after")).alias("after"))
