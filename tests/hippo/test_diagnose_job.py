"""``jobs/diagnose.py``, run in this process: each command writes what the store's API
returns (the API itself is checked against oracles in test_trace, test_replay and
test_remove), a removal and its restore change the tables, bad input exits with 2."""

from __future__ import annotations

import json
from collections import Counter

from pyspark.sql import functions as F

import hippo
from jobs import diagnose

ORDERS = [(1, "ann", 10.0), (2, "bob", 5.0), (3, "ann", 7.5), (4, "cy", 1.0)]
CUSTOMERS = [("ann", "north"), ("bob", "south"), ("cy", "north")]


def _rows(df):
    return Counter(tuple(r) for r in df.collect())


def _delta(spark, path):
    return spark.read.format("delta").load(path)


def test_the_diagnosis_job_traces_replays_removes_and_restores(spark, tmp_path, capsys):
    o_path, c_path = str(tmp_path / "orders"), str(tmp_path / "customers")
    spark.createDataFrame(ORDERS, "oid int, cust string, price double").write.format(
        "delta").save(o_path)
    spark.createDataFrame(CUSTOMERS, "cust string, region string").write.format(
        "delta").save(c_path)
    store = hippo.LineageStore(spark, str(tmp_path / "lineage"))
    with store.run("shop") as run:
        o, c = run.source("orders", o_path), run.source("customers", c_path)
        run.sink("by_region", o.join(c, "cust").groupBy("region").agg(
            F.sum("price").alias("total")), str(tmp_path / "out" / "by_region"))
    job = ["--store", store.path]

    out = str(tmp_path / "trace")
    assert diagnose.main([*job, "--output", out, "trace", "by_region",
                          "--where", "region = 'north'"]) == 0
    for step in store.trace("by_region", where="region = 'north'"):
        assert _rows(_delta(spark, f"{out}/{step.op_id}-{step.step}")) == _rows(step.rows)

    out = str(tmp_path / "replay")
    assert diagnose.main([*job, "--output", out, "replay", run.run_id]) == 0
    assert _rows(_delta(spark, f"{out}/by_region")) == _rows(
        _delta(spark, str(tmp_path / "out" / "by_region")))

    capsys.readouterr()
    out = str(tmp_path / "preview")
    assert diagnose.main([*job, "--output", out, "remove", "orders", "--where", "oid = 1",
                          "--dry-run"]) == 0
    report = _report(capsys.readouterr().out)
    assert (report["dry_run"], report["removed"], report["run_id"]) == (True, 1, None)
    preview = _delta(spark, f"{out}/by_region").collect()
    assert [(r.before.total, r.after.total) for r in preview] == [(18.5, 8.5)]
    assert _delta(spark, o_path).count() == len(ORDERS)  # nothing changed

    assert diagnose.main([*job, "remove", "orders", "--where", "oid = 1"]) == 0
    report = _report(capsys.readouterr().out)
    assert report["removed"] == 1 and report["sinks"]["by_region"]["changed"] == 1
    assert _delta(spark, o_path).count() == len(ORDERS) - 1
    assert diagnose.main([*job, "removals"]) == 0
    assert report["run_id"] in capsys.readouterr().out
    assert diagnose.main([*job, "restore", report["run_id"]]) == 0
    assert _delta(spark, o_path).count() == len(ORDERS)

    assert diagnose.main([*job, "trace", "nope", "--where", "true"]) == 2
    assert "unknown sink `nope`" in capsys.readouterr().err


def _report(printed: str) -> dict:
    lines = [line for line in printed.splitlines() if line.startswith("report: ")]
    assert len(lines) == 1, printed
    return json.loads(lines[0].removeprefix("report: "))
