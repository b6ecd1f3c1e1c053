"""Answers are about the recorded run: pinned versions, stable ids, vacuumed data."""

from __future__ import annotations

from collections import Counter

import pytest
from delta.tables import DeltaTable
from pyspark.sql import functions as F

from hippo.errors import VersionUnavailableError

ROWS = [(1, "a", 1.0), (2, "a", 2.0), (3, "b", 3.0), (4, "b", None)]
SCHEMA = "id int, grp string, x double"


@pytest.fixture
def source(spark, tmp_path):
    path = str(tmp_path / "src")
    spark.createDataFrame(ROWS, SCHEMA).write.format("delta").save(path)
    return path


def _record(store, path, out, name="r"):
    with store.run(name) as run:
        src = run.source("src", path)
        run.sink("totals", src.groupBy("grp").agg(F.count(F.lit(1)).alias("n")), out)
    return run


def test_backward_and_forward_answer_for_the_version_the_run_read(spark, store, source, tmp_path):
    _record(store, source, str(tmp_path / "out"))
    table = DeltaTable.forPath(spark, source)
    table.delete("id = 1")
    table.update("id = 2", {"grp": F.lit("b")})
    spark.createDataFrame([(9, "a", 9.0)], SCHEMA).write.format("delta").mode("append").save(source)
    back = store.backward("totals", where="grp = 'a'")["src"]
    assert sorted(r.id for r in back.collect()) == [1, 2]
    fwd = store.forward("src", where="id = 1")["totals"]
    assert [(r.grp, r.n) for r in fwd.collect()] == [("a", 2)]


def test_source_ids_are_stable_across_runs_and_deletes_of_other_rows(spark, store, source, tmp_path):
    _record(store, source, str(tmp_path / "out1"), "first")
    first = {r.id: r.hippo_row_id for r in
             store.backward("totals", where="true")["src"].collect()}
    DeltaTable.forPath(spark, source).delete("id = 3")
    _record(store, source, str(tmp_path / "out2"), "second")
    second = {r.id: r.hippo_row_id for r in
              store.backward("totals", where="true")["src"].collect()}
    assert set(second) == {1, 2, 4}
    assert all(second[i] == first[i] for i in second)
    assert len(set(first.values())) == 4


def test_a_vacuumed_version_gives_a_clear_error(spark, store, source, tmp_path):
    _record(store, source, str(tmp_path / "out"))
    spark.createDataFrame(ROWS[:1], SCHEMA).write.format("delta").mode("overwrite").save(source)
    DeltaTable.forPath(spark, source).vacuum(0)
    with pytest.raises(VersionUnavailableError, match=r"version 0 of `.*src` is no longer readable"):
        store.backward("totals", where="grp = 'a'")


def test_a_dataframe_source_is_snapshotted_so_its_lineage_survives(spark, store, tmp_path):
    df = spark.createDataFrame(ROWS, SCHEMA)
    with store.run("snap") as run:
        src = run.source("mem", df)
        run.sink("kept", src.filter("x > 1.5"), str(tmp_path / "kept"))
    back = store.backward("kept", where="id = 3")["mem"]
    assert [(r.id, r.grp, r.x) for r in back.collect()] == [(3, "b", 3.0)]
    assert DeltaTable.isDeltaTable(spark, f"{store.path}/snapshots/{run.run_id}/mem")


def test_a_row_tracked_table_uses_deltas_own_row_ids(spark, store, tmp_path):
    path = str(tmp_path / "tracked")
    spark.createDataFrame(ROWS, SCHEMA).write.format("delta") \
        .option("delta.enableRowTracking", "true").save(path)
    expected = {r.id: r.row_id for r in
                spark.read.format("delta").load(path).select("id", "_metadata.row_id").collect()}
    DeltaTable.forPath(spark, path).delete("id = 1")
    _record(store, path, str(tmp_path / "out"))
    back = store.backward("totals", where="grp = 'b'")["src"].collect()
    assert {r.id: r.hippo_row_id for r in back} == {3: expected[3], 4: expected[4]}
    fwd = store.forward("src", where="id = 2")["totals"].collect()
    assert [(r.grp, r.n) for r in fwd] == [("a", 1)]


def test_plain_tables_are_read_as_parquet_and_answer_the_same(spark, store, source, tmp_path):
    from hippo.recorded.pinned import check_readable

    def file_format(df):
        leaf = df._jdf.queryExecution().analyzed().collectLeaves().head()
        return leaf.relation().fileFormat().getClass().getSimpleName()

    plain = check_readable(spark, source, 0, plain=True)
    delta = check_readable(spark, source, 0, plain=False)
    assert (file_format(plain), file_format(delta)) == ("ParquetFileFormat",
                                                        "DeltaParquetFileFormat")
    assert sorted(plain.collect()) == sorted(delta.collect())
    _record(store, source, str(tmp_path / "out"))
    back = store.backward("totals", where="grp = 'b'")["src"]
    assert sorted(r.id for r in back.collect()) == [3, 4]
    # A run reads it the same way (no Delta scan planning), to the same sink.
    with store.run("plain") as run:
        src = run.source("src", source)
        assert file_format(src.frame) == "ParquetFileFormat"
        run.sink("totals", src.groupBy("grp").agg(F.count(F.lit(1)).alias("n")),
                 str(tmp_path / "out2"))
    written = spark.read.format("delta").load(str(tmp_path / "out2")).collect()
    assert sorted((r.grp, r.n) for r in written) == [("a", 2), ("b", 2)]


