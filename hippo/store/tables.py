"""The store's Delta tables: where they live, their schemas, creation, appends, reads.

A store is a folder of plain Delta tables that any Delta reader can open:

* ``runs``: one row per finished run: its id, name, params, status, times, versions,
  the Delta version each sink was written as (``sinks``), the format version of its
  stored JSON (``format``), and its ``steps``, one element per source read, step and
  sink write (lineage type, column mapping, encoding, spec, lineage state, code
  location, details). A run's metadata is this one row, so it lands in one commit;
* ``sink_rows``: per written output row of an *explicit* sink of more than 1,000 rows
  (fewer are kept in the run's row), its id, a hash of its values (to find it in the
  sink as written) and its slot ids. Written before the run's row, so invisible until
  the run commits;
* ``snapshots/<run_id>/<source>``: DataFrame sources, copied so their lineage stays
  answerable;
* ``quarantine``: source rows a removal took out (as JSON of their columns), with the
  removal's id, so nothing removed is ever destroyed;
* ``removals``: one row per removal: what it removed from which source, the run it
  repaired (and the run it recorded), each table's version before and after, how each
  sink was repaired, and whether it has been restored.

Tables are created once, with fixed schemas (Delta's ``createIfNotExists``), never
widened. This module is Delta table I/O only: it knows nothing of what the rows mean.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, DataFrameWriter, SparkSession

from hippo.errors import NotAStoreError, StoreFormatError, first_line
from hippo.session import session_conf
from hippo.store.commits import committed, is_local, local_path, table_lock
from hippo.store.delta_log import checkpoint, checkpoint_lag, read_plain
from hippo.store.row_commit import arrow_rows, prepare_commit

__all__ = [
    "RUNS", "SINK_ROWS", "QUARANTINE", "REMOVALS", "SCHEMAS", "COMPRESSION", "STEP_TYPE", "table_path",
    "snapshot_path", "create_tables", "append_rows", "append_frame", "local_frame", "read_table",
    "check_store", "checkpoint_due", "CHECKPOINT_EVERY",
]

log = logging.getLogger(__name__)

RUNS = "runs"
SINK_ROWS = "sink_rows"
QUARANTINE = "quarantine"
REMOVALS = "removals"

# A run's steps are one JSON array (hippo.recorded.steps.pack_steps). Any Delta reader
# gets them as rows with ``inline(from_json(steps, 'array<STEP_TYPE>'))``: the fields
# holding JSON objects (lineage, spec, state, detail) come back as their JSON text.
STEP_TYPE = (
    "struct<op_id: int, step: string, inputs: array<int>, kinds: array<string>, "
    "lineage: string, spec: string, state: string, columns: array<string>, "
    "deterministic: boolean, code_location: string, detail: string>"
)
SCHEMAS = {
    RUNS: (
        "run_id string, name string, params string, status string, started_at timestamp, "
        "ended_at timestamp, code_version string, spark_version string, "
        "hippo_version string, error string, sinks map<string,bigint>, format int, "
        "steps string"
    ),
    SINK_ROWS: (
        "run_id string, sink string, hippo_row_id bigint, row_hash bigint, "
        "slots array<bigint>"
    ),
    QUARANTINE: (
        "removal_id string, source string, path string, version bigint, "
        "hippo_row_id bigint, row string"
    ),
    REMOVALS: (
        "removal_id string, repaired_run string, source string, path string, "
        "predicate string, removed bigint, at timestamp, status string, "
        "tables map<string, struct<before: bigint, after: bigint>>, report string"
    ),
}

# Parquet codec of the store's tables: their files are mostly JSON text, which zstd packs
# tighter than Spark's default snappy (stores 11-18% smaller in the bench).
COMPRESSION = "zstd"
# Delta keeps min/max statistics of the first 32 columns of every file in its log; for
# the store's JSON columns they are bytes nothing ever skips by.
_STATS_COLUMNS = {RUNS: "run_id,status,ended_at", SINK_ROWS: "run_id,sink,hippo_row_id,row_hash",
                  QUARANTINE: "removal_id,source,hippo_row_id", REMOVALS: "removal_id,status"}
# Parquet's own min/max statistics, kept three times per column chunk (footer, page
# header, column index), are most of a one-row file of long JSON strings: 14.2 KiB of a
# run row came down to 8.6 KiB without them. A Delta table's properties reach the
# Parquet writer's settings, so they are switched off per table, for the tables and
# columns no reader skips by (sink_rows keeps them: queries look rows up by id).
# Dictionary pages only repeat long unique strings; zstd level 9 packs a run row 15%
# tighter than the default 3 at no measurable cost (level 19 took 0.5 s more per commit,
# setting its compressor up, for 4% less).
_ONE_ROW_FILES = {"parquet.column.statistics.enabled": "false",
                  "parquet.enable.dictionary": "false",
                  "parquet.compression.codec.zstd.level": "9"}
# Delta checkpoints a table's log every 10 commits by default, inside the commit that
# reaches the count: 1.2-4.6 s of Spark jobs, and as much again in the next commit,
# which rebuilds the table's state from the checkpoint (no checksum file to start
# from, see below). On the runs table that is every tenth run's exit: a one-row commit
# averaged 0.51 s instead of its median 0.18 s. The tables hippo appends to on every
# run never checkpoint in a commit; a run's background thread checkpoints them once
# CHECKPOINT_EVERY commits have gathered (:func:`checkpoint_due`).
_MANUAL_CHECKPOINTS = {"delta.checkpointInterval": "1000000000"}
CHECKPOINT_EVERY = int(os.environ.get("HIPPO_CHECKPOINT_EVERY", "50"))
_TABLE_PROPERTIES = {
    RUNS: {**_ONE_ROW_FILES, **_MANUAL_CHECKPOINTS},
    REMOVALS: _ONE_ROW_FILES,
    QUARANTINE: {"parquet.column.statistics.enabled#row": "false"},
    SINK_ROWS: _MANUAL_CHECKPOINTS,
}
# Delta writes a checksum file (the table's state: size, metadata, file list) after each
# commit; readers do without it. For the store's tables it was ~5 KiB more per run,
# growing with the table's files, and ~0.04 s of each commit. A session setting, so it
# is off only around hippo's own commits (a user's write in another thread meanwhile
# would skip its checksum file too, which Delta tolerates).
_COMMIT_SETTINGS = {"spark.databricks.delta.writeChecksumFile.enabled": "false"}


def table_path(root: str, table: str) -> str:
    return str(Path(root) / table) if "://" not in root else f"{root.rstrip('/')}/{table}"


def snapshot_path(root: str, run_id: str, source: str) -> str:
    return table_path(root, f"snapshots/{run_id}/{source}")


def _is_delta(spark: SparkSession, path: str) -> bool:
    from delta.tables import DeltaTable

    return bool(DeltaTable.isDeltaTable(spark, path))


# Store tables this process has seen exist (created or checked), so each run and query
# does not ask Delta again: a table, once created, is never dropped by hippo. A user may
# delete a local store's folder and record into it again in the same process, so there
# a cached table counts only while its log is still on disk.
_EXISTING: set[str] = set()


def _known(cache: set[str], path: str) -> bool:
    """Whether ``path`` is in ``cache`` and, if local, still has its ``_delta_log`` (a
    stat, no Spark)."""
    if path not in cache:
        return False
    if not is_local(path):
        return True
    return os.path.isdir(os.path.join(local_path(path), "_delta_log"))


def create_tables(spark: SparkSession, root: str, names: tuple[str, ...] = (RUNS,)) -> None:
    """Create the store tables ``names`` that do not exist yet (any number of processes
    may call this at once); refuse a folder that holds something else. ``sink_rows`` is
    created before a run first stores rows in it, so stores that never need it do not
    carry an empty table."""
    from delta.tables import DeltaTable
    from pyspark.sql.types import StructType

    if all(_known(_EXISTING, table_path(root, t)) for t in names):
        return
    check_store(spark, root)
    for table in names:
        path = table_path(root, table)
        if _known(_EXISTING, path) or _is_delta(spark, path):
            _EXISTING.add(path)
            continue
        schema = StructType.fromDDL(SCHEMAS[table])

        def create(path: str = path, table: str = table, schema: StructType = schema) -> None:
            builder = (DeltaTable.createIfNotExists(spark).location(path).addColumns(schema)
                       .property("delta.dataSkippingStatsColumns", _STATS_COLUMNS[table]))
            for key, value in _TABLE_PROPERTIES[table].items():
                builder = builder.property(key, value)
            with session_conf(spark, _COMMIT_SETTINGS):
                builder.execute()

        committed(path, create, f"creating the store table `{table}`")
        _EXISTING.add(path)


_CHECKED: set[str] = set()  # runs tables this process has checked are of this layout


def check_store(spark: SparkSession, root: str) -> bool:
    """Whether ``root`` holds a store (False: nothing there yet). NotAStoreError if the
    folder holds other things; StoreFormatError for a store of an older layout."""
    runs = table_path(root, RUNS)
    if _known(_CHECKED, runs):
        return True
    if _is_delta(spark, runs):
        fields = {f.name: f.dataType.simpleString()
                  for f in spark.read.format("delta").load(runs).schema.fields}
        if fields.get("steps") != "string":
            where = ("in a separate `operators` table" if "steps" not in fields
                     else "an array of structs, not one JSON text")
            raise StoreFormatError(
                f"`{root}` is a store of an older layout (its steps are {where}); "
                "record into a new folder to use this hippo")
        _CHECKED.add(runs)
        return True
    if "://" not in root and os.path.isdir(root):
        found = [n for n in os.listdir(root) if not n.startswith((".", "_"))]
        if set(found) - {RUNS, SINK_ROWS, QUARANTINE, REMOVALS, "snapshots"}:
            raise NotAStoreError(root, found)
    return False


def append_rows(spark: SparkSession, root: str, table: str, rows: list[dict[str, Any]]) -> None:
    """Append metadata rows (a handful per run) in one Delta transaction: their file
    written on the driver and committed through Delta's transaction API, no Spark job
    (:mod:`hippo.store.row_commit`); through a Spark write if this Delta lacks that API."""
    if not rows:
        return
    path = table_path(root, table)
    try:
        commit = prepare_commit(spark, path, rows, SCHEMAS[table],
                                _STATS_COLUMNS[table].split(","), _TABLE_PROPERTIES[table])
    except Exception as err:  # noqa: BLE001 -- another Delta: append as a DataFrame
        log.debug("appending to `%s` through Spark: %s", path, first_line(err))
        append_frame(local_frame(spark, rows, SCHEMAS[table]).coalesce(1), root, table)
        return

    def save() -> None:
        with session_conf(spark, _COMMIT_SETTINGS):
            commit()

    committed(path, save, f"appending to the store table `{table}`")


def append_frame(df: DataFrame, root: str, table: str, **options: str) -> None:
    """Append ``df`` (the table's schema) to a store table in one Delta transaction."""
    path = table_path(root, table)
    writer: DataFrameWriter = (df.write.format("delta").mode("append")
                               .option("compression", COMPRESSION))
    for key, value in options.items():
        writer = writer.option(key, value)

    def save() -> None:
        with session_conf(df.sparkSession, _COMMIT_SETTINGS):
            writer.save(path)

    committed(path, save, f"appending to the store table `{table}`")


def checkpoint_due(spark: SparkSession, root: str) -> None:
    """Checkpoint the store tables appended to on every run (runs, sink_rows) whose
    log has gathered CHECKPOINT_EVERY commits since their last checkpoint, under the
    table's commit lock, and load the new state, so the next commit does not rebuild
    it. Run on a run's background thread; a failure only leaves the log longer.

    Only tables this process has created or appended to are looked at (a process that
    never writes ``sink_rows`` leaves it to those that do): no Delta call per run to
    find out whether a table exists."""
    for table in (RUNS, SINK_ROWS):
        path = table_path(root, table)
        if not _known(_EXISTING, path):
            continue
        try:
            if checkpoint_lag(spark, path) < CHECKPOINT_EVERY:
                continue
            with table_lock(path):  # another process may have just made it
                if checkpoint_lag(spark, path) >= CHECKPOINT_EVERY:
                    checkpoint(spark, path)
        except Exception as err:  # noqa: BLE001 -- reads stay correct without it
            log.warning("could not checkpoint the store table `%s`: %s", path,
                        first_line(err))


def local_frame(spark: SparkSession, rows: list[dict[str, Any]], ddl: str) -> DataFrame:
    """A DataFrame of a few rows made on the driver, converted through Arrow.

    ``createDataFrame`` of Python rows runs a Python worker task to convert them, about
    0.2 s of each metadata append; from an Arrow table the JVM reads the rows directly.
    Naive datetimes are UTC.
    """
    from pyspark.sql.types import DataType

    return spark.createDataFrame(arrow_rows(rows, ddl), DataType.fromDDL(ddl))


def read_table(spark: SparkSession, root: str, table: str) -> DataFrame:
    """The table's latest version, or an empty DataFrame of its schema if the store has
    none yet. Read as plain Parquet while its log is short (hippo's tables have no
    partitions or reader features): Delta would plan the scan with a Spark job."""
    path = table_path(root, table)
    if check_store(spark, root) and _is_delta(spark, path):
        plain = read_plain(spark, path, SCHEMAS[table])
        return plain if plain is not None else spark.read.format("delta").load(path)
    return spark.createDataFrame([], SCHEMAS[table])
