"""Small fixed pipelines: hippo's backward/forward answers equal the oracle's.

Each test runs one pipeline through hippo (``run.source``, tracked methods, ``run.sink``)
and the same pipeline through the pure-Python oracle (``tests/hippo/oracle.py``), checks
the sink as written equals the oracle's output (so the oracle models what ran), then
compares lineage answers at row and cell level, backward and forward.
"""

from __future__ import annotations

import pandas as pd
import pytest
from pyspark.sql import functions as F

import hippo


from tests.hippo.oracle import (
    Explode,
    Frame,
    OrderedFn,
    Where,
    avg_of,
    col,
    count_of,
    count_rows,
    expr,
    max_of,
    min_of,
    on,
    raw,
    spark_source,
    sum_of,
    assert_backward_matches,
    assert_forward_matches,
    assert_sink_matches,
)

ORDERS_SCHEMA = "oid int, cust string, qty int, price int, tags string"
ORDERS = [
    (1, "ann", 2, 10, "a,b"),
    (2, "bob", 1, 25, "b"),
    (3, "ann", 5, 7, None),
    (4, "cy", None, 12, "a,c"),
    (5, "bob", 3, None, "c"),
    (6, "dee", 4, 9, "a"),
    (7, None, 2, 30, "b,c"),
]
CUSTOMERS_SCHEMA = "cust string, region string, tier int"
CUSTOMERS = [
    ("ann", "north", 1),
    ("bob", "south", 2),
    ("cy", "north", None),
    ("eve", "west", 3),
    (None, "nowhere", 0),  # a null key never matches
]


def _orders(spark, tmp_path, as_path: bool = True):
    return spark_source(spark, "orders", ORDERS_SCHEMA, ORDERS, tmp_path if as_path else None)


def _customers(spark, tmp_path, as_path: bool = False):
    return spark_source(spark, "customers", CUSTOMERS_SCHEMA, CUSTOMERS,
                        tmp_path if as_path else None)


def _sink(run, name, tracked, tmp_path) -> str:
    path = str(tmp_path / "out" / name)
    run.sink(name, tracked, path)
    return path


# -- one row in, one row out ------------------------------------------------------------------
def test_backward_and_forward_through_filter_then_select_match_oracle(spark, store, tmp_path):
    orders, o_orders = _orders(spark, tmp_path)
    with store.run("filter_select") as run:
        out = run.source("orders", orders).filter(F.col("qty") > 1).select("oid", "cust", "price")
        path = _sink(run, "big", out, tmp_path)
    oracle = o_orders.filter(expr(lambda q: q > 1, "qty")).select("oid", "cust", "price")

    assert_sink_matches(spark, path, oracle)
    ann = Where("cust = 'ann'", lambda r: r["cust"] == "ann")
    got = assert_backward_matches(store, "big", oracle, ann)
    assert len(got["orders"][1]) == 2
    # qty only decided which rows exist: it is no output column's cell.
    assert_backward_matches(store, "big", oracle, ann, columns=["price"])
    assert_forward_matches(store, "orders", {"big": oracle},
                           Where("oid IN (1, 4)", lambda r: r["oid"] in (1, 4)))


def test_backward_through_with_column_expressions_over_several_columns_matches_oracle(
    spark, store, tmp_path
):
    orders, o_orders = _orders(spark, tmp_path, as_path=False)
    with store.run("expressions") as run:
        out = (
            run.source("orders", orders)
            .withColumn("total", F.col("qty") * F.col("price"))
            .withColumn("label", F.concat(F.col("cust"), F.lit(":"), F.col("oid").cast("string")))
            .withColumn("q_or_p", F.coalesce("qty", "price"))
            .withColumn("price", F.col("price") + F.col("oid"))  # replaces a column
            .select("oid", "total", "label", "q_or_p", "price")
        )
        path = _sink(run, "priced", out, tmp_path)
    oracle = (
        o_orders.with_column("total", expr(lambda q, p: q * p, "qty", "price"))
        .with_column("label", expr(lambda c, o: f"{c}:{o}", "cust", "oid"))
        .with_column("q_or_p", raw(lambda q, p: q if q is not None else p, "qty", "price"))
        .with_column("price", expr(lambda p, o: p + o, "price", "oid"))
        .select("oid", "total", "label", "q_or_p", "price")
    )

    assert_sink_matches(spark, path, oracle)
    some = Where("oid IN (2, 4, 5)", lambda r: r["oid"] in (2, 4, 5))
    assert_backward_matches(store, "priced", oracle, some)
    got = assert_backward_matches(store, "priced", oracle, some, columns=["total"])
    assert got["orders"][0] == ["qty", "price"]
    assert_backward_matches(store, "priced", oracle, some, columns=["label", "price"])
    assert_forward_matches(store, "orders", {"priced": oracle},
                           Where("qty IS NULL", lambda r: r["qty"] is None))


def test_backward_and_forward_through_explode_inside_select_match_oracle(spark, store, tmp_path):
    orders, o_orders = _orders(spark, tmp_path)
    with store.run("explode") as run:
        out = run.source("orders", orders).select(
            "oid", F.explode(F.split("tags", ",")).alias("tag"), (F.col("qty") * 2).alias("q2"))
        path = _sink(run, "tags", out, tmp_path)
    oracle = o_orders.select(
        "oid", ("tag", Explode(expr(lambda t: t.split(","), "tags"))),
        ("q2", expr(lambda q: q * 2, "qty")))

    assert_sink_matches(spark, path, oracle)
    b = Where("tag = 'b'", lambda r: r["tag"] == "b")
    assert_backward_matches(store, "tags", oracle, b)
    got = assert_backward_matches(store, "tags", oracle, b, columns=["tag"])
    assert got["orders"][0] == ["tags"]
    assert_backward_matches(store, "tags", oracle, b, columns=["q2", "oid"])
    # One source row, several exploded output rows.
    forward = assert_forward_matches(store, "orders", {"tags": oracle},
                                     Where("oid = 4", lambda r: r["oid"] == 4))
    assert len(forward["tags"]) == 2