@pytest.mark.parametrize("layout", ["deletion_vectors", "partitioned"])
def test_tables_parquet_alone_cannot_read_are_read_through_delta(spark, store, tmp_path, layout):
    # Rows deleted by a deletion vector are still in the Parquet file; partition values
    # are not in the files at all. Either way the answer must be what the run read.
    path = str(tmp_path / "src")
    writer = spark.createDataFrame(ROWS, SCHEMA).coalesce(1).write.format("delta")
    if layout == "deletion_vectors":
        writer.option("delta.enableDeletionVectors", "true").save(path)
        DeltaTable.forPath(spark, path).delete("id = 3")
        assert any(r.operationMetrics.get("numDeletionVectorsAdded", "0") != "0" for r in
                   DeltaTable.forPath(spark, path).history(1).collect())
    else:
        writer.partitionBy("grp").save(path)
    _record(store, path, str(tmp_path / "out"))
    back = store.backward("totals", where="true")["src"].collect()
    expected = {(i, g) for i, g, _ in ROWS if layout != "deletion_vectors" or i != 3}
    assert {(r.id, r.grp) for r in back} == expected
    # The run itself read the table through Delta too: its sink counts what Delta reads.
    written = spark.read.format("delta").load(str(tmp_path / "out")).collect()
    assert {r.grp: r.n for r in written} == dict(Counter(g for _, g in expected))


def test_files_read_from_the_log_are_the_ones_delta_lists(spark, tmp_path):
    """The driver-side replay of a short log (no Spark job) lists each version's files as
    Delta does; past a checkpoint, or with deletion vectors, it leaves the answer to Delta."""
    from hippo.recorded.pinned import read_pinned
    from hippo.store.delta_log import logged_files, read_plain

    path = str(tmp_path / "a b%c" / "t")  # names Delta escapes in its log
    for i in range(3):
        spark.createDataFrame(ROWS, SCHEMA).repartition(2).write.format("delta").mode(
            "append").save(path)
    DeltaTable.forPath(spark, path).delete("id = 1")  # removes files, adds rewritten ones
    for version in range(4):
        assert sorted(logged_files(spark, path, version)) == sorted(
            read_pinned(spark, path, version).inputFiles()), version
    plain = read_plain(spark, path, SCHEMA)
    assert Counter(plain.collect()) == Counter(spark.read.format("delta").load(path).collect())
    for _ in range(8):  # Delta checkpoints at version 10
        spark.createDataFrame(ROWS, SCHEMA).write.format("delta").mode("append").save(path)
    assert logged_files(spark, path, 3) is None
    assert read_plain(spark, path, SCHEMA) is None

    dv = str(tmp_path / "dv")
    spark.createDataFrame(ROWS, SCHEMA).write.format("delta").option(
        "delta.enableDeletionVectors", "true").save(dv)
    assert logged_files(spark, dv, 0) is None


def test_a_plain_read_of_many_files_lists_them_on_the_driver(spark, tmp_path):
    """Past Spark's listing threshold (32 paths) a Parquet read of named files would list
    them with a Spark job, at every run's source and every query's first read."""
    from hippo.recorded.pinned import check_readable

    path = str(tmp_path / "many")
    spark.range(0, 40, 1, 40).write.format("delta").save(path)  # a file per row
    tracker = spark.sparkContext.statusTracker()
    before = set(tracker.getJobIdsForGroup(None))
    df = check_readable(spark, path, 0, plain=True)
    assert len(df.inputFiles()) == 40
    assert set(tracker.getJobIdsForGroup(None)) == before
    assert sorted(r.id for r in df.collect()) == list(range(40))
    assert spark.conf.get("spark.sql.sources.parallelPartitionDiscovery.threshold") == "32"


def test_a_run_reads_a_long_logged_table_through_delta(spark, store, tmp_path):
    """Past a checkpoint the version's files are not listed from the log; a run does not
    ask Delta to list them (a job) but reads the version through Delta, and queries,
    which check the files exist, answer for it the same."""
    path = str(tmp_path / "long")
    for i in range(11):  # Delta checkpoints at version 10
        spark.createDataFrame([(i, "ab"[i % 2], float(i))], SCHEMA).write.format("delta") \
            .mode("append").save(path)
    with store.run("long") as run:
        src = run.source("src", path)
        leaf = src.frame._jdf.queryExecution().analyzed().collectLeaves().head()
        assert leaf.relation().fileFormat().getClass().getSimpleName() == \
            "DeltaParquetFileFormat"
        run.sink("totals", src.groupBy("grp").agg(F.count(F.lit(1)).alias("n")),
                 str(tmp_path / "out"))
    written = spark.read.format("delta").load(str(tmp_path / "out")).collect()
    assert sorted((r.grp, r.n) for r in written) == [("a", 6), ("b", 5)]
    back = store.backward("totals", where="grp = 'b'")["src"].collect()
    assert sorted(r.id for r in back) == [1, 3, 5, 7, 9]
