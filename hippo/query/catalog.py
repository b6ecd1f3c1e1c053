"""Which runs, sources and sinks a store holds: the small metadata queries start from.

Everything read here is metadata (a row per run, per source and sink, per step), so it
is collected to the driver; row-level data never is.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from hippo.errors import UnknownRunError, UnknownSinkError, UnknownSourceError
from hippo.store import tables

__all__ = ["Catalog", "Endpoint"]

_SHOWN = 20


@dataclass(frozen=True)
class Endpoint:
    """A source or sink of one successful run."""

    run_id: str
    kind: str  # "source" or "sink"
    name: str
    op_id: int
    detail: dict[str, Any]
    ended_at: Any


class Catalog:
    """Successful runs and their sources and sinks, newest first."""

    def __init__(self, spark: SparkSession, root: str) -> None:
        runs = (
            tables.read_table(spark, root, tables.RUNS)
            .filter(F.col("status") == "succeeded")
            .select("run_id", "ended_at", "sinks")
            .collect()
        )
        ended = {r.run_id: r.ended_at for r in runs}
        versions = {r.run_id: r.sinks or {} for r in runs}
        self.run_ids = sorted(ended, key=lambda r: ended[r], reverse=True)
        rows = (
            tables.read_table(spark, root, tables.OPERATORS)
            .filter(F.col("step").isin("source", "sink"))
            .select("run_id", "step", "op_id", "detail")
            .collect()
        )
        self.endpoints: list[Endpoint] = []
        for r in rows:
            if r.run_id not in ended:
                continue
            detail = json.loads(r.detail)[r.step]
            if r.step == "sink" and detail.get("version") is None:
                # Sink rows are appended before the write; the runs row has its version.
                detail["version"] = versions[r.run_id].get(detail["name"])
            self.endpoints.append(
                Endpoint(r.run_id, r.step, detail["name"], r.op_id, detail, ended[r.run_id])
            )
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
        raise UnknownRunError(
            run_id, self.run_ids[:_SHOWN],
            f"it has no {kind} `{name}`; its {kind}s: {', '.join(f'`{h}`' for h in has)}",
        )

    def sinks_of(self, run_id: str) -> list[Endpoint]:
        return [e for e in self.endpoints if e.run_id == run_id and e.kind == "sink"]
