"""One SparkSession for the whole suite: local[2], few shuffle partitions, UI off, Delta."""

from __future__ import annotations

import gc

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


@pytest.fixture(autouse=True)
def _release_java_objects():
    """Free each test's Py4J proxies when it ends, so the JVM can drop their plans.

    A Py4J object whose methods were called sits in a reference cycle (its members point
    back at it) and lives until Python's full collection, which seldom runs; meanwhile
    the JVM keeps every plan it references, with that plan's broadcast tables.
    """
    yield
    gc.collect()
