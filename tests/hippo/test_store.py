"""Runs, store tables and bad input: what a user sees around the queries."""

from __future__ import annotations

import datetime
import json
import time

import pytest
from pyspark.sql import functions as F

import hippo
from hippo.errors import (
    HippoError,
    InvalidWhereError,
    RunStateError,
    UnknownColumnError,
    UnknownRunError,
    UnknownSinkError,
    UnknownSourceError,
)
from hippo.store import tables


@pytest.fixture
def flights(spark, tmp_path):
    path = str(tmp_path / "flights")
    spark.createDataFrame(
        [(1, "AA", 10.0), (2, "AA", 20.0), (3, "UA", 5.0), (4, "DL", None)],
        "flight int, carrier string, delay double",
    ).write.format("delta").save(path)
    return path


def _record(store, flights, out, name="delays"):
    with store.run(name, params={"min": 1}) as run:
        src = run.source("flights", flights)
        agg = src.filter("delay IS NOT NULL").groupBy("carrier").agg(F.sum("delay").alias("total"))
        run.sink("by_carrier", agg, out)
    return run


def test_a_successful_run_is_listed_with_its_params_and_versions(store, flights, tmp_path):
    run = _record(store, flights, str(tmp_path / "out"))
    rows = store.runs().collect()
    assert [(r.run_id, r.name, r.status) for r in rows] == [(run.run_id, "delays", "succeeded")]
    assert json.loads(rows[0].params) == {"min": 1}
    assert rows[0].spark_version.startswith("4.1")
    assert rows[0].ended_at >= rows[0].started_at


def test_a_run_records_its_start_and_end_as_instants_whatever_the_local_time_zone(
        store, flights, tmp_path, monkeypatch):
    before = datetime.datetime.now(datetime.timezone.utc).timestamp()
    monkeypatch.setenv("TZ", "America/New_York")  # the driver's local time is not UTC
    time.tzset()
    try:
        run = _record(store, flights, str(tmp_path / "out"))
    finally:
        monkeypatch.undo()
        time.tzset()
    after = datetime.datetime.now(datetime.timezone.utc).timestamp()
    row = store.runs().filter(F.col("run_id") == run.run_id).select(
        F.unix_micros("started_at").alias("start"), F.unix_micros("ended_at").alias("end")).first()
    assert before - 1 <= row.start / 1e6 <= row.end / 1e6 <= after + 1


def _steps(spark, store, run_id):
    """A run's steps, read as any Delta reader would: one row of the runs table."""
    return (spark.read.format("delta").load(f"{store.path}/runs")
            .filter(F.col("run_id") == run_id)
            .selectExpr(f"inline(from_json(steps, 'array<{tables.STEP_TYPE}>'))").collect())


def test_steps_record_lineage_type_columns_and_code_location(spark, store, flights, tmp_path):
    run = _record(store, flights, str(tmp_path / "out"))
    ops = {r.step: r for r in _steps(spark, store, run.run_id)}
    agg = json.loads(ops["groupBy.agg"].lineage)
    assert agg["kind"] == "many_to_one"
    # Columns are named by position (``__c1`` is the input's second column, ``carrier``).
    assert agg["encoding"] == {"kind": "key", "keys": ["__c1"]}
    assert ops["source"].columns[1] == "carrier"
    assert ops["groupBy.agg"].kinds == ["Project", "Project", "Aggregate"]
    flt = json.loads(ops["filter"].lineage)
    assert flt["kind"] == "one_to_one"
    assert {r["column"] for r in flt["columns"]["influencing"]} == {"__c2"}
    assert ops["source"].columns[2] == "delay"
    assert ops["filter"].code_location.endswith("test_store.py:" + str(
        _record.__code__.co_firstlineno + 3))
    source = json.loads(ops["source"].detail)["source"]
    assert source["path"] == flights and source["version"] == 0


def _sink_detail(spark, store, run_id, sink):
    rows = [r for r in _steps(spark, store, run_id) if r.step == "sink"]
    details = [json.loads(r.detail)["sink"] for r in rows]
    return next(d for d in details if d["name"] == sink)


def _stored_sink_rows(spark, store, run_id):
    path = f"{store.path}/sink_rows"
    from delta.tables import DeltaTable

    if not DeltaTable.isDeltaTable(spark, path):
        return 0
    return spark.read.format("delta").load(path).filter(F.col("run_id") == run_id).count()


