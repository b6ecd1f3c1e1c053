"""Pivot, cube/rollup/grouping sets and unpivot/melt: hippo's lineage equals the oracle's.

Each pipeline runs through hippo and through the pure-Python oracle (the same semantics
written out by hand: conditional aggregates per pivot value, one aggregate per grouping
set, one row per unpivoted column); the sink must equal the oracle's output, then backward
and forward answers at row and cell level, replay, and a removal's repair must equal it.
"""

from __future__ import annotations

import pytest
from pyspark.sql import functions as F

from hippo.errors import HippoError, UnsupportedStepError
from tests.hippo.oracle import (
    Frame,
    Where,
    col,
    const,
    count_of,
    count_rows,
    expr,
    lit,
    max_of,
    spark_source,
    sum_of,
    assert_backward_matches,
    assert_forward_matches,
    assert_sink_matches,
)

SALES_SCHEMA = "sid int, region string, quarter string, product string, amount int, units int"
SALES = [
    (1, "north", "q1", "pen", 10, 2),
    (2, "north", "q1", "ink", 5, None),
    (3, "north", "q2", "pen", 7, 1),
    (4, "south", "q1", "pen", None, 3),
    (5, "south", "q2", "ink", 8, 4),
    (6, "south", "q2", "ink", 2, 1),
    (7, None, "q1", "pen", 4, 1),
    (8, "west", None, "ink", 9, 2),
]


def _sales(spark, tmp_path):
    return spark_source(spark, "sales", SALES_SCHEMA, SALES, tmp_path)


def _sink(run, name, tracked, tmp_path) -> str:
    path = str(tmp_path / "out" / name)
    run.sink(name, tracked, path)
    return path


def _rows(df):
    return sorted(map(tuple, df.collect()), key=repr)


def _check_replay_and_removal(spark, store, run_id, paths, pipelines, o_sales, removed):
    """Replay equals each sink as written; removing ``removed`` sales repairs each sink to
    the oracle on the cleaned source."""
    replayed = store.replay(run_id)
    for name, path in paths.items():
        assert _rows(replayed[name]) == _rows(spark.read.format("delta").load(path)), name
    ids = ", ".join(str(i) for i in removed)
    report = store.remove("sales", where=f"sid IN ({ids})")
    assert report.removed == len(removed)
    kept = Frame.source("sales", o_sales.columns, [r for r in SALES if r[0] not in removed])
    for name, path in paths.items():
        assert_sink_matches(spark, path, pipelines[name](kept))


def test_pivot_in_both_of_sparks_plans_matches_oracle_and_replay_and_removal(
    spark, store, tmp_path
):
    sales, o_sales = _sales(spark, tmp_path)
    with store.run("pivots") as run:
        s = run.source("sales", sales)
        # Numeric results: Spark's two-phase plan (PivotFirst), null where a region has
        # no sale in a quarter.
        numeric = s.groupBy("region").pivot("quarter", ["q1", "q2"]).agg(
            F.sum("amount").alias("amt"), F.count(F.lit(1)).alias("n"))
        # No values given: Spark's own (sorted distinct quarters, null first).
        found = s.groupBy("product").pivot("quarter").sum("units")
        # A string result: Spark's one-phase conditional aggregate, a count of 0.
        text = s.groupBy("region").pivot("quarter", ["q1", "q2"]).agg(
            F.max("product").alias("top"), F.count("units").alias("n"))
        paths = {name: _sink(run, name, t, tmp_path)
                 for name, t in (("numeric", numeric), ("found", found), ("text", text))}

    pipelines = {
        "numeric": lambda f: f.group_by("region").pivot(
            "quarter", ["q1", "q2"], ("amt", sum_of("amount")), ("n", count_rows()),
            missing_is_null=True),
        "found": lambda f: f.group_by("product").pivot(
            "quarter", [None, "q1", "q2"], ("sum(units)", sum_of("units")),
            missing_is_null=True),
        "text": lambda f: f.group_by("region").pivot(
            "quarter", ["q1", "q2"], ("top", max_of("product")), ("n", count_of("units")),
            missing_is_null=False),
    }
    oracles = {name: make(o_sales) for name, make in pipelines.items()}
    for name, path in paths.items():
        assert_sink_matches(spark, path, oracles[name])
    assert list(oracles["found"].columns) == ["product", "null", "q1", "q2"]

    north = Where("region = 'north' OR region IS NULL",
                  lambda r: r["region"] == "north" or r["region"] is None)
    assert_backward_matches(store, "numeric", oracles["numeric"], north)
    got = assert_backward_matches(store, "numeric", oracles["numeric"], north,
                                  columns=["q2_amt"])
    assert got["sales"][0] == ["quarter", "amount"]
    assert_backward_matches(store, "numeric", oracles["numeric"], north, columns=["q1_n"])
    assert_backward_matches(store, "text", oracles["text"], north, columns=["q1_top"])
    assert_backward_matches(store, "text", oracles["text"], north, columns=["q2_n", "region"])
    ink = Where("product = 'ink'", lambda r: r["product"] == "ink")
    assert_backward_matches(store, "found", oracles["found"], ink, columns=["null"])
    assert_forward_matches(store, "sales", oracles,
                           Where("sid IN (3, 8)", lambda r: r["sid"] in (3, 8)))

    # The trace of a pivot shows its two aggregates.
    steps = store.trace("numeric", where="region = 'south'")
    assert [s.step for s in steps].count("pivot") == 2
    _check_replay_and_removal(spark, store, run.run_id, paths, pipelines, o_sales, [3, 6])


