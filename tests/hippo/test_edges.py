"""Edges a user meets: vacuumed data mid-session, folders that are not stores, stored
formats from another hippo, reserved column names, cells made by rows alone, and
``strict = false``."""

from __future__ import annotations

import logging

import pytest
from delta.tables import DeltaTable
from pyspark.sql import functions as F

import hippo
from hippo.errors import (
    HippoError,
    InvalidWhereError,
    NotAStoreError,
    StoreFormatError,
    VersionUnavailableError,
)
from hippo.recorded.spec import FORMAT, spec_from_json
from hippo.recorded.steps import Step, unpack_steps

ROWS = [(1, "a", 1.0), (2, "a", 2.0), (3, "b", 3.0), (4, "b", None)]
SCHEMA = "id int, grp string, x double"


@pytest.fixture
def source(spark, tmp_path):
    path = str(tmp_path / "src")
    spark.createDataFrame(ROWS, SCHEMA).coalesce(1).write.format("delta").save(path)
    return path


def _record(store, path, out):
    with store.run("r") as run:
        src = run.source("src", path)
        run.sink("totals", src.groupBy("grp").agg(F.count(F.lit(1)).alias("n"),
                                                  F.sum("x").alias("sx")), out)
    return run


@pytest.mark.parametrize("plain", [True, False], ids=["parquet-read", "delta-read"])
def test_a_version_vacuumed_while_a_session_uses_it_gives_a_clear_error(
        spark, tmp_path, source, plain, monkeypatch):
    if not plain:  # tables Parquet alone cannot read go through Delta
        from hippo.store import delta_log
        monkeypatch.setattr(delta_log, "PLAIN_FILES", 0)
    store = hippo.LineageStore(spark, str(tmp_path / "lineage"))
    _record(store, source, str(tmp_path / "out"))
    assert sorted(r.id for r in store.backward("totals", where="grp = 'a'")["src"].collect()) == [1, 2]
    spark.createDataFrame(ROWS[:1], SCHEMA).write.format("delta").mode("overwrite").save(source)
    DeltaTable.forPath(spark, source).vacuum(0)
    for query in (lambda: store.backward("totals", where="grp = 'b'"),
                  lambda: store.forward("src", where="id = 3")):
        with pytest.raises(VersionUnavailableError, match=r"of `.*src` is no longer readable"):
            query()
    assert spark.range(3).count() == 3


def test_a_folder_that_is_not_a_store_is_refused_by_name(spark, tmp_path, source):
    folder = tmp_path / "not-a-store"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    store = hippo.LineageStore(spark, str(folder))
    for call in (lambda: store.backward("totals", where="true"), lambda: store.runs(),
                 lambda: store.run("r").__enter__()):
        with pytest.raises(NotAStoreError, match=r"`.*not-a-store` is not a hippo lineage "
                                                 r"store.*`notes.txt`"):
            call()
    assert (folder / "notes.txt").read_text() == "mine"


def test_an_empty_or_missing_store_answers_that_nothing_is_recorded(spark, tmp_path):
    store = hippo.LineageStore(spark, str(tmp_path / "nothing-yet"))
    assert store.runs().count() == 0
    with pytest.raises(hippo.UnknownSinkError, match=r"unknown sink `x`; sinks recorded: \(none\)"):
        store.backward("x", where="true")


def test_a_run_row_of_a_newer_format_is_refused_and_older_specs_still_read():
    node = {"op": "filter", "cond": "(__c0 > 1)", "names": ["a"], "child": {"input": 0}}
    assert spec_from_json(node, 0) == spec_from_json(node, FORMAT)
    with pytest.raises(StoreFormatError, match=f"format {FORMAT + 1}.*up to {FORMAT}"):
        spec_from_json(node, FORMAT + 1)
    with pytest.raises(StoreFormatError, match=r"unknown spec node `sample`"):
        spec_from_json({**node, "op": "sample"})


def test_stored_steps_read_back_typed_with_their_format(spark, store, source, tmp_path):
    run = _record(store, source, str(tmp_path / "out"))
    row = (spark.read.format("delta").load(f"{store.path}/runs")
           .filter(F.col("run_id") == run.run_id).first())
    assert row.format == FORMAT
    steps = [Step.from_row(s, row.format) for s in unpack_steps(row.steps)]
    assert [s.step for s in steps] == ["source", "groupBy.agg", "sink"]
    assert steps[0].source.path == source and steps[0].source.version == 0
    nodes, todo = [], [steps[1].spec]
    while todo:
        nodes.append(todo.pop())
        todo += nodes[-1].inputs
    assert "aggregate" in [n.op for n in nodes]
    assert steps[1].lineage.to_json()["kind"] == "many_to_one"
    assert steps[2].sink.rows == "keyed"


