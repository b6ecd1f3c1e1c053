"""Restore: undo one removal (every table it changed back to its version before).

Each table goes back by a Delta RESTORE tagged ``restore-<removal id>``; the quarantined
rows are dropped (they are back in the source), the removal's run is marked
``restored`` so queries answer from the run it repaired, and a ``restored`` event is
appended. A restore that stops part way is finished by calling it again.
"""

from __future__ import annotations

import logging
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import Any

from pyspark.sql import Column, SparkSession
from pyspark.sql import functions as F

from hippo.diagnose.ledger import event, removal_lock, removals, tagged
from hippo.errors import RemovalError, first_line, listing
from hippo.store import tables
from hippo.store.commits import commit_version, committed
from hippo.store.delta_log import latest_version

log = logging.getLogger(__name__)

__all__ = ["restore", "RESTORE_THREADS"]

# Tables a restore restores side by side (see _restore_tables).
RESTORE_THREADS = 3


def restore(spark: SparkSession, root: str, removal_id: str) -> dict[str, int]:
    """Undo removal ``removal_id`` (applied, or interrupted part way); returns each
    table's path and the version it is back at."""
    with removal_lock(root):
        rows = removals(spark, root).filter(F.col("removal_id") == removal_id).collect()
        if not rows:
            known = [r.removal_id for r in removals(spark, root)
                     .filter(F.col("status") != "restored").select("removal_id").collect()]
            raise RemovalError(f"unknown removal `{removal_id}`; removals that can be "
                               f"restored: {listing(known)}")
        row = rows[0]
        if row["status"] == "restored":
            raise RemovalError(f"removal `{removal_id}` is already restored")
        moved, todo = [], {}
        tag = f"restore-{removal_id}"
        for path, v in row["tables"].items():
            now = latest_version(spark, path)
            # Interrupted: only the tables its tagged commits reached need restoring.
            mine = v["after"] if v["after"] is not None else commit_version(
                spark, path, removal_id, now, v["before"] + 1)
            if mine is None:
                continue
            if now != mine:
                # A restore of this removal that stopped part way already restored it.
                if commit_version(spark, path, tag, now, mine + 1) is not None:
                    continue
                moved.append(f"`{path}` (now version {now}, the removal left {mine})")
            todo[path] = v["before"]
        if moved:
            raise RemovalError(f"cannot restore removal `{removal_id}`: tables changed since "
                               f"it, and restoring would lose those changes: {', '.join(moved)}")
        _restore_tables(spark, todo, tag)
        _update(spark, root, tables.QUARANTINE, F.col("removal_id") == removal_id, None)
        _update(spark, root, tables.RUNS, F.col("run_id") == removal_id,
                {"status": "'restored'"})
        base = {k: row[k] for k in ("repaired_run", "source", "path", "predicate", "removed")}
        event(spark, root, removal_id, "restored", base,
               {p: (v["before"], v["after"]) for p, v in row["tables"].items()}, row["report"])
        return todo


def _restore_tables(spark: SparkSession, todo: dict[str, int], tag: str) -> None:
    """RESTORE each table to its version, ``RESTORE_THREADS`` tables at a time, each by
    one commit tagged ``tag``.

    A RESTORE is some 30 small Spark jobs (file lists of both versions, a missing-file
    check, metrics) whose driver-side pauses leave cores idle; tables restored side by
    side fill them (11 tables: 25-32 s one at a time, 18-21 s three at a time). All
    commits carry the same tag, so it is set once, around every thread, and cleared only
    after the last RESTORE has ended. The threads inherit the caller's Spark job group
    and properties. When a table fails, the tables not yet started are not started; the
    error names every table that failed and those restored, and calling restore again
    finishes the job (tables restored by a commit with this tag are skipped).
    """
    from delta.tables import DeltaTable
    from pyspark import inheritable_thread_target

    def one(path: str, before: int) -> None:
        committed(path, lambda: DeltaTable.forPath(spark, path).restoreToVersion(before),
                  f"restoring `{path}`")

    failed: dict[str, BaseException] = {}
    futures: dict[Any, str] = {}
    with tagged(spark, tag):
        pool = ThreadPoolExecutor(max_workers=RESTORE_THREADS)
        try:
            target = inheritable_thread_target(spark)(one)  # job properties and tags
            futures = {pool.submit(target, path, before): path for path, before in todo.items()}
            wait(futures, return_when=FIRST_EXCEPTION)
            for future in futures:
                future.cancel()  # not started yet: left for the next call
        finally:  # running RESTOREs end before the tag is cleared
            pool.shutdown(wait=True, cancel_futures=True)
        for future, path in futures.items():
            if not future.cancelled() and future.exception() is not None:
                failed[path] = future.exception()
    if failed:
        done = [p for f, p in futures.items() if not f.cancelled() and p not in failed]
        for path, err in failed.items():
            log.warning("restoring %s failed: %s", path, first_line(err))
        err = next(iter(failed.values()))
        raise RemovalError(
            f"restoring {listing(failed)} failed ({first_line(err)}); restored: "
            f"{listing(done)}. Call restore again to finish the job") from err
    for path in todo:
        if commit_version(spark, path, tag, latest_version(spark, path)) is None:
            raise RemovalError(f"restoring `{path}`: no commit tagged `{tag}` landed")


def _update(spark: SparkSession, root: str, table: str, cond: Column,
            values: dict[str, str] | None) -> None:
    """Delete (``values`` None) or update the rows of a store table ``cond`` picks."""
    from delta.tables import DeltaTable

    path = tables.table_path(root, table)

    def commit() -> None:
        t = DeltaTable.forPath(spark, path)
        t.delete(cond) if values is None else t.update(cond, values)

    committed(path, commit, f"updating the store table `{table}`")
