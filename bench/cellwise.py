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
oracle for the tiny-scale test.

Source rows get hippo's content-hash id (only so answers can be compared by
``hippo_row_id``); everything else is computed here. Column mappings are the ones each
workload declares by hand (:mod:`bench.mappings`), not hippo's recorded ones.

Not checked: null group keys that differ only in which key is null get one id (no
workload here groups by a nullable key).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import reduce
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
    def backward(self, output: int, where: Column, columns: list[str] | None,
                 mappings: list[StepMapping] | None = None,
                 influencing: bool = False) -> dict[str, DataFrame]:
        """Source name -> (hippo_row_id[, column]) reached backward from ``output`` rows.

        Row level (``columns=None``): DataFrames of ``hippo_row_id``. Cell level: of
        (``hippo_row_id``, ``column``) source cells, composing per-step cells through
        ``mappings``' contributing columns. ``influencing=True`` adds, at every step,
        the step's influencing columns of every input row behind a chosen row, traced
        back to the source cells they are computed from.
        """
        chosen = self.frames[output].filter(where).select(F.col(BID).alias("row"))
        rows: dict[int, list[DataFrame]] = {output: [chosen]}
        cells: dict[int, list[DataFrame]] = {}
        if columns is not None:
            names = self._user(output)
            idx = [names.index(c) for c in columns]
            cells[output] = [chosen.crossJoin(
                self.spark.createDataFrame([(i,) for i in idx], "col int"))]
        need_rows = columns is None or influencing
        for step in reversed(self.steps):
            if step.output not in rows and step.output not in cells:
                continue
            found = []  # (in_side, in_row, in_col) cells this step leads to
            if need_rows:
                here_rows = self._settled(rows[step.output])
                links = step.pairs.join(here_rows.withColumnRenamed("row", "out_row"),
                                        "out_row")
                for side, frame in enumerate(step.inputs):
                    rows.setdefault(frame, []).append(
                        links.filter(F.col("in_side") == side).select(F.col("in_row").alias("row")))
                if influencing:
                    infl = _small_frame(self.spark, _influencing_rows(step, mappings[step.index]),
                                        "in_side int, in_col int")
                    found.append(links.join(F.broadcast(infl), "in_side").select(
                        "in_side", "in_row", "in_col"))
            if columns is not None and step.output in cells:
                here = self._settled(cells[step.output])
                found.append(step_cells(self.spark, step, mappings[step.index]).join(
                    here.withColumnRenamed("row", "out_row").withColumnRenamed("col", "out_col"),
                    ["out_row", "out_col"]).select("in_side", "in_row", "in_col"))
            for part in found:
                for side, frame in enumerate(step.inputs):
                    cells.setdefault(frame, []).append(part.filter(F.col("in_side") == side).select(
                        F.col("in_row").alias("row"), F.col("in_col").alias("col")))
        frontier = rows if columns is None else cells
        out: dict[str, list[DataFrame]] = {}
        for frame, parts in frontier.items():
            if frame in self.source_of:
                got = reduce(DataFrame.union, parts).distinct()
                if columns is not None:
                    names = self._user(frame)
                    lookup = self.spark.createDataFrame(list(enumerate(names)), "col int, column string")
                    got = got.join(lookup, "col").select("row", "column")
                out.setdefault(self.source_of[frame], []).append(
                    got.withColumnRenamed("row", "hippo_row_id"))
        return {name: reduce(DataFrame.union, parts).distinct() for name, parts in out.items()}

    def _settled(self, parts: list[DataFrame]) -> DataFrame:
        """The union of ``parts``, computed once: later steps build on it, and a plan that
        repeats every earlier step's unions would grow with each step."""
        here = reduce(DataFrame.union, parts).distinct()
        return here.localCheckpoint(eager=True) if self.materialize else here

    def forward(self, source: str, where: Column) -> dict[int, DataFrame]:
        """Frame number -> ids of its rows reached forward from the chosen source rows."""
        reached: dict[int, list[DataFrame]] = {}
        for number, name in self.source_of.items():
            if name == source:
                reached[number] = [self.frames[number].filter(where).select(F.col(BID).alias("row"))]
        for step in self.steps:
            got = []
            for side, frame in enumerate(step.inputs):
                if frame in reached:
                    ids = reduce(DataFrame.union, reached[frame]).distinct()
                    got.append(step.pairs.filter(F.col("in_side") == side).join(
                        ids.withColumnRenamed("row", "in_row"), "in_row")
                        .select(F.col("out_row").alias("row")))
            if got:
                reached.setdefault(step.output, []).extend(got)
        return {f: reduce(DataFrame.union, parts).distinct() for f, parts in reached.items()}


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