def test_backward_and_forward_through_repartition_and_coalesce_match_oracle(
    spark, store, tmp_path
):
    orders, o_orders = _orders(spark, tmp_path, as_path=False)
    with store.run("shuffled") as run:
        out = (run.source("orders", orders).repartition(3).filter(F.col("price") < 26)
               .repartition(2, "cust").coalesce(1).select("cust", "price"))
        path = _sink(run, "cheap", out, tmp_path)
    oracle = (o_orders.repartition().filter(expr(lambda p: p < 26, "price"))
              .repartition().repartition().select("cust", "price"))

    assert_sink_matches(spark, path, oracle)
    assert_backward_matches(store, "cheap", oracle, Where("price > 9", lambda r: r["price"] > 9))
    assert_forward_matches(store, "orders", {"cheap": oracle},
                           Where("cust = 'bob'", lambda r: r["cust"] == "bob"))


def test_backward_and_forward_through_order_by_then_limit_match_oracle(spark, store, tmp_path):
    orders, o_orders = _orders(spark, tmp_path)
    with store.run("top") as run:
        out = (run.source("orders", orders).orderBy(F.desc("price"), "oid").limit(3)
               .select("oid", (F.col("price") - 1).alias("p")))
        path = _sink(run, "top", out, tmp_path)
    oracle = (o_orders.order_by(("price", False), "oid").limit(3)
              .select("oid", ("p", expr(lambda p: p - 1, "price"))))

    assert_sink_matches(spark, path, oracle)
    everything = Where("true", lambda r: True)
    assert_backward_matches(store, "top", oracle, everything)
    assert_backward_matches(store, "top", oracle, everything, columns=["p"])
    # Row 2 (price 25) is kept, row 5 (price null, last when descending) is not.
    forward = assert_forward_matches(store, "orders", {"top": oracle},
                                     Where("oid IN (2, 5)", lambda r: r["oid"] in (2, 5)))
    assert forward == {"top": [(2, 24)]}


# -- joins --------------------------------------------------------------------------------------
def test_backward_and_forward_through_joins_on_a_column_name_match_oracle(
    spark, store, tmp_path
):
    orders, o_orders = _orders(spark, tmp_path)
    customers, o_customers = _customers(spark, tmp_path)
    oracles: dict[str, Frame] = {}
    with store.run("joins_by_name") as run:
        o = run.source("orders", orders).select("oid", "cust", "qty")
        c = run.source("customers", customers)
        for how in ["inner", "left", "right", "full"]:
            _sink(run, how, o.join(c, "cust", how), tmp_path)
            oracles[how] = o_orders.select("oid", "cust", "qty").join(o_customers, "cust", how)

    for how, oracle in oracles.items():
        assert_sink_matches(spark, str(tmp_path / "out" / how), oracle)
        north = Where("region = 'north' OR oid = 7", lambda r: r["region"] == "north"
                      or r["oid"] == 7)
        assert_backward_matches(store, how, oracle, north)
        # The key column is computed from the left key (inner, left), the right key
        # (right) or both (full: coalesce); the other columns from their own side.
        assert_backward_matches(store, how, oracle, north, columns=["cust", "tier"])
    assert_forward_matches(store, "customers", oracles,
                           Where("cust IN ('bob', 'eve')", lambda r: r["cust"] in ("bob", "eve")))
    assert_forward_matches(store, "orders", oracles,
                           Where("oid IN (3, 7)", lambda r: r["oid"] in (3, 7)))


def test_a_column_made_by_its_row_is_made_by_its_own_side_of_an_outer_join(
    spark, store, tmp_path
):
    # A literal and a count(*) come from no column: made by their rows, which are one
    # side's rows; a row that side lacks (eve ordered nothing) has no lineage for them.
    orders, o_orders = _orders(spark, tmp_path)
    customers, o_customers = _customers(spark, tmp_path)
    with store.run("made_by_rows") as run:
        o = run.source("orders", orders)
        counts = o.groupBy("cust").agg(F.count(F.lit(1)).alias("n"))
        joined = (o.select("oid", "cust").withColumn("one", F.lit(1))
                  .join(counts, "cust", "inner")
                  .join(run.source("customers", customers), "cust", "right"))
        path = _sink(run, "made", joined, tmp_path)
    counted = o_orders.group_by("cust").agg(("n", count_rows()))
    oracle = (o_orders.select("oid", "cust").with_column("one", raw(lambda: 1))
              .join(counted, "cust", "inner").join(o_customers, "cust", "right"))
    assert_sink_matches(spark, path, oracle)
    for who in ("eve", "ann"):
        chosen = Where(f"cust = '{who}'", lambda r, who=who: r["cust"] == who)
        for cols in (["one"], ["n"], ["one", "tier"]):
            assert_backward_matches(store, "made", oracle, chosen, columns=cols)


def test_backward_and_forward_through_joins_on_an_expression_match_oracle(
    spark, store, tmp_path
):
    orders, o_orders = _orders(spark, tmp_path, as_path=False)
    customers, o_customers = _customers(spark, tmp_path, as_path=True)
    hows = ["inner", "left", "full"]
    with store.run("joins_by_expression") as run:
        o = run.source("orders", orders).select("oid", "cust", "qty")
        c = run.source("customers", customers).withColumnRenamed("cust", "name")
        cond = (o["cust"] == c["name"]) & (o["qty"] >= c["tier"])
        for how in hows:
            _sink(run, how, o.join(c, cond, how), tmp_path)
    oracles = {
        how: o_orders.select("oid", "cust", "qty").join(
            o_customers.rename("cust", "name"),
            on(lambda cu, q, n, t: None if None in (cu, q, n, t) else cu == n and q >= t,
               left=("cust", "qty"), right=("name", "tier")),
            how)
        for how in hows
    }

    ann = Where("cust = 'ann' OR name = 'eve'", lambda r: r["cust"] == "ann" or r["name"] == "eve")
    for how, oracle in oracles.items():
        assert_sink_matches(spark, str(tmp_path / "out" / how), oracle)
        assert_backward_matches(store, how, oracle, ann)
        # An expression join keeps both key columns, each computed from its own side.
        assert_backward_matches(store, how, oracle, ann, columns=["name", "qty"])
    assert_forward_matches(store, "customers", oracles,
                           Where("tier >= 2", lambda r: r["tier"] is not None and r["tier"] >= 2))


