"""A run: one execution of a user's pipeline, with its sources, steps and sinks.

Steps are recorded in memory while the pipeline is built (they are metadata, a few per
transformation) and written in one Delta transaction when the run ends, followed by the
``runs`` row that makes the run visible.
"""

from __future__ import annotations

import datetime as _dt
import inspect
import json
import os
import subprocess
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from hippo.capture.ids import ID, SLOT_PREFIX, derived_id, is_hidden
from hippo.capture.kinds import source_lineage_type, step_lineage_type
from hippo.capture.plan import analyze_step, rendered
from hippo.capture.replay import build_step
from hippo.capture.sources import describe, latest_version, read_source
from hippo.capture.state import Cell, LineageState
from hippo.capture.tracked import TrackedDataFrame
from hippo.errors import HippoError, RunStateError, UnsupportedStepError
from hippo.store import tables

if TYPE_CHECKING:
    from hippo.store.store import LineageStore

__all__ = ["Run"]

_HIPPO_DIR = str(Path(__file__).resolve().parent.parent)


def _code_location() -> str:
    for frame in inspect.stack()[2:]:
        if not frame.filename.startswith(_HIPPO_DIR) and "pyspark" not in frame.filename:
            return f"{frame.filename}:{frame.lineno}"
    return "unknown"


def _code_version() -> str | None:
    main = inspect.stack()[-1].filename
    folder = os.path.dirname(os.path.abspath(main)) if os.path.exists(main) else os.getcwd()
    try:
        out = subprocess.run(
            ["git", "-C", folder, "rev-parse", "HEAD"], capture_output=True, text=True,
            timeout=5, check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc).replace(tzinfo=None)


def _spec_json(spec: dict[str, Any]) -> str:
    """The spec as JSON; ``null`` for one that cannot be rendered, whose step's replay
    check has failed with the reason (so the run's status already says so)."""
    try:
        return json.dumps(rendered(spec))
    except Exception:  # noqa: BLE001 -- reported by the replay check of the same spec
        return "null"


def _check_replay(step: str, where: str, spec: dict[str, Any], inputs: list[DataFrame],
                  expected: str) -> None:
    """Raise UnsupportedStepError unless ``spec`` replays to the schema the run computed."""
    try:
        got = build_step(rendered(spec), inputs).schema.simpleString()
    except Exception as err:  # an expression whose SQL does not parse back, say
        raise UnsupportedStepError(
            f"`{step}` at {where} could not be recorded: "
            f"{str(err).strip().splitlines()[0][:300]}") from err
    if got != expected:
        raise UnsupportedStepError(f"`{step}` at {where} could not be recorded exactly: its "
                                   f"replay gives {got}, the run {expected}")


def _carried_copies(analysis: Any, states: list[LineageState], in_cols: list[list[str]],
                    out_cols: list[str]) -> tuple[tuple[str, str] | None, ...]:
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


def _carried_keys(analysis: Any, states: list[LineageState], in_cols: list[list[str]],
                  out_cols: list[str]) -> tuple[dict[str, tuple[int, ...]], str | None]:
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


