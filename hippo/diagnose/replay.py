"""Computation replay: a recorded run's sink rows recomputed from its pinned inputs.

What is replayed is the run as recorded (each step's spec over the pinned source
versions), never today's pipeline code, so a run recorded by an older version of the
code replays as it ran. With ``where``, only the chosen output rows are recomputed, from
only their backward lineage: the sources are cut to the rows backward finds (every row
of every group that reaches the output, so each recomputed row sees all its inputs),
the steps rebuilt over those rows, and the rows whose ids are the chosen ones kept
(rows of partial groups the cut leaves over have other ids).

A step that chose rows nondeterministically (``limit``, ``dropDuplicates``, a
nondeterministic expression) would not choose the same rows again; replay refuses a
sink downstream of one with :class:`~hippo.errors.ReplayError` naming the step.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from hippo.errors import ReplayError
from hippo.query.backward import backward
from hippo.query.slots import Slots, chosen_ids, cut_sources, query_errors
from hippo.recorded.ids import ID, is_hidden, quoted
from hippo.recorded.rebuild import rebuilt_plans
from hippo.recorded.run import RecordedRun
from hippo.recorded.steps import Step

__all__ = ["replay", "check_replayable"]


def check_replayable(run: RecordedRun, sink: Step) -> None:
    """Raise ReplayError unless every step the sink depends on recomputes exactly."""
    if sink.state.replay_exact:
        return
    for n in run.upstream(sink.op_id):
        step = run.steps[n]
        if not step.state.replay_exact and all(
                run.steps[i].state.replay_exact for i in step.inputs):
            why = ("its expressions are nondeterministic" if not step.deterministic
                   else "it picks rows in an order the run did not fix")
            raise ReplayError(
                f"sink `{sink.sink.name}` of run `{run.run_id}` cannot be replayed exactly: "
                f"it depends on `{step.step}` at {step.code_location}, and {why}, so a "
                "recomputation would choose other rows")
    raise ReplayError(f"sink `{sink.sink.name}` of run `{run.run_id}` cannot be replayed "
                      "exactly")


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
        # A pinned file vacuumed meanwhile is a VersionUnavailableError on both paths.
        with query_errors(run, "" if where is None else where, f"sink `{name}`",
                          list(sink.columns)):
            if where is None:
                out[name] = _user(run.frame(sink.inputs[0]), sink).localCheckpoint(eager=True)
                continue
            lineage = backward(slots, name, where, None, False)
            frame = run.frames(sink.inputs[0], cut_sources(run, lineage))[sink.inputs[0]]
            ids = chosen_ids(slots, sink, where).withColumnRenamed("id", ID)
            out[name] = _user(frame.join(ids, ID, "left_semi"), sink).localCheckpoint(
                eager=True)
    return out
