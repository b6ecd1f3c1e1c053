"""A child process for the concurrency tests: records runs into shared stores.

Usage: ``python writer.py PLAN.json INDEX``. The plan lists phases; in each phase the
writers it names wait for each other (ready files), then record one run each into the
phase's store, at once. The writer a phase names as ``"crash"`` kills itself in the
middle of its run (after its snapshot and sink writes, before the run commits). Each finished run
is printed as one JSON line: ``{"phase": ..., "run_id": ...}``.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

from pyspark.sql import functions as F

import hippo


def _barrier(folder: Path, phase: int, index: int, count: int) -> None:
    (folder / f"ready-{phase}-{index}").touch()
    deadline = time.time() + 600
    while len(list(folder.glob(f"ready-{phase}-*"))) < count:
        if time.time() > deadline:
            raise TimeoutError(f"phase {phase}: the other writers never came")
        time.sleep(0.05)


def main() -> None:
    plan = json.loads(Path(sys.argv[1]).read_text())
    index = int(sys.argv[2])
    spark = hippo.spark_session(f"writer-{index}", master="local[1]", conf=plan["conf"])
    spark.sparkContext.setLogLevel("ERROR")
    folder = Path(plan["folder"])
    for number, phase in enumerate(plan["phases"]):
        if index not in phase["writers"]:
            continue
        _barrier(folder, number, index, len(phase["writers"]))
        store = hippo.LineageStore(spark, phase["store"])
        out = Path(phase["out"])
        with store.run(f"writer{index}", params={"phase": number, "writer": index}) as run:
            events = run.source("events", plan["events"])
            labels = run.source("labels", spark.createDataFrame(
                [(g, f"{g}-{index}") for g in "abcd"], "grp string, label string"))
            totals = (events.filter(F.col("val") > index).join(labels, "grp")
                      .groupBy("grp", "label").agg(F.sum("val").alias("total"),
                                                   F.count(F.lit(1)).alias("n")))
            run.sink("totals", totals, str(out / f"totals-{index}"))
            run.sink("shared", events.select("id", "grp").withColumn("writer", F.lit(index)),
                     str(out / "shared"))
            if phase.get("crash") == index:
                os.kill(os.getpid(), signal.SIGKILL)
        print(json.dumps({"phase": number, "run_id": run.run_id, "writer": index}), flush=True)
    spark.stop()


if __name__ == "__main__":
    main()