def test_an_aggregate_sink_that_keeps_its_keys_stores_nothing_per_row(spark, store, flights,
                                                                      tmp_path):
    with store.run("top") as run:
        src = run.source("flights", flights)
        top = (src.groupBy("carrier").agg(F.count(F.lit(1)).alias("n"), F.sum("delay").alias("d"))
               .withColumnRenamed("carrier", "airline").orderBy(F.desc("n"), F.desc("airline"))
               .limit(2))  # UA and DL tie on n: the second key decides
        run.sink("top", top, str(tmp_path / "top"))
    assert _sink_detail(spark, store, run.run_id, "top")["rows"] == "keyed"
    assert _stored_sink_rows(spark, store, run.run_id) == 0
    back = store.backward("top", where="airline = 'AA'")["flights"]
    assert sorted(r.flight for r in back.collect()) == [1, 2]
    fwd = store.forward("flights", where="flight = 3")
    assert [(r.airline, r.n) for r in fwd["top"].collect()] == [("UA", 1)]


@pytest.mark.parametrize("inline_rows", [1000, 1])
def test_an_aggregate_sink_joined_after_its_aggregate_stores_its_rows(
        spark, store, flights, tmp_path, monkeypatch, inline_rows):
    # Up to INLINE_ROWS rows are kept in the run's row; more go to the sink_rows table.
    monkeypatch.setattr("hippo.capture.run.INLINE_ROWS", inline_rows)
    with store.run("joined") as run:
        src = run.source("flights", flights)
        names = run.source("names", spark.createDataFrame(
            [("AA", "American"), ("UA", "United")], "carrier string, name string"))
        out = src.groupBy("carrier").agg(F.count(F.lit(1)).alias("n")).join(names, "carrier")
        run.sink("named", out, str(tmp_path / "named"))
    detail = _sink_detail(spark, store, run.run_id, "named")
    assert detail["rows"] == "explicit"
    if inline_rows >= 2:
        assert len(detail["inline"]) == 2 and _stored_sink_rows(spark, store, run.run_id) == 0
    else:
        assert "inline" not in detail and _stored_sink_rows(spark, store, run.run_id) == 2
    back = store.backward("named", where="carrier = 'AA'")
    assert sorted(r.flight for r in back["flights"].collect()) == [1, 2]
    assert [r.name for r in back["names"].collect()] == ["American"]
    fwd = store.forward("names", where="carrier = 'UA'")
    assert [(r.carrier, r.n, r.name) for r in fwd["named"].collect()] == [("UA", 1, "United")]


def test_a_store_folder_deleted_and_recorded_into_again_gets_its_tables_made_again(
        spark, flights, tmp_path):
    """The process remembers which store tables exist; a folder deleted since is made
    again with the store's own table settings, not by a bare append."""
    import shutil

    from delta.tables import DeltaTable

    root = tmp_path / "again"
    _record(hippo.LineageStore(spark, str(root)), flights, str(tmp_path / "o1"))
    shutil.rmtree(root)
    store = hippo.LineageStore(spark, str(root))
    _record(store, flights, str(tmp_path / "o2"))
    runs = tables.table_path(str(root), tables.RUNS)
    props = DeltaTable.forPath(spark, runs).detail().first()["properties"]
    assert props.get("delta.dataSkippingStatsColumns") == "run_id,status,ended_at"
    assert [r.status for r in store.runs().collect()] == ["succeeded"]


def test_the_runs_log_is_checkpointed_off_the_commits_and_reads_the_same_after(
        spark, store, flights, tmp_path, monkeypatch):
    """Runs' commits never checkpoint the log themselves (that is seconds of one run's
    exit); a run's background thread does once enough commits have gathered, and the
    store reads every run and answers queries the same from the checkpoint."""
    import os

    from delta.tables import DeltaTable

    monkeypatch.setattr(tables, "CHECKPOINT_EVERY", 3)
    runs = [_record(store, flights, str(tmp_path / "out")).run_id for _ in range(2)]
    path = tables.table_path(store.path, tables.RUNS)
    props = DeltaTable.forPath(spark, path).detail().first()["properties"]
    assert int(props["delta.checkpointInterval"]) >= 10**9
    log_dir = os.path.join(path, "_delta_log")
    assert not os.path.exists(os.path.join(log_dir, "_last_checkpoint"))
    before = store.backward("by_carrier", where="carrier = 'AA'")["flights"].collect()
    # The third run finds three commits (creation and two runs) and checkpoints them.
    runs.append(_record(store, flights, str(tmp_path / "out")).run_id)
    with open(os.path.join(log_dir, "_last_checkpoint")) as f:
        assert json.load(f)["version"] == 2
    assert sorted(r.run_id for r in store.runs().collect()) == sorted(runs)
    after = store.backward("by_carrier", where="carrier = 'AA'")["flights"].collect()
    assert sorted(map(tuple, after)) == sorted(map(tuple, before))
    assert sorted(r.flight for r in after) == [1, 2]


