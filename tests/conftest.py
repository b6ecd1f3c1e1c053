"""One SparkSession per test process: local[2], few shuffle partitions, UI off, Delta.

``make test`` runs two test processes (pytest-xdist, whole files to each): a Spark
driver leaves a core idle while it plans, reads Delta logs and commits, and the other
process fills it (the suite took 1,022 s instead of 1,163 s on 2 cores). Tests share
nothing across files but their session, so either way gives the same results.

Generated code is off: on the suite's tiny tables, compiling each query's code costs more
than running it (a removal test ran 28% faster interpreted). Interpreted and compiled
evaluation give the same rows; the cluster test and the benchmarks run with codegen on.
File listings (Delta's VACUUM) use 2 tasks, not Spark's default 10,000: a VACUUM of a
five-row table took 25-41 s with the default, 2 s with 2.

Joins are not broadcast: every broadcast is a Spark job of its own, and lineage queries
and removals join many tiny tables (a 13-sink removal ran 344 broadcast jobs). Over
three test files, alternated runs took 281-282 s without broadcasts and 289-312 s with
them. Either strategy gives the same rows; the cluster test and the benchmarks run with
Spark's defaults.

Test processes that start a JVM of their own for a minute or two (the concurrent writers,
the killed removals, the cluster's driver and executors) run it with the client compiler
only (``SHORT_LIVED_JVM``): such a JVM spends much of its life compiling with C2 code it
then barely runs. The writers test took 106 s instead of 153 s, the cluster's setup 73 s
instead of 106 s. The suite's own long-lived JVM keeps the default (C1 alone was slower
there).
"""

from __future__ import annotations

import gc

import pytest

import hippo

NO_CODEGEN = {"spark.sql.codegen.wholeStage": "false",
              "spark.sql.codegen.factoryMode": "NO_CODEGEN"}
NO_BROADCAST = {"spark.sql.autoBroadcastJoinThreshold": "-1"}
SHORT_LIVED_JVM = "-XX:TieredStopAtLevel=1"
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
    **NO_BROADCAST,
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
def _release_java_objects(request):
    """Free each test's Py4J proxies when it ends, so the JVM can drop their plans.

    A Py4J object whose methods were called sits in a reference cycle (its members point
    back at it) and lives until Python's full collection, which seldom runs; meanwhile
    the JVM keeps every plan it references, with that plan's broadcast tables.
    """
    yield
    if "spark" in request.fixturenames:  # tests without Spark make no Py4J objects
        gc.collect()
