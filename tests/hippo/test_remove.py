"""Anomaly removal: the repaired sinks equal the same pipeline recomputed in plain Spark
on the cleaned sources; the dry run changes nothing and previews the same changes;
restore brings every table back; what cannot be removed safely is refused."""

from __future__ import annotations

import re
import threading
from collections import Counter
from pathlib import Path

import pytest
from pyspark.sql import functions as F

import hippo
from hippo.errors import InvalidWhereError, RemovalError, UnknownSourceError
from tests.hippo.oracle import previewed

ORDERS = [(1, "ann", 2, 10.5, "a,b"), (2, "bob", 1, 25.0, "b"), (3, "ann", 5, 7.25, None),
          (4, "cy", None, 12.0, "a,c"), (5, "bob", 3, None, "c"), (6, "dee", 4, 9.0, "a"),
          (7, None, 2, 30.0, "b,c"), (8, "ann", 2, 10.5, "a,b"), (9, "eve", 1, 3.0, "c")]
ORDERS_SCHEMA = "oid int, cust string, qty int, price double, tags string"
CUSTOMERS = [("ann", "north", 1), ("bob", "south", 2), ("cy", "north", None),
             ("eve", "west", 3), (None, "nowhere", 0)]
CUSTOMERS_SCHEMA = "cust string, region string, tier int"


def pipeline(o, c):
    """The same pipeline over tracked or plain DataFrames."""
    per_cust = o.groupBy("cust").agg(F.count(F.lit(1)).alias("n"))
    return {
        "by_cust": o.groupBy("cust").agg(F.count(F.lit(1)).alias("n"),
                                         F.sum("price").alias("total"),
                                         F.avg("qty").alias("avg_qty")),
        "by_region": o.join(c, "cust").groupBy("region").agg(
            F.sum(F.col("qty") * F.col("price")).alias("spend"), F.max("tier").alias("top")),
        "inner": o.join(c, "cust").select("oid", "cust", "qty", "region"),
        "left": o.join(c, "cust", "left").select("oid", "cust", "region"),
        "semi": o.join(c.filter(F.col("tier") >= 1), "cust", "left_semi"),
        "anti": o.join(c, "cust", "left_anti"),
        "tags": o.select("oid", F.explode(F.split("tags", ",")).alias("tag")),
        "distinct_cust": o.select("cust").distinct(),
        "both": o.select(F.col("cust").alias("name"), F.lit("o").alias("src")).union(
            c.select(F.col("region").alias("name"), F.lit("c").alias("src"))),
        "two_level": per_cust.groupBy("n").agg(F.count(F.lit(1)).alias("k")),
        "having": per_cust.filter(F.col("n") >= 2),
        "top3": o.orderBy(F.desc("price"), "oid").limit(3).select("oid", "price"),
        "one_per_cust": o.dropDuplicates(["cust"]).select("cust"),
    }


def _multiset(df):
    return Counter(tuple(round(v, 9) if isinstance(v, float) else v for v in r)
                   for r in df.collect())


def exact_pipeline(o, c):
    """Aggregates a subtraction undoes (counts, sums of integers and decimals), after
    linear steps (filter, join with an unchanged side, explode, union), and one it does not."""
    counted = [F.count(F.lit(1)).alias("n"), F.sum("qty").alias("q"), F.count("qty").alias("nq")]
    cents = o.withColumn("cents", (F.col("price") * 100).cast("decimal(12,2)"))
    return {
        "qty_by_cust": o.groupBy("cust").agg(*counted),
        "by_region": o.join(c, "cust").groupBy("region").agg(*counted),
        "by_tag": o.select("qty", F.explode(F.split("tags", ",")).alias("tag"))
                   .groupBy("tag").agg(*counted),
        "cents": cents.groupBy("cust").agg(  # a sum of what cannot be null needs no count
            F.count(F.lit(1)).alias("n"), F.sum("cents").alias("total"),
            F.count("cents").alias("priced"), F.sum(F.coalesce("qty", F.lit(0))).alias("q0")),
        "names": o.select(F.col("cust").alias("name"), "qty").union(
            c.select(F.col("region").alias("name"), F.col("tier").alias("qty")))
                  .groupBy("name").agg(*counted),
        # tier can be null and is not counted: a subtraction cannot see its sum go null
        "tier_sum": o.join(c, "cust").groupBy("region").agg(
            F.count(F.lit(1)).alias("n"), F.sum("tier").alias("t")),
        # without keys: one row even when no order is left (a recompute writes it)
        "total": o.filter(F.col("cust") == "ann").agg(*counted),
        # its sum has 38 digits: a subtraction would round
        "wide": o.groupBy("cust").agg(F.count(F.lit(1)).alias("n"), F.sum(F.coalesce(
            F.col("qty").cast("decimal(30,2)"), F.lit(0))).alias("s")),
    }