def _metadata_rows(n):
    at = datetime.datetime(2026, 3, 1, 12, 30, 15, 123456)
    return [{"run_id": f"run{i:02d}", "name": "n", "params": '{"a": 1}', "status": "succeeded",
             "started_at": at, "ended_at": at + datetime.timedelta(seconds=i),
             "code_version": None, "spark_version": "4.1", "hippo_version": "0",
             "error": None if i % 2 else "Boom: x" * 50, "sinks": {"out": i, "b": -1},
             "format": 3, "steps": json.dumps([{"op_id": i}] * 100)} for i in range(n)]


def test_metadata_rows_appended_without_a_spark_job_read_as_a_spark_write_of_them(
        spark, tmp_path):
    """A run's row is committed through Delta's transaction API from a file written on
    the driver: every reader gets what a DataFrame append of the same rows gives, the
    history records an append, and Delta skips files by ``run_id`` statistics."""
    from delta.tables import DeltaTable

    rows = _metadata_rows(6)
    direct, plain = str(tmp_path / "direct"), str(tmp_path / "plain")
    for root in (direct, plain):
        tables.create_tables(spark, root)
    tracker = spark.sparkContext.statusTracker()
    jobs = set(tracker.getJobIdsForGroup(None))
    for row in rows:
        tables.append_rows(spark, direct, tables.RUNS, [row])
    assert set(tracker.getJobIdsForGroup(None)) == jobs  # no Spark job
    tables.append_frame(tables.local_frame(spark, rows, tables.SCHEMAS[tables.RUNS]), plain,
                        tables.RUNS)

    def read(root, how):
        path = tables.table_path(root, tables.RUNS)
        df = (spark.read.format("delta").load(path) if how == "delta"
              else tables.read_table(spark, root, tables.RUNS))
        return sorted(tuple(sorted(r.asDict().items())) for r in df.collect())

    expected = read(plain, "delta")
    assert len(expected) == 6
    assert read(direct, "delta") == expected
    assert read(direct, "plain") == expected
    path = tables.table_path(direct, tables.RUNS)
    history = DeltaTable.forPath(spark, path).history().orderBy("version").collect()
    assert [(h.version, h.operation) for h in history][1:] == [(v, "WRITE") for v in range(1, 7)]
    assert {h.operationParameters["mode"] for h in history[1:]} == {"Append"}
    one = spark.read.format("delta").load(path).filter(F.col("run_id") == "run03")
    assert len(one.inputFiles()) == 1  # skipped the other five files by their statistics
    assert one.first().sinks == {"out": 3, "b": -1}


def test_metadata_rows_are_appended_through_spark_when_delta_lacks_the_transaction_api(
        spark, tmp_path, monkeypatch):
    def missing(*args, **kwargs):
        raise RuntimeError("no such Delta API")

    monkeypatch.setattr(tables, "prepare_commit", missing)
    root = str(tmp_path / "fallback")
    tables.create_tables(spark, root)
    tracker = spark.sparkContext.statusTracker()
    jobs = set(tracker.getJobIdsForGroup(None))
    tables.append_rows(spark, root, tables.RUNS, _metadata_rows(2))
    assert set(tracker.getJobIdsForGroup(None)) > jobs  # written by a Spark job
    assert sorted(r.run_id for r in tables.read_table(spark, root, tables.RUNS).collect()) == [
        "run00", "run01"]


def test_a_run_that_raises_is_failed_and_its_lineage_is_invisible(store, flights, tmp_path):
    with pytest.raises(ZeroDivisionError):
        with store.run("broken") as run:
            src = run.source("flights", flights)
            run.sink("half", src, str(tmp_path / "half"))
            1 / 0
    status = {r.name: (r.status, r.error) for r in store.runs().collect()}
    assert status["broken"][0] == "failed" and "ZeroDivisionError" in status["broken"][1]
    with pytest.raises(UnknownSinkError, match=r"unknown sink `half`; sinks recorded: \(none\)"):
        store.backward("half", where="flight = 1")


