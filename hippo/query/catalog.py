"""Which runs, sources and sinks a store holds: the small metadata queries start from.

Everything read here is metadata (a row per run, and per source and sink), so it is
collected to the driver; row-level data never is.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from hippo.errors import (
    HippoError,
    UnknownRunError,
    UnknownSinkError,
    UnknownSourceError,
    listing,
)
from hippo.recorded.run import RecordedRun
from hippo.store import tables
from hippo.store.delta_log import latest_version

__all__ = ["Catalog", "Endpoint", "load_run", "runs_version"]

_SHOWN = 20


@dataclass(frozen=True)
class Endpoint:
    """A source or sink of one successful run."""

    run_id: str
    kind: str  # "source" or "sink"
    name: str
    op_id: int
    ended_at: Any


def _succeeded(spark: SparkSession, root: str):
    return tables.read_table(spark, root, tables.RUNS).filter(F.col("status") == "succeeded")


def runs_version(spark: SparkSession, root: str) -> int:
    """The ``runs`` table's current Delta version (-1 before the first run), read from
    Delta's log without a Spark job: a catalog older than it may miss newer runs."""
    try:
        return latest_version(spark, tables.table_path(root, tables.RUNS))
    except HippoError:
        return -1


# The fields of a stored step the catalog reads (a run row's ``steps`` is JSON text).
_ENDS = "array<struct<op_id: int, step: string, detail: string>>"


class Catalog:
    """Successful runs and their sources and sinks, newest first."""

    def __init__(self, spark: SparkSession, root: str) -> None:
        self.version = runs_version(spark, root)
        rows = (
            _succeeded(spark, root)
            .select("run_id", "ended_at", F.expr(
                f"filter(from_json(steps, '{_ENDS}'), s -> s.step IN ('source', 'sink'))"
            ).alias("ends"))
            .collect()
        )
        self.run_ids = [r.run_id for r in sorted(rows, key=lambda r: r.ended_at, reverse=True)]
        self.endpoints: list[Endpoint] = []
        for r in rows:
            for s in r.ends or []:
                name = json.loads(s.detail)[s.step]["name"]
                self.endpoints.append(Endpoint(r.run_id, s.step, name, s.op_id, r.ended_at))
        self.endpoints.sort(key=lambda e: e.ended_at, reverse=True)

    def find(self, kind: str, name: str, run_id: str | None) -> Endpoint:
        """The sink/source ``name`` of ``run_id`` (default: the latest successful run)."""
        if run_id is not None and run_id not in self.run_ids:
            raise UnknownRunError(run_id, self.run_ids[:_SHOWN])
        named = [e for e in self.endpoints if e.kind == kind and e.name == name]
        if not named:
            known = {e.name for e in self.endpoints if e.kind == kind}
            raise (UnknownSinkError if kind == "sink" else UnknownSourceError)(name, known)
        if run_id is None:
            return named[0]
        for e in named:
            if e.run_id == run_id:
                return e
        has = sorted(e.name for e in self.endpoints if e.run_id == run_id and e.kind == kind)
        raise UnknownRunError(run_id, self.run_ids[:_SHOWN],
                              f"it has no {kind} `{name}`; its {kind}s: {listing(has)}")


def load_run(spark: SparkSession, root: str, run_id: str) -> RecordedRun:
    """The successful run ``run_id`` of the store at ``root``."""
    rows = _succeeded(spark, root).filter(F.col("run_id") == run_id).collect()
    if not rows:
        raise UnknownRunError(run_id, [], "no successful run has this id")
    return RecordedRun(spark, root, rows[0])
