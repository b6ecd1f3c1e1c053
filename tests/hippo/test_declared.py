"""Declared lineage for code Spark cannot see into: ``apply``, ``mapInPandas`` and
``applyInPandas`` with a lineage type from ``lineage_types``.

The expected answers are the declarations applied to the data in plain Python (which
input rows hold the output row's key); the expected outputs, the pandas functions
applied to the (cleaned) rows.
"""

from __future__ import annotations

import pandas as pd
import pytest
from lineage_types import ColumnMapping, ColumnRef, ManyToOne, OneToMany, OneToOne
from pyspark.sql import functions as F

from hippo.errors import HippoError, UnsupportedStepError

SCHEMA = "oid int, cust string, qty int, price int, tags string"
ROWS = [(1, "ann", 2, 10, "a,b"), (2, "bob", 1, 25, "b"), (3, "ann", 5, 7, "c"),
        (4, "cy", 3, 12, "a,c"), (5, "bob", 3, 4, "c"), (6, "dee", 4, 9, "a")]


def _totals(batches):
    for pdf in batches:
        yield pdf.assign(total=pdf.qty * pdf.price)[["oid", "cust", "total"]]


def _tags(df):
    return df.select("oid", F.explode(F.split("tags", ",")).alias("tag"))


def _share(pdf: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"cust": pdf.cust, "oid": pdf.oid,
                         "share": pdf.qty / pdf.qty.sum()})


def _rows(df, *cols):
    return sorted(tuple(r[c] for c in cols) for r in df.collect())


@pytest.fixture
def orders(spark, tmp_path):
    path = str(tmp_path / "orders")
    spark.createDataFrame(ROWS, SCHEMA).write.format("delta").save(path)
    return path


def test_declared_steps_give_the_declared_lineage_replay_and_removal(spark, store, orders,
                                                                     tmp_path):
    out = {n: str(tmp_path / n) for n in ("totals", "tags", "shares")}
    with store.run("declared") as run:
        src = run.source("orders", orders)
        totals = src.mapInPandas(_totals, "oid int, cust string, total int", lineage=OneToOne(
            ColumnMapping({"oid": {ColumnRef(0, "oid")}, "cust": {ColumnRef(0, "cust")},
                           "total": {ColumnRef(0, "qty"), ColumnRef(0, "price")}}),
            key="oid"))
        run.sink("totals", totals.filter("total > 20"), out["totals"])
        run.sink("tags", src.apply(_tags, lineage=OneToMany(key="oid")), out["tags"])
        shares = src.groupBy("cust").applyInPandas(_share, "cust string, oid int, share double")
        run.sink("shares", shares, out["shares"])
    assert _rows(spark.read.format("delta").load(out["totals"]), "oid", "total") == [
        (2, 25), (3, 35), (4, 36), (6, 36)]

    # OneToOne by oid: the row of its key; its total from that row's qty and price.
    got = store.backward("totals", where="oid = 3")
    assert _rows(got["orders"], "oid") == [(3,)]
    cells = store.backward("totals", where="oid = 3", columns=["total"])
    assert set(cells["orders"].columns) == {"qty", "price", "hippo_row_id"}
    # OneToMany by oid: each tag row's parent; ManyToMany by cust: the customer's rows.
    assert _rows(store.backward("tags", where="tag = 'c'")["orders"], "oid") == [
        (3,), (4,), (5,)]
    assert _rows(store.backward("shares", where="oid = 1")["orders"], "oid") == [(1,), (3,)]
    reached = store.forward("orders", where="oid = 3")
    assert _rows(reached["totals"], "oid") == [(3,)]
    assert _rows(reached["tags"], "oid", "tag") == [(3, "c")]
    assert _rows(reached["shares"], "oid") == [(1,), (3,)]
    steps = store.trace("tags", where="tag = 'b'")
    assert _rows(steps[0].rows, "oid") == [(1,), (2,)]

    # Replay runs the recorded functions again.
    for name, path in out.items():
        replayed = store.replay(run.run_id, sinks=[name])[name]
        written = spark.read.format("delta").load(path)
        assert sorted(map(str, replayed.collect())) == sorted(map(str, written.collect()))

    # Removing ann's first order: her share, her tags and total change or go.
    store.remove("orders", where="oid = 1")
    kept = pd.DataFrame([r for r in ROWS if r[0] != 1], columns=[c.split()[0] for c in
                                                                   SCHEMA.split(", ")])
    shares = spark.read.format("delta").load(out["shares"])
    want = pd.concat([_share(g) for _, g in kept.groupby("cust")])
    assert sorted((r.oid, round(r.share, 9)) for r in shares.collect()) == sorted(
        (int(o), round(s, 9)) for o, s in zip(want.oid, want.share))
    assert _rows(spark.read.format("delta").load(out["tags"]), "oid", "tag") == sorted(
        (o, t) for o, *_, tags in [(r[0], r[4]) for r in ROWS if r[0] != 1]
        for t in tags.split(","))


def test_declarations_the_data_contradicts_are_errors_not_lineage(spark, store, orders,
                                                                 tmp_path):
    with store.run("contradicted") as run:
        src = run.source("orders", orders)
        with pytest.raises(UnsupportedStepError, match="declare it"):
            src.mapInPandas(_totals, "oid int, cust string, total int")
        with pytest.raises(HippoError, match="2 input rows hold the key"):
            src.apply(lambda df: df.select("cust"), lineage=OneToOne(key="cust"))
        with pytest.raises(HippoError, match="output rows hold the key"):
            src.apply(_tags, lineage=OneToOne(key="oid"))
        with pytest.raises(HippoError, match="`order_id` is not a column of its input"):
            src.apply(lambda df: df, lineage=OneToOne(key="order_id"))
        with pytest.raises(HippoError, match="no input row holds"):
            src.apply(lambda df: df.select((F.col("oid") + 100).alias("oid")),
                      lineage=OneToOne(key="oid"))
        with pytest.raises(HippoError, match="lineage=OneToOne"):
            src.apply(lambda df: df, lineage="one to one")
        per_cust = src.apply(lambda df: df.groupBy("cust").count(),
                             lineage=ManyToOne(key="cust"))
        run.sink("per_cust", per_cust, str(tmp_path / "per_cust"))
    got = store.backward("per_cust", where="cust = 'bob'")
    assert _rows(got["orders"], "oid") == [(2,), (5,)]
