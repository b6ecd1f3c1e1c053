"""A few rows appended to a Delta table in one commit, without a Spark job.

``df.write.format("delta").mode("append")`` of a run's one row took 139-179 ms here
(median), most of it the Spark job that writes one file and gathers its statistics.
The store's metadata appends (a run's row, a removal's row) are a handful of rows made
on the driver, so hippo writes their Parquet file there with pyarrow, through Hadoop's
FileSystem (any filesystem Spark reaches), and commits it with Delta's own
``OptimisticTransaction``: the same conflict checks, the same atomic commit file, an
``add`` action with the statistics Delta reads for file skipping. 61 ms median.

The commit is the only step that makes anything visible: a file written and never
committed is an orphan that ``VACUUM`` removes, as after a failed Spark write.

Not checked: that ``rows`` fit the table's schema (the callers are hippo's own, with
fixed schemas). Statistics are kept only for the table's skipping columns that are
strings of at most 32 characters or integers (Delta truncates longer strings and
timestamps): null counts for every one, minimum and maximum for those; a column without
them is never skipped, which is always correct.
"""

from __future__ import annotations

import io
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

from pyspark.sql import SparkSession

from hippo.session import jclass
from hippo.store.delta_log import table_log

__all__ = ["prepare_commit", "arrow_rows"]

_STRING_STATS = 32  # Delta's prefix length for string statistics


def arrow_rows(rows: list[dict[str, Any]], ddl: str) -> Any:
    """``rows`` as a pyarrow Table of the Spark schema ``ddl`` (naive datetimes are UTC)."""
    import pyarrow as pa
    from pyspark.sql.pandas.types import to_arrow_schema
    from pyspark.sql.types import DataType

    return pa.Table.from_pylist(rows, schema=to_arrow_schema(DataType.fromDDL(ddl)))


def _parquet(rows: list[dict[str, Any]], ddl: str, properties: dict[str, str]) -> bytes:
    """``rows`` as the bytes of one Parquet file, written as Spark would with the
    table's Parquet properties (statistics, dictionary, zstd level)."""
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(
        arrow_rows(rows, ddl), buffer, compression="zstd",
        compression_level=int(properties.get("parquet.compression.codec.zstd.level", "3")),
        use_dictionary=properties.get("parquet.enable.dictionary", "true") != "false",
        write_statistics=properties.get("parquet.column.statistics.enabled", "true") != "false")
    return buffer.getvalue()


def _stats(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """Delta's file statistics of ``rows`` for the skipping ``columns``."""
    low: dict[str, Any] = {}
    high: dict[str, Any] = {}
    nulls: dict[str, int] = {}
    for column in columns:
        values = [r.get(column) for r in rows]
        present = [v for v in values if v is not None]
        nulls[column] = len(values) - len(present)
        numbers = all(isinstance(v, int) and not isinstance(v, bool) for v in present)
        short = all(isinstance(v, str) and len(v) <= _STRING_STATS for v in present)
        if present and (numbers or short):
            low[column], high[column] = min(present), max(present)
    return json.dumps({"numRecords": len(rows), "minValues": low, "maxValues": high,
                       "nullCount": nulls})


def prepare_commit(spark: SparkSession, path: str, rows: list[dict[str, Any]], ddl: str,
                   stats_columns: list[str], properties: dict[str, str]
                   ) -> Callable[[], int]:
    """Write ``rows`` (of the table's schema ``ddl``) as a new file of the Delta table
    at ``path`` and return the commit that adds it (one Delta transaction, its version),
    to be run under the table's commit lock and retried on conflicts.

    Raises before anything is committed if this Delta has another API than the one
    used here; the caller then appends through Spark."""
    jvm = spark._jvm
    data = _parquet(rows, ddl, properties)
    name = f"part-00000-{uuid.uuid4()}-c000.zstd.parquet"
    add = {"add": {"path": name, "partitionValues": {}, "size": len(data),
                   "modificationTime": int(time.time() * 1000), "dataChange": True,
                   "stats": _stats(rows, stats_columns)}}
    # The Delta calls that could be missing in another Delta come before the file is
    # written, so a fallback to Spark leaves nothing behind.
    operation = _append_operation(jvm)
    actions = jvm.java.util.ArrayList()
    actions.add(jclass(jvm, "org.apache.spark.sql.delta.actions.Action").fromJson(json.dumps(add)))
    to_scala = jclass(jvm, "scala.jdk.javaapi.CollectionConverters").asScala

    hadoop_path = jclass(jvm, "org.apache.hadoop.fs.Path")(f"{path.rstrip('/')}/{name}")
    fs = hadoop_path.getFileSystem(spark._jsc.hadoopConfiguration())
    out = fs.create(hadoop_path, False)
    try:
        out.write(bytearray(data))
    finally:
        out.close()

    def commit() -> int:
        txn = table_log(spark, path).startTransaction()
        return int(txn.commit(to_scala(actions).toSeq(), operation))

    return commit


def _append_operation(jvm: Any) -> Any:
    """Delta's ``WRITE`` operation in append mode, what a DataFrame append records in
    the table's history. Its case class gains optional fields between Delta versions:
    every field after the mode is left empty."""
    name = "org.apache.spark.sql.delta.DeltaOperations$Write"
    constructors = jvm.py4j.reflection.ReflectionUtil.classForName(name).getConstructors()
    fields = len(constructors[0].getParameterTypes())
    empty = jclass(jvm, "scala.Option").empty()
    append = jclass(jvm, "org.apache.spark.sql.SaveMode").Append
    return jclass(jvm, name)(append, *[empty] * (fields - 1))
