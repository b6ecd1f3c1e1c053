"""Recording a run's steps: what each tracked transformation adds to the run.

A :class:`Recorder` holds the steps of one run in memory while the user's pipeline is
built (metadata, a few per transformation). It reads each step's lineage off the plan
(:mod:`hippo.capture.plan`), carries the lineage state forward, and checks in the
background that the step's spec rebuilds to what the run computed. Tracked DataFrames
call it; :class:`hippo.capture.run.Run` turns its steps into the run's row at the end.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from hippo.capture.kinds import (
    framed_mapping,
    own_mapping,
    source_lineage_type,
    step_lineage_type,
    user_positions,
)
from hippo.capture.plan import StepAnalysis, WindowFrame, analyze_step
from hippo.errors import RunStateError, UnsupportedStepError, first_line
from hippo.recorded.ids import (
    ID,
    SLOT_PREFIX,
    content_hash,
    derived_id,
    is_hidden,
    pos_index,
    positional,
    quoted,
)
from hippo.recorded.pinned import check_readable
from hippo.recorded.rebuild import build_step
from hippo.recorded.spec import Explicit, Input, Node, rendered
from hippo.recorded.state import (
    MADE_BY_ROW,
    Cell,
    FrameSlot,
    KeySlot,
    LineageState,
    MatchSlot,
    Origin,
    SourceSlot,
    started,
    through,
)
from hippo.recorded.steps import SinkInfo, SourceInfo, Step

if TYPE_CHECKING:
    from hippo.capture.tracked import TrackedDataFrame

__all__ = ["Recorder", "code_location"]

log = logging.getLogger(__name__)

_HIPPO_DIR = str(Path(__file__).resolve().parent.parent)


def code_location() -> str:
    """``file:line`` of the user's code that called into hippo.

    Walks the frames themselves: ``inspect.stack()`` reads every frame's source lines,
    35 ms per step under a deep stack such as pytest's.
    """
    frame = sys._getframe(2)
    while frame is not None:
        name = frame.f_code.co_filename
        if not name.startswith(_HIPPO_DIR) and "pyspark" not in name:
            return f"{name}:{frame.f_lineno}"
        frame = frame.f_back
    return "unknown"


def _spec_json(spec: Node | None) -> Any:
    """The spec's JSON form; None for one that cannot be rendered, whose step's replay
    check has failed with the reason (so the run's status already says so)."""
    try:
        return None if spec is None else rendered(spec).to_json()
    except Exception:  # noqa: BLE001 -- reported by the rebuild check of the same spec
        return None


def _check_rebuild(step: str, where: str, spec: Node, inputs: list[DataFrame],
                   expected: str) -> None:
    """Raise UnsupportedStepError unless ``spec`` rebuilds to the schema the run computed."""
    try:
        got = build_step(rendered(spec), inputs).schema.simpleString()
    except Exception as err:  # an expression whose SQL does not parse back, say
        raise UnsupportedStepError(
            f"`{step}` at {where} could not be recorded: {first_line(err)}") from err
    if got != expected:
        raise UnsupportedStepError(f"`{step}` at {where} could not be recorded exactly: its "
                                   f"replay gives {got}, the run {expected}")


# Plan nodes of a step that maps each input row to at most one output row of the same id.
_ROW_BY_ROW = {"Project", "Filter", "Sample", "Sort", "SubqueryAlias", "ResolvedHint",
               "Repartition", "RepartitionByExpression"}


def _made_in_frames(analysis: StepAnalysis, out_cols: list[str],
                    contrib: tuple[frozenset[Cell], ...], state: LineageState,
                    window_slots: dict[WindowFrame, str]) -> tuple[frozenset[Cell], ...]:
    """A window column that reads no column (row_number, ntile, count(*) over a frame)
    is made by its own row and its frame's rows, not by the step's other frames."""
    out = list(contrib)
    for p, u in user_positions(out_cols, is_hidden).items():
        frames = analysis.framed[p] if p < len(analysis.framed) else {}
        if not out[u] and frames:
            out[u] = frozenset({(s, MADE_BY_ROW) for s in state.slots}
                               | {(window_slots[f], MADE_BY_ROW) for f in frames})
    return tuple(out)


def _id_carried(analysis: StepAnalysis, inputs: list[DataFrame], new: DataFrame) -> bool:
    """Whether ``new``'s row id is its input row's, unchanged."""
    if len(inputs) != 1 or ID not in new.columns or ID not in inputs[0].columns:
        return False
    return analysis.copies[new.columns.index(ID)] == (0, inputs[0].columns.index(ID))


def _carried_copies(analysis: StepAnalysis, states: list[LineageState],
                    in_cols: list[list[str]], out_cols: list[str]
                    ) -> tuple[tuple[str, str] | None, ...]:
    """Per output user column, the source column it is an unchanged copy of, if any."""
    out: list[tuple[str, str] | None] = []
    for p, name in enumerate(out_cols):
        if is_hidden(name):
            continue
        ref = analysis.copies[p]
        found = None
        if ref is not None and not is_hidden(in_cols[ref[0]][ref[1]]):
            i, full = ref
            u = sum(1 for c in in_cols[i][:full] if not is_hidden(c))
            found = states[i].copy_at(u)
        out.append(found)
    return tuple(out)


def _carried_keys(analysis: StepAnalysis, states: list[LineageState],
                  in_cols: list[list[str]], out_cols: list[str]
                  ) -> tuple[dict[str, tuple[int, ...]], str | None]:
    """The key slots whose group-key columns a step copies unchanged, at their new
    positions, and the key slot the row id still equals (see ``LineageState.keyed``)."""
    out_user = [p for p, c in enumerate(out_cols) if not is_hidden(c)]
    at: dict[tuple[int, int], int] = {}
    for u, p in enumerate(out_user):
        ref = analysis.copies[p]
        if ref is not None:
            at.setdefault(ref, u)
    keyed: dict[str, tuple[int, ...]] = {}
    for i, state in enumerate(states):
        user_full = [p for p, c in enumerate(in_cols[i]) if not is_hidden(c)]
        for slot, positions in state.keyed.items():
            moved = [at.get((i, user_full[q])) for q in positions]
            if slot in out_cols and None not in moved:
                keyed[slot] = tuple(moved)  # type: ignore[arg-type]
    id_slot = None
    if ID in out_cols:
        ref = analysis.copies[out_cols.index(ID)]
        if ref is not None and in_cols[ref[0]][ref[1]] == ID:
            id_slot = states[ref[0]].id_slot
    return keyed, id_slot if id_slot in keyed else None


class Recorder:
    """The steps of one run being recorded, and the background work they need.

    Metadata work that need not hold the user's pipeline up runs on one background
    thread (Spark accepts jobs from several threads): each step's rebuild check, the
    rendering of its spec to JSON, the saving of its models. :meth:`finish` waits for all
    of it.
    """

    def __init__(self, run_id: str, name: str, strict: bool, root: str = ".") -> None:
        self.run_id = run_id
        self.root = root  # the store's folder (models are saved under it)
        self.models: dict[int, Any] = {}  # id(model) -> FittedModel (hippo.capture.models)
        self.name = name
        self.strict = strict
        self.steps: list[Step] = []
        self.incomplete: str | None = None
        self.open = True
        self._slots = 0
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hippo-run")
        self._checks: list[Future] = []
        self._specs: dict[int, Future] = {}

    @property
    def store_root(self) -> str:
        """The store's folder as an absolute path (or URI): recorded paths under it must
        resolve from any working directory."""
        return self.root if "://" in self.root else os.path.abspath(self.root)

    # -- used by Run and TrackedDataFrame ------------------------------------------------
    def new_slot(self) -> str:
        """A slot column name not used before in this run."""
        self._slots += 1
        return f"{SLOT_PREFIX}{self._slots}"

    def check_open(self) -> None:
        if not self.open:
            raise RunStateError(f"run `{self.run_id}` ({self.name}) has ended; start a new "
                                "one with `store.run(...)`")

    def refuse(self, message: str) -> None:
        """A step whose lineage would not be exact: an error when strict, else the run
        is recorded as ``lineage_incomplete`` and a warning logged."""
        if self.strict:
            raise UnsupportedStepError(message)
        log.warning("run %s: %s; the run is recorded as lineage_incomplete", self.run_id,
                    message)
        self.incomplete = self.incomplete or message

    def later(self, work: Callable[..., Any], *args: Any) -> None:
        """Run ``work(*args)`` on the background thread; :meth:`finish` waits for it and
        reports its failure as the run's (a step that could not be recorded)."""
        self._checks.append(self._pool.submit(work, *args))

    def add(self, step: Step) -> Step:
        self.steps.append(step)
        if step.spec is not None:
            self._specs[step.op_id] = self._pool.submit(_spec_json, step.spec)
        return step

    @property
    def next_op(self) -> int:
        return len(self.steps)

    def source_step(self, info: SourceInfo, columns: list[str]) -> tuple[Step, LineageState]:
        op_id = self.next_op
        state = LineageState(
            slots={info.slot: SourceSlot(info.name, op_id)},
            contrib=tuple(frozenset({(info.slot, c)}) for c in columns),
            copies=tuple((info.slot, c) for c in columns),
        )
        step = Step(op_id, "source", (), (), source_lineage_type(columns), None, state,
                    tuple(columns), True, code_location(), source=info)
        return self.add(step), state

    def sink_step(self, info: SinkInfo, data: TrackedDataFrame) -> Step:
        step = Step(self.next_op, "sink", (data.op_id,), (), source_lineage_type(data.columns),
                    None, data.lineage_state, tuple(data.columns), True, code_location(),
                    sink=info)
        return self.add(step)

    def inline_rows(self, op_id: int, rows: tuple[tuple[Any, ...], ...]) -> None:
        """Keep an explicit sink's rows' lineage in its step (see ``SinkInfo.inline``)."""
        step = self.steps[op_id]
        assert step.sink is not None
        self.steps[op_id] = replace(step, sink=replace(step.sink, inline=rows))

    def record_step(
        self,
        new: DataFrame,
        step: str,
        inputs: list[TrackedDataFrame],
        states: list[LineageState],
        key_sql: list[str] | None = None,
        replay_exact: bool = True,
        match: dict[str, Any] | None = None,
        key_count: int | None = None,
        remake: Callable[[DataFrame], DataFrame] | None = None,
    ) -> tuple[DataFrame, LineageState, int]:
        """Record the step that made ``new`` from ``inputs``: the DataFrame to track (``new``,
        with a derived id where the step needs one), its lineage state and step id.
        ``remake`` applies the same transformation to another DataFrame (a window step is
        made again over its input with a key slot added)."""
        self.check_open()
        in_dfs = [t.frame for t in inputs]
        window_slots: dict[WindowFrame, str] = {}
        try:
            analysis = analyze_step(new, in_dfs)
            if analysis.window_keys is not None:
                new, window_slots = self._with_window_slots(step, analysis, in_dfs[0], remake)
                analysis = analyze_step(new, in_dfs)
                if analysis.tie_broken:  # made again from its spec: ties ordered by row id
                    new = build_step(rendered(analysis.spec), in_dfs)
                    analysis = analyze_step(new, in_dfs)
                missing = [f for f in analysis.frames() if f not in window_slots]
                if missing:
                    raise UnsupportedStepError(
                        f"`{step}`: the window frame `{missing[0].sql or missing[0].kind}` "
                        "changed when the step was made again")
            if "Generate" in analysis.kinds:
                # Rows exploded from one parent share its id; tell them apart by their
                # values (rows equal in every value are one record for lineage).
                values = [quoted(c) for c in new.columns if not is_hidden(c)]
                new = new.withColumn(ID, derived_id("generate", ID, *values))
                analysis = analyze_step(new, in_dfs)
        except UnsupportedStepError:
            raise
        except Exception as err:  # an expression whose SQL does not parse back, say
            raise UnsupportedStepError(
                f"`{step}` at {code_location()} could not be recorded: {first_line(err)}"
            ) from err
        where = code_location()
        materialized = False
        if not analysis.deterministic and set(analysis.kinds) <= _ROW_BY_ROW \
                and _id_carried(analysis, in_dfs, new):
            new, analysis = self._materialized(new, analysis)
            materialized = True
        self.later(_check_rebuild, step, where, analysis.spec, in_dfs,
                   new.schema.simpleString())
        out_cols = new.columns
        in_cols = [t.frame.columns for t in inputs]
        new_slots = [c for c in out_cols if c.startswith(SLOT_PREFIX)
                     and not any(c in s.slots for s in states)
                     and not (match and c == match["slot"])
                     and c not in window_slots.values()]
        # The step's positional column mapping; the state below is it composed with the
        # inputs' states, so queries read the same lineage the step records.
        lineage = step_lineage_type(analysis, in_cols, out_cols, is_hidden, bool(new_slots))
        mapping = lineage.columns
        if window_slots:  # within the row; each frame's rows are added below
            mapping = own_mapping(analysis, in_cols, out_cols, is_hidden)
        exact = all(s.replay_exact for s in states) and replay_exact and (
            analysis.deterministic or materialized)
        op_id = self.next_op
        if new_slots:  # an aggregate or distinct: a key slot replaces the input's slots
            slot = new_slots[0]
            if not all(s.replay_exact for s in states):
                self.refuse(f"`{step}` aggregates rows chosen by an earlier limit, "
                            "dropDuplicates or nondeterministic step; lineage through it "
                            "would not be exact")
            keys = key_sql if key_sql is not None else analysis.group_keys
            origin = KeySlot(op_id, inputs[0].op_id, tuple(keys))
            contrib, influence = started(mapping, slot)
            # The slot is the hash of the first ``key_count`` output columns (the group key).
            keyed = {slot: tuple(range(key_count))} if key_count is not None else {}
            state = LineageState({slot: origin}, contrib, influence, replay_exact=exact,
                                 keyed=keyed, id_slot=slot if keyed else None)
        else:
            slots: dict[str, Origin] = {}
            for s in states:
                slots.update(s.slots)
            contrib, step_influence = through(mapping, states)
            influence = set(step_influence)
            for s in states:
                influence |= s.influence
            if step == "limit":
                influence |= states[0].order
            user_in = [user_positions(cols, is_hidden) for cols in in_cols]
            order: set[Cell] = set()
            for i, p in analysis.order:
                if p in user_in[i]:
                    order |= states[i].contrib[user_in[i][p]]
            if window_slots:  # the rows of its partitions (by key) and frames
                if not all(s.replay_exact for s in states):
                    self.refuse(f"`{step}` computes a window over rows chosen by an earlier "
                                "limit, dropDuplicates or nondeterministic step; lineage "
                                "through it would not be exact")
                keys = tuple(analysis.window_keys or ())
                for frame, slot in window_slots.items():
                    slots[slot] = KeySlot(op_id, inputs[0].op_id, keys) \
                        if frame.kind == "whole" else FrameSlot(
                            op_id, inputs[0].op_id, keys, frame.kind, frame.order,
                            frame.rows, frame.sql, frame.bounds)
                    framed, keys_read = started(framed_mapping(
                        analysis, in_cols, out_cols, is_hidden, frame), slot)
                    contrib = tuple(c | f for c, f in zip(contrib, framed, strict=True))
                    influence |= keys_read
                contrib = _made_in_frames(analysis, out_cols, contrib, states[0], window_slots)
            if match is not None:
                slots[match["slot"]] = MatchSlot(op_id, inputs[0].op_id, inputs[1].op_id,
                                                 dict(match["renames"]))
                influence |= started(mapping, match["slot"], input=1)[1]
            keyed, id_slot = _carried_keys(analysis, states, in_cols, out_cols)
            state = LineageState(slots, contrib, frozenset(influence), frozenset(order),
                                 exact, keyed, id_slot,
                                 _carried_copies(analysis, states, in_cols, out_cols))
            state = state.restricted({c for c in out_cols if c.startswith(SLOT_PREFIX)})
        user_cols = tuple(c for c in out_cols if not is_hidden(c))
        self.add(Step(op_id, step, tuple(t.op_id for t in inputs), tuple(analysis.kinds),
                      lineage, analysis.spec, state, user_cols, analysis.deterministic, where))
        return new, state, op_id

    def _with_window_slots(self, step: str, analysis: StepAnalysis, base: DataFrame,
                           remake: Callable[[DataFrame], DataFrame] | None
                           ) -> tuple[DataFrame, dict[WindowFrame, str]]:
        """The window step made again over ``base`` plus a slot per window frame: for
        frames over whole partitions the hash of each row's partition key, by which a
        query finds the rows of its partition; for the other frames the row's id, whose
        frame a query finds again in its partition."""
        if remake is None:
            raise UnsupportedStepError(f"`{step}` holds a window function; windows are "
                                       "tracked in select, selectExpr and withColumn(s)")
        names = [base.columns[pos_index(k)] for k in analysis.window_keys or ()]
        twice = [n for n in names if base.columns.count(n) > 1]
        if twice:
            raise UnsupportedStepError(
                f"`{step}`: the window's partition column `{twice[0]}` is one of two columns "
                "of that name; rename one first (toDF or withColumnRenamed)")
        slots = {frame: self.new_slot() for frame in analysis.frames()}
        keyed = base.withColumns({
            slot: content_hash([quoted(n) for n in names], "key") if frame.kind == "whole"
            else F.col(ID) for frame, slot in slots.items()})
        return remake(keyed), slots

    def _materialized(self, new: DataFrame, analysis: StepAnalysis
                      ) -> tuple[DataFrame, StepAnalysis]:
        """``new`` written into the store and read back (explicit encoding): its rows and
        values are the ones every later step, query and replay sees."""
        path = f"{self.store_root}/explicit/{self.run_id}/op{self.next_op}"
        names = new.columns
        positional(new).write.format("delta").save(path)
        spec = Explicit(Input(0), tuple(names), path)
        # Version 0, as queries read it (its files as Parquet: no Delta scan planning).
        read = check_readable(new.sparkSession, path, 0, plain=True).toDF(*names)
        return read, replace(analysis, spec=spec)

    # -- end ------------------------------------------------------------------------------
    def finish(self) -> tuple[list[dict[str, Any]], BaseException | None]:
        """Close the recorder: the steps as stored rows, and the first failure of the
        background work (a step whose spec does not rebuild), if any."""
        self.open = False
        failure: BaseException | None = None
        for future in self._checks:
            exc = future.exception()
            if exc is not None and failure is None:
                failure = exc
        rows = [s.to_row(self._specs[s.op_id].result()) if s.op_id in self._specs
                else s.to_row(None) for s in self.steps]
        self._pool.shutdown(wait=True)
        return rows, failure
