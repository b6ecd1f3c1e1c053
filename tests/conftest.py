"""One SparkSession for the whole suite: local[2], few shuffle partitions, UI off, Delta.

Generated code is off: on the suite's tiny tables, compiling each query's code costs more
than running it (a removal test ran 28% faster interpreted). Interpreted and compiled
evaluation give the same rows; the cluster test and the benchmarks run with codegen on.
File listings (Delta's VACUUM) use 2 tasks, not Spark's default 10,000: a VACUUM of a
five-row table took 25-41 s with the default, 2 s with 2.
"""

from __future__ import annotations

import gc

import pytest

import hippo

NO_CODEGEN = {"spark.sql.codegen.wholeStage": "false",
              "spark.sql.codegen.factoryMode": "NO_CODEGEN"}
TEST_CONF = {
    "spark.sql.shuffle.partitions": "2",
    "spark.default.parallelism": "2",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.databricks.delta.snapshotPartitions": "2",
    "spark.databricks.delta.retentionDurationCheck.enabled": "false",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.sources.parallelPartitionDiscovery.parallelism": "2",
    **NO_CODEGEN,
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