def test_backward_and_forward_through_semi_and_anti_joins_match_oracle(spark, store, tmp_path):
    orders, o_orders = _orders(spark, tmp_path)
    customers, o_customers = _customers(spark, tmp_path)
    hows = ["left_semi", "left_anti"]
    with store.run("semi_anti") as run:
        o = run.source("orders", orders)
        c = run.source("customers", customers).filter(F.col("tier") >= 1)
        for how in hows:
            _sink(run, how, o.join(c, "cust", how).select("oid", "cust", "price"), tmp_path)
    ranked = o_customers.filter(expr(lambda t: t >= 1, "tier"))
    oracles = {how: o_orders.join(ranked, "cust", how).select("oid", "cust", "price")
               for how in hows}

    # hippo (and the oracle) give a semi join's row the left row plus the right rows it
    # matched, which contribute no cell (they only decide that the left row exists);
    # an anti join's row has the left row alone: no right row is behind it.
    some = Where("price >= 10", lambda r: r["price"] is not None and r["price"] >= 10)
    for how, oracle in oracles.items():
        assert_sink_matches(spark, str(tmp_path / "out" / how), oracle)
        got = assert_backward_matches(store, how, oracle, some)
        assert ("customers" in got) == (how == "left_semi")
        got = assert_backward_matches(store, how, oracle, some, columns=["cust", "price"])
        assert set(got) == {"orders"}
    assert_forward_matches(store, "orders", oracles,
                           Where("oid IN (1, 4, 6)", lambda r: r["oid"] in (1, 4, 6)))
    assert_forward_matches(store, "customers", oracles,
                           Where("cust IN ('bob', 'cy')", lambda r: r["cust"] in ("bob", "cy")))


def test_backward_and_forward_through_a_self_join_match_oracle(spark, store, tmp_path):
    orders, o_orders = _orders(spark, tmp_path)
    with store.run("self_join") as run:
        o = run.source("orders", orders)
        left, right = o.alias("l"), o.alias("r")
        pairs = left.join(
            right, (F.col("l.cust") == F.col("r.cust")) & (F.col("l.oid") < F.col("r.oid"))
        ).select(F.col("l.oid").alias("first"), F.col("r.oid").alias("second"),
                 (F.col("l.qty") + F.col("r.price")).alias("mix"))
        path = _sink(run, "pairs", pairs, tmp_path)
    right_o = o_orders.select(*[(f"r_{c}", col(c)) for c in o_orders.columns])
    oracle = o_orders.join(
        right_o,
        on(lambda c1, o1, c2, o2: None if None in (c1, c2) else c1 == c2 and o1 < o2,
           left=("cust", "oid"), right=("r_cust", "r_oid")),
    ).select(("first", col("oid")), ("second", col("r_oid")),
             ("mix", expr(lambda q, p: q + p, "qty", "r_price")))

    assert_sink_matches(spark, path, oracle)
    bob = Where("first = 2", lambda r: r["first"] == 2)
    assert_backward_matches(store, "pairs", oracle, bob)
    # One source, two rows, different columns: qty of one, price of the other.
    got = assert_backward_matches(store, "pairs", oracle, bob, columns=["mix"])
    assert got["orders"][0] == ["qty", "price"]
    assert_forward_matches(store, "orders", {"pairs": oracle},
                           Where("oid = 3", lambda r: r["oid"] == 3))


# -- many rows to one ---------------------------------------------------------------------------
def test_backward_and_forward_through_group_by_with_several_aggregates_match_oracle(
    spark, store, tmp_path
):
    orders, o_orders = _orders(spark, tmp_path, as_path=False)
    with store.run("aggregates") as run:
        out = run.source("orders", orders).groupBy("cust").agg(
            F.sum("qty").alias("qty"),
            F.avg("price").alias("avg_price"),
            F.min("tags").alias("first_tags"),
            F.max("oid").alias("last_oid"),
            F.count("qty").alias("n_qty"),
            F.count(F.lit(1)).alias("n"),
            F.sum(F.col("qty") * F.col("price")).alias("revenue"),
        )
        path = _sink(run, "by_cust", out, tmp_path)
    oracle = o_orders.group_by("cust").agg(
        ("qty", sum_of("qty")),
        ("avg_price", avg_of("price")),
        ("first_tags", min_of("tags")),
        ("last_oid", max_of("oid")),
        ("n_qty", count_of("qty")),
        ("n", count_rows()),
        ("revenue", sum_of(expr(lambda q, p: q * p, "qty", "price"))),
    )

    assert_sink_matches(spark, path, oracle)
    ann_or_null = Where("cust = 'ann' OR cust IS NULL",
                        lambda r: r["cust"] == "ann" or r["cust"] is None)
    assert_backward_matches(store, "by_cust", oracle, ann_or_null)
    got = assert_backward_matches(store, "by_cust", oracle, ann_or_null, columns=["revenue"])
    assert got["orders"][0] == ["qty", "price"]
    # The group key output column is computed from the key cells of the whole group.
    assert_backward_matches(store, "by_cust", oracle, ann_or_null, columns=["cust", "first_tags"])
    # count(1) references no column: no cell contributes to it.
    assert_backward_matches(store, "by_cust", oracle, ann_or_null, columns=["n"])
    assert_forward_matches(store, "orders", {"by_cust": oracle},
                           Where("oid IN (3, 7)", lambda r: r["oid"] in (3, 7)))


def test_backward_and_forward_through_group_by_shortcuts_and_a_global_agg_match_oracle(
    spark, store, tmp_path
):
    orders, o_orders = _orders(spark, tmp_path)
    grouped = o_orders.group_by("cust")
    oracles = {
        "count": grouped.count(),
        "sum": grouped.sum("qty", "price").rename("sum(qty)", "qty").rename("sum(price)", "price"),
        "avg": grouped.avg("price").rename("avg(price)", "price"),
        "min": grouped.min("qty").rename("min(qty)", "qty"),
        "max": grouped.max("price").rename("max(price)", "price"),
        "total": o_orders.agg(("top", max_of("price")), ("n", count_of("tags"))),
    }
    with store.run("shortcuts") as run:
        o = run.source("orders", orders)
        g = o.groupBy("cust")
        _sink(run, "count", g.count(), tmp_path)
        # Spark names them `sum(qty)` ...; Delta refuses parentheses in column names.
        _sink(run, "sum", g.sum("qty", "price").withColumnsRenamed(
            {"sum(qty)": "qty", "sum(price)": "price"}), tmp_path)
        _sink(run, "avg", g.avg("price").withColumnRenamed("avg(price)", "price"), tmp_path)
        _sink(run, "min", g.min("qty").withColumnRenamed("min(qty)", "qty"), tmp_path)
        _sink(run, "max", g.max("price").withColumnRenamed("max(price)", "price"), tmp_path)
        _sink(run, "total", o.agg(F.max("price").alias("top"), F.count("tags").alias("n")),
              tmp_path)

    for name, oracle in oracles.items():
        assert_sink_matches(spark, str(tmp_path / "out" / name), oracle)
    bob = Where("cust = 'bob'", lambda r: r["cust"] == "bob")
    assert_backward_matches(store, "count", oracles["count"], bob)
    assert_backward_matches(store, "sum", oracles["sum"], bob, columns=["price"])
    assert_backward_matches(store, "avg", oracles["avg"], bob, columns=["price"])
    assert_backward_matches(store, "min", oracles["min"], bob, columns=["qty"])
    assert_backward_matches(store, "max", oracles["max"], bob, columns=["price", "cust"])
    assert_backward_matches(store, "total", oracles["total"], Where("true", lambda r: True),
                            columns=["n"])
    assert_forward_matches(store, "orders", oracles,
                           Where("oid = 5", lambda r: r["oid"] == 5))


