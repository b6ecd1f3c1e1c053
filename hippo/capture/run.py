"""A run: one execution of a user's pipeline, with its sources, steps and sinks.

Steps are recorded in memory while the pipeline is built (:mod:`hippo.capture.recorder`)
and the run's metadata lands in one Delta commit when the run ends: its row in the
store's ``runs`` table, steps included. Until then nothing of the run is visible.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import re
import subprocess
import sys
import uuid
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from hippo.capture.recorder import Recorder
from hippo.capture.tracked import TrackedDataFrame, check_tracked
from hippo.errors import HippoError, UnsupportedStepError, listing
from hippo.py4j_lists import selected
from hippo.recorded.ids import is_hidden, quoted
from hippo.recorded.pinned import (
    check_readable,
    describe,
    latest_version,
    read_source,
    reserved_columns,
)
from hippo.recorded.sink_rows import sink_rows_of
from hippo.recorded.spec import FORMAT
from hippo.recorded.steps import INLINE_ROWS, SinkInfo, SourceInfo, pack_steps
from hippo.store import tables
from hippo.store.commits import commit_version, committed

__all__ = ["Run", "finish"]

log = logging.getLogger(__name__)

# Source and sink names become folder names (snapshots) and SQL-free labels.
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


def _outermost_file() -> str:
    """The file of the outermost Python frame (the job's script), found by walking the
    frames: ``inspect.stack()`` would read every frame's source lines."""
    frame = sys._getframe()
    while frame.f_back is not None:
        frame = frame.f_back
    return frame.f_code.co_filename


def _code_version() -> str | None:
    main = _outermost_file()
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


def _check_name(name: Any, what: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise HippoError(f"{what} name `{name}` is not allowed: use letters, digits, `_`, "
                         "`.` and `-` (up to 128, not starting with `.` or `-`)")
    return name


class Run:
    """One recorded execution; made by :meth:`hippo.LineageStore.run`, used in its block.

    Examples
    --------
    >>> with store.run("delays", params={"min_delay": 15}) as run:  # doctest: +SKIP
    ...     flights = run.source("flights", "data/flights")
    ...     run.sink("late", flights.filter("dep_delay > 15"), "out/late")
    """

    def __init__(self, spark: SparkSession, root: str, name: str, params: dict[str, Any],
                 strict: bool) -> None:
        self.spark = spark
        self.root = root
        self.name = name
        self.params = params
        self.run_id = uuid.uuid4().hex
        self.started_at = _now()
        self._recorder = Recorder(self.run_id, name, strict, root)
        self._sources: dict[str, int] = {}
        self._sinks: dict[str, int] = {}
        self._versions: dict[str, int] = {}
        # The store's logs grow by a commit per run: checkpointed here, off the run's
        # exit, when due (see hippo.store.tables.checkpoint_due).
        self._recorder.later(tables.checkpoint_due, spark, root)

    def __repr__(self) -> str:
        return f"Run({self.name!r}, run_id={self.run_id!r})"

    # -- public ------------------------------------------------------------------------
    def source(self, name: str, data: str | DataFrame) -> TrackedDataFrame:
        """Read a source: a Delta table path (pinned to its current version) or a DataFrame
        (snapshotted into the store). Returns a TrackedDataFrame of its rows."""
        self._recorder.check_open()
        _check_name(name, "source")
        if name in self._sources:
            raise HippoError(f"source `{name}` is already read in run `{self.run_id}`; "
                             f"sources so far: {listing(self._sources)}")
        if isinstance(data, TrackedDataFrame):
            raise HippoError(f"source `{name}`: pass a Delta path or a plain DataFrame, "
                             "not a TrackedDataFrame")
        slot = self._recorder.new_slot()
        if isinstance(data, str):
            version, ids = describe(self.spark, data)
            info = SourceInfo(name, data, version, ids, False, slot)
        elif isinstance(data, DataFrame):
            reserved_columns(data.columns, f"source `{name}`")
            path = tables.snapshot_path(self.root, self.run_id, name)
            committed(path, lambda: data.write.format("delta").mode("errorifexists").save(path),
                      f"snapshotting source `{name}`")
            info = SourceInfo(name, path, 0, "content", True, slot)
        else:
            raise HippoError(f"source `{name}`: expected a Delta table path or a DataFrame, "
                             f"got {type(data).__name__}")
        # Read as the queries read it: the pinned version's files as plain Parquet where
        # that gives the same rows and its log lists them on the driver (no Delta scan
        # planning: a Spark job per scan); else, and row-tracked, through Delta.
        pinned = None if info.ids == "row_tracking" else check_readable(
            self.spark, info.path, info.version, plain=True, ask_delta=False)
        df = read_source(self.spark, info, slot, pinned)
        columns = [c for c in df.columns if not is_hidden(c)]
        step, state = self._recorder.source_step(info, columns)
        self._sources[name] = step.op_id
        return TrackedDataFrame(self._recorder, df, state, step.op_id)

    def fit(self, estimator: Any, data: TrackedDataFrame) -> Any:
        """``estimator.fit(data)`` for a pyspark.ml Estimator or Pipeline, recorded: the
        model depends on the training rows and the columns the estimator reads, and is
        saved into the store. Apply it with ``data.transform(model)``."""
        from hippo.capture.models import fit

        return fit(self._recorder, estimator, check_tracked(self._recorder, data, "run.fit"))

    def sink(self, name: str, data: TrackedDataFrame, path: str, mode: str = "overwrite") -> None:
        """Write ``data`` as a Delta table at ``path`` and record which rows were written.

        The recorded version is the commit this write made (tagged with the run id), even
        when other writers commit to ``path`` at the same time.
        """
        self._recorder.check_open()
        _check_name(name, "sink")
        data = check_tracked(self._recorder, data, f"sink `{name}`")
        if name in self._sinks:
            raise HippoError(f"sink `{name}` is already written in run `{self.run_id}`")
        if mode not in ("overwrite", "append"):
            raise HippoError(f"sink `{name}`: mode `{mode}` is not supported; use "
                             "`overwrite` or `append`")
        user = data.columns
        if len(set(user)) != len(user):
            dupes = sorted({c for c in user if user.count(c) > 1})
            raise HippoError(f"sink `{name}` has repeated column names {listing(dupes)}; "
                             "Delta needs unique names")
        reserved_columns(user, f"sink `{name}`")
        state = data.lineage_state
        slots = list(state.slots)
        # A row whose slots and id are hashes of group keys it still holds needs nothing
        # stored: queries hash the written row (key encoding). Other rows whose values
        # came through an aggregate may not replay bit for bit (floating sums depend on
        # the order Spark adds them in), so their lineage is stored (explicit); any other
        # sink's rows are found again by replaying it.
        keyed = (mode == "overwrite" and state.id_slot is not None
                 and all(s in state.keyed for s in slots))
        explicit = not keyed and (
            any(state.slots[s].kind == "key" for s in slots) or not state.replay_exact)
        rows = "keyed" if keyed else "explicit" if explicit else "replay"
        self._recorder.sink_step(SinkInfo(name, path, None, mode, tuple(slots), rows), data)
        self._sinks[name] = self._recorder.next_op - 1
        frame = data.frame
        if explicit:  # two writes (the sink, and its rows' lineage) from one computation
            frame = frame.persist(StorageLevel.MEMORY_AND_DISK)
        try:
            self._versions[name] = self._write(name, selected(frame, [quoted(c) for c in user]),
                                               path, mode)
            if explicit:
                self._store_rows(name, sink_rows_of(frame, user, slots))
        finally:
            if explicit:
                frame.unpersist()

    def _store_rows(self, name: str, rows: DataFrame) -> None:
        """An explicit sink's rows' lineage: in the run's row if they are few (read from
        the cached sink, at most INLINE_ROWS + 1 rows reach the driver), else appended
        to ``sink_rows``, invisible until the run commits."""
        few = rows.limit(INLINE_ROWS + 1).collect()
        if len(few) <= INLINE_ROWS:
            self._recorder.inline_rows(self._sinks[name], tuple(
                (r.hippo_row_id, r.row_hash, tuple(r.slots)) for r in few))
            return
        tables.create_tables(self.spark, self.root, (tables.SINK_ROWS,))
        tables.append_frame(rows.select(F.lit(self.run_id).alias("run_id"),
                                        F.lit(name).alias("sink"), "*"),
                            self.root, tables.SINK_ROWS, optimizeWrite="true")

    def _write(self, name: str, df: DataFrame, path: str, mode: str) -> int:
        """Write a sink in one tagged, idempotent Delta commit; the version it made."""
        app_id = f"hippo-{self.run_id}-{name}"
        writer = (df.write.format("delta").mode(mode).option("userMetadata", self.run_id)
                  .option("txnAppId", app_id).option("txnVersion", 0))

        def write() -> int:
            writer.save(path)
            return latest_version(self.spark, path)

        latest = committed(path, write, f"writing sink `{name}`")
        # Newest first: the commit is the latest unless others wrote since, or Delta
        # skipped this write as already applied (then it is the earlier commit).
        version = commit_version(self.spark, path, self.run_id, latest)
        if version is None:
            raise HippoError(f"sink `{name}`: the write to `{path}` left no commit tagged "
                             f"with run `{self.run_id}` (versions up to {latest})")
        return version

    # -- end ------------------------------------------------------------------------------
    def _finish(self, error: BaseException | None) -> None:
        rows, failure = self._recorder.finish()
        if error is None and failure is not None:
            if isinstance(failure, UnsupportedStepError) and not self._recorder.strict:
                self._recorder.refuse(str(failure))
            else:
                error = failure
        status = "failed" if error is not None else "succeeded"
        if error is None and self._recorder.incomplete:
            status = "lineage_incomplete"
        message = None if error is None else f"{type(error).__name__}: {error}"[:2000]
        if error is None and not self._sinks:
            status, message = "failed", "the run wrote no sink"
        unwritten = set(self._sinks) - set(self._versions)
        if error is None and unwritten:  # a sink write raised and the block went on
            status = "failed"
            message = f"sink(s) {listing(unwritten)} were not written"
        import pyspark

        from hippo import __version__

        tables.append_rows(self.spark, self.root, tables.RUNS, [{
            "run_id": self.run_id, "name": self.name,
            "params": json.dumps(self.params, sort_keys=True, default=str),
            "status": status, "started_at": self.started_at, "ended_at": _now(),
            "code_version": _code_version(), "spark_version": pyspark.__version__,
            "hippo_version": __version__, "error": message, "sinks": dict(self._versions),
            "format": FORMAT, "steps": pack_steps(rows),
        }])
        log.info("run %s (%s) recorded: %s, %d steps", self.run_id, self.name, status, len(rows))
        if failure is not None and error is failure:
            raise failure


def finish(run: Run, error: BaseException | None) -> None:
    """End ``run``: commit its row (``failed`` when ``error`` is set), then re-raise a
    failure of its background work, if that is what failed it."""
    run._finish(error)