class Run:
    """One recorded execution; made by :meth:`hippo.LineageStore.run`, used in its block.

    Examples
    --------
    >>> with store.run("delays", params={"min_delay": 15}) as run:  # doctest: +SKIP
    ...     flights = run.source("flights", "data/flights")
    ...     run.sink("late", flights.filter("dep_delay > 15"), "out/late")
    """

    def __init__(self, store: LineageStore, name: str, params: dict[str, Any]) -> None:
        self.store = store
        self.spark = store.spark
        self.name = name
        self.params = params
        self.run_id = uuid.uuid4().hex
        self.started_at = _now()
        self._ops: list[dict[str, Any]] = []
        self._slots = 0
        self._sources: dict[str, int] = {}
        self._sinks: dict[str, int] = {}
        self._versions: dict[str, int] = {}
        self._open = True
        # Metadata work that need not hold the user's pipeline up runs on one background
        # thread (Spark accepts jobs from several threads): replay checks of the steps,
        # and appends of operators rows while the sinks are computed. ``_finish`` waits
        # for all of it before the ``runs`` row makes the run visible.
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hippo-run")
        self._checks: list[Future] = []
        self._appends: list[Future] = []
        self._flushed = 0

    # -- public ------------------------------------------------------------------------
    def source(self, name: str, data: str | DataFrame) -> TrackedDataFrame:
        """Read a source: a Delta table path (pinned to its current version) or a DataFrame
        (snapshotted into the store). Returns a TrackedDataFrame of its rows."""
        self._check_open()
        if name in self._sources:
            raise HippoError(f"source `{name}` is already read in run `{self.run_id}`; "
                             f"sources so far: {', '.join(f'`{s}`' for s in self._sources)}")
        if isinstance(data, TrackedDataFrame):
            raise HippoError(f"source `{name}`: pass a Delta path or a plain DataFrame, "
                             "not a TrackedDataFrame")
        if isinstance(data, str):
            version, ids = describe(self.spark, data)
            info = {"name": name, "path": data, "version": version, "ids": ids,
                    "snapshot": False}
        elif isinstance(data, DataFrame):
            path = tables.snapshot_path(self.store.path, self.run_id, name)
            data.write.format("delta").mode("errorifexists").save(path)
            info = {"name": name, "path": path, "version": 0, "ids": "content",
                    "snapshot": True}
        else:
            raise HippoError(f"source `{name}`: expected a Delta table path or a DataFrame, "
                             f"got {type(data).__name__}")
        info["slot"] = self._new_slot()
        df = read_source(self.spark, info)
        columns = [c for c in df.columns if not is_hidden(c)]
        op_id = len(self._ops)
        origin = {"kind": "source", "source": name, "op": op_id}
        state = LineageState(
            slots={info["slot"]: origin},
            contrib=tuple(frozenset({(info["slot"], c)}) for c in columns),
            copies=tuple((info["slot"], c) for c in columns),
        )
        self._append_op(op_id, "source", [], [], source_lineage_type(columns), {}, state,
                        columns, True, {"source": info})
        self._sources[name] = op_id
        return TrackedDataFrame(self, df, state, op_id)

    def sink(self, name: str, data: TrackedDataFrame, path: str, mode: str = "overwrite") -> None:
        """Write ``data`` as a Delta table at ``path`` and record which rows were written."""
        self._check_open()
        data = self._check_tracked(data, f"sink `{name}`")
        if name in self._sinks:
            raise HippoError(f"sink `{name}` is already written in run `{self.run_id}`")
        if mode not in ("overwrite", "append"):
            raise HippoError(f"sink `{name}`: mode `{mode}` is not supported; use "
                             "`overwrite` or `append`")
        user = data.columns
        if len(set(user)) != len(user):
            dupes = sorted({c for c in user if user.count(c) > 1})
            raise HippoError(f"sink `{name}` has repeated column names "
                             f"{', '.join(f'`{c}`' for c in dupes)}; Delta needs unique names")
        slots = list(data._state.slots)
        state = data._state
        # A row whose slots and id are hashes of group keys it still holds needs nothing
        # stored: queries hash the written row (key encoding). Other rows whose values
        # came through an aggregate may not replay bit for bit (floating sums depend on
        # the order Spark adds them in), so their lineage is stored (explicit); any other
        # sink's rows are found again by replaying it.
        keyed = (mode == "overwrite" and state.id_slot is not None
                 and all(s in state.keyed for s in slots))
        explicit = not keyed and (
            any(state.slots[s]["kind"] == "key" for s in slots) or not state.replay_exact)
        op_id = len(self._ops)
        # The written version is known only after the write; it goes into the runs row.
        detail = {"sink": {"name": name, "path": path, "version": None, "mode": mode,
                           "slots": slots,
                           "rows": "keyed" if keyed else "explicit" if explicit else "replay"}}
        self._append_op(op_id, "sink", [data.op_id], [], source_lineage_type(user), {},
                        data._state, user, True, detail)
        self._sinks[name] = op_id
        self._flush_ops()
        if explicit:
            # Two writes (the sink, and its rows' lineage) from one computation.
            cached = data._df.persist(StorageLevel.MEMORY_AND_DISK)
            try:
                cached.select(*[F.col(f"`{c}`") for c in user]).write.format("delta").mode(
                    mode).save(path)
                version = latest_version(self.spark, path)
                rows = tables.sink_rows_of(cached, user, slots).select(
                    F.lit(self.run_id).alias("run_id"), F.lit(name).alias("sink"), "*")
                tables.appender(rows, tables.SINK_ROWS).option("optimizeWrite", "true").save(
                    tables.table_path(self.store.path, tables.SINK_ROWS))
            finally:
                cached.unpersist()
        else:
            data._df.select(*[F.col(f"`{c}`") for c in user]).write.format("delta").mode(
                mode).save(path)
            version = latest_version(self.spark, path)
        self._versions[name] = version

    def _flush_ops(self) -> None:
        """Append the operators rows recorded so far, in the background."""
        rows = self._ops[self._flushed:]
        self._flushed = len(self._ops)
        if rows:
            self._appends.append(self._pool.submit(self._append_ops, rows))

    def _append_ops(self, rows: list[dict[str, Any]]) -> None:
        """Append operators rows, their specs rendered to SQL text first."""
        tables.append_rows(self.spark, self.store.path, tables.OPERATORS, [
            {**row, "spec": _spec_json(row["spec"])} for row in rows])

    # -- used by TrackedDataFrame ---------------------------------------------------------
    def _new_slot(self) -> str:
        self._slots += 1
        return f"{SLOT_PREFIX}{self._slots}"

    def _check_open(self) -> None:
        if not self._open:
            raise RunStateError(f"run `{self.run_id}` ({self.name}) has ended; start a new "
                                "one with `store.run(...)`")

    def _check_tracked(self, other: Any, step: str) -> TrackedDataFrame:
        if not isinstance(other, TrackedDataFrame):
            raise HippoError(f"{step} needs a TrackedDataFrame from `run.source(...)`, got "
                             f"{type(other).__name__}; read it with `run.source(name, df)`")
        if other._run is not self:
            raise HippoError(f"{step}: the DataFrame belongs to run `{other._run.run_id}`, "
                             f"not to this run `{self.run_id}`")
        return other

    def _record_step(
        self,
        new: DataFrame,
        step: str,
        inputs: list[TrackedDataFrame],
        states: list[LineageState],
        key_sql: list[str] | None = None,
        replay_exact: bool = True,
        match: dict[str, Any] | None = None,
        key_count: int | None = None,
    ) -> TrackedDataFrame:
        self._check_open()
        in_dfs = [t._df for t in inputs]
        try:
            analysis = analyze_step(new, in_dfs)
            if "Generate" in analysis.kinds:
                # Rows exploded from one parent share its id; tell them apart by their
                # values (rows equal in every value are one record for lineage).
                values = [F.col(f"`{c}`") for c in new.columns if not is_hidden(c)]
                new = new.withColumn(ID, derived_id("generate", F.col(ID), *values))
                analysis = analyze_step(new, in_dfs)
        except UnsupportedStepError:
            raise
        except Exception as err:  # an expression whose SQL does not parse back, say
            raise UnsupportedStepError(
                f"`{step}` at {_code_location()} could not be recorded: "
                f"{str(err).strip().splitlines()[0][:300]}") from err
        where = _code_location()
        self._checks.append(self._pool.submit(
            _check_replay, step, where, analysis.spec, in_dfs, new.schema.simpleString()))
        out_cols = new.columns
        in_cols = [t._df.columns for t in inputs]
        user_pos = [[i for i, c in enumerate(cols) if not is_hidden(c)] for cols in in_cols]
        user_index = [{full: u for u, full in enumerate(ups)} for ups in user_pos]

        def cells(refs: set[tuple[int, int]]) -> set[Cell]:
            out: set[Cell] = set()
            for i, p in refs:
                if p in user_index[i]:
                    out |= states[i].contrib[user_index[i][p]]
            return out

        new_slots = [c for c in out_cols if c.startswith(SLOT_PREFIX)
                     and not any(c in s.slots for s in states)
                     and not (match and c == match["slot"])]
        exact = all(s.replay_exact for s in states) and replay_exact and analysis.deterministic
        op_id = len(self._ops)
        key_columns = None
        if new_slots:  # an aggregate or distinct: a key slot replaces the input's slots
            slot = new_slots[0]
            if not all(s.replay_exact for s in states):
                self._refuse(f"`{step}` aggregates rows chosen by an earlier limit, "
                             "dropDuplicates or nondeterministic step; lineage through it "
                             "would not be exact")
            keys = key_sql if key_sql is not None else analysis.group_keys
            origin = {"kind": "key", "op": op_id, "input_op": inputs[0].op_id, "keys": keys}

            def key_cells(refs: set[tuple[int, int]]) -> frozenset[Cell]:
                return frozenset((slot, user_index[0][p]) for i, p in refs
                                 if p in user_index[0])

            contrib = tuple(key_cells(analysis.contributing[p])
                            for p, c in enumerate(out_cols) if not is_hidden(c))
            # The slot is the hash of the first ``key_count`` output columns (the group key).
            keyed = {slot: tuple(range(key_count))} if key_count is not None else {}
            state = LineageState({slot: origin}, contrib, key_cells(analysis.influencing),
                                 replay_exact=exact, keyed=keyed,
                                 id_slot=slot if keyed else None)
            key_columns = [in_cols[0][p] for _, p in sorted(analysis.influencing)
                           if not is_hidden(in_cols[0][p])]
        else:
            slots: dict[str, dict[str, Any]] = {}
            for s in states:
                slots.update(s.slots)
            influence = set(cells(analysis.influencing))
            for s in states:
                influence |= s.influence
            if step == "limit":
                influence |= states[0].order
            contrib = tuple(frozenset(cells(analysis.contributing[p]))
                            for p, c in enumerate(out_cols) if not is_hidden(c))
            order = frozenset(cells(analysis.order))
            if match is not None:
                slots[match["slot"]] = {
                    "kind": "match", "op": op_id, "left_op": inputs[0].op_id,
                    "right_op": inputs[1].op_id, "renames": match["renames"]}
                influence |= {(match["slot"], user_index[1][p]) for i, p in
                              analysis.influencing if i == 1 and p in user_index[1]}
            keyed, id_slot = _carried_keys(analysis, states, in_cols, out_cols)
            state = LineageState(slots, contrib, frozenset(influence), order, exact, keyed,
                                 id_slot, _carried_copies(analysis, states, in_cols, out_cols))
            state = state.restricted({c for c in out_cols if c.startswith(SLOT_PREFIX)})
        lineage = step_lineage_type(analysis, in_cols, out_cols, is_hidden, key_columns)
        user_cols = [c for c in out_cols if not is_hidden(c)]
        self._append_op(op_id, step, [t.op_id for t in inputs], analysis.kinds, lineage,
                        analysis.spec, state, user_cols, analysis.deterministic, {})
        return TrackedDataFrame(self, new, state, op_id)

    def _refuse(self, message: str) -> None:
        if self.store.settings.strict:
            raise UnsupportedStepError(message)
        self._incomplete = message

    def _append_op(self, op_id: int, step: str, inputs: list[int], kinds: list[str],
                   lineage: Any, spec: dict[str, Any], state: LineageState,
                   columns: list[str], deterministic: bool, detail: dict[str, Any]) -> None:
        self._ops.append({
            "run_id": self.run_id, "op_id": op_id, "step": step, "inputs": inputs,
            "kinds": kinds, "lineage": json.dumps(lineage.to_json()),
            "spec": spec, "state": json.dumps(state.to_json()),  # spec: JSON when appended
            "columns": columns, "deterministic": deterministic,
            "code_location": _code_location(), "detail": json.dumps(detail),
        })

    # -- end ------------------------------------------------------------------------------
    def _finish(self, error: BaseException | None) -> None:
        self._open = False
        failure = self._wait_background()
        if error is None and failure is not None:
            if isinstance(failure, UnsupportedStepError) and not self.store.settings.strict:
                self._incomplete = str(failure)
            else:
                error = failure
        status = "failed" if error is not None else "succeeded"
        if error is None and getattr(self, "_incomplete", None):
            status = "lineage_incomplete"
        message = None if error is None else f"{type(error).__name__}: {error}"[:2000]
        if error is None and not self._sinks:
            status, message = "failed", "the run wrote no sink"
        self._append_ops(self._ops[self._flushed:])
        import pyspark

        from hippo import __version__

        tables.append_rows(self.spark, self.store.path, tables.RUNS, [{
            "run_id": self.run_id, "name": self.name,
            "params": json.dumps(self.params, sort_keys=True, default=str),
            "status": status, "started_at": self.started_at, "ended_at": _now(),
            "code_version": _code_version(), "spark_version": pyspark.__version__,
            "hippo_version": __version__, "error": message, "sinks": dict(self._versions),
        }])
        self.store._forget_cache()
        if failure is not None and error is failure:
            raise failure

    def _wait_background(self) -> BaseException | None:
        """Wait for the background work; the first failure (a step that cannot be
        replayed, or an operators append that failed), if any."""
        failure: BaseException | None = None
        for future in [*self._checks, *self._appends]:
            exc = future.exception()
            if exc is not None and failure is None:
                failure = exc  # the run is recorded as failed; queries never read it
        self._pool.shutdown(wait=True)
        return failure