def test_backward_and_forward_through_distinct_match_oracle(spark, store, tmp_path):
    orders, o_orders = _orders(spark, tmp_path)
    with store.run("distinct") as run:
        out = (run.source("orders", orders)
               .select("cust", (F.col("qty") > 1).alias("big")).distinct())
        path = _sink(run, "kinds", out, tmp_path)
    oracle = o_orders.select("cust", ("big", expr(lambda q: q > 1, "qty"))).distinct()

    assert_sink_matches(spark, path, oracle)
    big = Where("big", lambda r: r["big"] is True)
    assert_backward_matches(store, "kinds", oracle, big)
    assert_backward_matches(store, "kinds", oracle, big, columns=["big"])
    assert_forward_matches(store, "orders", {"kinds": oracle},
                           Where("oid IN (1, 2)", lambda r: r["oid"] in (1, 2)))


def test_backward_and_forward_through_an_aggregate_of_an_aggregate_match_oracle(
    spark, store, tmp_path
):
    orders, o_orders = _orders(spark, tmp_path, as_path=False)
    with store.run("agg_of_agg") as run:
        per_cust = run.source("orders", orders).groupBy("cust").agg(F.sum("qty").alias("q"))
        out = (per_cust.withColumn("big", F.col("q") > 3).groupBy("big")
               .agg(F.max("q").alias("top_q"), F.count(F.lit(1)).alias("custs")))
        path = _sink(run, "sizes", out, tmp_path)
    oracle = (o_orders.group_by("cust").agg(("q", sum_of("qty")))
              .with_column("big", expr(lambda q: q > 3, "q")).group_by("big")
              .agg(("top_q", max_of("q")), ("custs", count_rows())))

    assert_sink_matches(spark, path, oracle)
    big = Where("big", lambda r: r["big"] is True)
    assert_backward_matches(store, "sizes", oracle, big)
    assert_backward_matches(store, "sizes", oracle, big, columns=["top_q"])
    assert_backward_matches(store, "sizes", oracle, big, columns=["big", "custs"])
    assert_forward_matches(store, "orders", {"sizes": oracle},
                           Where("oid IN (2, 4)", lambda r: r["oid"] in (2, 4)))


# -- several sources ----------------------------------------------------------------------------
def test_backward_and_forward_through_union_and_union_by_name_match_oracle(
    spark, store, tmp_path
):
    orders, o_orders = _orders(spark, tmp_path)
    customers, o_customers = _customers(spark, tmp_path)
    with store.run("unions") as run:
        o = run.source("orders", orders)
        c = run.source("customers", customers)
        by_position = o.select("oid", "cust").union(c.select("tier", "cust"))
        by_name = o.select("cust", "qty").unionByName(
            c.select(F.col("tier").alias("qty"), F.upper("cust").alias("cust")))
        _sink(run, "by_position", by_position, tmp_path)
        _sink(run, "by_name", by_name, tmp_path)
    oracles = {
        "by_position": o_orders.select("oid", "cust").union(o_customers.select("tier", "cust")),
        "by_name": o_orders.select("cust", "qty").union_by_name(
            o_customers.select(("qty", col("tier")),
                               ("cust", expr(lambda c: c.upper(), "cust")))),
    }

    for name, oracle in oracles.items():
        assert_sink_matches(spark, str(tmp_path / "out" / name), oracle)
    ann = Where("lower(cust) = 'ann'", lambda r: r["cust"] is not None
                and r["cust"].lower() == "ann")
    got = assert_backward_matches(store, "by_position", oracles["by_position"], ann)
    assert set(got) == {"orders", "customers"}
    got = assert_backward_matches(store, "by_position", oracles["by_position"], ann,
                                  columns=["oid"])
    assert got["customers"][0] == ["tier"]
    assert_backward_matches(store, "by_name", oracles["by_name"], ann, columns=["qty"])
    assert_forward_matches(store, "customers", oracles,
                           Where("cust = 'ann'", lambda r: r["cust"] == "ann"))


def test_backward_and_forward_through_a_join_then_aggregate_of_two_sources_match_oracle(
    spark, store, tmp_path
):
    orders, o_orders = _orders(spark, tmp_path)
    customers, o_customers = _customers(spark, tmp_path, as_path=True)
    with store.run("join_then_agg") as run:
        o = run.source("orders", orders)
        c = run.source("customers", customers)
        out = o.join(c, "cust", "left").groupBy("region").agg(
            F.sum(F.col("qty") * F.col("tier")).alias("weighted"),
            F.count("oid").alias("orders"),
            F.max("cust").alias("last_cust"))
        path = _sink(run, "by_region", out, tmp_path)
    oracle = o_orders.join(o_customers, "cust", "left").group_by("region").agg(
        ("weighted", sum_of(expr(lambda q, t: q * t, "qty", "tier"))),
        ("orders", count_of("oid")),
        ("last_cust", max_of("cust")))

    assert_sink_matches(spark, path, oracle)
    north = Where("region = 'north' OR region IS NULL",
                  lambda r: r["region"] in ("north", None))
    got = assert_backward_matches(store, "by_region", oracle, north)
    assert set(got) == {"orders", "customers"}
    got = assert_backward_matches(store, "by_region", oracle, north, columns=["weighted"])
    assert (got["orders"][0], got["customers"][0]) == (["qty"], ["tier"])
    # The left join's key is the orders' key: no customers cell contributes.
    assert_backward_matches(store, "by_region", oracle, north, columns=["last_cust"])
    assert_forward_matches(store, "customers", {"by_region": oracle},
                           Where("cust IN ('cy', 'eve')", lambda r: r["cust"] in ("cy", "eve")))