def _record(spark, folder, sinks=None, pipe=None):
    o_path, c_path = str(folder / "orders"), str(folder / "customers")
    spark.createDataFrame(ORDERS, ORDERS_SCHEMA).coalesce(2).write.format("delta").save(o_path)
    spark.createDataFrame(CUSTOMERS, CUSTOMERS_SCHEMA).write.format("delta").save(c_path)
    store = hippo.LineageStore(spark, str(folder / "lineage"))
    with store.run("shop") as run:
        outs = (pipe or pipeline)(run.source("orders", o_path), run.source("customers", c_path))
        for name, df in outs.items():
            if sinks is None or name in sinks:
                run.sink(name, df, str(folder / "out" / name))
    return store, run, o_path, c_path


def _expected(spark, o_path, c_path, o_where=None, c_where=None, pipe=None):
    o = spark.read.format("delta").option("versionAsOf", 0).load(o_path)
    c = spark.read.format("delta").option("versionAsOf", 0).load(c_path)
    o = o if o_where is None else o.filter(f"NOT coalesce({o_where}, false)")
    c = c if c_where is None else c.filter(f"NOT coalesce({c_where}, false)")
    return {name: _multiset(df) for name, df in (pipe or pipeline)(o, c).items()}


def _sinks(spark, folder):
    return {p.name: _multiset(spark.read.format("delta").load(str(p)))
            for p in sorted((folder / "out").iterdir())}


def test_removal_repairs_every_sink_like_a_recompute_and_restore_undoes_it(spark, tmp_path):
    store, run, o_path, c_path = _record(spark, tmp_path)
    before = _sinks(spark, tmp_path)
    where = "oid IN (1, 5)"
    expected = _expected(spark, o_path, c_path, o_where=where)

    report = store.remove("orders", where=where)
    assert report.run_id and report.removed == 2 and report.repaired_run == run.run_id
    assert _sinks(spark, tmp_path) == expected
    by_cust = report.sinks["by_cust"]
    assert (by_cust.how, by_cust.changed, by_cust.deleted, by_cust.added) == (
        "incremental", 2, 0, 0)
    assert report.sinks["two_level"].how == "full"
    assert "aggregate computed" in report.sinks["two_level"].why
    assert report.sinks["having"].how == "full"
    assert report.sinks["top3"].how == "full" and "picks rows" in report.sinks["top3"].why
    assert report.sinks["by_cust"].write == "merge"
    quarantine = spark.read.format("delta").load(f"{store.path}/quarantine")
    assert sorted(quarantine.select(F.get_json_object("row", "$.oid").cast("int")).toPandas()
                  .iloc[:, 0]) == [1, 5]
    # Later queries answer from the repaired run: ann's group is now orders 3 and 8.
    assert store.runs().orderBy("ended_at").collect()[-1].run_id == report.run_id
    ann = store.backward("by_cust", where="cust = 'ann'")["orders"]
    assert sorted(r.oid for r in ann.collect()) == [3, 8]
    assert store.forward("orders", where="oid = 1") == {}

    back = store.restore(report.run_id)
    assert back[o_path] == 0
    assert _sinks(spark, tmp_path) == before
    assert spark.read.format("delta").load(o_path).count() == len(ORDERS)
    assert spark.read.format("delta").load(f"{store.path}/quarantine").count() == 0
    ann = store.backward("by_cust", where="cust = 'ann'")["orders"]
    assert sorted(r.oid for r in ann.collect()) == [1, 3, 8]
    with pytest.raises(RemovalError, match="already restored"):
        store.restore(report.run_id)

    # From the other source: bob's orders now match no customer, so the anti join gains
    # rows and the left join loses bob's regions: only a full recompute is exact there.
    where = "cust = 'bob'"
    report = store.remove("customers", where=where)
    assert _sinks(spark, tmp_path) == _expected(spark, o_path, c_path, c_where=where)
    assert report.sinks["anti"].how == "full" and report.sinks["anti"].added == 2
    assert "left anti join" in report.sinks["anti"].why
    assert report.sinks["semi"].how == "incremental"


