"""A cell-wise lineage baseline, computed independently of hippo's store.

:class:`EagerRecorder` runs a workload step by step on plain DataFrames, giving every
step's rows ids and materializing, per step, the row pairs (output row, input side,
input row) by eager id propagation:

* row-preserving steps (filter, select, withColumn, orderBy, limit, ...): each output
  row and the input row it came from;
* joins: each output row and its parent on each side (one side for outer rows); a left
  semi join also pairs each kept row with the right rows it matched;
* aggregates: each input row and its group's output row.

Crossed with a step's column mapping (output column <- input columns), the pairs give
every (output row, output column, input row, input column) of the step: the cell-wise
lineage that :func:`write_baseline` writes as a Delta table. The pairs also answer
row-level and cell-level lineage questions (with or without influencing cells) by
composing steps (:meth:`EagerRecorder.backward`, :meth:`EagerRecorder.forward`), an
oracle for the tiny-scale test; those walks run in Python over the pairs collected to
the driver, which only tiny data allows.

Source rows get hippo's content-hash id (only so answers can be compared by
``hippo_row_id``); everything else is computed here. Column mappings are the ones each
workload declares by hand (:mod:`bench.mappings`), not hippo's recorded ones.

Not checked: null group keys that differ only in which key is null get one id (no
workload here groups by a nullable key).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from bench.mappings import StepMapping
from hippo.recorded.ids import content_hash  # the one hippo internal: source row ids

__all__ = ["EagerRecorder", "EagerFrame", "Step", "check_aligned", "step_cells",
           "write_baseline", "record"]

BID = "__bid"
_PARENTS = ("__pid", "__lid", "__rid")
CELL_SCHEMA = ("step int, out_row bigint, out_col int, in_side int, in_row bigint, "
               "in_col int")


@dataclass
class Step:
    """One recorded step: its name, input frames, output frame and row pairs."""

    index: int
    name: str
    inputs: list[int]          # frame numbers, by side
    output: int                # frame number
    pairs: DataFrame           # out_row, in_side, in_row
    out_columns: list[str]
    in_columns: list[list[str]]


def _flatten(items: tuple[Any, ...]) -> list[Any]:
    out: list[Any] = []
    for item in items:
        out.extend(item if isinstance(item, list | tuple) else [item])
    return out


class EagerRecorder:
    """Runs steps eagerly on plain DataFrames and keeps every step's row pairs."""

    def __init__(self, spark: SparkSession, materialize: bool = True) -> None:
        self.spark = spark
        self.materialize = materialize
        self.frames: list[DataFrame] = []       # user columns + BID
        self.source_of: dict[int, str] = {}     # frame number -> source name
        self.steps: list[Step] = []
        self._collected: dict[int, tuple[dict, dict]] = {}

    def source(self, name: str, df: DataFrame) -> EagerFrame:
        cols = [F.col(f"`{c}`") for c in df.columns]
        return self._frame(df.withColumn(BID, content_hash(cols, "row")), name)

    def _frame(self, df: DataFrame, source: str | None = None) -> EagerFrame:
        if self.materialize:
            df = df.localCheckpoint(eager=True)
        self.frames.append(df)
        number = len(self.frames) - 1
        if source is not None:
            self.source_of[number] = source
        return EagerFrame(self, number)

    def _user(self, number: int) -> list[str]:
        return [c for c in self.frames[number].columns if c != BID and c not in _PARENTS]

    def step(self, name: str, inputs: list[int], out: DataFrame,
             pairs: Callable[[DataFrame], DataFrame]) -> EagerFrame:
        """Record a step whose output ``out`` carries its parents' ids (``_PARENTS``)."""
        full = out.localCheckpoint(eager=True) if self.materialize else out
        frame = self._frame(full.drop(*[p for p in _PARENTS if p in full.columns]))
        in_cols = [self._user(i) for i in inputs]
        self.steps.append(Step(len(self.steps), name, inputs, frame.number, pairs(full),
                               self._user(frame.number), in_cols))
        return frame

    # -- oracle ----------------------------------------------------------------------
    # The walks run in Python over each step's row pairs, collected to the driver once:
    # an oracle for the tiny-scale test, where a walk as Spark jobs (one per step and
    # question) cost more than the lineage queries it checks.
    def _links(self, step: Step) -> tuple[dict[int, list[tuple[int, int]]],
                                          dict[tuple[int, int], list[int]]]:
        """A step's pairs as out_row -> [(in_side, in_row)] and (in_side, in_row) ->
        [out_row], collected once."""
        if step.index not in self._collected:
            back: dict[int, list[tuple[int, int]]] = defaultdict(list)
            fwd: dict[tuple[int, int], list[int]] = defaultdict(list)
            for out_row, side, in_row in step.pairs.select(
                    "out_row", "in_side", "in_row").toLocalIterator():
                back[out_row].append((side, in_row))
                fwd[(side, in_row)].append(out_row)
            self._collected[step.index] = (back, fwd)
        return self._collected[step.index]

    def _ids(self, frame: int, where: Column | str) -> set[int]:
        return {r[0] for r in self.frames[frame].filter(where).select(BID).collect()}

    def backward(self, output: int, where: Column | str, columns: list[str] | None,
                 mappings: list[StepMapping] | None = None,
                 influencing: bool = False) -> dict[str, set[Any]]:
        """Source name -> the ``hippo_row_id`` (row level, ``columns=None``) or the
        (``hippo_row_id``, column) source cells reached backward from ``output`` rows.

        Cells compose per-step cells through ``mappings``' contributing columns.
        ``influencing=True`` adds, at every step, the step's influencing columns of every
        input row behind a chosen row, traced back to the source cells they are
        computed from.
        """
        rows: dict[int, set[int]] = {output: self._ids(output, where)}
        cells: dict[int, set[tuple[int, int]]] = {}
        if columns is not None:
            names = self._user(output)
            cells[output] = {(r, names.index(c)) for r in rows[output] for c in columns}
        need_rows = columns is None or influencing
        for step in reversed(self.steps):
            if step.output not in rows and step.output not in cells:
                continue
            back, _ = self._links(step)
            if need_rows and step.output in rows:
                for out_row in rows[step.output]:
                    for side, in_row in back.get(out_row, ()):
                        rows.setdefault(step.inputs[side], set()).add(in_row)
                if influencing:
                    infl = _influencing_rows(step, mappings[step.index])
                    for out_row in rows[step.output]:
                        for side, in_row in back.get(out_row, ()):
                            for s, in_col in infl:
                                if s == side:
                                    cells.setdefault(step.inputs[side], set()).add(
                                        (in_row, in_col))
            if columns is not None and step.output in cells:
                per_col: dict[int, list[tuple[int, int]]] = defaultdict(list)
                for out_col, side, in_col in _mapping_rows(step, mappings[step.index]):
                    per_col[out_col].append((side, in_col))
                for out_row, out_col in cells[step.output]:
                    for side, in_row in back.get(out_row, ()):
                        for s, in_col in per_col.get(out_col, ()):
                            if s == side:
                                cells.setdefault(step.inputs[side], set()).add((in_row, in_col))
        out: dict[str, set[Any]] = {}
        for frame, name in self.source_of.items():
            if columns is None:
                got: set[Any] = rows.get(frame, set())
            else:
                names = self._user(frame)
                got = {(row, names[col]) for row, col in cells.get(frame, set())}
            if got:
                out.setdefault(name, set()).update(got)
        return out

    def forward(self, source: str, where: Column | str) -> dict[int, set[int]]:
        """Frame number -> ids of its rows reached forward from the chosen source rows."""
        reached = {number: self._ids(number, where)
                   for number, name in self.source_of.items() if name == source}
        for step in self.steps:
            _, fwd = self._links(step)
            got: set[int] = set()
            for side, frame in enumerate(step.inputs):
                for in_row in reached.get(frame, ()):
                    got.update(fwd.get((side, in_row), ()))
            if got or any(f in reached for f in step.inputs):
                reached.setdefault(step.output, set()).update(got)
        return reached

    def rows_of(self, frame: int, ids: set[int]) -> DataFrame:
        """The user columns of frame ``frame``'s rows whose id is in ``ids``."""
        wanted = self.spark.createDataFrame([(i,) for i in sorted(ids)], f"{BID} bigint")
        return self.frames[frame].join(wanted, BID, "left_semi").drop(BID)


