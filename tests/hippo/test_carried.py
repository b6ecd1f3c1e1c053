"""Backward answers taken from the rows an aggregate's group carried (not read again).

A source may hold equal rows; they share an id, yet an answer lists a source row as
often as the source holds it (removal and replay rebuild from those rows). The oracle
is plain Spark over the source files; the pipelines' shapes (self-union, self-join,
explode, windows, distinct, outer joins, stacked aggregates) each keep or end the
carrying, and each is compared with the same question answered by reading the sources
again (``CARRY_ROWS`` off).
"""

from __future__ import annotations

from collections import Counter

import pytest
from pyspark.sql import Window
from pyspark.sql import functions as F

import hippo
from hippo.query import backward as backward_mod

EVENTS = "id int, grp string, x double"
# Equal rows, split over two files (the second write appends one more of each).
FIRST = [(1, "a", 1.0), (1, "a", 1.0), (2, "a", 2.0), (3, "b", 3.0), (4, "b", None),
         (5, "c", 5.0)]
SECOND = [(1, "a", 1.0), (3, "b", 3.0), (6, "a", 6.0)]
GROUPS = [("a", "first"), ("b", "first"), ("b", "first"), ("d", "other")]


@pytest.fixture(scope="module")
def sources(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("carried")
    events, groups = str(root / "events"), str(root / "groups")
    spark.createDataFrame(FIRST, EVENTS).coalesce(1).write.format("delta").save(events)
    spark.createDataFrame(SECOND, EVENTS).coalesce(1).write.format("delta").mode(
        "append").save(events)
    spark.createDataFrame(GROUPS, "grp string, label string").coalesce(1).write.format(
        "delta").save(groups)
    return root, events, groups


def _rows(df):
    """An answer's rows without their ids, as a multiset."""
    return Counter(tuple(r) for r in df.drop("hippo_row_id").collect())


def test_an_answer_holds_each_source_row_as_often_as_the_source_does(spark, sources):
    root, events, groups = sources
    store = hippo.LineageStore(spark, str(root / "store-oracle"))
    with store.run("join") as run:
        ev, gr = run.source("events", events), run.source("groups", groups)
        run.sink("by_label", ev.filter(F.col("x") > 0).join(gr, "grp").groupBy("label").agg(
            F.count(F.lit(1)).alias("n"), F.sum("x").alias("sx")), str(root / "by_label"))
    answer = store.backward("by_label", where="label = 'first'")
    # Plain Spark: the events and groups rows that meet in the chosen group.
    ev, gr = spark.read.format("delta").load(events), spark.read.format("delta").load(groups)
    chosen = gr.filter("label = 'first'")
    met = ev.filter(F.col("x") > 0).join(chosen.select("grp").distinct(), "grp",
                                         "left_semi").select(*ev.columns)
    used = chosen.join(ev.filter(F.col("x") > 0).select("grp").distinct(), "grp", "left_semi")
    assert _rows(answer["events"]) == _rows(met)
    assert _rows(answer["groups"]) == _rows(used)
    assert _rows(answer["events"])[(1, "a", 1.0)] == 3  # three equal rows, two files
    assert _rows(answer["groups"])[("b", "first")] == 2
    # Equal rows are one record: one id.
    ids = {r.id: r.hippo_row_id for r in answer["events"].collect()}
    assert len(ids) == len(set(ids.values())) == 4


def _join(ev, gr):
    return ev.join(gr, "grp", "left").groupBy("grp").agg(F.count(F.lit(1)).alias("n"))


def _self_union(ev, gr):
    return ev.union(ev).groupBy("grp").agg(F.count(F.lit(1)).alias("n"))


def _self_join(ev, gr):
    other = ev.select(F.col("grp").alias("g2"), F.col("x").alias("x2"))
    return ev.join(other, F.col("grp") == F.col("g2")).groupBy("grp").agg(
        F.sum("x2").alias("s"))


def _explode(ev, gr):
    return ev.select("grp", "x", F.explode(F.array(F.lit(1), F.lit(2))).alias("e")).groupBy(
        "grp").agg(F.sum("e").alias("s"))


def _window(ev, gr):
    return ev.withColumn("t", F.sum("x").over(Window.partitionBy("grp"))).groupBy("grp").agg(
        F.max("t").alias("t"))


def _distinct(ev, gr):
    return ev.select("grp", "x").distinct().groupBy("grp").agg(F.count(F.lit(1)).alias("n"))


def _stacked(ev, gr):
    per_id = ev.groupBy("grp", "id").agg(F.count(F.lit(1)).alias("c"))
    return per_id.groupBy("grp").agg(F.sum("c").alias("n"))


def _many(ev, gr):  # a group of more than 1,000 rows: the answer stays on the executors
    wide = ev.select("grp", "id", F.explode(F.sequence(F.lit(1), F.lit(200))).alias("k"))
    return wide.join(gr, "grp").groupBy("label").agg(F.count(F.lit(1)).alias("n"))


SHAPES = [_join, _self_union, _self_join, _explode, _window, _distinct, _stacked, _many]
# Shapes whose events rows reach the answer carried (a distinct is a group of its own,
# whose rows carry again); a source joined with itself carries neither side's rows.
CARRYING = {_join, _self_union, _explode, _window, _distinct, _stacked, _many}


@pytest.mark.parametrize("shape", SHAPES, ids=[s.__name__.strip("_") for s in SHAPES])
def test_carried_answers_equal_answers_read_again(spark, sources, shape, monkeypatch):
    root, events, groups = sources
    store = hippo.LineageStore(spark, str(root / f"store{shape.__name__}"))
    with store.run(shape.__name__) as run:
        out = shape(run.source("events", events), run.source("groups", groups))
        run.sink("out", out, str(root / f"out{shape.__name__}"))
    where = "label = 'first'" if shape is _many else "grp = 'a' OR grp = 'b'"
    made = []
    spy = backward_mod._carried_answer

    def counted(slots, op_id, *args):
        made.append(slots.run.steps[op_id].source.name)
        return spy(slots, op_id, *args)
    monkeypatch.setattr(backward_mod, "_carried_answer", counted)
    for columns in (None, [c for c in out.df.columns if c not in ("grp", "label")][:1]):
        made.clear()
        carried = store.backward("out", where=where, columns=columns)
        assert ("events" in made) == (shape in CARRYING), made
        monkeypatch.setattr(backward_mod, "CARRY_ROWS", False)
        read = store.backward("out", where=where, columns=columns)
        monkeypatch.setattr(backward_mod, "CARRY_ROWS", True)
        assert set(carried) == set(read) and carried
        for name in read:
            assert Counter(map(tuple, carried[name].collect())) == Counter(
                map(tuple, read[name].collect())), (name, columns)
            assert carried[name].columns == read[name].columns
    assert sum(_rows(store.backward("out", where=where)["events"]).values()) >= 5
