"""Reading a table as a run read it: pinned Delta version, ids added.

Used at capture time and again by every reader, so both see the same rows with the
same ids. A Delta path is pinned to the version read; a DataFrame source is first
snapshotted into the store (a Delta table of its own), then read the same way.
"""

from __future__ import annotations

import json

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from hippo.errors import HippoError, VersionUnavailableError, first_line
from hippo.recorded.ids import ID, RESERVED, content_hash, is_hidden, quoted
from hippo.recorded.steps import SourceInfo

__all__ = ["latest_version", "describe", "read_pinned", "read_source", "check_readable",
           "reserved_columns"]


def _snapshot(spark: SparkSession, path: str) -> tuple[int, dict[str, str]]:
    """The table's current version and properties, from Delta's cached log (no Spark job).

    ``DeltaTable.history`` and ``detail`` each run a small Spark job (~0.1-0.3 s); the
    log's ``update`` reads only the new commit files since the last call.
    """
    jvm = spark._jvm
    try:
        log = jvm.org.apache.spark.sql.delta.DeltaLog.forTable(spark._jsparkSession, path)
        empty = jvm.scala.Option.empty()
        snap = log.update(False, empty, empty)
        version = int(snap.version())
        conf = snap.metadata().configuration()
        key = "delta.enableRowTracking"
        props = {key: str(conf.apply(key))} if conf.contains(key) else {}
    except Exception as err:  # an unreadable path, or another Delta API: ask it plainly
        from delta.tables import DeltaTable

        if not DeltaTable.isDeltaTable(spark, path):
            raise HippoError(f"`{path}` is not a Delta table (no _delta_log there)") from err
        table = DeltaTable.forPath(spark, path)
        version = int(table.history(1).select("version").first()[0])
        props = table.detail().select("properties").first()[0] or {}
    if version < 0:
        raise HippoError(f"`{path}` is not a Delta table (no _delta_log there)")
    return version, props


def latest_version(spark: SparkSession, path: str) -> int:
    """The current version of the Delta table at ``path``."""
    return _snapshot(spark, path)[0]


def describe(spark: SparkSession, path: str) -> tuple[int, str]:
    """The table's current version and how its rows get ids.

    ``row_tracking`` when the table has Delta row tracking enabled (its stable row ids
    are read from ``_metadata.row_id``, at no cost), else ``content`` (a hash of the
    row's values). hippo never enables row tracking itself: that upgrades the table's
    protocol, which is the owner's decision.
    """
    version, props = _snapshot(spark, path)
    tracked = str(props.get("delta.enableRowTracking", "false")).lower() == "true"
    return version, "row_tracking" if tracked else "content"


def read_pinned(spark: SparkSession, path: str, version: int) -> DataFrame:
    """Version ``version`` of the Delta table at ``path``; a clear error if it is gone."""
    try:
        return spark.read.format("delta").option("versionAsOf", version).load(path)
    except Exception as err:  # Py4J/Delta raise several kinds for a missing version
        raise VersionUnavailableError(path, version, first_line(err)) from err


def check_readable(spark: SparkSession, path: str, version: int,
                   plain: bool = False) -> DataFrame:
    """The pinned version, or VersionUnavailableError if a data file of it was vacuumed.

    Lists the version's files on the driver (file names, not data) and checks each
    exists, so queries fail here with a clear message, not later inside a task.

    ``plain=True`` returns those files read as Parquet when that gives the same rows:
    a version whose protocol needs no reader features (reader version 1: no deletion
    vectors, no column mapping) and that has no partition columns. Delta plans every
    scan of a version with a Spark job over its log (file skipping by statistics,
    ~0.25 s each); a query plans several scans, so over small file lists Parquet's own
    row-group skipping is cheaper. The caller must not need Delta's ``_metadata``
    fields (row tracking ids).
    """
    df = read_pinned(spark, path, version)
    jvm = spark._jvm
    conf = spark._jsc.hadoopConfiguration()
    logged = _logged_files(spark, path, version)
    files = df.inputFiles() if logged is None else logged
    for name in files:
        jpath = jvm.org.apache.hadoop.fs.Path(name)
        if not jpath.getFileSystem(conf).exists(jpath):
            raise VersionUnavailableError(path, version, f"data file `{name}` was removed, "
                                                         "e.g. by VACUUM")
    if (plain and files and len(files) <= _PLAIN_FILES
            and not any(set(name) & _GLOB for name in files)  # Spark would glob them
            and _plain_parquet(spark, path, version)):
        return spark.read.schema(df.schema).parquet(*files)
    return df


