"""Trace: at every step of a pipeline, the rows that lead to the chosen outputs.

The oracle (``tests/hippo/oracle.py``, plain Python) computes each step's output; the
rows of step k that lead to output o are found by treating step k's output as a source,
applying the remaining steps, and asking the oracle's backward lineage of o: another
way than hippo's (which walks row ids back from the sink).
"""

from __future__ import annotations

from collections import Counter

import pytest
from pyspark.sql import functions as F

from tests.hippo.oracle import (
    Explode,
    Frame,
    ORow,
    Source,
    count_rows,
    expr,
    spark_source,
    sum_of,
)
from tests.hippo.test_oracle_pipelines import CUSTOMERS, CUSTOMERS_SCHEMA, ORDERS, ORDERS_SCHEMA


def _rebased(frame: Frame, name: str) -> Frame:
    """``frame`` as a source of its own (rows may repeat: each is its own row)."""
    rows = tuple(ORow(r.values, frozenset({(name, i)}),
                      tuple(frozenset({(name, i, c)}) for c in frame.columns))
                 for i, r in enumerate(frame.rows))
    return Frame(frame.columns, rows,
                 {**frame.sources, name: Source(name, frame.columns, frame.values())})


def _norm(values):
    return tuple(round(v, 9) if isinstance(v, float) else v for v in values)


@pytest.fixture(scope="module")
def traced(spark, tmp_path_factory):
    import hippo

    folder = tmp_path_factory.mktemp("trace")
    orders, o_orders = spark_source(spark, "orders", ORDERS_SCHEMA, ORDERS, folder)
    customers, o_customers = spark_source(spark, "customers", CUSTOMERS_SCHEMA, CUSTOMERS)
    store = hippo.LineageStore(spark, str(folder / "lineage"))
    # (label, tracked step, oracle step): a line of steps with a join, an explode, an
    # aggregate and a filter after it.
    line = [
        ("filter", lambda t, c: t.filter(F.col("price") > 8),
         lambda f, c: f.filter(expr(lambda p: p > 8, "price"))),
        ("join", lambda t, c: t.join(c, "cust", "left"),
         lambda f, c: f.join(c, "cust", "left")),
        ("withColumn", lambda t, c: t.withColumn("spend", F.col("qty") * F.col("price")),
         lambda f, c: f.with_column("spend", expr(lambda q, p: q * p, "qty", "price"))),
        ("explode", lambda t, c: t.select("oid", "region", "spend",
                                          F.explode(F.split("tags", ",")).alias("tag")),
         lambda f, c: f.select("oid", "region", "spend",
                               ("tag", Explode(expr(lambda t: t.split(","), "tags"))))),
        ("groupBy", lambda t, c: t.groupBy("region", "tag").agg(
            F.sum("spend").alias("total"), F.count(F.lit(1)).alias("n")),
         lambda f, c: f.group_by("region", "tag").agg(("total", sum_of("spend")),
                                                     ("n", count_rows()))),
        ("having", lambda t, c: t.filter(F.col("n") >= 1),
         lambda f, c: f.filter(expr(lambda n: n >= 1, "n"))),
    ]
    ops = {}
    with store.run("line") as run:
        t = run.source("orders", orders)
        c = run.source("customers", customers)
        ops["orders"] = t.op_id
        for label, step, _ in line:
            t = step(t, c)
            ops[label] = t.op_id
        run.sink("out", t, str(folder / "out"))
    frames = {"orders": o_orders}
    f = o_orders
    for label, _, step in line:
        f = step(f, o_customers)
        frames[label] = f
    return store, run, ops, line, frames, o_customers


WHERES = [
    ("region = 'north' AND tag = 'a'", lambda r: r["region"] == "north" and r["tag"] == "a"),
    ("region IS NULL", lambda r: r["region"] is None),
    ("tag = 'c'", lambda r: r["tag"] == "c"),
]


@pytest.mark.parametrize("where,pick", WHERES, ids=[w[0] for w in WHERES])
def test_each_step_holds_exactly_the_rows_that_lead_to_the_chosen_outputs(
        spark, traced, where, pick):
    store, run, ops, line, frames, o_customers = traced
    steps = store.trace("out", where=where)
    by_op = {s.op_id: s for s in steps}
    assert [s.step for s in steps][-1] == "sink"
    assert steps == sorted(steps, key=lambda s: s.op_id)
    labels = ["orders"] + [label for label, _, _ in line]
    narrowed = 0  # steps where the trace keeps some, not all, of the step's rows
    for k, label in enumerate(labels):
        rest = _rebased(frames[label], "here")
        for _, _, step in line[k:]:
            rest = step(rest, o_customers)
        expected = Counter(_norm(v) for v in rest.backward(pick).get("here", ([], []))[1])
        got = Counter(_norm(tuple(r)[:-1]) for r in by_op[ops[label]].rows.collect())
        assert got == expected, label
        narrowed += 0 < sum(got.values()) < len(frames[label].rows)
        if expected:
            assert by_op[ops[label]].columns == frames[label].columns
    assert narrowed >= 5
    sink = steps[-1]
    assert Counter(_norm(tuple(r)[:-1]) for r in sink.rows.collect()) == Counter(
        _norm(v) for v in frames["having"].values() if pick(dict(zip(
            frames["having"].columns, v))))


def test_a_trace_step_says_what_ran_where(traced):
    store, run, ops, line, frames, _ = traced
    steps = store.trace("out", where="tag = 'c'", run_id=run.run_id)
    names = {s.op_id: s for s in steps}
    assert names[ops["orders"]].name == "orders" and names[ops["orders"]].kind == "identity"
    assert names[ops["groupBy"]].kind == "many_to_one"
    assert names[ops["join"]].step == "join"
    assert names[ops["join"]].code_location.startswith(__file__.rstrip("c"))
    assert names[ops["join"]].rows.columns[-1] == "hippo_row_id"