class EagerFrame:
    """The DataFrame-like the workloads see: each method is one recorded step."""

    def __init__(self, recorder: EagerRecorder, number: int) -> None:
        self._rec = recorder
        self.number = number

    @property
    def _df(self) -> DataFrame:
        return self._rec.frames[self.number]

    @property
    def df(self) -> DataFrame:
        return self._df.drop(BID)

    @property
    def columns(self) -> list[str]:
        return [c for c in self._df.columns if c != BID]

    def _one_to_one(self, name: str, out: DataFrame) -> EagerFrame:
        out = out.withColumnRenamed(BID, "__pid")
        out = out.withColumn(BID, F.xxhash64(F.lit(f"s{len(self._rec.steps)}"), F.col("__pid")))
        return self._rec.step(name, [self.number], out, lambda full: full.select(
            F.col(BID).alias("out_row"), F.lit(0).alias("in_side"),
            F.col("__pid").alias("in_row")))

    def filter(self, condition: Column | str) -> EagerFrame:
        return self._one_to_one("filter", self._df.filter(condition))

    where = filter

    def select(self, *cols: Any) -> EagerFrame:
        return self._one_to_one("select", self._df.select(*_flatten(cols), BID))

    def withColumn(self, name: str, col: Column) -> EagerFrame:  # noqa: N802 (pyspark's name)
        return self._one_to_one("withColumn", self._df.withColumn(name, col))

    def orderBy(self, *cols: Any, **kwargs: Any) -> EagerFrame:  # noqa: N802
        return self._one_to_one("orderBy", self._df.orderBy(*cols, **kwargs))

    sort = orderBy

    def limit(self, n: int) -> EagerFrame:
        return self._one_to_one("limit", self._df.limit(n))

    def groupBy(self, *cols: Any) -> _EagerGrouped:  # noqa: N802
        return _EagerGrouped(self, _flatten(cols))

    def join(self, other: EagerFrame, on: Any = None, how: str | None = None) -> EagerFrame:
        left = self._df.withColumnRenamed(BID, "__lid")
        right = other._df.withColumnRenamed(BID, "__rid")
        step = f"s{len(self._rec.steps)}"
        semi = (how or "").lower().replace("_", "") in ("leftsemi", "semi")
        if semi:
            out = left.join(right, on, how).withColumn(
                BID, F.xxhash64(F.lit(step), F.col("__lid")))
            # The right rows each kept row matched: re-pair the two sides.
            matched = left.join(right, on, "inner").select(
                F.xxhash64(F.lit(step), F.col("__lid")).alias("out_row"),
                F.lit(1).alias("in_side"), F.col("__rid").alias("in_row"))

            def pairs(full: DataFrame) -> DataFrame:
                own = full.select(F.col(BID).alias("out_row"), F.lit(0).alias("in_side"),
                                  F.col("__lid").alias("in_row"))
                return own.union(matched).localCheckpoint(eager=True)
        else:
            out = left.join(right, on, how).withColumn(
                BID, F.xxhash64(F.lit(step), F.col("__lid"), F.col("__rid"),
                                F.col("__lid").isNull(), F.col("__rid").isNull()))

            def pairs(full: DataFrame) -> DataFrame:
                sides = [full.select(F.col(BID).alias("out_row"), F.lit(s).alias("in_side"),
                                     F.col(p).alias("in_row")).where(F.col(p).isNotNull())
                         for s, p in enumerate(("__lid", "__rid"))]
                return sides[0].union(sides[1])
        return self._rec.step("join", [self.number, other.number], out, pairs)


