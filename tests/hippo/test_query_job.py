"""``jobs/lineage_query.py``, run in this process: several queries in one job, each
writing what the store's API returns (the API itself is checked against oracles
elsewhere); later queries inherit the first one's store; an unknown name exits with 2."""

from __future__ import annotations

from collections import Counter

from pyspark.sql import functions as F

import hippo
from jobs import lineage_query

ORDERS = [(1, "ann", 10.0), (2, "bob", 5.0), (3, "ann", 7.5)]


def _rows(df):
    return Counter(tuple(r) for r in df.collect())


def test_one_job_answers_several_queries_each_into_its_own_output(spark, tmp_path, capsys):
    o_path = str(tmp_path / "orders")
    spark.createDataFrame(ORDERS, "oid int, cust string, price double").write.format(
        "delta").save(o_path)
    store = hippo.LineageStore(spark, str(tmp_path / "lineage"))
    with store.run("shop") as run:
        run.sink("by_cust", run.source("orders", o_path).groupBy("cust").agg(
            F.sum("price").alias("total")), str(tmp_path / "out" / "by_cust"))
    back, fwd = str(tmp_path / "back"), str(tmp_path / "fwd")

    argv = ["--store", store.path, "--run-id", run.run_id,
            "backward", "by_cust", "--where", "cust = 'ann'", "--columns", "total",
            "--output", back,
            "then", "forward", "orders", "--where", "oid = 2", "--output", fwd]
    first, second = lineage_query.parse(argv)
    assert (second.store, second.run_id, second.output) == (store.path, run.run_id, fwd)
    assert lineage_query.main(argv) == 0

    read = spark.read.format("delta").load
    expected = store.backward("by_cust", where="cust = 'ann'", columns=["total"])
    assert _rows(read(f"{back}/orders")) == _rows(expected["orders"])
    # Cell level: ann's total is made of the prices of her orders.
    assert sorted(r.price for r in read(f"{back}/orders").collect()) == [
        p for _, c, p in sorted(ORDERS, key=lambda o: o[2]) if c == "ann"]
    assert _rows(read(f"{fwd}/by_cust")) == _rows(store.forward("orders", where="oid = 2")["by_cust"])

    capsys.readouterr()
    assert lineage_query.main(["--store", store.path, "backward", "by_cust", "--where", "true",
                               "then", "backward", "nope", "--where", "true"]) == 2
    assert "unknown sink `nope`" in capsys.readouterr().err
