"""spark-submit job: diagnose a recorded run (trace, replay, remove, restore, removals).

Prints what it finds; with ``--output DIR`` it also writes each DataFrame as a Delta
table under ``DIR`` so another program can read it: a trace's steps as
``DIR/<op_id>-<step>``, a replay's sinks as ``DIR/<sink>``, a removal preview's rows as
``DIR/<sink>``. A removal prints its report as one JSON line (``report: {...}``).
Exits with 2 and the error's message on a HippoError (an unknown sink, a refused
``where``, a removal that cannot run).

Examples::

    spark-submit --properties-file conf/spark-defaults.conf jobs/diagnose.py \\
        --store lineage trace carrier_stats --where "carrier = 'HA'"
    spark-submit ... jobs/diagnose.py --store lineage replay RUN_ID --sinks carrier_stats
    spark-submit ... jobs/diagnose.py --store lineage remove flights \\
        --where "dep_delay > 1000" --dry-run
    spark-submit ... jobs/diagnose.py --store lineage restore REMOVAL_ID
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import hippo  # noqa: E402
from jobs._session import job_session, show_frame  # noqa: E402


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Diagnose a run recorded by hippo.")
    parser.add_argument("--store", required=True, help="the lineage store folder")
    parser.add_argument("--output", default=None, help="write each DataFrame as Delta here")
    parser.add_argument("--rows", type=int, default=20, help="rows to print per DataFrame")
    sub = parser.add_subparsers(dest="command", required=True)
    trace = sub.add_parser("trace", help="a sink's chosen rows at every step")
    trace.add_argument("sink")
    trace.add_argument("--where", required=True, help="SQL predicate on the sink's rows")
    trace.add_argument("--run-id", default=None, help="default: the latest successful run")
    replay = sub.add_parser("replay", help="recompute a run's sinks from its pinned inputs")
    replay.add_argument("run_id")
    replay.add_argument("--sinks", nargs="*", default=None, help="default: every sink")
    replay.add_argument("--where", default=None, help="only the output rows it chooses")
    remove = sub.add_parser("remove", help="remove source rows and repair the outputs")
    remove.add_argument("source")
    remove.add_argument("--where", required=True, help="SQL predicate on the source's rows")
    remove.add_argument("--run-id", default=None, help="default: the latest successful run")
    remove.add_argument("--dry-run", action="store_true", help="preview; change nothing")
    restore = sub.add_parser("restore", help="undo a removal")
    restore.add_argument("removal_id")
    sub.add_parser("removals", help="every removal and its state")
    return parser


def _run(store: hippo.LineageStore, args: argparse.Namespace) -> None:
    if args.command == "trace":
        for step in store.trace(args.sink, where=args.where, run_id=args.run_id):
            print(f"step {step.op_id} `{step.step}` ({step.kind}) at {step.code_location}")
            show_frame(f"{step.op_id}-{step.step}", step.rows, args.output, args.rows)
    elif args.command == "replay":
        for name, df in sorted(store.replay(args.run_id, sinks=args.sinks,
                                            where=args.where).items()):
            show_frame(name, df, args.output, args.rows)
    elif args.command == "remove":
        report = store.remove(args.source, where=args.where, run_id=args.run_id,
                              dry_run=args.dry_run)
        print("report: " + json.dumps(report.to_json(), sort_keys=True))
        for name, repair in sorted(report.sinks.items()):
            if repair.preview is not None:
                show_frame(name, repair.preview, args.output, args.rows)
    elif args.command == "restore":
        for path, version in sorted(store.restore(args.removal_id).items()):
            print(f"restored `{path}` to version {version}")
    else:
        store.removals().show(args.rows, truncate=False)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    spark = job_session(f"hippo-{args.command}")
    spark.sparkContext.setLogLevel("ERROR")
    print(f"spark master: {spark.sparkContext.master}")
    start = time.perf_counter()
    try:
        _run(hippo.LineageStore(spark, args.store), args)
    except hippo.HippoError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{args.command} done in {time.perf_counter() - start:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
