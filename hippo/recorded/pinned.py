"""Reading a table as a run read it: pinned Delta version, ids added.

Used at capture time and again by every reader, so both see the same rows with the
same ids. A Delta path is pinned to the version read; a DataFrame source is first
snapshotted into the store (a Delta table of its own), then read the same way.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from hippo.errors import HippoError, VersionUnavailableError, first_line
from hippo.recorded.ids import ID, RESERVED, content_hash, is_hidden, quoted
from hippo.recorded.steps import SourceInfo
from hippo.session import jclass
from hippo.store.delta_log import (
    latest_version,
    logged_files,
    plain_files,
    read_files,
    table_state,
)

__all__ = ["latest_version", "describe", "read_pinned", "read_source", "check_readable",
           "reserved_columns"]


def describe(spark: SparkSession, path: str) -> tuple[int, str]:
    """The table's current version and how its rows get ids.

    ``row_tracking`` when the table has Delta row tracking enabled (its stable row ids
    are read from ``_metadata.row_id``, at no cost), else ``content`` (a hash of the
    row's values). hippo never enables row tracking itself: that upgrades the table's
    protocol, which is the owner's decision.
    """
    version, props = table_state(spark, path)
    tracked = str(props.get("delta.enableRowTracking", "false")).lower() == "true"
    return version, "row_tracking" if tracked else "content"


def read_pinned(spark: SparkSession, path: str, version: int) -> DataFrame:
    """Version ``version`` of the Delta table at ``path``; a clear error if it is gone."""
    try:
        return spark.read.format("delta").option("versionAsOf", version).load(path)
    except Exception as err:  # Py4J/Delta raise several kinds for a missing version
        raise VersionUnavailableError(path, version, first_line(err)) from err


def check_readable(spark: SparkSession, path: str, version: int,
                   plain: bool = False, ask_delta: bool = True) -> DataFrame:
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

    The files are listed from the table's JSON commits while its log is short; past
    that, Delta lists them with a Spark job. ``ask_delta=False`` skips that job and
    returns the Delta read unchecked instead: a run reading the version it has just
    looked up, for which the listing would be a job of its own, before its Delta scan
    planning whenever the files turn out too many to read as Parquet.
    """
    df = read_pinned(spark, path, version)
    jvm = spark._jvm
    conf = spark._jsc.hadoopConfiguration()
    logged = logged_files(spark, path, version)
    if logged is None and not ask_delta:
        return df
    files = df.inputFiles() if logged is None else logged
    for name in files:
        jpath = jclass(jvm, "org.apache.hadoop.fs.Path")(name)
        if not jpath.getFileSystem(conf).exists(jpath):
            raise VersionUnavailableError(path, version, f"data file `{name}` was removed, "
                                                         "e.g. by VACUUM")
    if plain and files and plain_files(files) and _plain_parquet(spark, path, version):
        return read_files(spark, files, df.schema)
    return df


def _plain_parquet(spark: SparkSession, path: str, version: int) -> bool:
    try:
        log = jclass(spark._jvm, "org.apache.spark.sql.delta.DeltaLog").forTable(
            spark._jsparkSession, path)
        empty = jclass(spark._jvm, "scala.Option").empty()
        snap = log.getSnapshotAt(version, empty, empty, False)
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