def test_a_run_cannot_be_used_after_its_block(store, flights, tmp_path):
    run = _record(store, flights, str(tmp_path / "out"))
    with pytest.raises(RunStateError, match=run.run_id):
        run.source("again", flights)


def test_unknown_sink_source_run_and_column_name_what_exists(store, flights, tmp_path):
    run = _record(store, flights, str(tmp_path / "out"))
    with pytest.raises(UnknownSinkError, match=r"`by_carier`.*`by_carrier`"):
        store.backward("by_carier", where="carrier = 'AA'")
    with pytest.raises(UnknownSourceError, match=r"`flight`.*`flights`"):
        store.forward("flight", where="flight = 1")
    with pytest.raises(UnknownRunError, match=rf"`nope`.*`{run.run_id}`"):
        store.backward("by_carrier", where="carrier = 'AA'", run_id="nope")
    with pytest.raises(UnknownColumnError, match=r"`totl`.*`carrier`, `total`"):
        store.backward("by_carrier", where="carrier = 'AA'", columns=["totl"])
    with pytest.raises(UnknownColumnError, match=r"`dealy`.*`carrier`, `delay`, `flight`"):
        store.forward("flights", where="flight = 1", columns=["dealy"])


def test_a_bad_where_says_why_and_lists_columns(store, flights, tmp_path):
    _record(store, flights, str(tmp_path / "out"))
    with pytest.raises(InvalidWhereError, match=r"carrier = = 'AA'.*does not parse.*`total`"):
        store.backward("by_carrier", where="carrier = = 'AA'")
    with pytest.raises(InvalidWhereError, match=r"`airline = 'AA'`.*`carrier`, `total`"):
        store.backward("by_carrier", where="airline = 'AA'")
    with pytest.raises(InvalidWhereError, match="empty"):
        store.forward("flights", where=" ")
    assert issubclass(InvalidWhereError, HippoError)


def test_where_accepts_a_column(store, flights, tmp_path):
    _record(store, flights, str(tmp_path / "out"))
    got = store.backward("by_carrier", where=F.col("carrier") == "AA")["flights"]
    assert sorted(r.flight for r in got.collect()) == [1, 2]


def test_queries_use_the_latest_successful_run_unless_a_run_is_named(spark, store, flights,
                                                                     tmp_path):
    first = _record(store, flights, str(tmp_path / "out1"))
    spark.createDataFrame([(5, "AA", 1.0)], "flight int, carrier string, delay double") \
        .write.format("delta").mode("append").save(flights)
    _record(store, flights, str(tmp_path / "out2"))
    latest = store.backward("by_carrier", where="carrier = 'AA'")["flights"]
    assert sorted(r.flight for r in latest.collect()) == [1, 2, 5]
    old = store.backward("by_carrier", where="carrier = 'AA'", run_id=first.run_id)["flights"]
    assert sorted(r.flight for r in old.collect()) == [1, 2]


def test_a_store_keeps_the_plans_of_few_runs_and_answers_the_same_after_dropping_them(
        spark, store, flights, tmp_path, monkeypatch):
    import hippo.lineage_store as lineage_store

    monkeypatch.setattr(lineage_store, "RUNS_KEPT", 1)
    first = _record(store, flights, str(tmp_path / "out1"))
    spark.createDataFrame([(5, "AA", 1.0)], "flight int, carrier string, delay double") \
        .write.format("delta").mode("append").save(flights)
    second = _record(store, flights, str(tmp_path / "out2"))

    def flights_of(run):
        got = store.backward("by_carrier", where="carrier = 'AA'", run_id=run.run_id)
        return sorted(r.flight for r in got["flights"].collect())

    assert [flights_of(first), flights_of(second), flights_of(first)] == [
        [1, 2], [1, 2, 5], [1, 2]]
    assert list(store._runs) == [first.run_id]  # the other run's plans were let go


def test_sources_and_sinks_are_checked_when_recorded(store, flights, tmp_path):
    with pytest.raises(HippoError, match="is not a Delta table"):
        with store.run("bad") as run:
            run.source("nothing", str(tmp_path / "missing"))
    with pytest.raises(HippoError, match="TrackedDataFrame"):
        with store.run("bad2") as run:
            src = run.source("flights", flights)
            run.sink("plain", src.df, str(tmp_path / "plain"))
    with pytest.raises(hippo.UnsupportedStepError, match="`intersectAll` is not tracked yet"):
        with store.run("bad3") as run:
            src = run.source("flights", flights)
            src.intersectAll(src)