def test_backward_and_forward_through_a_self_union_match_oracle(spark, store, tmp_path):
    orders, o_orders = _orders(spark, tmp_path, as_path=False)
    with store.run("self_union") as run:
        o = run.source("orders", orders)
        out = o.select("oid", "qty").union(o.filter(F.col("price") > 20).select("oid", "price"))
        path = _sink(run, "both", out, tmp_path)
    oracle = o_orders.select("oid", "qty").union(
        o_orders.filter(expr(lambda p: p > 20, "price")).select("oid", "price"))

    assert_sink_matches(spark, path, oracle)
    two = Where("oid = 2", lambda r: r["oid"] == 2)
    assert_backward_matches(store, "both", oracle, two)
    # The same source row, qty on one side and price on the other.
    assert_backward_matches(store, "both", oracle, two, columns=["qty"])
    assert_forward_matches(store, "orders", {"both": oracle},
                           Where("oid = 7", lambda r: r["oid"] == 7))


# -- missing values, renaming every column, user functions ---------------------------------
def _filled(value, column):
    return raw(lambda v: value if v is None else v, column)


def test_fillna_dropna_replace_to_df_and_transform_match_oracle_and_replay_and_removal(
    spark, store, tmp_path
):
    orders, o_orders = _orders(spark, tmp_path)

    def cleaned(df):  # a user's function over a TrackedDataFrame
        return df.na.fill({"qty": 0}).dropna(subset=["cust"])

    with store.run("missing_values") as run:
        out = (run.source("orders", orders)
               .transform(cleaned)
               .fillna(-1)  # the int columns still null: price
               .replace("ann", "anne", subset=["cust"])
               .select("oid", "cust", "qty", "price")
               .toDF("order", "customer", "quantity", "amount"))
        path = _sink(run, "clean", out, tmp_path)

    def pipeline(frame):
        out = (frame.with_column("qty", _filled(0, "qty"))
               .filter(raw(lambda c: c is not None, "cust")))
        for c in ("oid", "qty", "price"):
            out = out.with_column(c, _filled(-1, c))
        out = (out.with_column("cust", raw(lambda c: "anne" if c == "ann" else c, "cust"))
               .select("oid", "cust", "qty", "price"))
        for old, new in (("oid", "order"), ("cust", "customer"), ("qty", "quantity"),
                         ("price", "amount")):
            out = out.rename(old, new)
        return out

    oracle = pipeline(o_orders)
    assert_sink_matches(spark, path, oracle)
    anne = Where("customer = 'anne' OR amount = -1",
                 lambda r: r["customer"] == "anne" or r["amount"] == -1)
    assert_backward_matches(store, "clean", oracle, anne)
    got = assert_backward_matches(store, "clean", oracle, anne, columns=["quantity"])
    assert got["orders"][0] == ["qty"]
    assert_backward_matches(store, "clean", oracle, anne, columns=["customer", "amount"])
    # Order 4 had no qty (filled), order 7 no customer (dropped), order 5 no price.
    assert_forward_matches(store, "orders", {"clean": oracle},
                           Where("oid IN (4, 5, 7)", lambda r: r["oid"] in (4, 5, 7)))

    replayed = store.replay(run.run_id)["clean"]
    assert sorted(map(tuple, replayed.collect())) == sorted(
        map(tuple, spark.read.format("delta").load(path).collect()))
    report = store.remove("orders", where="oid IN (1, 4)")
    assert report.removed == 2
    kept = [r for r in ORDERS if r[0] not in (1, 4)]
    assert_sink_matches(spark, path, pipeline(Frame.source("orders", o_orders.columns, kept)))


def test_to_df_renames_the_duplicate_columns_of_a_join_by_position(spark, store, tmp_path):
    from dataclasses import replace

    orders, o_orders = _orders(spark, tmp_path)
    customers, o_customers = _customers(spark, tmp_path)
    with store.run("to_df_after_join") as run:
        o = run.source("orders", orders)
        c = run.source("customers", customers)
        out = o.join(c, o["cust"] == c["cust"]).select(o["oid"], o["cust"], c["cust"], "region")
        out = out.toDF("oid", "ordered_by", "customer", "region")
        path = _sink(run, "paired", out, tmp_path)
    joined = o_orders.join(o_customers, on(lambda a, b: None if None in (a, b) else a == b,
                                           ["cust"], ["cust"]))
    # The oracle names both cust columns alike: rename them by position, as toDF does.
    names = list(joined.columns)
    first, second = [i for i, n in enumerate(names) if n == "cust"]
    names[first], names[second] = "ordered_by", "customer"
    oracle = replace(joined, columns=tuple(names)).select(
        "oid", "ordered_by", "customer", "region")
    assert_sink_matches(spark, path, oracle)
    ann = Where("customer = 'ann'", lambda r: r["customer"] == "ann")
    assert_backward_matches(store, "paired", oracle, ann)
    assert_backward_matches(store, "paired", oracle, ann, columns=["customer"])
    assert_forward_matches(store, "customers", {"paired": oracle},
                           Where("region = 'north'", lambda r: r["region"] == "north"))


def test_missing_value_steps_refuse_hidden_columns_and_transform_checks_its_result(
    spark, store, tmp_path
):
    from hippo.errors import HippoError

    orders, _ = _orders(spark, tmp_path)
    with store.run("refusals") as run:
        src = run.source("orders", orders)
        with pytest.raises(HippoError, match="`__hippo_id`|'__hippo_id' is not a column"):
            src.fillna(0, subset=["__hippo_id"])
        with pytest.raises(HippoError, match="not a column"):
            src.dropna(subset=[src.columns[0], "__hippo_s1"])
        with pytest.raises(HippoError, match="returned DataFrame, not a TrackedDataFrame"):
            src.transform(lambda df: df.df)
        with pytest.raises(HippoError, match="3 names for 5 columns"):
            src.toDF("a", "b", "c")
        dotted = src.withColumnRenamed("price", "price.usd")  # a dot in a name
        run.sink("all", dotted.fillna(0).replace(9, 90).na.drop(how="all"),
                 str(tmp_path / "out" / "all"))
    out = spark.read.format("delta").load(str(tmp_path / "out" / "all"))
    assert out.filter("qty IS NULL OR `price.usd` IS NULL").count() == 0
    assert sorted(r[0] for r in out.select("`price.usd`").collect()) == [
        0, 7, 10, 12, 25, 30, 90]


