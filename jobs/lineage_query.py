"""spark-submit job: answer a backward or forward lineage query against a store.

Prints each result DataFrame (and, with ``--output DIR``, writes each as a Delta table
``DIR/<name>`` so another program can read the answer).

Examples::

    spark-submit --properties-file conf/spark-defaults.conf jobs/lineage_query.py \\
        --store lineage backward carrier_stats --where "carrier = 'HA'" --columns late_rate
    spark-submit ... jobs/lineage_query.py --store lineage forward planes --where "tailnum = 'N10156'"
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import hippo  # noqa: E402
from jobs._session import job_session  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Answer a hippo lineage query.")
    parser.add_argument("--store", required=True, help="the lineage store folder")
    parser.add_argument("direction", choices=["backward", "forward"])
    parser.add_argument("name", help="sink (backward) or source (forward)")
    parser.add_argument("--where", required=True, help="SQL predicate on the chosen rows")
    parser.add_argument("--columns", nargs="*", default=None, help="cell-level: these columns")
    parser.add_argument("--run-id", default=None, help="default: the latest successful run")
    parser.add_argument("--output", default=None, help="write each answer as Delta here")
    parser.add_argument("--rows", type=int, default=20, help="rows to print per answer")
    args = parser.parse_args(argv)

    spark = job_session(f"hippo-{args.direction}")
    spark.sparkContext.setLogLevel("ERROR")
    print(f"spark master: {spark.sparkContext.master}")
    store = hippo.LineageStore(spark, args.store)
    query = store.backward if args.direction == "backward" else store.forward
    start = time.perf_counter()
    try:
        answer = query(args.name, where=args.where, columns=args.columns, run_id=args.run_id)
    except hippo.HippoError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for name, df in sorted(answer.items()):
        if args.output:
            df.write.format("delta").mode("overwrite").save(f"{args.output}/{name}")
        print(f"--- {name}: {df.count()} row(s)")
        df.show(args.rows, truncate=False)
    if not answer:
        print("(no rows)")
    print(f"{args.direction} answered in {time.perf_counter() - start:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