class _EagerGrouped:
    def __init__(self, parent: EagerFrame, keys: list[Any]) -> None:
        self._parent = parent
        self._keys = keys

    def agg(self, *exprs: Any) -> EagerFrame:
        rec = self._parent._rec
        step = f"s{len(rec.steps)}"
        keyed = self._parent._df
        key_cols = [F.col(k) if isinstance(k, str) else k for k in self._keys]
        gid = F.xxhash64(F.lit(step), *key_cols, *[k.isNull() for k in key_cols])
        inputs = keyed.select(gid.alias("out_row"), F.lit(0).alias("in_side"),
                              F.col(BID).alias("in_row"))
        if rec.materialize:
            inputs = inputs.localCheckpoint(eager=True)
        out = keyed.groupBy(*self._keys).agg(*exprs)
        out_keys = [F.col(f"`{c}`") for c in out.columns[:len(self._keys)]]
        out = out.withColumn(BID, F.xxhash64(F.lit(step), *out_keys,
                                             *[k.isNull() for k in out_keys]))
        return rec.step("groupBy.agg", [self._parent.number], out, lambda _: inputs)


# -- column mappings and the baseline table -------------------------------------------
def check_aligned(recorder: EagerRecorder, mappings: list[StepMapping]) -> None:
    """Raise unless ``mappings`` are the recorder's steps, one for one (name, columns)."""
    ours = [(s.name, tuple(s.out_columns)) for s in recorder.steps]
    theirs = [(m.step, tuple(m.columns)) for m in mappings]
    if ours != theirs:
        raise AssertionError(f"steps differ:\n recorded {ours}\n mapped   {theirs}")


