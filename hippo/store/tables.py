"""The store's Delta tables: where they live, their schemas, appends and reads.

A store is a folder of plain Delta tables that any Delta reader can open:

* ``runs``: one row per finished run (status ``succeeded`` or ``failed``), with the
  Delta version each sink was written as (``sinks``);
* ``operators``: one row per step of a run: lineage type, column mapping, encoding,
  replay spec, the carried lineage state, code location, and source/sink details;
* ``sink_rows``: per written output row of a sink computed through an aggregate, its
  id, a hash of its values (to find it in the sink as written) and its slot ids (where
  its lineage continues; the slot names are in the sink's ``operators`` row,
  ``detail.sink.slots``). Other sinks store nothing per row: their rows replay exactly
  from the pinned sources, so queries rebuild the same three columns;
* ``snapshots/<run_id>/<source>``: DataFrame sources, copied so their lineage stays
  answerable.

The ``runs`` row is written last, so a run whose lineage is only partly written is
never visible as a successful run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, DataFrameWriter, SparkSession
from pyspark.sql import functions as F

from hippo.capture.ids import ID, content_hash, quoted

__all__ = [
    "RUNS",
    "OPERATORS",
    "SINK_ROWS",
    "SCHEMAS",
    "table_path",
    "snapshot_path",
    "COMPRESSION",
    "append_rows",
    "appender",
    "read_table",
    "sink_rows_of",
]

RUNS = "runs"
OPERATORS = "operators"
SINK_ROWS = "sink_rows"

SCHEMAS = {
    RUNS: (
        "run_id string, name string, params string, status string, started_at timestamp, "
        "ended_at timestamp, code_version string, spark_version string, "
        "hippo_version string, error string, sinks map<string,bigint>"
    ),
    OPERATORS: (
        "run_id string, op_id int, step string, inputs array<int>, kinds array<string>, "
        "lineage string, spec string, state string, columns array<string>, "
        "deterministic boolean, code_location string, detail string"
    ),
    SINK_ROWS: (
        "run_id string, sink string, hippo_row_id bigint, row_hash bigint, "
        "slots array<bigint>"
    ),
}


# Parquet codec of the store's tables: their files are mostly JSON text, which zstd packs
# tighter than Spark's default snappy (stores 11-18% smaller in the bench).
COMPRESSION = "zstd"
# Delta keeps min/max statistics of the first 32 columns of every file in its log; for
# the store's JSON columns they are bytes nothing ever skips by.
_STATS_COLUMNS = {RUNS: "run_id", OPERATORS: "run_id,op_id",
                  SINK_ROWS: "run_id,sink,hippo_row_id,row_hash"}


def table_path(root: str, table: str) -> str:
    return str(Path(root) / table) if "://" not in root else f"{root.rstrip('/')}/{table}"


def snapshot_path(root: str, run_id: str, source: str) -> str:
    return table_path(root, f"snapshots/{run_id}/{source}")


def append_rows(spark: SparkSession, root: str, table: str, rows: list[dict[str, Any]]) -> None:
    """Append metadata rows (a handful per run) in one Delta transaction."""
    if not rows:
        return
    df = _local_frame(spark, rows, SCHEMAS[table]).coalesce(1)
    appender(df, table).option("mergeSchema", "true").save(table_path(root, table))


def appender(df: DataFrame, table: str) -> DataFrameWriter:
    """A Delta append of ``df`` to a store table: ``COMPRESSION`` Parquet and, when the
    append creates the table, file statistics only on the columns queries filter by."""
    return (df.write.format("delta").mode("append").option("compression", COMPRESSION)
            .option("delta.dataSkippingStatsColumns", _STATS_COLUMNS[table]))


def _local_frame(spark: SparkSession, rows: list[dict[str, Any]], ddl: str) -> DataFrame:
    """A DataFrame of a few rows made on the driver, converted through Arrow.

    ``createDataFrame`` of Python rows runs a Python worker task to convert them, about
    0.2 s of each metadata append; from an Arrow table the JVM reads the rows directly.
    Naive datetimes are UTC (see ``Run``).
    """
    import pyarrow as pa
    from pyspark.sql.pandas.types import to_arrow_schema
    from pyspark.sql.types import DataType

    schema = DataType.fromDDL(ddl)
    arrow = pa.Table.from_pylist(rows, schema=to_arrow_schema(schema))
    return spark.createDataFrame(arrow, schema)


def sink_rows_of(df: DataFrame, user: list[str], slots: list[str]) -> DataFrame:
    """``hippo_row_id``, ``row_hash`` and ``slots`` of a sink's rows (with hidden columns).

    Used to store them (explicit sinks) and to rebuild them from a replay (the others).
    """
    cols = [quoted(c) for c in user]
    return df.select(
        F.col(ID).alias("hippo_row_id"),
        content_hash(cols, "row").alias("row_hash"),
        F.array(*[F.col(s) for s in slots]).cast("array<bigint>").alias("slots"),
    )


def read_table(spark: SparkSession, root: str, table: str) -> DataFrame:
    """The table, or an empty DataFrame of its schema if nothing was written yet."""
    from delta.tables import DeltaTable

    path = table_path(root, table)
    if DeltaTable.isDeltaTable(spark, path):
        return spark.read.format("delta").load(path)
    return spark.createDataFrame([], SCHEMAS[table])
