"""Computation replay: a recorded run's sinks recomputed from its pinned inputs equal
what the run wrote (as multisets), whole and for the rows a ``where`` chooses, also
downstream of ``limit`` and ``dropDuplicates`` (which would pick other rows if simply
recomputed); a run recorded by older code replays as recorded; what cannot be replayed
says why."""

from __future__ import annotations

from collections import Counter

import pytest
from pyspark.sql import functions as F

import hippo
from hippo.errors import ReplayError, UnknownRunError, UnknownSinkError

ORDERS = [(1, "ann", 2, 10.5, "a,b"), (2, "bob", 1, 25.0, "b"), (3, "ann", 5, 7.25, None),
          (4, "cy", None, 12.0, "a,c"), (5, "bob", 3, None, "c"), (6, "dee", 4, 9.0, "a"),
          (7, None, 2, 30.0, "b,c"), (8, "ann", 2, 10.5, "a,b")]
CUSTOMERS = [("ann", "north", 1), ("bob", "south", 2), ("cy", "north", None),
             ("eve", "west", 3), (None, "nowhere", 0)]

# sink -> a where over its columns choosing some (not all) of its rows
WHERES = {
    "by_cust": "cust = 'ann' OR n = 1",
    "by_region": "region = 'north'",
    "inner": "qty >= 2",
    "left": "region IS NULL",
    "full": "oid IS NULL OR oid > 5",
    "semi": "price > 10",
    "anti": "oid = 6",
    "tags": "tag = 'a'",
    "distinct_cust": "cust < 'c'",
    "both": "src = 'c'",
    "two_level": "k = 3",
    # Downstream of steps that pick rows in no fixed order: which rows the run picked is
    # known only from what it wrote, so these choose the written row with the lowest oid.
    "top2": None,
    "first3": None,
    "one_per_cust": None,
    "tag_once": None,
}


def _multiset(df):
    return Counter(tuple(r) for r in df.collect())


@pytest.fixture(scope="module")
def recorded(spark, tmp_path_factory):
    folder = tmp_path_factory.mktemp("replay")
    orders_path = str(folder / "orders")
    spark.createDataFrame(ORDERS, "oid int, cust string, qty int, price double, tags string"
                          ).coalesce(2).write.format("delta").save(orders_path)
    customers = spark.createDataFrame(CUSTOMERS, "cust string, region string, tier int")
    store = hippo.LineageStore(spark, str(folder / "lineage"))
    with store.run("many", params={"min": 1}) as run:
        o = run.source("orders", orders_path)
        c = run.source("customers", customers)
        sinks = {
            "by_cust": o.groupBy("cust").agg(F.count(F.lit(1)).alias("n"),
                                             F.sum("price").alias("total"),
                                             F.avg("qty").alias("avg_qty")),
            "by_region": o.join(c, "cust").groupBy("region").agg(
                F.sum(F.col("qty") * F.col("price")).alias("spend"),
                F.max("tier").alias("top_tier")),
            "inner": o.join(c, "cust").select("oid", "cust", "qty", "region"),
            "left": o.join(c, "cust", "left").select("oid", "cust", "region"),
            "full": o.join(c, "cust", "full").select("oid", "cust", "region"),
            "semi": o.join(c.filter(F.col("tier") >= 1), "cust", "left_semi"),
            "anti": o.join(c, "cust", "left_anti"),
            "tags": o.select("oid", F.explode(F.split("tags", ",")).alias("tag")),
            "distinct_cust": o.select("cust").distinct(),
            "both": o.select(F.col("cust").alias("name"), F.lit("o").alias("src")).union(
                c.select(F.col("region").alias("name"), F.lit("c").alias("src"))),
            "two_level": o.groupBy("cust").agg(F.count(F.lit(1)).alias("n"))
                          .groupBy("n").agg(F.count(F.lit(1)).alias("k")),
            "top2": o.orderBy(F.desc("price"), "oid").limit(2).select("oid", "price"),
            "first3": o.filter(F.col("qty") >= 2).limit(3).join(c, "cust").select(
                "oid", "cust", "region"),
            "one_per_cust": o.dropDuplicates(["cust"]).join(c, "cust", "left").select(
                "oid", "cust", "region"),
            # Order 8 repeats order 1, so its exploded rows equal order 1's but for oid.
            "tag_once": o.select("oid", F.explode(F.split("tags", ",")).alias("tag"))
                         .dropDuplicates(["tag"]),
        }
        for name, df in sinks.items():
            run.sink(name, df, str(folder / "out" / name))
    return store, run, folder


def test_a_whole_replay_equals_what_the_run_wrote(spark, recorded):
    store, run, folder = recorded
    replayed = store.replay(run.run_id)
    assert sorted(replayed) == sorted(WHERES)
    for name, df in replayed.items():
        written = spark.read.format("delta").load(str(folder / "out" / name))
        assert df.columns == written.columns, name
        assert _multiset(df) == _multiset(written), name