def test_counts_and_exact_sums_are_repaired_by_subtracting_the_removed_rows(spark, tmp_path):
    store, run, o_path, c_path = _record(spark, tmp_path, pipe=exact_pipeline)
    before = _sinks(spark, tmp_path)
    # All of ann's orders (north keeps only cy's order, whose qty is null) and one of bob's.
    where = "oid IN (1, 3, 8, 5)"
    expected = _expected(spark, o_path, c_path, o_where=where, pipe=exact_pipeline)

    preview = store.remove("orders", where=where, dry_run=True)
    assert _sinks(spark, tmp_path) == before
    for name, repair in preview.sinks.items():
        assert previewed(before[name], repair.preview) == expected[name], name
    assert set(preview.seconds) == {"plan"}
    report = store.remove("orders", where=where)
    assert _sinks(spark, tmp_path) == expected
    assert set(report.seconds) == {"plan", "quarantine", "source", "sinks", "record"}
    assert all(v > 0 for v in report.seconds.values())
    subtracted = {n for n, r in report.sinks.items() if "subtracted" in r.why}
    assert subtracted == {"qty_by_cust", "by_region", "by_tag", "cents", "names"}, {
        n: r.why for n, r in report.sinks.items()}
    assert all(report.sinks[n].how == "incremental" and report.sinks[n].write == "merge"
               for n in subtracted)
    assert report.sinks["qty_by_cust"].deleted == 1  # ann's group is gone
    assert (None, 0) in {(r.q, r.nq) for r in spark.read.format("delta").load(
        str(tmp_path / "out" / "by_region")).collect()}  # north: a sum left with no value
    assert "not count its values" in report.sinks["tier_sum"].why
    assert "without keys" in report.sinks["total"].why
    assert "up to 27 digits" in report.sinks["wide"].why

    # From the other side of the joins: bob's region loses its customer.
    report = store.remove("customers", where="cust = 'bob'")
    assert _sinks(spark, tmp_path) == _expected(
        spark, o_path, c_path, o_where=where, c_where="cust = 'bob'", pipe=exact_pipeline)
    assert {"by_region", "names"} <= {n for n, r in report.sinks.items() if "subtracted" in r.why}


def test_a_removal_refuses_moved_data_and_bad_input_and_changes_nothing(spark, tmp_path):
    store, run, o_path, c_path = _record(spark, tmp_path, ("by_cust", "inner"))
    before = _sinks(spark, tmp_path)
    with pytest.raises(InvalidWhereError, match="java_method"):
        store.remove("orders", where="java_method('java.lang.System', 'exit', 1) = 1")
    with pytest.raises(UnknownSourceError, match="unknown source `nope`.*`orders`"):
        store.remove("nope", where="true")
    with pytest.raises(RemovalError, match="unknown removal `zzz`"):
        store.restore("zzz")
    spark.createDataFrame([(10, "zed", 1, 1.0, "a")], ORDERS_SCHEMA).write.format(
        "delta").mode("append").save(o_path)
    with pytest.raises(RemovalError, match=r"source `orders` at `.*orders` is at version 1, "
                                           r"but run `.*` recorded version 0"):
        store.remove("orders", where="oid = 1")
    assert _sinks(spark, tmp_path) == before
    assert spark.read.format("delta").load(o_path).count() == len(ORDERS) + 1
    nothing = store.remove("orders", where="oid = 999", run_id=run.run_id, dry_run=True)
    assert nothing.removed == 0 and nothing.sinks == {}
    # A later run over the current data: the older run's outputs have moved on.
    with store.run("again") as later:
        later.sink("inner", pipeline(later.source("orders", o_path),
                                     later.source("customers", c_path))["inner"],
                   str(tmp_path / "out" / "inner"))
    with pytest.raises(RemovalError, match=r"sink `inner` at .* recorded version 0"):
        store.remove("customers", where="cust = 'ann'", run_id=run.run_id)
    nothing = store.remove("orders", where="oid = 999")
    assert (nothing.removed, nothing.run_id, nothing.sinks) == (0, None, {})
    assert spark.read.format("delta").load(o_path).count() == len(ORDERS) + 1
    with store.run("frame") as snap:
        snap.sink("copy", snap.source("mem", spark.createDataFrame([(1,)], "x int")),
                  str(tmp_path / "copy"))
    with pytest.raises(RemovalError, match="source `mem` .* was a DataFrame"):
        store.remove("mem", where="x = 1")


