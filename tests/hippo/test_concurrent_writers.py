"""Several processes recording into one store at once, on the local filesystem.

Delta's local LogStore gives no mutual exclusion between processes, so these run real
processes (three, on two cores), several rounds in one test: a race that passes once
proves nothing. Every run must be recorded, the store readable, each run's answers
right (checked against the source rows computed here in Python), and each run's
recorded sink version the commit that run made, though all of them overwrite one
shared sink.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from delta.tables import DeltaTable

import hippo
from hippo.store import tables
from tests.conftest import NO_BROADCAST, NO_CODEGEN, SHORT_LIVED_JVM

pytestmark = pytest.mark.slow

WRITER = Path(__file__).with_name("procs") / "writer.py"
EVENTS = [(i, "abcd"[i % 4], float(i % 7)) for i in range(40)]
CHILD_CONF = {
    "spark.driver.memory": "1g", "spark.sql.shuffle.partitions": "2",
    "spark.ui.enabled": "false", "spark.ui.showConsoleProgress": "false",
    "spark.databricks.delta.snapshotPartitions": "1", "spark.sql.session.timeZone": "UTC",
    "spark.driver.extraJavaOptions": SHORT_LIVED_JVM,
    **NO_CODEGEN, **NO_BROADCAST,
}


def _run_writers(tmp_path: Path, phases: list[dict], writers: int) -> list[dict]:
    plan = {"folder": str(tmp_path / "sync"), "events": str(tmp_path / "events"),
            "conf": CHILD_CONF, "phases": phases}
    (tmp_path / "sync").mkdir()
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps(plan))
    # Checkpoints every two commits: writers starting a run checkpoint the runs log
    # (under its lock) while others commit to it.
    env = {**os.environ, "HIPPO_LOCK_DIR": str(tmp_path / "locks"),
           "HIPPO_CHECKPOINT_EVERY": "2"}
    procs = [subprocess.Popen([sys.executable, str(WRITER), str(plan_file), str(i)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for i in range(writers)]
    done = []
    crashed = {p.get("crash") for p in phases}
    for i, proc in enumerate(procs):
        out, err = proc.communicate(timeout=1500)
        if i not in crashed:
            assert proc.returncode == 0, f"writer {i} failed:\n{err[-3000:]}"
        done += [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return done


def _shared_paths(spark, store) -> dict[str, str]:
    """Per run of the store: the path its ``shared`` sink wrote."""
    steps = (spark.read.format("delta").load(f"{store.path}/runs")
             .selectExpr("run_id", f"inline(from_json(steps, 'array<{tables.STEP_TYPE}>'))")
             .filter("step = 'sink'").collect())
    paths = {s.run_id: json.loads(s.detail)["sink"]["path"] for s in steps}
    return {r: p for r, p in paths.items() if p.endswith("shared")}


def _check_runs(spark, store: hippo.LineageStore, mine: list[dict]) -> None:
    """Each run's answers and sink versions are its own; forward for the first run."""
    runs = {x.run_id: x for x in store.runs().collect()}
    assert sorted(runs) == sorted(d["run_id"] for d in mine)
    assert {x.status for x in runs.values()} == {"succeeded"}
    paths = _shared_paths(spark, store)
    for d in mine:
        run_id, writer = d["run_id"], d["writer"]
        back = store.backward("totals", where="grp = 'a'", run_id=run_id)
        expected = {i for i, g, v in EVENTS if g == "a" and v > writer}
        assert {r.id for r in back["events"].collect()} == expected
        assert [r.label for r in back["labels"].collect()] == [f"a-{writer}"]
        written = spark.read.format("delta").option(
            "versionAsOf", runs[run_id].sinks["shared"]).load(paths[run_id])
        assert {r.writer for r in written.select("writer").distinct().collect()} == {writer}
    first = mine[0]
    fwd = store.forward("events", where="id = 8", run_id=first["run_id"])
    assert [r.writer for r in fwd["shared"].collect()] == [first["writer"]]


def test_writers_recording_into_one_store_at_once_all_land(spark, tmp_path):
    spark.createDataFrame(EVENTS, "id int, grp string, val double").write.format(
        "delta").save(str(tmp_path / "events"))
    rounds, writers = 3, 3
    phases = [{"writers": list(range(writers)), "store": str(tmp_path / f"store{r}"),
               "out": str(tmp_path / f"out{r}")} for r in range(rounds)]
    # Then two writers into an existing store while a third is killed inside its run.
    phases.append({"writers": [0, 1, 2], "store": str(tmp_path / "store0"),
                   "out": str(tmp_path / "out-again"), "crash": 2})
    done = _run_writers(tmp_path, phases, writers=writers)

    landed = {(d["phase"], d["writer"]) for d in done}
    assert landed == {(r, w) for r in range(rounds) for w in range(writers)} | {(3, 0), (3, 1)}
    for r in range(rounds):
        store = hippo.LineageStore(spark, str(tmp_path / f"store{r}"))
        mine = [d for d in done if d["phase"] == r or (r == 0 and d["phase"] == 3)]
        history = DeltaTable.forPath(spark, f"{store.path}/runs").history().collect()
        assert sorted(h.version for h in history) == list(range(len(history)))
        if r == 0:  # phase 3's runs started with four commits in the log
            assert (tmp_path / "store0" / "runs" / "_delta_log" / "_last_checkpoint").exists()
        _check_runs(spark, store, mine)
