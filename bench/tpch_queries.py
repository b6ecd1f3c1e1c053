"""TPC-H Q1, Q3, Q5, Q10 and Q18 as DataFrame functions.

Each query takes a mapping of table name -> DataFrame-like and returns one DataFrame-like,
using only methods hippo's :class:`~hippo.TrackedDataFrame` tracks (filter, select,
withColumn, join, groupBy().agg, orderBy, limit). So the same function runs on plain
pyspark DataFrames (untracked) and on the TrackedDataFrames of ``run.source`` (tracked).

Substitution parameters are the TPC-H validation values (spec 2.4); Q18's ``quantity``
can be lowered so that tiny scale factors still return rows. Q18's ``IN`` subquery is a
left semi join with the aggregated lineitem.

Below each query, its column lineage step by step as read from its code
(:mod:`bench.mappings`), for the eager oracle of :mod:`bench.cellwise`; ``LINEAGE``
holds them by query name.

Not checked: that answers match the TPC-H reference answers (the benchmark compares
tracked with untracked results, not with the spec's answer set).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

from pyspark.sql import functions as F

from bench.mappings import Declared, filter_on, group_agg, join, limit, order_by, select

__all__ = ["QUERIES", "LINEAGE", "q1", "q3", "q5", "q10", "q18"]

Tables = Mapping[str, Any]


def _date(text: str) -> Any:
    return F.lit(dt.date.fromisoformat(text))


def _revenue() -> Any:
    return F.col("l_extendedprice") * (1 - F.col("l_discount"))


REVENUE = ("l_extendedprice", "l_discount")  # what _revenue() reads


def q1(t: Tables, delta_days: int = 90) -> Any:
    """Pricing summary report: lineitem aggregates per return flag and line status."""
    cutoff = dt.date(1998, 12, 1) - dt.timedelta(days=delta_days)
    disc_price = _revenue()
    return (
        t["lineitem"].filter(F.col("l_shipdate") <= F.lit(cutoff))
        .groupBy("l_returnflag", "l_linestatus")
        .agg(
            F.sum("l_quantity").alias("sum_qty"),
            F.sum("l_extendedprice").alias("sum_base_price"),
            F.sum(disc_price).alias("sum_disc_price"),
            F.sum(disc_price * (1 + F.col("l_tax"))).alias("sum_charge"),
            F.avg("l_quantity").alias("avg_qty"),
            F.avg("l_extendedprice").alias("avg_price"),
            F.avg("l_discount").alias("avg_disc"),
            F.count(F.lit(1)).alias("count_order"),
        )
        .orderBy("l_returnflag", "l_linestatus")
    )


Q1_LINEAGE = (
    filter_on("l_shipdate"),
    group_agg(["l_returnflag", "l_linestatus"],
              sum_qty="l_quantity", sum_base_price="l_extendedprice",
              sum_disc_price=REVENUE, sum_charge=(*REVENUE, "l_tax"),
              avg_qty="l_quantity", avg_price="l_extendedprice", avg_disc="l_discount",
              count_order=()),
    order_by(),
)


def q3(t: Tables, segment: str = "BUILDING", date: str = "1995-03-15") -> Any:
    """Shipping priority: the 10 unshipped orders of a segment with the highest revenue."""
    customer = t["customer"].filter(F.col("c_mktsegment") == segment)
    orders = t["orders"].filter(F.col("o_orderdate") < _date(date))
    lineitem = t["lineitem"].filter(F.col("l_shipdate") > _date(date))
    return (
        customer.join(orders, F.col("c_custkey") == F.col("o_custkey"))
        .join(lineitem, F.col("l_orderkey") == F.col("o_orderkey"))
        .groupBy("l_orderkey", "o_orderdate", "o_shippriority")
        .agg(F.sum(_revenue()).alias("revenue"))
        .select("l_orderkey", "revenue", "o_orderdate", "o_shippriority")
        .orderBy(F.col("revenue").desc(), F.col("o_orderdate"))
        .limit(10)
    )


Q3_LINEAGE = (
    filter_on("c_mktsegment"),
    filter_on("o_orderdate"),
    filter_on("l_shipdate"),
    join("c_custkey", "o_custkey"),
    join("l_orderkey", "o_orderkey"),
    group_agg(["l_orderkey", "o_orderdate", "o_shippriority"], revenue=REVENUE),
    select(),
    order_by(),
    limit("revenue", "o_orderdate"),
)


def q5(t: Tables, region: str = "ASIA", date: str = "1994-01-01") -> Any:
    """Local supplier volume: revenue per nation of a region, local suppliers only."""
    start = dt.date.fromisoformat(date)
    regions = t["region"].filter(F.col("r_name") == region)
    nations = t["nation"].join(regions, F.col("n_regionkey") == F.col("r_regionkey"))
    suppliers = t["supplier"].join(nations, F.col("s_nationkey") == F.col("n_nationkey"))
    orders = t["orders"].filter(
        (F.col("o_orderdate") >= F.lit(start))
        & (F.col("o_orderdate") < F.lit(start.replace(year=start.year + 1))))
    return (
        t["customer"].join(orders, F.col("c_custkey") == F.col("o_custkey"))
        .join(t["lineitem"], F.col("l_orderkey") == F.col("o_orderkey"))
        .join(suppliers, (F.col("l_suppkey") == F.col("s_suppkey"))
              & (F.col("c_nationkey") == F.col("s_nationkey")))
        .groupBy("n_name")
        .agg(F.sum(_revenue()).alias("revenue"))
        .orderBy(F.col("revenue").desc())
    )


Q5_LINEAGE = (
    filter_on("r_name"),
    join("n_regionkey", "r_regionkey"),
    join("s_nationkey", "n_nationkey"),
    filter_on("o_orderdate"),
    join("c_custkey", "o_custkey"),
    join("l_orderkey", "o_orderkey"),
    join("l_suppkey", "s_suppkey", "c_nationkey", "s_nationkey"),
    group_agg(["n_name"], revenue=REVENUE),
    order_by(),
)


def q10(t: Tables, date: str = "1993-10-01") -> Any:
    """Returned item reporting: the 20 customers who lost most revenue to returns."""
    start = dt.date.fromisoformat(date)
    end = dt.date(start.year + (start.month + 2) // 12, (start.month + 2) % 12 + 1, 1)
    orders = t["orders"].filter(
        (F.col("o_orderdate") >= F.lit(start)) & (F.col("o_orderdate") < F.lit(end)))
    lineitem = t["lineitem"].filter(F.col("l_returnflag") == "R")
    return (
        t["customer"].join(orders, F.col("c_custkey") == F.col("o_custkey"))
        .join(lineitem, F.col("l_orderkey") == F.col("o_orderkey"))
        .join(t["nation"], F.col("c_nationkey") == F.col("n_nationkey"))
        .groupBy("c_custkey", "c_name", "c_acctbal", "c_phone", "n_name", "c_address",
                 "c_comment")
        .agg(F.sum(_revenue()).alias("revenue"))
        .select("c_custkey", "c_name", "revenue", "c_acctbal", "n_name", "c_address",
                "c_phone", "c_comment")
        .orderBy(F.col("revenue").desc())
        .limit(20)
    )


Q10_LINEAGE = (
    filter_on("o_orderdate"),
    filter_on("l_returnflag"),
    join("c_custkey", "o_custkey"),
    join("l_orderkey", "o_orderkey"),
    join("c_nationkey", "n_nationkey"),
    group_agg(["c_custkey", "c_name", "c_acctbal", "c_phone", "n_name", "c_address",
               "c_comment"], revenue=REVENUE),
    select(),
    order_by(),
    limit("revenue"),
)


def q18(t: Tables, quantity: int = 300) -> Any:
    """Large volume customer: orders whose lines sum to more than ``quantity`` units."""
    big = (
        t["lineitem"].groupBy("l_orderkey")
        .agg(F.sum("l_quantity").alias("order_quantity"))
        .filter(F.col("order_quantity") > quantity)
    )
    orders = t["orders"].join(big, F.col("o_orderkey") == F.col("l_orderkey"), "left_semi")
    return (
        t["customer"].join(orders, F.col("c_custkey") == F.col("o_custkey"))
        .join(t["lineitem"], F.col("o_orderkey") == F.col("l_orderkey"))
        .groupBy("c_name", "c_custkey", "o_orderkey", "o_orderdate", "o_totalprice")
        .agg(F.sum("l_quantity").alias("sum_qty"))
        .orderBy(F.col("o_totalprice").desc(), F.col("o_orderdate"))
        .limit(100)
    )


Q18_LINEAGE = (
    group_agg(["l_orderkey"], order_quantity="l_quantity"),
    filter_on("order_quantity"),
    join("o_orderkey", "l_orderkey"),  # the left semi join keeps the orders' columns only
    join("c_custkey", "o_custkey"),
    join("o_orderkey", "l_orderkey"),
    group_agg(["c_name", "c_custkey", "o_orderkey", "o_orderdate", "o_totalprice"],
              sum_qty="l_quantity"),
    order_by(),
    limit("o_totalprice", "o_orderdate"),
)


# name -> (function, tables it reads)
QUERIES: dict[str, tuple[Callable[..., Any], tuple[str, ...]]] = {
    "q1": (q1, ("lineitem",)),
    "q3": (q3, ("customer", "orders", "lineitem")),
    "q5": (q5, ("region", "nation", "supplier", "customer", "orders", "lineitem")),
    "q10": (q10, ("customer", "orders", "lineitem", "nation")),
    "q18": (q18, ("customer", "orders", "lineitem")),
}

# name -> each step's declared lineage, in the order the query makes its steps
LINEAGE: dict[str, tuple[Declared, ...]] = {
    "q1": Q1_LINEAGE, "q3": Q3_LINEAGE, "q5": Q5_LINEAGE, "q10": Q10_LINEAGE,
    "q18": Q18_LINEAGE,
}