def test_union_by_name_allowing_missing_columns_matches_oracle(spark, store, tmp_path):
    orders, o_orders = _orders(spark, tmp_path)
    customers, o_customers = _customers(spark, tmp_path)
    with store.run("union_missing") as run:
        o = run.source("orders", orders).select("cust", "qty", "oid")
        c = run.source("customers", customers).select(F.col("tier").alias("qty"), "cust",
                                                      "region")
        path = _sink(run, "all", o.unionByName(c, allowMissingColumns=True), tmp_path)
    # Each side gets the other's columns as nulls, which no cell of the other side made.
    nulls = raw(lambda: None)
    oracle = o_orders.select("cust", "qty", "oid", ("region", nulls)).union(
        o_customers.select("cust", ("qty", col("tier")), ("oid", nulls), "region"))
    assert_sink_matches(spark, path, oracle)
    north = Where("region = 'north' OR oid = 2", lambda r: r["region"] == "north" or r["oid"] == 2)
    got = assert_backward_matches(store, "all", oracle, north)
    assert set(got) == {"orders", "customers"}
    got = assert_backward_matches(store, "all", oracle, north, columns=["qty"])
    assert got["customers"][0] == ["tier"] and got["orders"][0] == ["qty"]
    assert_forward_matches(store, "customers", {"all": oracle},
                           Where("tier > 1", lambda r: r["tier"] is not None and r["tier"] > 1))


# -- windows --------------------------------------------------------------------------------
def test_whole_partition_windows_match_oracle_and_trace_replay_and_removal(spark, store, tmp_path):
    from pyspark.sql import Window

    orders, o_orders = _orders(spark, tmp_path)
    by_cust = Window.partitionBy("cust")
    with store.run("windows") as run:
        src = run.source("orders", orders)
        out = (src.withColumn("cust_qty", F.sum("qty").over(by_cust))
               .withColumn("cust_n", F.count(F.lit(1)).over(by_cust))
               # a window and the row's own value in one expression
               .withColumn("share", F.col("price") / F.max("price").over(by_cust))
               .select("oid", "cust", "price", "cust_qty", "cust_n", "share"))
        _sink(run, "windowed", out, tmp_path)
        overall = src.select("oid", "qty", F.sum("price").over(Window.partitionBy()).alias("all"))
        _sink(run, "overall", overall, tmp_path)

    def pipelines(frame):
        windowed = (frame.window("cust_qty", sum_of("qty"), ["cust"])
                    .window("cust_n", count_rows(), ["cust"])
                    .window("top", max_of("price"), ["cust"])
                    .with_column("share", expr(lambda p, m: p / m, "price", "top"))
                    .select("oid", "cust", "price", "cust_qty", "cust_n", "share"))
        whole = frame.window("all", sum_of("price"), []).select("oid", "qty", "all")
        return {"windowed": windowed, "overall": whole}

    oracles = pipelines(o_orders)
    for name, oracle in oracles.items():
        assert_sink_matches(spark, str(tmp_path / "out" / name), oracle)
    bob = Where("cust = 'bob'", lambda r: r["cust"] == "bob")
    got = assert_backward_matches(store, "windowed", oracles["windowed"], bob)
    assert len(got["orders"][1]) == 2
    got = assert_backward_matches(store, "windowed", oracles["windowed"], bob,
                                  columns=["cust_qty"])
    assert got["orders"][0] == ["qty"]
    assert_backward_matches(store, "windowed", oracles["windowed"], bob, columns=["share"])
    assert_backward_matches(store, "windowed", oracles["windowed"], bob, columns=["cust_n"])
    one = Where("oid = 1", lambda r: r["oid"] == 1)
    got = assert_backward_matches(store, "overall", oracles["overall"], one, columns=["all"])
    assert len(got["orders"][1]) == len(ORDERS)
    assert_backward_matches(store, "overall", oracles["overall"], one, columns=["qty"])
    assert_forward_matches(store, "orders", oracles,
                           Where("oid IN (2, 7)", lambda r: r["oid"] in (2, 7)))

    # Trace: at the source, the rows of bob's partition; replay: what the run wrote.
    steps = store.trace("windowed", where="oid = 2")
    at_source = [s for s in steps if s.step == "source"][0]
    assert sorted(r.oid for r in at_source.rows.collect()) == [2, 5]
    assert any(s.kind == "many_to_many" for s in steps)
    for name in oracles:
        replayed = store.replay(run.run_id)[name]
        written = spark.read.format("delta").load(str(tmp_path / "out" / name))
        assert sorted(map(tuple, replayed.collect())) == sorted(map(tuple, written.collect()))

    report = store.remove("orders", where="oid = 5")
    assert report.removed == 1
    kept = pipelines(Frame.source("orders", o_orders.columns,
                                  [r for r in ORDERS if r[0] != 5]))
    for name, oracle in kept.items():
        assert_sink_matches(spark, str(tmp_path / "out" / name), oracle)


# Events per user: ``t`` is unique within a user (functions that depend on how ties are
# ordered are tested over it), ``day`` has ties (rank and range frames are not).
EVENTS_SCHEMA = "eid int, user string, t int, day int, x double"
EVENTS = [(i, ["u1", "u2", "u3"][i % 3], (i * 7) % 11, i % 4, float(i) if i % 5 else None)
          for i in range(1, 19)] + [(19, None, 3, 1, 2.5), (20, None, 1, 1, None)]


