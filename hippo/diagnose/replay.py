"""Computation replay: a recorded run's sink rows recomputed from its pinned inputs.

What is replayed is the run as recorded (each step's spec over the pinned source
versions), never today's pipeline code, so a run recorded by an older version of the
code replays as it ran. With ``where``, only the chosen output rows are recomputed, from
only their backward lineage. When they are few (at most 1,000) and hold group keys or
copies of source columns, the steps are rebuilt under ``IN`` filters on those values,
which Spark pushes as far down as each can go (below an aggregate on its keys, into a
join's side that holds the column, into the source scans), and the rows whose ids are
the chosen ones are kept: a read of the chosen rows (and of an explicit sink's stored
ids), then one of the sources, no lineage looked up first (one group of the
10-million-row bench: 0.56-0.76 s instead of 1.7 s; every source file holds rows of
every group there). Otherwise the sources are cut to the rows backward finds (every row
of every group that reaches the output, so each recomputed row sees all its inputs),
the steps rebuilt over those rows, and the rows whose ids are the chosen ones kept
(rows of partial groups the cut leaves over have other ids).

A step that picks rows in no fixed order (``limit``, ``dropDuplicates``)
would not pick the same rows again, so a sink downstream of one is replayed from the
lineage the run recorded (its explicit sink rows): the sources are cut to the rows that
lineage holds, the picking steps pass every row on, and each recorded output row is kept
as many times as the run wrote it. A step with nondeterministic expressions (``rand``,
``uuid``) would compute other values; replay refuses a sink downstream of one with
:class:`~hippo.errors.ReplayError` naming the step.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from hippo.errors import ReplayError
from hippo.query.backward import backward, chosen_values, copies_cond, pushable_positions
from hippo.query.pushdown import few, filtered, isin
from hippo.query.slots import Slots, chosen_ids, cut_sources, query_errors
from hippo.query.where import checked_filter
from hippo.recorded import spec as S
from hippo.recorded.ids import ID, is_hidden, quoted
from hippo.recorded.rebuild import rebuilt_plans
from hippo.recorded.run import RecordedRun
from hippo.recorded.sink_rows import ROW_HASH, row_hash
from hippo.recorded.steps import Step

__all__ = ["replay", "check_replayable"]

# Hidden columns while matching replayed rows to the written ones.
_ID, _TIMES, _NTH = "__hippo_written_id", "__hippo_times", "__hippo_nth"


def check_replayable(run: RecordedRun, sink: Step) -> None:
    """Raise ReplayError if the sink depends on a step with nondeterministic expressions."""
    for n in run.upstream(sink.op_id):
        step = run.steps[n]
        if not step.deterministic and not isinstance(step.spec, S.Explicit):
            raise ReplayError(
                f"sink `{sink.sink.name}` of run `{run.run_id}` cannot be replayed exactly: "
                f"it depends on `{step.step}` at {step.code_location}, whose expressions are "
                "nondeterministic (such as rand or uuid), so a recomputation would compute "
                "other values")


def _user(frame: DataFrame, sink: Step) -> DataFrame:
    cols = [c for c in frame.columns if not is_hidden(c)]
    return frame.select(*[F.col(quoted(c)) for c in cols]).toDF(*sink.columns)


def replay(slots: Slots, sinks: list[str], where: str | Column | None) -> dict[str, DataFrame]:
    """Sink name -> its rows recomputed (``where``: only the rows it chooses)."""
    run = slots.run
    with rebuilt_plans(slots.spark):
        return _replay(slots, run, sinks, where)


def _replay(slots: Slots, run: RecordedRun, sinks: list[str],
            where: str | Column | None) -> dict[str, DataFrame]:
    out: dict[str, DataFrame] = {}
    for name in sinks:
        sink = run.sink(name)
        check_replayable(run, sink)
        picked = not sink.state.replay_exact  # downstream of a limit or dropDuplicates
        chosen = "true" if where is None else where
        # A pinned file vacuumed meanwhile is a VersionUnavailableError on both paths.
        with query_errors(run, chosen, f"sink `{name}`", list(sink.columns)):
            if where is None and not picked:
                out[name] = _user(run.frame(sink.inputs[0]), sink).localCheckpoint(eager=True)
                continue
            kept = None if picked else _pushed(slots, run, sink, chosen)
            if kept is not None:
                out[name] = _user(kept, sink).localCheckpoint(eager=True)
                continue
            lineage = backward(slots, name, chosen, None, False)
            frame = run.frames(sink.inputs[0], cut_sources(run, lineage),
                               every_row=picked)[sink.inputs[0]]
            ids = chosen_ids(slots, sink, chosen)
            if picked:
                kept = _as_often_as_written(frame, slots.sink_rows(sink), ids)
            else:
                kept = frame.join(ids.withColumnRenamed("id", ID), ID, "left_semi")
            out[name] = _user(kept, sink).localCheckpoint(eager=True)
    return out


def _pushed(slots: Slots, run: RecordedRun, sink: Step, where: str | Column
            ) -> DataFrame | None:
    """The chosen rows recomputed from the sink's steps rebuilt under ``IN`` filters on
    the values they hold in group keys and copies of source columns (Spark pushes each
    filter as far down as it can go: below an aggregate on its keys, into a join's side
    that holds the column, into the source scans), without looking their lineage up
    first; then the rows whose ids are the chosen ones are kept. None when this cannot
    be done: no such column, more than 1,000 chosen rows (or ids of an explicit sink),
    or every value list holds NaN."""
    written = slots.written(sink)
    user = [c for c in written.columns if c != ROW_HASH]
    chosen = checked_filter(written, where, f"sink `{sink.sink.name}`", user)
    info, state = sink.sink, sink.state
    if not pushable_positions(state, chosen, user):  # nothing to filter on: no read
        return None
    keyed = info.rows == "keyed"
    found, seen = chosen_values(state, chosen, user,
                                slots.key_hash(sink, written) if keyed else None)
    cond = None if seen is None else copies_cond(state, seen, list(sink.columns), keys=True)
    if cond is None:
        return None
    frame = filtered(run.frame(sink.inputs[0]), cond)
    if keyed:  # found: the chosen rows' ids (their group keys' hashes)
        return frame.filter(isin(F.col(ID), found))
    if info.rows == "replay":  # a replayed row's id is the written row its hash matches
        return frame.filter(isin(row_hash(list(sink.columns)), found))
    ids = few(slots.sink_rows(sink).filter(isin(F.col("row_hash"), found))
              .select("hippo_row_id").distinct())
    return None if ids is None else frame.filter(isin(F.col(ID), [r[0] for r in ids]))


def _as_often_as_written(frame: DataFrame, written: DataFrame, ids: DataFrame) -> DataFrame:
    """The rows of ``frame`` with a chosen id, each id kept as many times as the run wrote
    it (rows equal in every value share an id, and a limit may have kept some of them)."""
    times = (written.join(ids, written.hippo_row_id == ids.id, "left_semi")
             .groupBy(F.col("hippo_row_id").alias(_ID)).agg(F.count(F.lit(1)).alias(_TIMES)))
    nth = F.row_number().over(Window.partitionBy(ID).orderBy(ID))
    return (frame.join(times, frame[ID] == times[_ID]).withColumn(_NTH, nth)
            .filter(F.col(_NTH) <= F.col(_TIMES)).drop(_ID, _TIMES, _NTH))
