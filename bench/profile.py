"""Where a tracked run's driver time goes: one workload, untracked and tracked runs
alternated in one warm session, then a cProfile of tracked runs (cumulative time per
function, hippo's and Spark's entry points only).

    python -m bench.profile --workload flights --runs 3
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import shutil
import statistics
import sys
import time
from pathlib import Path

import hippo
from bench import run as bench_run
from bench import workloads
from bench.memory import MemorySampler

BENCH = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", default="flights")
    parser.add_argument("--sf", type=float, default=1.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--master", default="local[2]")
    args = parser.parse_args(argv)

    every = {wl.name: wl for wl in workloads.tpch_workloads(300)
             + [workloads.flights_workload(), workloads.ml_workload()]}
    wl = every[args.workload]
    spark = hippo.spark_session("hippo-profile", master=args.master,
                                conf={"spark.ui.enabled": "false"})
    spark.sparkContext.setLogLevel("ERROR")
    with MemorySampler() as sampler:
        ctx = bench_run.prepare(spark, args.sf, BENCH / "data", BENCH / "work", [wl], sampler)
    paths = ctx.paths[wl.name]
    work = BENCH / "work" / "profile"
    shutil.rmtree(work, ignore_errors=True)
    store = hippo.LineageStore(spark, str(work / "lineage"))
    # Warm both modes once.
    workloads.run_untracked(spark, wl, paths, str(work / "u"))
    workloads.run_tracked(store, wl, paths, str(work / "t"))
    untracked, tracked, phases = [], [], []
    profile = cProfile.Profile()
    for i in range(args.runs):
        t0 = time.perf_counter()
        workloads.run_untracked(spark, wl, paths, str(work / "u"))
        untracked.append(time.perf_counter() - t0)
        profile.enable()
        timing = workloads.run_tracked(store, wl, paths, str(work / "t"))
        profile.disable()
        tracked.append(timing.total)
        phases.append(timing.as_dict())
    ratios = [t / u for t, u in zip(tracked, untracked, strict=True)]
    print(f"{wl.name}: untracked {statistics.median(untracked):.2f} s, tracked "
          f"{statistics.median(tracked):.2f} s, ratio {statistics.median(ratios):.2f} "
          f"({min(ratios):.2f}-{max(ratios):.2f})")
    for key in phases[0]:
        print(f"  {key}: {statistics.median(p[key] for p in phases):.3f} s")
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out).sort_stats("cumulative")
    stats.print_stats(r"hippo|pyspark/sql/(readwriter|dataframe|session)", args.top)
    print(out.getvalue())
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
