"""spark-submit job: answer backward and forward lineage queries against a store.

Prints each result DataFrame (and, with ``--output DIR``, writes each as a Delta table
``DIR/<name>`` so another program can read the answer). Several queries can share one
job (and so one Spark application's start-up): separate them with the word ``then``;
each query takes its own ``--where``, ``--columns`` and ``--output``, and the first
one's ``--store``, ``--run-id`` and ``--rows`` hold for those that do not give them.

Examples::

    spark-submit --properties-file conf/spark-defaults.conf jobs/lineage_query.py \\
        --store lineage backward carrier_stats --where "carrier = 'HA'" --columns late_rate
    spark-submit ... jobs/lineage_query.py --store lineage forward planes --where "tailnum = 'N10156'"
    spark-submit ... jobs/lineage_query.py --store lineage \\
        backward carrier_stats --where "carrier = 'HA'" --output answers/back \\
        then forward planes --where "tailnum = 'N10156'" --output answers/fwd
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import hippo  # noqa: E402
from jobs._session import job_session, show_frame  # noqa: E402

THEN = "then"


def _parser(first: bool) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Answer hippo lineage queries (separate several with `then`).")
    parser.add_argument("--store", required=first, help="the lineage store folder")
    parser.add_argument("direction", choices=["backward", "forward"])
    parser.add_argument("name", help="sink (backward) or source (forward)")
    parser.add_argument("--where", required=True, help="SQL predicate on the chosen rows")
    parser.add_argument("--columns", nargs="*", default=None, help="cell-level: these columns")
    parser.add_argument("--run-id", default=None, help="default: the latest successful run")
    parser.add_argument("--output", default=None, help="write each answer as Delta here")
    parser.add_argument("--rows", type=int, default=None, help="rows to print per answer")
    return parser


def parse(argv: list[str]) -> list[argparse.Namespace]:
    """One namespace per query; later queries inherit the first one's store, run and rows."""
    chunks: list[list[str]] = [[]]
    for arg in argv:
        if arg == THEN:
            chunks.append([])
        else:
            chunks[-1].append(arg)
    queries = [_parser(i == 0).parse_args(chunk) for i, chunk in enumerate(chunks)]
    first = queries[0]
    first.rows = 20 if first.rows is None else first.rows
    for q in queries[1:]:
        for key in ("store", "run_id", "rows"):
            if getattr(q, key) is None:
                setattr(q, key, getattr(first, key))
    return queries


def _answer(spark, query: argparse.Namespace) -> int:
    store = hippo.LineageStore(spark, query.store)
    ask = store.backward if query.direction == "backward" else store.forward
    start = time.perf_counter()
    try:
        answer = ask(query.name, where=query.where, columns=query.columns,
                     run_id=query.run_id)
    except hippo.HippoError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for name, df in sorted(answer.items()):
        show_frame(name, df, query.output, query.rows)
    if not answer:
        print("(no rows)")
    print(f"{query.direction} {query.name} answered in {time.perf_counter() - start:.2f} s")
    return 0


def main(argv: list[str] | None = None) -> int:
    queries = parse(sys.argv[1:] if argv is None else argv)
    spark = job_session(f"hippo-{'-'.join(q.direction for q in queries)}")
    spark.sparkContext.setLogLevel("ERROR")
    print(f"spark master: {spark.sparkContext.master}")
    return max(_answer(spark, q) for q in queries)


if __name__ == "__main__":
    sys.exit(main())