def _ordered_windows(frame):
    """The oracle of the ordered windows recorded below: two steps, each of windows
    over the step's input."""
    by_t = [("t", True)]
    by_day = [("day", True)]
    return (frame
            .windows(
                lambda f: f.ordered_window("prev_x", OrderedFn("lag", col("x"), 1), ["user"],
                                           by_t),
                lambda f: f.ordered_window("next_x", OrderedFn("lead", col("x"), 2,
                                                               default=col("day")),
                                           ["user"], by_t),
                lambda f: f.ordered_window("rn", OrderedFn("row_number"), ["user"], by_t))
            .windows(
                lambda f: f.ordered_window("rk", OrderedFn("rank"), ["user"], by_day),
                lambda f: f.ordered_window("drk", OrderedFn("dense_rank"), ["user"], by_day),
                lambda f: f.ordered_window("last3", OrderedFn(
                    "agg", agg=sum_of("x"), frame=("rows", -2, 0)), ["user"], by_t),
                lambda f: f.ordered_window("upto", OrderedFn(
                    "agg", agg=count_rows(), frame=("range", None, 0)), ["user"], by_day),
                lambda f: f.ordered_window("near", OrderedFn(
                    "agg", agg=max_of("x"), frame=("range", -1, 1)), ["user"], by_day),
                lambda f: f.ordered_window("tile", OrderedFn("ntile", n=2), ["user"], by_t),
                lambda f: f.ordered_window("late", OrderedFn(
                    "agg", agg=sum_of("x"), frame=("rows", 1, None)), ["user"],
                    [("t", False)])))


def test_ordered_windows_match_oracle_and_trace_replay_and_removal(spark, store, tmp_path):
    from pyspark.sql import Window

    events, o_events = spark_source(spark, "events", EVENTS_SCHEMA, EVENTS, tmp_path)
    by_t = Window.partitionBy("user").orderBy("t")
    by_day = Window.partitionBy("user").orderBy("day")
    with store.run("ordered") as run:
        src = run.source("events", events)
        # Two steps, several frames each (windows of one step share their partition).
        out = (src.withColumns({
            "prev_x": F.lag("x").over(by_t),
            "next_x": F.expr("lead(x, 2, day) OVER (PARTITION BY user ORDER BY t)"),
            "rn": F.row_number().over(by_t)})
            .withColumns({"rk": F.rank().over(by_day), "drk": F.dense_rank().over(by_day),
                          "last3": F.sum("x").over(by_t.rowsBetween(-2, 0)),
                          "upto": F.count(F.lit(1)).over(by_day),
                          "near": F.max("x").over(by_day.rangeBetween(-1, 1)),
                          "tile": F.ntile(2).over(by_t),
                          "late": F.sum("x").over(
                              Window.partitionBy("user").orderBy(F.col("t").desc())
                              .rowsBetween(1, Window.unboundedFollowing))}))
        path = _sink(run, "feats", out, tmp_path)
    oracle = _ordered_windows(o_events)
    assert_sink_matches(spark, path, oracle)
    ten = Where("eid = 10", lambda r: r["eid"] == 10)
    got = assert_backward_matches(store, "feats", oracle, ten)
    assert len(got["events"][1]) == 6  # ntile reads the whole partition of u2
    for column in ["next_x", "rn", "rk", "drk", "upto", "near", "tile", "late"]:
        assert_backward_matches(store, "feats", oracle, ten, columns=[column])
    got = assert_backward_matches(store, "feats", oracle, ten, columns=["prev_x"])
    assert got["events"] == (["x"], [(13.0,)])  # the previous row's x, not its own
    firsts = Where("rn = 1 OR user IS NULL", lambda r: r["rn"] == 1 or r["user"] is None)
    assert_backward_matches(store, "feats", oracle, firsts, columns=["prev_x", "last3"])
    assert_forward_matches(store, "events", {"feats": oracle},
                           Where("eid IN (7, 19)", lambda r: r["eid"] in (7, 19)))

    steps = store.trace("feats", where="eid = 10")
    assert sorted(r.eid for r in steps[0].rows.collect()) == [1, 4, 7, 10, 13, 16]
    replayed = store.replay(run.run_id)["feats"]
    written = spark.read.format("delta").load(path)
    assert sorted(map(tuple, replayed.collect()), key=repr) == sorted(
        map(tuple, written.collect()), key=repr)
    part = store.replay(run.run_id, where="eid IN (10, 14)")["feats"]
    assert sorted(map(tuple, part.collect()), key=repr) == sorted(
        map(tuple, written.filter("eid IN (10, 14)").collect()), key=repr)

    # Removing a row changes the rows whose frames held it, and brings the row before it
    # into a lag's frame; the repaired sink equals the pipeline over the kept rows.
    report = store.remove("events", where="eid = 13")
    assert report.sinks["feats"].how == "incremental", report.sinks["feats"].why
    kept = Frame.source("events", o_events.columns, [r for r in EVENTS if r[0] != 13])
    assert_sink_matches(spark, path, _ordered_windows(kept))


def test_windows_hippo_cannot_record_exactly_yet_are_refused_by_name(spark, store, tmp_path):
    from pyspark.sql import Window

    from hippo.errors import UnsupportedStepError

    orders, _ = _orders(spark, tmp_path)
    with store.run("ordered_windows") as run:
        src = run.source("orders", orders)
        ordered = Window.partitionBy("cust").orderBy("oid")
        for col_, match in [(F.expr("lag(qty) IGNORE NULLS OVER (PARTITION BY cust ORDER BY oid)"),
                             "IGNORE NULLS"),
                            (F.sum("qty").over(Window.partitionBy(F.upper("cust"))),
                             "partition by columns")]:
            with pytest.raises(UnsupportedStepError, match=match):
                src.withColumn("w", col_)
        with pytest.raises(UnsupportedStepError, match="same step as `Generate`"):
            src.select("oid", F.explode(F.split("tags", ",")).alias("t"),
                       F.count(F.lit(1)).over(Window.partitionBy("cust")).alias("n"))
        with pytest.raises(UnsupportedStepError, match="different partitions"):
            src.select("oid", F.lag("qty").over(ordered).alias("a"),
                       F.lag("qty").over(Window.partitionBy("price").orderBy("oid")).alias("b"))
        run.sink("plain", src.select("oid"), str(tmp_path / "out" / "plain"))