def test_user_columns_named_like_hippos_are_refused(spark, store, tmp_path):
    df = spark.createDataFrame([(1, 2)], "id int, hippo_row_id int")
    with pytest.raises(HippoError, match=r"source `clash` has column\(s\) `hippo_row_id`"):
        with store.run("clash") as run:
            run.source("clash", df)
    with pytest.raises(HippoError, match=r"sink `out` has column\(s\) `hippo_row_id`"):
        with store.run("clash2") as run:
            src = run.source("ok", spark.createDataFrame([(1,)], "id int"))
            run.sink("out", src.withColumn("hippo_row_id", F.col("id")), str(tmp_path / "o"))


def test_internal_columns_are_never_offered_to_a_where(spark, store, source, tmp_path):
    _record(store, source, str(tmp_path / "out"))
    with pytest.raises(InvalidWhereError) as caught:
        store.backward("totals", where="row_hash = 1")
    assert "columns: `grp`, `n`, `sx`" in str(caught.value)
    assert "hash" not in str(caught.value).split("columns:")[1]


def test_a_cell_that_references_no_column_comes_from_the_rows_of_its_group(
        spark, store, source, tmp_path):
    _record(store, source, str(tmp_path / "out"))
    cells = store.backward("totals", where="grp = 'b'", columns=["n"])
    assert set(cells) == {"src"}
    assert cells["src"].columns == ["hippo_row_id"]
    whole = store.backward("totals", where="grp = 'b'")["src"]
    assert sorted(r.hippo_row_id for r in cells["src"].collect()) == sorted(
        r.hippo_row_id for r in whole.collect())
    assert sorted(r.id for r in whole.collect()) == [3, 4]
    mixed = store.backward("totals", where="grp = 'b'", columns=["n", "sx"])["src"]
    assert sorted((r.id, r.x) for r in mixed.select("hippo_row_id", "x").join(
        whole.select("hippo_row_id", "id"), "hippo_row_id").collect()) == [(3, 3.0), (4, None)]


def test_strict_false_records_an_inexact_run_as_incomplete_with_a_warning(
        spark, tmp_path, source, caplog):
    store = hippo.LineageStore(spark, str(tmp_path / "lineage"), strict=False)
    with caplog.at_level(logging.WARNING, logger="hippo"):
        with store.run("loose") as run:
            src = run.source("src", source)
            top = src.orderBy("id").limit(3).groupBy("grp").agg(F.count(F.lit(1)).alias("n"))
            run.sink("top", top, str(tmp_path / "top"))
    row = store.runs().first()
    assert (row.run_id, row.status) == (run.run_id, "lineage_incomplete")
    warned = [r for r in caplog.records if r.name.startswith("hippo")]
    assert warned and "aggregates rows chosen by an earlier limit" in warned[0].getMessage()
    strict = hippo.LineageStore(spark, str(tmp_path / "lineage2"), strict=True)
    with pytest.raises(hippo.UnsupportedStepError, match="aggregates rows chosen by an earlier"):
        with strict.run("tight") as run:
            run.source("src", source).orderBy("id").limit(3).groupBy("grp").count()
    assert [r.status for r in strict.runs().collect()] == ["failed"]


def test_names_that_would_escape_the_store_folder_are_refused(spark, store, tmp_path):
    df = spark.createDataFrame([(1,)], "id int")
    with pytest.raises(HippoError, match=r"source name `\.\./\.\./x` is not allowed"):
        with store.run("r") as run:
            run.source("../../x", df)
    assert not (tmp_path / "x").exists()


HOSTILE = [
    ("java_method('java.lang.System', 'exit', 3) = 1", "function `java_method` is not allowed"),
    ("reflect('java.lang.Runtime', 'getRuntime') IS NOT NULL", "function `reflect` is not allowed"),
    ("grp IN (SELECT s FROM delta.`{other}`)", "subqueries are not allowed"),
    ("EXISTS (SELECT 1 FROM parquet.`{other}`)", "subqueries are not allowed"),
    ("grp > (SELECT max(id) FROM range(3))", "subqueries are not allowed"),
    ("rand() > 0.5", "function `rand` is not allowed"),
]


@pytest.fixture(scope="module")
def recorded(spark, tmp_path_factory):
    """One recorded run that the hostile queries below all ask about."""
    folder = tmp_path_factory.mktemp("hostile")
    spark.createDataFrame(ROWS, SCHEMA).write.format("delta").save(str(folder / "src"))
    store = hippo.LineageStore(spark, str(folder / "lineage"))
    _record(store, str(folder / "src"), str(folder / "out"))
    return store


