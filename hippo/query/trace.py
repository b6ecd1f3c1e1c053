"""Trace: the rows a chosen output came through, at every step from sources to sink.

For the sink rows ``where`` chooses, each step of the run gets the rows of its output
that lead to them: what the record looked like after every step of the user's code,
with the step's name, lineage kind and code location.

Only what those rows need is computed: the sources are cut to the rows backward finds
(every row of every group that reaches the chosen outputs), the steps are rebuilt over
those rows (:meth:`~hippo.recorded.run.RecordedRun.frames`), and the walk goes back from
the sink one step at a time, keeping the input rows each kept output row came from. A
row id is a known function of its parents' ids (carried unchanged, or hashed by a join,
union or explode), and an aggregate's row is the hash of its group key, so each step's
parents are found exactly, without storing anything per row.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import reduce

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from hippo.query.backward import backward
from hippo.query.slots import Slots, chosen_ids, cut_sources, query_errors
from hippo.recorded import spec as S
from hippo.recorded.ids import (
    ID,
    content_hash,
    derived_id,
    is_hidden,
    pos_name,
    positional,
    quoted,
)
from hippo.recorded.rebuild import build_pairs, rebuilt_plans
from hippo.recorded.run import RecordedRun
from hippo.recorded.state import FrameSlot, KeySlot, MatchSlot, Origin

__all__ = ["TraceStep", "trace"]


@dataclass(frozen=True)
class TraceStep:
    """One step of a trace: what it is, where the user's code made it, and its rows.

    ``rows`` holds the step's output rows that lead to the chosen sink rows, with the
    step's columns plus ``hippo_row_id`` (the row's id at that step).
    """

    op_id: int
    step: str  # the tracked method: "source", "filter", "join", "groupBy.agg", ..., "sink"
    name: str | None  # the source's or sink's name
    kind: str  # its lineage type: "identity", "one_to_one", "many_to_one", ...
    code_location: str
    inputs: tuple[int, ...]
    columns: tuple[str, ...]
    rows: DataFrame

    def __repr__(self) -> str:
        label = f" `{self.name}`" if self.name else ""
        return f"TraceStep({self.op_id}: {self.step}{label} at {self.code_location})"


def _ids(df: DataFrame) -> DataFrame:
    return df.select(F.col(ID).alias("id"))


def _parents(slots: Slots, frames: dict[int, DataFrame], n: int, kept: DataFrame
             ) -> list[tuple[int, DataFrame]]:
    """Per input of step ``n``, the ids of its rows the ``kept`` output rows came from."""
    run = slots.run
    step = run.steps[n]
    if step.source is not None:
        return []
    if step.spec is None or isinstance(step.spec, S.Fit):  # a sink, or a model's
        return [(step.inputs[0], _ids(kept))]  # training rows: the rows are its input's
    origins = step.state.slots
    framed = [o for o in origins.values() if isinstance(o, FrameSlot) and o.op == n]
    if framed:  # an ordered window: each kept row, and the rows of its frames
        frame_ids = [slots.frame_rows(o, own=_ids(kept)).select(F.col(ID).alias("id"))
                     for o in framed]
        out = [(step.inputs[0], ids) for ids in [_ids(kept), *frame_ids]]
        key = next((s for s, o in origins.items() if isinstance(o, KeySlot) and o.op == n),
                   None)
        if key is not None:  # and the rows of its partition
            out += _parents_by_key(run, frames, origins[key], key, kept)
        return out
    key = next((s for s, o in origins.items() if isinstance(o, KeySlot) and o.op == n), None)
    if key is not None:  # an aggregate or distinct: the rows of the kept groups
        return _parents_by_key(run, frames, origins[key], key, kept)
    nodes = S.walk(step.spec)
    if isinstance(step.spec, S.Declared):  # the parent rows of the kept rows' keys
        keys = [quoted(k) for k in step.spec.keys]
        want = kept.select(content_hash(keys, "key").alias("k")).distinct()
        parent = frames[step.inputs[0]].select(F.col(ID).alias("id"),
                                               content_hash(keys, "key").alias("k"))
        return [(step.inputs[0], parent.join(want, "k", "left_semi").select("id"))]
    if isinstance(step.spec, S.Transform) and step.spec.fitted:  # and the model's rows
        return [(step.inputs[0], _ids(kept)), (step.inputs[1], _ids(frames[step.inputs[1]]))]
    join = next((x for x in nodes if isinstance(x, S.Join)), None)
    if join is not None:
        left, right = step.inputs
        if join.how in ("left_semi", "left_anti"):
            out = [(left, _ids(kept))]
            match = next((s for s, o in origins.items()
                          if isinstance(o, MatchSlot) and o.op == n), None)
            if match is not None:  # the right rows each kept left row matched
                pairs = build_pairs(step.spec, [frames[i] for i in step.inputs])
                matched = pairs.join(_ids(kept).withColumnRenamed("id", "__hippo_l"),
                                     "__hippo_l", "left_semi")
                out.append((right, matched.select(F.col("__hippo_r").alias("id"))))
            return out
        # Each output row's id hashes the ids of its pair; an unmatched row of an outer
        # join pairs with null. The join is redone over the (cut) inputs to pair them.
        pairs = build_pairs(step.spec, [frames[i] for i in step.inputs]).select(
            F.col("__hippo_l").alias("l"), F.col("__hippo_r").alias("r"))
        if join.how not in ("inner", "cross"):
            none = F.lit(None).cast("long")
            pairs = pairs.union(frames[left].select(F.col(ID).alias("l"), none.alias("r"))
                                ).union(frames[right].select(none.alias("l"), F.col(ID).alias("r")))
        hit = pairs.withColumn("id", derived_id("join", F.col("l"), F.col("r"))).join(
            _ids(kept).distinct(), "id", "left_semi")
        return [(left, hit.select(F.col("l").alias("id")).where("id IS NOT NULL")),
                (right, hit.select(F.col("r").alias("id")).where("id IS NOT NULL"))]
    if any(isinstance(x, S.Union) for x in nodes):
        return [(i, frames[i].select(F.col(ID).alias("p"), derived_id(
                    f"union{side}", F.col(ID)).alias("id"))
                 .join(_ids(kept), "id", "left_semi").select(F.col("p").alias("id")))
                for side, i in enumerate(step.inputs)]
    if "Generate" in step.kinds:  # an exploded row's id hashes its parent's and its values
        # Its parent holds the same slots; among those, the one whose id hashes right.
        same = [c for c in run.steps[step.inputs[0]].state.slots]
        parent = frames[step.inputs[0]].select(
            F.col(ID).alias("__hippo_p"), *[F.col(c).alias(f"__hippo_p{c}") for c in same])
        values = [F.col(quoted(c)) for c in kept.columns if not is_hidden(c)]
        cond = reduce(lambda a, b: a & b,
                      [F.col(c).eqNullSafe(F.col(f"__hippo_p{c}")) for c in same])
        hit = kept.join(parent, cond).filter(
            F.col(ID) == derived_id("generate", F.col("__hippo_p"), *values))
        return [(step.inputs[0], hit.select(F.col("__hippo_p").alias("id")))]
    return [(step.inputs[0], _ids(kept))]  # one row in, one row out: the id is carried


def _parents_by_key(run: RecordedRun, frames: dict[int, DataFrame], origin: Origin,
                    key: str, kept: DataFrame) -> list[tuple[int, DataFrame]]:
    """The rows of the groups (or window partitions) of key slot ``key`` the kept rows
    hold."""
    assert isinstance(origin, KeySlot)
    rows = frames[origin.input_op]
    hashed = positional(rows).select(
        F.col(pos_name(rows.columns.index(ID))).alias("id"),
        run.key_hash(origin).alias("k"))
    groups = kept.select(F.col(key).alias("k")).distinct()
    return [(origin.input_op, hashed.join(groups, "k", "left_semi").select("id"))]


def trace(slots: Slots, sink_name: str, where: str | Column) -> list[TraceStep]:
    """The steps from sources to sink ``sink_name`` with the rows that lead to the sink
    rows ``where`` chooses."""
    run = slots.run
    sink = run.sink(sink_name)
    with query_errors(run, where, f"sink `{sink_name}`", list(sink.columns)), \
            rebuilt_plans(slots.spark):
        lineage = backward(slots, sink_name, where, None, False)
        frames = run.frames(sink.inputs[0], cut_sources(run, lineage))
        frames[sink.op_id] = frames[sink.inputs[0]]
        need: dict[int, list[DataFrame]] = {sink.op_id: [chosen_ids(slots, sink, where)]}
        kept: dict[int, DataFrame] = {}
        order = run.upstream(sink.op_id)
        for n in reversed(order):
            if n not in need:
                continue
            ids = reduce(DataFrame.union, need[n]).distinct().withColumnRenamed("id", ID)
            rows = frames[n].join(ids, ID, "left_semi").select(
                *[F.col(quoted(c)) for c in frames[n].columns])
            kept[n] = rows.localCheckpoint(eager=True)
            for i, parent_ids in _parents(slots, frames, n, kept[n]):
                need.setdefault(i, []).append(parent_ids)
    out = []
    for n in order:
        if n not in kept:
            continue
        step = run.steps[n]
        user = [c for c in kept[n].columns if not is_hidden(c)]
        rows = kept[n].select(*[F.col(quoted(c)) for c in user], F.col(ID).alias("hippo_row_id"))
        # kept[n] is checkpointed: this plan is shallow whatever the session's settings.
        name = step.source.name if step.source else step.sink.name if step.sink else None
        out.append(TraceStep(n, step.step, name, step.lineage.kind, step.code_location,
                             step.inputs, step.columns, rows))
    return out