# -- Python functions -----------------------------------------------------------------------
def test_python_and_pandas_udfs_match_oracle_and_replay_and_removal(spark, store, tmp_path):
    orders, o_orders = _orders(spark, tmp_path)
    customers, o_customers = _customers(spark, tmp_path)
    bonus = 3  # a closure: the recorded function carries it

    @F.udf("int")
    def scored(qty, price):
        return None if qty is None or price is None else qty * price + bonus

    @F.pandas_udf("string")
    def shout(names: pd.Series) -> pd.Series:
        return names.str.upper()

    with store.run("udfs") as run:
        src = run.source("orders", orders)
        out = (src.withColumn("score", scored("qty", "price"))
               .filter(scored("qty", "qty") > 5)
               .select("oid", "score", shout("cust").alias("who"),
                       (F.col("oid") + scored("qty", "qty")).alias("mixed"))
               .filter(F.col("score") > 20))
        path = _sink(run, "scored", out, tmp_path)
        band = F.udf(lambda p: None if p is None else p // 10, "int")  # in a group key
        banded = src.groupBy(band("price").alias("band")).agg(
            F.sum("qty").alias("q"))
        _sink(run, "banded", banded, tmp_path)
        same = F.udf(lambda v: v, "string")  # in a semi join's condition
        per_cust = src.groupBy("cust").agg(F.sum("qty").alias("q"))
        known = run.source("customers", customers)
        _sink(run, "known", per_cust.join(known, same(per_cust["cust"]) == known["cust"],
                                          "left_semi"), tmp_path)

    def pipeline(frame):
        return (frame.with_column("score", expr(lambda q, p: q * p + bonus, "qty", "price"))
                .filter(expr(lambda q: q * q + bonus > 5, "qty"))
                .select("oid", "score", ("who", expr(str.upper, "cust")),
                        ("mixed", expr(lambda o, q: o + q * q + bonus, "oid", "qty")))
                .filter(expr(lambda s: s > 20, "score")))

    oracle = pipeline(o_orders)
    assert_sink_matches(spark, path, oracle)
    some = Where("oid IN (2, 3, 6)", lambda r: r["oid"] in (2, 3, 6))
    got = assert_backward_matches(store, "scored", oracle, some)
    assert sorted(r[0] for r in got["orders"][1]) == [3, 6]  # 2 filtered out by the UDF
    got = assert_backward_matches(store, "scored", oracle, some, columns=["score"])
    assert got["orders"][0] == ["qty", "price"]
    got = assert_backward_matches(store, "scored", oracle, some, columns=["who"])
    assert got["orders"][0] == ["cust"]
    assert_backward_matches(store, "scored", oracle, some, columns=["mixed"])
    o_banded = o_orders.group_by(("band", expr(lambda p: p // 10, "price"))).agg(
        ("q", sum_of("qty")))
    o_known = o_orders.group_by("cust").agg(("q", sum_of("qty"))).join(
        o_customers, on(lambda a, b: None if None in (a, b) else a == b, ["cust"], ["cust"]),
        "left_semi")
    assert_forward_matches(store, "orders", {"scored": oracle, "banded": o_banded,
                                             "known": o_known},
                           Where("oid IN (1, 6)", lambda r: r["oid"] in (1, 6)))

    assert_sink_matches(spark, str(tmp_path / "out" / "banded"), o_banded)
    # A session that never saw the functions, as a later job's: the store brings them.
    fresh = hippo.LineageStore(spark.newSession(), store.path)
    two = Where("band = 2", lambda r: r["band"] == 2)
    assert_backward_matches(fresh, "banded", o_banded, two)
    assert_backward_matches(fresh, "banded", o_banded, two, columns=["q"])
    ann = Where("cust = 'ann'", lambda r: r["cust"] == "ann")
    got = assert_backward_matches(fresh, "known", o_known, ann)
    assert set(got) == {"orders", "customers"}
    steps = fresh.trace("banded", where="band = 2")
    at_source = [s for s in steps if s.step == "source"][0]
    assert sorted(r.oid for r in at_source.rows.collect()) == [2]

    replayed = fresh.replay(run.run_id)["scored"]
    assert sorted(map(tuple, replayed.collect())) == sorted(
        map(tuple, spark.read.format("delta").load(path).collect()))
    store.remove("orders", where="oid = 3")
    kept = Frame.source("orders", o_orders.columns, [r for r in ORDERS if r[0] != 3])
    assert_sink_matches(spark, path, pipeline(kept))
    assert_sink_matches(spark, str(tmp_path / "out" / "banded"), kept.group_by(
        ("band", expr(lambda p: p // 10, "price"))).agg(("q", sum_of("qty"))))


# -- nondeterministic steps ----------------------------------------------------------------
def test_samples_splits_and_random_values_are_recorded_and_replayed_exactly(spark, store,
                                                                           tmp_path):
    orders, _ = _orders(spark, tmp_path)
    with store.run("random") as run:
        src = run.source("orders", orders)
        part = src.sample(fraction=0.5, seed=3)
        noisy = src.withColumn("noise", F.rand(7)).withColumn("uid", F.expr("uuid()"))
        left, right = src.randomSplit([0.5, 0.5], seed=1)
        paths = {"part": _sink(run, "part", part.select("oid", "qty"), tmp_path),
                 "noisy": _sink(run, "noisy", noisy.select("oid", "noise", "uid"), tmp_path),
                 "left": _sink(run, "left", left, tmp_path),
                 "right": _sink(run, "right", right, tmp_path)}
    read = {n: spark.read.format("delta").load(p) for n, p in paths.items()}
    oids = {n: sorted(r.oid for r in df.collect()) for n, df in read.items()}
    assert set(oids["part"]) <= {r[0] for r in ORDERS}
    assert sorted(oids["left"] + oids["right"]) == sorted(r[0] for r in ORDERS)

    # Replay reads the recorded choices and values: exactly what the run wrote.
    replayed = store.replay(run.run_id)
    for name, df in read.items():
        assert sorted(map(str, replayed[name].collect())) == sorted(map(str, df.collect()))
    # Lineage is each row's own source row; a random value is made by its row.
    first = oids["noisy"][0]
    got = store.backward("noisy", where=f"oid = {first}", columns=["noise"])
    assert [r.hippo_row_id for r in got["orders"].collect()] == [
        r.hippo_row_id for r in store.backward("noisy", where=f"oid = {first}")["orders"]
        .collect()]
    assert store.forward("orders", where=f"oid = {first}")["noisy"].count() == 1
    if oids["part"]:
        one = oids["part"][0]
        got = store.backward("part", where=f"oid = {one}")["orders"]
        assert [r.oid for r in got.collect()] == [one]

    # A removal keeps every other row's draw: the sample keeps the rows it kept, the
    # random values stay, and the removed row is gone from each.
    gone = oids["left"][0]
    store.remove("orders", where=f"oid = {gone}")
    after = {n: spark.read.format("delta").load(p) for n, p in paths.items()}
    for name in paths:
        want = sorted(str(r) for r in read[name].collect() if r.oid != gone)
        assert sorted(str(r) for r in after[name].collect()) == want, name