def test_a_subquery_is_refused_at_the_step_that_uses_it(store, flights, tmp_path):
    # Its spec's SQL is rendered later, in the background; the refusal must not wait.
    with store.run("subquery") as run:
        src = run.source("flights", flights)
        with pytest.raises(hippo.UnsupportedStepError, match="subquery expression"):
            src.filter(F.expr("flight IN (SELECT id FROM range(2))"))
        run.sink("kept", src.filter("flight > 1"), str(tmp_path / "kept"))
    assert [r.status for r in store.runs().collect()] == ["succeeded"]


def test_answers_are_the_same_with_and_without_pushed_down_values(spark, store, tmp_path,
                                                                   monkeypatch):
    from hippo.query import pushdown

    orders = spark.createDataFrame(
        [(k, k % 3 if k % 5 else None, float(k)) for k in range(40)],
        "order int, cust int, price double")
    items = spark.createDataFrame(
        [(k % 40, i, float(i)) for k, i in zip(range(0, 120), range(120))],
        "order int, item int, qty double")
    with store.run("nested") as run:
        o, i = run.source("orders", orders), run.source("items", items)
        per_cust = (o.join(i, "order").groupBy("cust", "order")
                    .agg(F.sum("qty").alias("qty")).filter("qty > 3"))
        run.sink("per_cust", per_cust, str(tmp_path / "per_cust"))
        run.sink("lines", o.join(i, "order").select("order", "cust", "item"),
                 str(tmp_path / "lines"))
        # A group's count beside each of its rows: its lineage is stored (explicit).
        run.sink("beside", o.groupBy("cust").agg(F.count(F.lit(1)).alias("n"))
                 .join(o.select("order", "cust"), "cust"), str(tmp_path / "beside"))
        # Rows the IN filters on their copies or keys cannot tell apart, which only the
        # final match on ids (keyed) or value hashes (replayed) separates.
        run.sink("pairs", o.groupBy("cust", (F.col("order") % 2).alias("odd"))
                 .agg(F.count(F.lit(1)).alias("n")), str(tmp_path / "pairs"))
        run.sink("doubled", o.join(i, "order").select("order", (F.col("qty") * 2).alias("q2")),
                 str(tmp_path / "doubled"))
        # Equal rows of different lineage: one answer row per lineage.
        run.sink("custs", o.join(i, "order").select("cust"), str(tmp_path / "custs"))
    replays = {"per_cust": "cust = 1", "lines": "item IN (7, 47)", "beside": "order = 3",
               "pairs": "(cust = 1 AND odd = 0) OR (cust = 2 AND odd = 1)", "doubled": "q2 = 14"}

    def answers():
        out = {}
        for label, got in [
            ("back", store.backward("per_cust", where="cust IS NULL OR order = 7")),
            ("back_cell", store.backward("per_cust", where="order < 5", columns=["qty"])),
            ("back_one", store.backward("per_cust", where="order = 7")),  # a group of 3
            ("fwd", store.forward("items", where="item IN (7, 47, 87)")),
            ("fwd_one", store.forward("items", where="item = 7")),
            ("fwd_null", store.forward("orders", where="cust IS NULL")),
            *[(f"replay_{sink}", store.replay(run.run_id, sinks=[sink], where=where))
              for sink, where in replays.items()],
        ]:
            out[label] = {k: sorted(map(tuple, v.collect())) for k, v in got.items()}
        return out

    pushed = answers()
    # Groups of more than 2 rows are many: a group's copies go on as IN sets of values
    # (at most 40 rows), to sources of any size.
    monkeypatch.setattr(pushdown, "HINT_ROWS", 2)
    monkeypatch.setattr(pushdown, "SCAN_BYTES", 0)
    store._runs.clear()
    sets = answers()
    monkeypatch.setattr(pushdown, "HINT_ROWS", 0)  # every query scans everything
    store._runs.clear()
    scanned = answers()
    assert pushed == scanned
    assert sets == scanned
    assert pushed["back"]["orders"] and pushed["fwd"]["lines"] and pushed["fwd_null"]["per_cust"]
    assert len(pushed["fwd"]["custs"]) == 3  # items 7, 47, 87: all of order 7, cust 1
    # One lineage reached: one row, though the sink holds many equal to it.
    assert len(pushed["fwd_one"]["custs"]) == 1
    for sink, where in replays.items():  # as the run wrote them
        written = spark.read.format("delta").load(str(tmp_path / sink)).filter(where)
        assert pushed[f"replay_{sink}"][sink] == sorted(map(tuple, written.collect())) != []