def test_cube_rollup_and_grouping_sets_match_oracle_and_replay_and_removal(
    spark, store, tmp_path
):
    sales, o_sales = _sales(spark, tmp_path)
    with store.run("grouping_sets") as run:
        s = run.source("sales", sales)
        cube = s.cube("region", "quarter").agg(F.sum("amount").alias("amt"),
                                               F.grouping_id().alias("g"))
        rollup = s.rollup("region", "quarter").count()
        chosen = s.groupingSets([["region"], ["product", "quarter"]],
                                "region", "product", "quarter").agg(
            F.sum("units").alias("units"), F.grouping("region").alias("gr"))
        paths = {name: _sink(run, name, t, tmp_path)
                 for name, t in (("cube", cube), ("rollup", rollup), ("chosen", chosen))}

    def by_sets(f, keys, sets, aggs):
        out = None
        for chosen in sets:
            gid = sum(1 << (len(keys) - 1 - j) for j, k in enumerate(keys) if k not in chosen)
            part = f.group_by(*[k if k in chosen else (k, lit(None)) for k in keys]).agg(
                *[(name, agg(gid)) for name, agg in aggs])
            out = part if out is None else out.union(part)
        return out

    pipelines = {
        "cube": lambda f: by_sets(
            f, ["region", "quarter"], [{"region", "quarter"}, {"region"}, {"quarter"}, set()],
            [("amt", lambda g: sum_of("amount")), ("g", const)]),
        "rollup": lambda f: by_sets(
            f, ["region", "quarter"], [{"region", "quarter"}, {"region"}, set()],
            [("count", lambda g: count_rows())]),
        "chosen": lambda f: by_sets(
            f, ["region", "product", "quarter"], [{"region"}, {"product", "quarter"}],
            [("units", lambda g: sum_of("units")), ("gr", lambda g: const(g >> 2 & 1))]),
    }
    oracles = {name: make(o_sales) for name, make in pipelines.items()}
    for name, path in paths.items():
        assert_sink_matches(spark, path, oracles[name])

    # A row of the (region) set comes from its region's rows; the grand total from all.
    south = Where("region = 'south' AND quarter IS NULL",
                  lambda r: r["region"] == "south" and r["quarter"] is None)
    assert_backward_matches(store, "cube", oracles["cube"], south)
    got = assert_backward_matches(store, "cube", oracles["cube"], south, columns=["amt"])
    assert got["sales"][0] == ["amount"]
    total = Where("g = 3", lambda r: r["g"] == 3)
    assert_backward_matches(store, "cube", oracles["cube"], total, columns=["amt", "g"])
    q1 = Where("quarter = 'q1'", lambda r: r["quarter"] == "q1")
    assert_backward_matches(store, "rollup", oracles["rollup"], q1)
    assert_backward_matches(store, "chosen", oracles["chosen"], q1,
                            columns=["product", "units"])
    assert_forward_matches(store, "sales", oracles,
                           Where("sid IN (4, 7)", lambda r: r["sid"] in (4, 7)))
    _check_replay_and_removal(spark, store, run.run_id, paths, pipelines, o_sales, [1, 5])


