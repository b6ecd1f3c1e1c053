"""Backward queries with the source rows carried by the group vs read again, side by side.

An aggregate's group carries the rows of the sources it comes from to the answers
(``hippo.query.backward.CARRY_ROWS``, on by default); off, each answer reads its source
again and matches it by id. The latency figure's backward picks (SF 1, seeded) are run
both ways, the order alternated per pick, in one warm session; for every pick the two
answers must hold the same rows (compared after the clock stops). Reported per query
kind: p50 and range of each way, and the Spark jobs a query and its counts ran.

    .venv/bin/python -m bench.carry_ab [--workloads q3,q10,flights,q5] [--picks 8]
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path
from typing import Any

import hippo
from bench import run as bench_run
from bench import workloads
from bench.memory import MemorySampler
from hippo.query import backward

BENCH = Path(__file__).resolve().parent


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two answers hold the same sources, each with the same rows as often."""
    if set(a) != set(b):
        return False
    return all(a[s].exceptAll(b[s]).isEmpty() and b[s].exceptAll(a[s]).isEmpty() for s in a)


def _call(ctx: Any, call: Any, carry: bool) -> tuple[float, int, dict[str, Any]]:
    backward.CARRY_ROWS = carry
    try:
        got: dict[str, Any] = {}

        def keep() -> dict[str, Any]:
            got.update(call())
            return got
        sec, _, _, jobs = bench_run._counted(ctx.spark, keep)
        return sec, jobs, got
    finally:
        backward.CARRY_ROWS = True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", default="q3,q10,flights,q5")
    parser.add_argument("--picks", type=int, default=8)
    parser.add_argument("--seed", type=int, default=2017)
    parser.add_argument("--sf", type=float, default=1.0)
    args = parser.parse_args(argv)
    every = {wl.name: wl for wl in workloads.tpch_workloads(300)
             + [workloads.flights_workload()]}
    chosen = [every[n] for n in args.workloads.split(",")]
    spark = hippo.spark_session("carry-ab", master="local[2]",
                                conf={"spark.ui.enabled": "false"})
    spark.sparkContext.setLogLevel("ERROR")
    print("| query | level | picks | carried p50 s (range) | jobs | re-read p50 s (range) "
          "| jobs | answer rows (median) |")
    print("|---|---|---|---|---|---|---|---|")
    with MemorySampler() as sampler:
        ctx = bench_run.prepare(spark, args.sf, BENCH / "data", BENCH / "work", chosen,
                                sampler)
        for wl in chosen:
            for query, level, calls, _ in bench_run.latency_kinds(
                    ctx, wl, args.picks, args.seed):
                if not query.startswith("backward"):
                    continue
                for carry in (True, False):  # warm-up, not counted
                    _call(ctx, calls[0], carry)
                times: dict[bool, list[float]] = {True: [], False: []}
                jobs: dict[bool, list[int]] = {True: [], False: []}
                sizes = []
                for i, call in enumerate(calls[1:]):
                    got = {}
                    for carry in ((True, False) if i % 2 else (False, True)):
                        sec, n, got[carry] = _call(ctx, call, carry)
                        times[carry].append(sec)
                        jobs[carry].append(n)
                    if not _same(got[True], got[False]):
                        raise SystemExit(f"{wl.name} {query} {level} pick {i}: answers differ")
                    sizes.append(sum(df.count() for df in got[True].values()))
                cells = [f"{statistics.median(times[c]):.2f} ({min(times[c]):.2f}-"
                         f"{max(times[c]):.2f}) | {statistics.median(jobs[c]):.0f}"
                         for c in (True, False)]
                print(f"| {wl.name} {query} | {level} | {len(sizes)} | {cells[0]} | "
                      f"{cells[1]} | {statistics.median(sizes):,.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