def _mapping_rows(step: Step, mapping: StepMapping) -> list[tuple[int, int, int]]:
    rows = set()
    for out_col, refs in mapping.contributing.items():
        for o, name in enumerate(step.out_columns):
            if name != out_col:
                continue
            for side, in_name in refs:
                rows.add((o, side, step.in_columns[side].index(in_name)))
    return sorted(rows)


def _influencing_rows(step: Step, mapping: StepMapping) -> list[tuple[int, int]]:
    return sorted((side, step.in_columns[side].index(name))
                  for side, name in mapping.influencing)


def _small_frame(spark: SparkSession, rows: list[tuple[int, ...]], schema: str) -> DataFrame:
    """``rows`` as a DataFrame of ``schema``, also when there are none."""
    if rows:
        return spark.createDataFrame(rows, schema)
    return spark.createDataFrame([], schema)


def step_cells(spark: SparkSession, step: Step, mapping: StepMapping) -> DataFrame:
    """Every (out_row, out_col, in_side, in_row, in_col) of one step."""
    cols = _small_frame(spark, _mapping_rows(step, mapping), "out_col int, in_side int, in_col int")
    return step.pairs.join(F.broadcast(cols), "in_side").select(
        F.lit(step.index).alias("step"), "out_row", "out_col", "in_side", "in_row", "in_col")


def write_baseline(spark: SparkSession, recorder: EagerRecorder, mappings: list[StepMapping],
                   path: str, *, compression: str) -> int:
    """Write every step's cells to one Delta table at ``path``; the number of cells.

    ``compression`` is the Parquet codec; the benchmark passes the one of hippo's store
    tables, so the two are compared at the same compression.
    """
    check_aligned(recorder, mappings)
    for step in recorder.steps:
        cells = step_cells(spark, step, mappings[step.index])
        cells.write.format("delta").mode("append").option(
            "compression", compression).save(path)
    return spark.read.format("delta").load(path).count()


def record(spark: SparkSession, build: Callable[[Mapping[str, Any]], dict[str, Any]],
           sources: Mapping[str, DataFrame], materialize: bool = True
           ) -> tuple[EagerRecorder, dict[str, EagerFrame]]:
    """Run a workload's ``build`` on eager frames of ``sources``; recorder and outputs."""
    rec = EagerRecorder(spark, materialize)
    frames = {name: rec.source(name, df) for name, df in sources.items()}
    return rec, build(frames)