@pytest.mark.parametrize("sink", sorted(WHERES))
def test_replaying_chosen_rows_recomputes_exactly_those_rows(spark, recorded, sink):
    store, run, folder = recorded
    written = spark.read.format("delta").load(str(folder / "out" / sink))
    where = WHERES[sink] or f"oid = {min(r.oid for r in written.collect())}"
    expected = _multiset(written.filter(where))
    assert 0 < sum(expected.values()) < written.count(), "the where must choose some rows"
    got = store.replay(run.run_id, sinks=[sink], where=where)
    assert list(got) == [sink]
    assert _multiset(got[sink]) == expected


def test_a_run_recorded_by_older_code_replays_as_recorded(spark, store, tmp_path):
    path = str(tmp_path / "src")
    spark.createDataFrame([(1, 10), (2, 20), (3, 30)], "k int, v int").write.format(
        "delta").save(path)
    with store.run("v1") as old:
        run_src = old.source("src", path)
        old.sink("out", run_src.filter(F.col("v") > 10).withColumn("w", F.col("v") * 2),
                 str(tmp_path / "out"))
    spark.createDataFrame([(4, 40)], "k int, v int").write.format("delta").mode(
        "append").save(path)
    with store.run("v2") as new:  # today's code: another filter, another formula
        run_src = new.source("src", path)
        new.sink("out", run_src.filter(F.col("v") > 0).withColumn("w", F.col("v") * 3),
                 str(tmp_path / "out"))
    assert _multiset(store.replay(old.run_id)["out"]) == Counter({(2, 20, 40): 1, (3, 30, 60): 1})
    assert _multiset(store.replay(new.run_id)["out"]) == _multiset(
        spark.read.format("delta").load(str(tmp_path / "out")))
    assert _multiset(store.replay(old.run_id, where="k = 3")["out"]) == Counter({(3, 30, 60): 1})


def test_first_and_last_ignoring_nulls_replay_as_they_ran(spark, store, tmp_path):
    # Spark's SQL for first/last/any_value drops IGNORE NULLS; a recorded step keeps it.
    from pyspark.sql import Window

    path = str(tmp_path / "src")
    spark.createDataFrame([(1, None, 1), (1, 5, 2), (2, 7, 1), (2, None, 2), (3, None, 1)],
                          "k int, v int, o int").write.format("delta").save(path)
    with store.run("ignoring_nulls") as run:
        src = run.source("src", path)
        run.sink("agg", src.groupBy("k").agg(F.first("v", True).alias("f"),
                                             F.last("v", True).alias("l"),
                                             F.any_value("v", True).alias("a")),
                 str(tmp_path / "agg"))
        w = Window.partitionBy("k").orderBy("o")
        run.sink("win", src.withColumn("f", F.first("v", True).over(w)), str(tmp_path / "win"))
    replayed = store.replay(run.run_id)
    assert _multiset(replayed["agg"]) == Counter(
        {(1, 5, 5, 5): 1, (2, 7, 7, 7): 1, (3, None, None, None): 1})
    assert _multiset(replayed["win"]) == _multiset(
        spark.read.format("delta").load(str(tmp_path / "win")))
    assert Counter(r.f for r in replayed["win"].collect()) == Counter({None: 2, 5: 1, 7: 2})


def test_replay_refuses_what_it_cannot_recompute_and_names_it(spark, store, tmp_path):
    df = spark.createDataFrame([(1, "a"), (2, "a"), (3, "b")], "id int, g string")
    with store.run("nondet") as run:
        src = run.source("src", df)
        # A random value per row is copied into the store (explicit) and replays; one
        # inside an explode is not, and cannot be computed again.
        run.sink("drawn", src.withColumn("r", F.rand(7)), str(tmp_path / "r"))
        run.sink("noisy", src.select("id", F.explode(F.array(F.rand(7), F.lit(1.0))).alias("r")),
                 str(tmp_path / "d"))
        run.sink("fine", src.filter("id > 1"), str(tmp_path / "f"))
    with pytest.raises(ReplayError, match=r"sink `noisy` .* depends on `select` "
                                          r"at .*test_replay.py:\d+, whose expressions are "
                                          "nondeterministic"):
        store.replay(run.run_id)
    drawn = spark.read.format("delta").load(str(tmp_path / "r"))
    assert _multiset(store.replay(run.run_id, sinks=["drawn"])["drawn"]) == _multiset(drawn)
    assert _multiset(store.replay(run.run_id, sinks=["fine"])["fine"]) == Counter(
        {(2, "a"): 1, (3, "b"): 1})
    with pytest.raises(UnknownRunError, match=r"unknown run `nope`.*" + run.run_id):
        store.replay("nope")
    with pytest.raises(UnknownSinkError, match=r"unknown sink `x`.*`fine`"):
        store.replay(run.run_id, sinks=["x"])
    with pytest.raises(hippo.InvalidWhereError, match="java_method"):
        store.replay(run.run_id, sinks=["fine"], where="java_method('a', 'b') = 1")
