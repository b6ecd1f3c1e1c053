"""Values learned across joins narrow a group's read, never its answer.

Backward queries of one group push the values its rows must hold across the joins that
made them (``hippo.query.reduction``): equal join columns, and reads of a source with
what is known of it. The answers are checked against the oracle with those reads forced
on every source (``SCAN_BYTES`` 0), and the reads are checked to have happened.
"""

from __future__ import annotations

import re

import pytest
from pyspark.sql import functions as F

from hippo.query import pushdown, reduction
from tests.hippo.oracle import (
    Where,
    assert_backward_matches,
    assert_sink_matches,
    col,
    count_rows,
    expr,
    max_of,
    on,
    spark_source,
    sum_of,
)

CUSTOMERS = [(1, 10, "ann"), (2, 10, "bob"), (3, 20, "cy"), (4, None, "dee")]
ORDERS = [(100, 1, 1), (101, 1, 5), (102, 2, 6), (103, 3, 7), (104, 2, 2), (105, None, 9),
          (106, 1, 8)]
ITEMS = [(100, 1, 3, "R"), (101, 1, 4, "R"), (101, 2, 1, "N"), (102, 1, 2, "R"),
         (103, 1, 6, "R"), (103, 2, 6, "R"), (106, 1, 5, "N"), (106, 2, 7, "R"),
         (107, 1, 9, "R"), (None, 1, 1, "R")]
NATIONS = [(10, "north"), (20, "south"), (30, "west")]
DAYS = [(1, "mon"), (5, "fri"), (8, "mon")]
SCORES = [(0.5, "a"), (1.5, "b"), (float("nan"), "c")]
WEIGHTS = [(0.5, 1), (float("nan"), 2), (float("nan"), 3)]


def _eq(a, b):
    return None if None in (a, b) else a == b


@pytest.fixture
def recorded(spark, store, tmp_path):
    c, o_c = spark_source(spark, "customers", "c_cust int, c_nation int, c_name string",
                          CUSTOMERS, tmp_path)
    o, o_o = spark_source(spark, "orders", "o_order int, o_cust int, o_day int", ORDERS,
                          tmp_path)
    i, o_i = spark_source(spark, "items", "l_order int, l_line int, l_qty int, l_flag string",
                          ITEMS, tmp_path)
    n, o_n = spark_source(spark, "nations", "n_nation int, n_name string", NATIONS, tmp_path)
    d, o_d = spark_source(spark, "days", "d_day int, d_name string", DAYS, tmp_path)
    sc, _ = spark_source(spark, "scores", "s_w double, s_name string", SCORES, tmp_path)
    w, _ = spark_source(spark, "weights", "w_w double, w_n int", WEIGHTS, tmp_path)
    out = tmp_path / "out"
    with store.run("reduce") as run:
        cs, os_, its, ns = (run.source("customers", c), run.source("orders", o),
                            run.source("items", i), run.source("nations", n))
        # Q10's shape: customer, its recent orders, their returned items, its nation.
        per_cust = (cs.join(os_.filter(F.col("o_day") >= 3), F.col("c_cust") == F.col("o_cust"))
                    .join(its.filter(F.col("l_flag") == "R"), F.col("l_order") == F.col("o_order"))
                    .join(ns, F.col("c_nation") == F.col("n_nation"))
                    .groupBy("c_cust", "c_name", "n_name").agg(F.sum("l_qty").alias("qty")))
        run.sink("per_cust", per_cust, str(out / "per_cust"))
        # An outer join: items without an order are kept, with nulls for the order.
        by_item_order = (its.join(os_, F.col("l_order") == F.col("o_order"), "left")
                         .groupBy("l_order").agg(F.count(F.lit(1)).alias("n"),
                                                 F.max("o_day").alias("day")))
        run.sink("by_item_order", by_item_order, str(out / "by_item_order"))
        # A source joined to itself: two paths, nothing learned about it.
        a = os_.select(F.col("o_order").alias("a_order"), F.col("o_cust").alias("a_cust"))
        b = os_.select(F.col("o_order").alias("b_order"), F.col("o_cust").alias("b_cust"))
        same_cust = a.join(b, F.col("a_cust") == F.col("b_cust")).groupBy("a_order").agg(
            F.count(F.lit(1)).alias("n"))
        run.sink("same_cust", same_cust, str(out / "same_cust"))
        # The same frame on both sides of a join: two paths too, though one graph edge.
        pairs = os_.join(os_, "o_cust").toDF("cust", "a_order", "a_day", "b_order", "b_day")
        by_day = (pairs.join(run.source("days", d), F.col("a_day") == F.col("d_day"))
                  .groupBy("d_day").agg(F.count(F.lit(1)).alias("n")))
        run.sink("pairs_by_day", by_day, str(out / "pairs_by_day"))
        # Float keys: Spark joins NaN to NaN, Python's sets never match two NaNs.
        by_score = (run.source("scores", sc).join(run.source("weights", w),
                                                  F.col("s_w") == F.col("w_w"))
                    .groupBy("s_name").agg(F.sum("w_n").alias("n")))
        run.sink("by_score", by_score, str(out / "by_score"))
    oracles = {
        "per_cust": (o_c.join(o_o.filter(expr(lambda d: d >= 3, "o_day")),
                              on(_eq, ["c_cust"], ["o_cust"]))
                     .join(o_i.filter(expr(lambda f: f == "R", "l_flag")),
                           on(_eq, ["o_order"], ["l_order"]))
                     .join(o_n, on(_eq, ["c_nation"], ["n_nation"]))
                     .group_by("c_cust", "c_name", "n_name").agg(("qty", sum_of("l_qty")))),
        "by_item_order": (o_i.join(o_o, on(_eq, ["l_order"], ["o_order"]), "left")
                          .group_by("l_order").agg(("n", count_rows()),
                                                   ("day", max_of("o_day")))),
        "same_cust": (o_o.select(("a_order", col("o_order")), ("a_cust", col("o_cust")))
                      .join(o_o.select(("b_order", col("o_order")), ("b_cust", col("o_cust"))),
                            on(_eq, ["a_cust"], ["b_cust"]))
                      .group_by("a_order").agg(("n", count_rows()))),
        "pairs_by_day": (o_o.join(o_o.select(("b_cust", col("o_cust")), ("b_order", col("o_order")),
                                             ("b_day", col("o_day"))),
                                  on(_eq, ["o_cust"], ["b_cust"]))
                         .select(("cust", col("o_cust")), ("a_order", col("o_order")),
                                 ("a_day", col("o_day")), ("b_order", col("b_order")),
                                 ("b_day", col("b_day")))
                         .join(o_d, on(_eq, ["a_day"], ["d_day"]))
                         .group_by("d_day").agg(("n", count_rows()))),
    }
    for name, oracle in oracles.items():
        assert_sink_matches(spark, str(out / name), oracle)
    return oracles


