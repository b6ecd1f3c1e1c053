"""What removal and restore share: the ``removals`` table, tagged Delta commits, the lock.

Every commit a removal makes carries its id (``restore-<id>`` for its restore) as Delta's
``userMetadata``, so a restore can tell which tables an interrupted removal reached, and
a second restore which tables the first one already restored.
"""

from __future__ import annotations

import datetime as _dt
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from hippo.errors import RemovalError
from hippo.session import session_conf
from hippo.store import tables
from hippo.store.commits import commit_version, committed, table_lock
from hippo.store.delta_log import latest_version

__all__ = ["now", "tagged", "commit", "event", "restored_to", "fault", "removal_lock",
           "removals", "incomplete"]


def now() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC).replace(tzinfo=None)


@contextmanager
def tagged(spark: SparkSession, tag: str) -> Iterator[None]:
    """Commits made inside carry ``tag`` as their ``userMetadata``."""
    with session_conf(spark, {"spark.databricks.delta.commitInfo.userMetadata": tag}):
        yield


def commit(spark: SparkSession, path: str, tag: str, what: str, fn: Any) -> int:
    """Run one tagged Delta commit on ``path``; the version it made."""
    def run() -> int:
        with tagged(spark, tag):
            fn()
        return latest_version(spark, path)

    latest = committed(path, run, what)
    version = commit_version(spark, path, tag, latest)
    if version is None:
        raise RemovalError(f"{what}: no commit tagged `{tag}` landed in `{path}`")
    return version


def fault(point: str) -> None:
    """Fault injection for tests: ``HIPPO_FAULT=<point>`` kills the process there."""
    if os.environ.get("HIPPO_FAULT") == point:
        os.kill(os.getpid(), signal.SIGKILL)


def event(spark: SparkSession, root: str, removal_id: str, status: str, base: dict[str, Any],
           versions: dict[str, tuple[int | None, int | None]], report: str | None) -> None:
    """Append one event of a removal (``started``, ``applied``, ``restored``)."""
    tables.append_rows(spark, root, tables.REMOVALS, [{
        **base, "removal_id": removal_id, "at": now(), "status": status,
        "tables": {p: {"before": b, "after": a} for p, (b, a) in versions.items()},
        "report": report,
    }])


def restored_to(spark: SparkSession, path: str, version: int) -> bool:
    """Whether the table's latest commit restored it to ``version`` (same data)."""
    from delta.tables import DeltaTable

    last = DeltaTable.forPath(spark, path).history(1).select(
        "operation", "operationParameters").first()
    return (last is not None and last["operation"] == "RESTORE"
            and str((last["operationParameters"] or {}).get("version")) == str(version))


@contextmanager
def removal_lock(root: str) -> Iterator[None]:
    """One removal or restore at a time per store, across processes."""
    with table_lock(root.rstrip("/") + "/#removals"):
        yield


# -- restore ---------------------------------------------------------------------------

def removals(spark: SparkSession, root: str) -> DataFrame:
    """Each removal's latest event: ``started`` (interrupted, or under way), ``applied``
    or ``restored``, with its source, predicate, counts and table versions."""
    from pyspark.sql import Window

    events = tables.read_table(spark, root, tables.REMOVALS)
    latest = Window.partitionBy("removal_id").orderBy(F.col("at").desc())
    return (events.withColumn("__n", F.row_number().over(latest)).filter("__n = 1")
            .drop("__n").orderBy("at"))


def incomplete(spark: SparkSession, root: str) -> list[str]:
    """Ids of removals whose process stopped before they were applied."""
    return [r.removal_id for r in removals(spark, root).filter(F.col("status") == "started")
            .select("removal_id").collect()]