@pytest.mark.parametrize("where,refused", HOSTILE, ids=[h[0][:12] for h in HOSTILE])
def test_a_hostile_where_is_refused_on_both_query_paths_and_the_session_lives(
        spark, recorded, tmp_path, where, refused):
    store = recorded
    other = tmp_path / "other-table"  # must never be read: it does not even exist
    text = where.format(other=other)
    for query in (lambda: store.backward("totals", where=text),
                  lambda: store.forward("src", where=text)):
        with pytest.raises(InvalidWhereError, match=refused):
            query()
        assert spark.range(3).count() == 3
    assert not other.exists()
    assert sorted(r.id for r in store.backward("totals", where="grp = 'a'")["src"].collect()) == [1, 2]


def test_a_sink_write_retried_within_its_run_is_not_applied_twice(spark, store, tmp_path):
    path = str(tmp_path / "out")
    with store.run("once") as run:
        src = run.source("s", spark.createDataFrame([(1,), (2,)], "id int"))
        run.sink("out", src, path, mode="append")
        # What a retry after a failure inside the commit does: the same tagged write.
        again = run._write("out", src.df, path, "append")
    recorded = store.runs().first().sinks["out"]
    assert again == recorded == 0
    assert spark.read.format("delta").load(path).count() == 2
    assert [h.version for h in DeltaTable.forPath(spark, path).history().collect()] == [0]
    info = DeltaTable.forPath(spark, path).history().first()
    assert info.userMetadata == run.run_id


def test_a_row_made_cell_asked_with_a_value_cell_keeps_every_source_of_its_rows(
        spark, store, source, tmp_path):
    with store.run("joined") as run:
        src = run.source("src", source)
        labels = run.source("labels", spark.createDataFrame(
            [("a", "A"), ("b", "B")], "grp string, label string"))
        out = src.join(labels, "grp").groupBy("grp").agg(F.count(F.lit(1)).alias("n"),
                                                        F.sum("x").alias("sx"))
        run.sink("out", out, str(tmp_path / "out"))
    alone = store.backward("out", where="grp = 'a'", columns=["n"])
    mixed = store.backward("out", where="grp = 'a'", columns=["n", "sx"])
    assert set(alone) == set(mixed) == {"src", "labels"}
    assert mixed["labels"].columns == ["hippo_row_id"]
    assert mixed["src"].columns == ["x", "hippo_row_id"]
    assert sorted(r.x for r in mixed["src"].collect()) == [1.0, 2.0]
    assert mixed["labels"].count() == alone["labels"].count() == 1
    assert set(store.backward("out", where="grp = 'a'", columns=["sx"])) == {"src"}


def test_a_where_that_fails_on_the_data_is_an_invalid_where(spark, store, source, tmp_path):
    _record(store, source, str(tmp_path / "out"))
    with pytest.raises(InvalidWhereError, match=r"fails on the data.*DIVIDE_BY_ZERO"):
        store.forward("src", where="id / 0 > 1")
    with pytest.raises(InvalidWhereError, match=r"fails on the data"):
        store.backward("totals", where="CAST(grp AS int) = 1")


def test_reserved_names_are_refused_whatever_their_case(spark, store):
    df = spark.createDataFrame([(1, 2)], "id int, __HIPPO_ID int")
    with pytest.raises(HippoError, match=r"`__HIPPO_ID` whose names hippo reserves"):
        with store.run("upper") as run:
            run.source("s", df)


def test_a_run_whose_sink_write_failed_is_not_recorded_as_succeeded(spark, store, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the sink's folder would go")
    with store.run("half") as run:
        src = run.source("s", spark.createDataFrame([(1,)], "id int"))
        with pytest.raises(Exception):
            run.sink("out", src, str(blocker))
        run.sink("ok", src, str(tmp_path / "ok"))
    row = store.runs().first()
    assert row.status == "failed" and "`out`" in row.error
    with pytest.raises(hippo.UnknownSinkError):
        store.backward("ok", where="true")


def test_the_latest_run_recorded_by_another_process_is_seen(spark, tmp_path, source):
    reader = hippo.LineageStore(spark, str(tmp_path / "lineage"))
    writer = hippo.LineageStore(spark, str(tmp_path / "lineage"))  # as another process would
    first = _record(writer, source, str(tmp_path / "out1"))
    assert reader.backward("totals", where="grp = 'a'")["src"].count() == 2
    DeltaTable.forPath(spark, source).delete("id = 1")
    second = _record(writer, source, str(tmp_path / "out2"))
    assert first.run_id != second.run_id
    assert sorted(r.id for r in reader.backward("totals", where="grp = 'a'")["src"].collect()) == [2]


def test_a_store_whose_steps_are_an_array_is_refused_by_layout(spark, tmp_path):
    from hippo.store import tables

    root = tmp_path / "old"
    old = tables.SCHEMAS[tables.RUNS].replace(
        "steps string", "steps array<struct<op_id: int, step: string>>")
    spark.createDataFrame([], old).write.format("delta").save(str(root / "runs"))
    with pytest.raises(StoreFormatError, match=r"older layout.*array of structs"):
        hippo.LineageStore(spark, str(root)).runs()