def _one(column, value):
    return Where(f"{column} = {value}", lambda r: r[column] == value)


def test_a_group_read_learns_values_across_joins_and_answers_as_the_oracle(
        store, recorded, monkeypatch):
    monkeypatch.setattr(pushdown, "SCAN_BYTES", 0)  # every source is worth a read
    reads, learned = [], []
    real_few_sets, real_where = reduction.few_sets, reduction.reduced_where

    def counted(df, columns):
        reads.append(columns)
        return real_few_sets(df, columns)

    filters = []

    def kept(*args):
        out = real_where(*args)
        learned.append(out is not None)
        filters.append(out)
        return out

    monkeypatch.setattr(reduction, "few_sets", counted)
    monkeypatch.setattr("hippo.query.backward.reduced_where", kept)
    per_cust = recorded["per_cust"]
    for cust in (1, 2, 3):
        got = assert_backward_matches(store, "per_cust", per_cust, _one("c_cust", cust))
        assert got["items"][1], cust  # every customer here has returned items
    # Customer 1's orders 101 and 106 are read (its order 100 is before day 3), and
    # only their items are then read: the lineitem of Q10.
    assert reads and learned and all(learned)
    learned.clear()
    store.backward("per_cust", where="c_cust = 1")
    text = str(filters[-1])  # e.g. or(in(__c4, 106, 101), isNull(__c4)) for o_order
    assert re.search(r"in\(__c\d+, (101, 106|106, 101)\)", text) and "100" not in text, text
    assert_backward_matches(store, "per_cust", per_cust, _one("c_cust", 1), columns=["qty"])
    by_item = recorded["by_item_order"]
    for order in (101, 107):  # 107 has no order: the outer join's padded side
        assert_backward_matches(store, "by_item_order", by_item, _one("l_order", order))
    assert_backward_matches(store, "by_item_order", by_item, _one("l_order", 106),
                            columns=["day"])
    learned.clear()
    assert_backward_matches(store, "same_cust", recorded["same_cust"], _one("a_order", 100))
    # Day 5's pairs are order 101 with each of customer 1's orders (100, 101, 106): a
    # value of the left side must not narrow the right side, the same frame.
    got = assert_backward_matches(store, "pairs_by_day", recorded["pairs_by_day"],
                                  _one("d_day", 5), only=["orders"])
    assert {r[0] for r in got["orders"][1]} == {100, 101, 106}
    assert learned == [False, False]


def test_values_learned_across_joins_follow_only_sound_directions(store, recorded):
    run_id = store.runs().first().run_id
    run = store._slots(run_id).run

    def flows(sink):  # the joins on the way to the sink's group-by
        group_by = run.steps[run.sink(sink).inputs[0]]
        return reduction._find_joins(run, group_by.inputs[0]).flows

    def named(c):
        return run.steps[c[0]].source.name, c[1]

    inner = {(named(a), named(b)) for a, bs in flows("per_cust").items() for b in bs}
    for pair in [(("customers", "c_cust"), ("orders", "o_cust")),
                 (("orders", "o_order"), ("items", "l_order")),
                 (("customers", "c_nation"), ("nations", "n_nation"))]:
        assert pair in inner and pair[::-1] in inner  # an inner join: both ways
    # The left join passes items' values to orders, never orders' to items (an item
    # without an order is in the output whatever orders holds).
    left = {(named(a), named(b)) for a, bs in flows("by_item_order").items() for b in bs}
    assert left == {(("items", "l_order"), ("orders", "o_order"))}
    # A source read along two paths (joined to itself) is in no flow, nor a float key.
    assert not flows("same_cust")
    assert not flows("pairs_by_day")
    assert not flows("by_score")