def test_a_restore_that_stopped_part_way_is_finished_by_calling_it_again(spark, tmp_path,
                                                                         monkeypatch):
    from delta.tables import DeltaTable

    store, _, o_path, c_path = _record(spark, tmp_path, ("by_cust", "inner"))
    before = _sinks(spark, tmp_path)
    report = store.remove("orders", where="oid IN (1, 5)")
    # What a restore's process leaves when it dies after restoring its first table: the
    # source back at version 0 by a commit tagged as that restore's, nothing else.
    spark.conf.set("spark.databricks.delta.commitInfo.userMetadata", f"restore-{report.run_id}")
    try:
        DeltaTable.forPath(spark, o_path).restoreToVersion(0)
    finally:
        spark.conf.unset("spark.databricks.delta.commitInfo.userMetadata")
    assert spark.read.format("delta").load(o_path).count() == len(ORDERS)
    assert _sinks(spark, tmp_path) != before

    # The second try fails on one table: the error names it and what was restored.
    import hippo.diagnose.restore as restore_module

    inner, real = str(tmp_path / "out" / "inner"), restore_module.committed
    # Tables are restored side by side and the ones not started when one fails are left;
    # inner fails only once the other table's restore has started (else whether it had
    # would be a race between the pool's threads).
    others_started = threading.Event()

    def failing(path, commit, what):
        if path == inner:
            others_started.wait(timeout=60)
            raise RuntimeError("disk full")
        others_started.set()
        return real(path, commit, what)

    monkeypatch.setattr(restore_module, "committed", failing)
    with pytest.raises(RemovalError, match=rf"restoring `{re.escape(inner)}` failed \(disk full\); "
                                           r"restored: .*by_cust`?\. Call restore again"):
        store.restore(report.run_id)
    monkeypatch.setattr(restore_module, "committed", real)
    assert [r.status for r in store.removals().collect()] == ["applied"]

    back = store.restore(report.run_id)  # the third try finishes the job
    assert sorted(back) == [inner]
    assert _sinks(spark, tmp_path) == before
    assert spark.read.format("delta").load(o_path).count() == len(ORDERS)
    assert spark.read.format("delta").load(f"{store.path}/quarantine").count() == 0
    assert [r.status for r in store.removals().collect()] == ["restored"]
    # A table changed by someone else since the removal still stops a restore.
    report = store.remove("orders", where="oid = 2")
    spark.createDataFrame([(10, "zed", 1, 1.0, "a")], ORDERS_SCHEMA).write.format(
        "delta").mode("append").save(o_path)
    with pytest.raises(RemovalError, match="tables changed since it"):
        store.restore(report.run_id)


# Where a removal's process is killed: after its first sink repair (the source and one
# sink changed, two not), and after its run is recorded (every table changed, the
# removal not yet marked applied). ``remove.py`` has two more points, after the
# quarantine and after the source delete; each point costs a child JVM, so CI runs two.
KILL_POINTS = ["sink_repaired", "run_recorded"]