def test_unpivot_and_melt_match_oracle_cell_by_cell_and_replay_and_removal(
    spark, store, tmp_path
):
    sales, o_sales = _sales(spark, tmp_path)
    with store.run("unpivots") as run:
        s = run.source("sales", sales)
        long = s.unpivot(["sid", "region"], ["amount", "units"], "measure", "value")
        # Value columns of two types: Spark's common type (double) for every value.
        melted = (s.select("sid", "amount", (F.col("units") * 1.5).alias("weighted"))
                  .melt("sid", None, "k", "v"))
        paths = {"long": _sink(run, "long", long, tmp_path),
                 "melted": _sink(run, "melted", melted, tmp_path)}

    def long_of(f):
        out = None
        for c in ("amount", "units"):
            part = f.select("sid", "region", ("measure", lit(c)), ("value", col(c)))
            out = part if out is None else out.union(part)
        return out

    def melted_of(f):
        wide = f.select("sid", "amount",
                        ("weighted", expr(lambda u: u * 1.5, "units")))
        return wide.select("sid", ("k", lit("amount")),
                           ("v", expr(float, "amount"))).union(
            wide.select("sid", ("k", lit("weighted")), ("v", col("weighted"))))

    pipelines = {"long": long_of, "melted": melted_of}
    oracles = {name: make(o_sales) for name, make in pipelines.items()}
    for name, path in paths.items():
        assert_sink_matches(spark, path, oracles[name])
    assert spark.read.format("delta").load(paths["melted"]).schema["v"].dataType.typeName() \
        == "double"

    units = Where("measure = 'units' AND sid <= 3",
                  lambda r: r["measure"] == "units" and r["sid"] <= 3)
    got = assert_backward_matches(store, "long", oracles["long"], units, columns=["value"])
    assert got["sales"][0] == ["units"]  # a value cell comes from its own column only
    assert_backward_matches(store, "long", oracles["long"], units)
    assert_backward_matches(store, "melted", oracles["melted"],
                            Where("k = 'weighted'", lambda r: r["k"] == "weighted"),
                            columns=["v", "sid"])
    assert_forward_matches(store, "sales", oracles,
                           Where("sid = 2", lambda r: r["sid"] == 2))
    _check_replay_and_removal(spark, store, run.run_id, paths, pipelines, o_sales, [2, 8])


def test_reshape_steps_refuse_what_they_cannot_record_exactly(spark, store, tmp_path):
    sales, _ = _sales(spark, tmp_path)
    with store.run("refused") as run:
        s = run.source("sales", sales)
        with pytest.raises(UnsupportedStepError, match="grouping"):
            s.cube("region").agg(F.sum(F.col("amount") * F.grouping("region")))
        with pytest.raises(UnsupportedStepError, match="pivot"):
            s.cube("region").pivot("quarter")
        with pytest.raises(HippoError, match="not one of the grouping columns"):
            s.groupingSets([["product"]], "region").count()
        with pytest.raises(HippoError, match="pivotMaxValues"):
            spark.conf.set("spark.sql.pivotMaxValues", "2")
            try:
                s.groupBy("region").pivot("sid").count()
            finally:
                spark.conf.unset("spark.sql.pivotMaxValues")
        run.sink("ok", s.groupBy("region").pivot("quarter", ["q1"]).count(),
                 str(tmp_path / "out" / "ok"))
        run.sink("total", s.cube().agg(F.count(F.lit(1)).alias("n")),
                 str(tmp_path / "out" / "total"))
    assert [tuple(r) for r in store.replay(run.run_id)["total"].collect()] == [(len(SALES),)]
    assert store.backward("total", where="n > 0")["sales"].count() == len(SALES)
