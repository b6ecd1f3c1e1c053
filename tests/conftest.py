"""One SparkSession for the whole suite: local[2], few shuffle partitions, UI off, Delta."""

from __future__ import annotations

import pytest

import hippo

TEST_CONF = {
    "spark.sql.shuffle.partitions": "2",
    "spark.default.parallelism": "2",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.databricks.delta.snapshotPartitions": "2",
    "spark.databricks.delta.retentionDurationCheck.enabled": "false",
    "spark.sql.session.timeZone": "UTC",
}


@pytest.fixture(scope="session")
def spark():
    session = hippo.spark_session("hippo-tests", master="local[2]", conf=TEST_CONF)
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture
def store(spark, tmp_path):
    return hippo.LineageStore(spark, str(tmp_path / "lineage"))