@pytest.mark.slow
def test_a_removal_killed_part_way_loses_nothing_and_restore_finishes_the_job(
        spark, tmp_path):
    import os
    import subprocess
    import sys

    # One store per kill point (a merged, a joined and a fully recomputed sink each),
    # the removals killed in child processes running at once.
    recorded = {p: _record(spark, tmp_path / p, ("by_cust", "inner", "top3"))
                for p in KILL_POINTS}
    before = _sinks(spark, tmp_path / KILL_POINTS[0])
    child = Path(__file__).parent / "procs" / "remover.py"
    children = {}
    for point, (store, _, _, _) in recorded.items():
        env = {**os.environ, "HIPPO_FAULT": point, "PYTHONPATH": os.pathsep.join(sys.path)}
        children[point] = subprocess.Popen(
            [sys.executable, str(child), store.path, "orders", "oid IN (1, 5)"], env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for point, proc in children.items():
        _, err = proc.communicate(timeout=900)
        assert proc.returncode == -9, (point, err[-2000:])  # killed, not finished
    all_oids = {o[0] for o in ORDERS}
    for point, (store, _, o_path, c_path) in recorded.items():
        folder = tmp_path / point
        stopped = store.removals().collect()
        assert [r.status for r in stopped] == ["started"], point
        # Nothing is lost: every order is in the source or the quarantine.
        left = {r.oid for r in spark.read.format("delta").load(o_path).collect()}
        held = {r.oid for r in spark.read.format("delta").load(f"{store.path}/quarantine")
                .select(F.get_json_object("row", "$.oid").cast("int").alias("oid")).collect()}
        assert held == {1, 5}, point
        assert left == all_oids - {1, 5}, point
        with pytest.raises(RemovalError, match=f"removal `{stopped[0].removal_id}` of this "
                                               "store stopped part way"):
            store.remove("orders", where="oid = 2")
        # A dry run changes nothing, so it still previews (from the run's pinned data).
        preview = store.remove("orders", where="oid = 2", dry_run=True)
        assert (preview.dry_run, preview.removed) == (True, 1), point
        assert [r.status for r in store.removals().collect()] == ["started"], point
        assert {r.oid for r in spark.read.format("delta").load(o_path).collect()} == left
        store.restore(stopped[0].removal_id)  # the killed process's lock died with it
        assert _sinks(spark, folder) == before, point
        assert spark.read.format("delta").load(o_path).count() == len(ORDERS), point
        assert spark.read.format("delta").load(f"{store.path}/quarantine").count() == 0, point
        assert [r.status for r in store.removals().collect()] == ["restored"], point
        assert {r.status for r in store.runs().collect()} <= {"succeeded", "restored"}
    # And the same removal again, to the end.
    store, _, o_path, c_path = recorded["sink_repaired"]
    report = store.remove("orders", where="oid IN (1, 5)")
    expected = _expected(spark, o_path, c_path, o_where="oid IN (1, 5)")
    assert _sinks(spark, tmp_path / "sink_repaired") == {n: expected[n] for n in before}
    assert report.removed == 2


@pytest.fixture(scope="module")
def shop(spark, tmp_path_factory):
    folder = tmp_path_factory.mktemp("shop")
    store, run, o_path, c_path = _record(spark, folder)
    return store, run, o_path, c_path, _sinks(spark, folder)


from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=3, deadline=None, print_blob=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(source=st.sampled_from(["orders", "customers"]), data=st.data())
def test_random_removals_preview_exactly_the_recomputed_sinks(spark, shop, source, data):
    store, run, o_path, c_path, before = shop
    if source == "orders":
        ids = data.draw(st.sets(st.sampled_from([o[0] for o in ORDERS]), min_size=1,
                                max_size=len(ORDERS)), label="orders removed")
        where = f"oid IN ({', '.join(map(str, sorted(ids)))})"
        expected = _expected(spark, o_path, c_path, o_where=where)
    else:
        names = data.draw(st.sets(st.sampled_from(["ann", "bob", "cy", "eve"]), min_size=1),
                          label="customers removed")
        where = f"cust IN ({', '.join(repr(n) for n in sorted(names))})"
        expected = _expected(spark, o_path, c_path, c_where=where)
    report = store.remove(source, where=where, run_id=run.run_id, dry_run=True)
    for name, repair in report.sinks.items():
        assert previewed(before[name], repair.preview) == expected[name], (name, repair.how)
        shown = Counter(r.change for r in repair.preview.select("change").collect())
        assert (shown["changed"], shown["deleted"], shown["added"]) == (
            repair.changed, repair.deleted, repair.added), name
    # A dry run commits nothing: every source and sink is still at its first version.
    folder = Path(o_path).parent
    for table in [Path(o_path), Path(c_path), *(folder / "out").iterdir()]:
        assert [p.name for p in (table / "_delta_log").glob("*.json")] == [
            f"{0:020d}.json"], table
    unreached = set(before) - set(report.sinks)
    assert all(before[n] == expected[n] for n in unreached)