# A log of more commits than this (and no checkpoint) is left to Delta to read.
_LOGGED_COMMITS = 32


def _logged_files(spark: SparkSession, path: str, version: int) -> list[str] | None:
    """The data files of version ``version``, read from the table's JSON commits on the
    driver; None (ask Delta) unless the log is that simple: no checkpoint yet, at most
    ``_LOGGED_COMMITS`` commits, every one of them present, and a protocol that needs
    no reader features (so no deletion vectors).

    Delta answers ``inputFiles`` with a Spark job over its log (~0.5-0.8 s even for one
    file), and every query checks each table it reads; replaying a few commit files
    (adds less removes, in order, as the Delta protocol defines them) takes
    milliseconds.
    """
    from urllib.parse import unquote

    if version > _LOGGED_COMMITS:
        return None
    jvm = spark._jvm
    try:
        Path = jvm.org.apache.hadoop.fs.Path
        log_dir = Path(path.rstrip("/") + "/_delta_log")
        fs = log_dir.getFileSystem(spark._jsc.hadoopConfiguration())
        if fs.exists(Path(log_dir, "_last_checkpoint")):
            return None
        active: dict[str, str] = {}
        reader = None
        for v in range(version + 1):
            stream = fs.open(Path(log_dir, f"{v:020d}.json"))
            try:
                text = str(jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8"))
            finally:
                stream.close()
            for line in text.splitlines():
                if not line.strip():
                    continue
                action = json.loads(line)
                if "add" in action:
                    active[action["add"]["path"]] = action["add"]["path"]
                elif "remove" in action:
                    active.pop(action["remove"]["path"], None)
                elif "protocol" in action:
                    reader = int(action["protocol"].get("minReaderVersion", 0))
    except Exception:  # a commit cleaned up, another filesystem's surprise: ask Delta
        return None
    if reader != 1:
        return None
    root = str(fs.makeQualified(Path(path.rstrip("/"))).toString()).rstrip("/")
    out = []
    for name in active:
        if "://" in name or name.startswith(("file:", "/")):
            out.append(str(Path(jvm.java.net.URI(name)).toString()))
        else:
            out.append(f"{root}/{unquote(name)}")
    return out


# Above this many files, Delta's statistics skip whole files before any task starts,
# which beats opening every file's footer.
_PLAIN_FILES = 64
_GLOB = set("*?[]{}\\")


def _plain_parquet(spark: SparkSession, path: str, version: int) -> bool:
    try:
        log = spark._jvm.org.apache.spark.sql.delta.DeltaLog.forTable(spark._jsparkSession, path)
        snap = log.getSnapshotAt(version, spark._jvm.scala.Option.empty(),
                                 spark._jvm.scala.Option.empty(), False)
        return (int(snap.protocol().minReaderVersion()) == 1
                and snap.metadata().partitionColumns().isEmpty())
    except Exception:  # another Delta API: keep the Delta read
        return False


def reserved_columns(columns: list[str], what: str) -> None:
    """HippoError if a user column takes a name hippo reserves."""
    clash = [c for c in columns if is_hidden(c.lower()) or c.lower() in RESERVED]
    if clash:
        raise HippoError(
            f"{what} has column(s) {', '.join(f'`{c}`' for c in clash)} whose names hippo "
            "reserves (`hippo_row_id`, and the prefixes `__hippo_` and `__hs_`); rename "
            "them, e.g. with `.withColumnRenamed(...)`")


def read_source(spark: SparkSession, info: SourceInfo, slot: str,
                pinned: DataFrame | None = None) -> DataFrame:
    """The source's rows as the run read them, with ``__hippo_id`` and its slot column.

    ``pinned`` is the source's pinned version when the caller has already read it.
    """
    df = pinned if pinned is not None else read_pinned(spark, info.path, info.version)
    reserved_columns(df.columns, f"source `{info.name}`")
    if info.ids == "row_tracking":
        ids = F.col("_metadata.row_id")
    else:
        ids = content_hash([quoted(c) for c in df.columns], "row")
    return df.withColumn(ID, ids).withColumn(slot, F.col(ID))

