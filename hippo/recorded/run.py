"""A recorded run as every reader sees it: its steps as a DAG, and their DataFrames.

:class:`RecordedRun` is built from the run's one row in the store. Queries use it to
rebuild any step's output from the pinned sources (the step's spec over its inputs'
rebuilt outputs); trace, replay and removal walk the same DAG.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

import networkx as nx
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from hippo.errors import UnknownSinkError, UnknownSourceError, first_line
from hippo.recorded import spec as S
from hippo.recorded.ids import CARRIED_AT, CARRY, content_hash, is_hidden, quoted
from hippo.recorded.pinned import check_readable, read_source
from hippo.recorded.rebuild import build_step, carries, register_udfs
from hippo.recorded.spec import check_format
from hippo.recorded.state import FrameSlot, KeySlot
from hippo.recorded.steps import Step, unpack_steps

__all__ = ["RecordedRun"]

log = logging.getLogger(__name__)


class RecordedRun:
    """One successful run of a store: its steps, their DAG, and their rebuilt outputs.

    Rebuilt DataFrames and pinned reads are kept for the life of the object, so the
    queries of one session plan each step once.
    """

    def __init__(self, spark: SparkSession, root: str, row: Any) -> None:
        self.spark = spark
        self.root = root
        self.run_id: str = row["run_id"]
        self.name: str = row["name"]
        version = check_format(row["format"], f"run `{self.run_id}`")
        written = dict(row["sinks"] or {})
        self.sink_versions: dict[str, int] = written  # sink name -> the version written
        steps = [Step.from_row(s, version) for s in unpack_steps(row["steps"])]
        # A sink's version is known only after its write; the run row holds it.
        self.steps: dict[int, Step] = {
            s.op_id: replace(s, sink=replace(s.sink, version=written.get(s.sink.name)))
            if s.sink is not None and s.sink.version is None else s for s in steps}
        self.graph = nx.DiGraph()
        for step in self.steps.values():
            self.graph.add_node(step.op_id, step=step)
            self.graph.add_edges_from((i, step.op_id) for i in step.inputs)
        self.sources = {s.source.name: s for s in self.steps.values() if s.source}
        self.sinks = {s.sink.name: s for s in self.steps.values() if s.sink}
        self._frames: dict[int, DataFrame] = {}
        self._carried: dict[tuple[int, frozenset[int]], DataFrame] = {}
        self._pinned: dict[tuple[str, int, bool], DataFrame] = {}

    def __repr__(self) -> str:
        return f"RecordedRun({self.run_id!r}, {len(self.steps)} steps)"

    def sink(self, name: str) -> Step:
        if name not in self.sinks:
            raise UnknownSinkError(name, self.sinks)
        return self.sinks[name]

    def source(self, name: str) -> Step:
        if name not in self.sources:
            raise UnknownSourceError(name, self.sources)
        return self.sources[name]

    def upstream(self, op_id: int) -> list[int]:
        """The steps ``op_id`` depends on, in an order that computes each after its inputs."""
        needed = nx.ancestors(self.graph, op_id) | {op_id}
        return [n for n in nx.topological_sort(self.graph) if n in needed]

    def pinned(self, path: str, version: int, plain: bool = True) -> DataFrame:
        """A pinned Delta version, checked readable once per object (read as plain Parquet
        where that gives the same rows, unless ``plain`` is False)."""
        key = (path, version, plain)
        if key not in self._pinned:
            self._pinned[key] = check_readable(self.spark, path, version, plain)
        return self._pinned[key]

    def pinned_paths(self) -> dict[str, int]:
        """Every Delta table this run's answers read, with its pinned version."""
        out = {s.source.path: s.source.version for s in self.sources.values()}
        out.update({s.sink.path: s.sink.version for s in self.sinks.values()
                    if s.sink.version is not None})
        return out

    def key_hash(self, origin: KeySlot | FrameSlot) -> Column:
        """The hash of a key slot's group (or partition) key, over its input step's
        positional columns; Python functions the key calls are registered first."""
        spec = self.steps[origin.op].spec
        if isinstance(spec, S.Udfs):
            register_udfs(self.spark, spec.udfs)
        return content_hash(list(origin.keys), "key")

    def frame(self, op_id: int) -> DataFrame:
        """The step's output as the run computed it, hidden columns included."""
        for n in self.upstream(op_id):
            if n not in self._frames:
                self._frames[n] = self._built(n, self._frames)
        return self._frames[op_id]

    def carried(self, op_id: int, sources: frozenset[int]) -> DataFrame:
        """:meth:`frame`, its rows each carrying the row of every source step in
        ``sources`` it comes from, where the steps between keep that row whole: one
        struct column per source at the end (``CARRY`` plus the step's id; the source's
        columns, then ``CARRIED_AT``), null where a row comes from no row of it. A
        backward query takes the source rows it answers with from the rows it already
        read, instead of reading the source again."""
        needed = self.upstream(op_id)
        sources = frozenset(s for s in sources if s in needed)
        if not sources:
            return self.frame(op_id)
        key = (op_id, sources)
        if key not in self._carried:
            built: dict[int, DataFrame] = {}
            for n in needed:
                step = self.steps[n]
                if step.source is not None:
                    built[n] = self._carry(n) if n in sources else self.frame(n)
                elif any(carries(built[i]) for i in step.inputs):
                    built[n] = self._built(n, built)
                else:
                    built[n] = self.frame(n)
            self._carried[key] = built[op_id]
        return self._carried[key]

    def _carry(self, op_id: int) -> DataFrame:
        """A source step's rows with their carried struct (or without, if its read
        cannot say where a row is)."""
        frame = self.frame(op_id)
        user = [F.col(quoted(c)) for c in frame.columns if not is_hidden(c)]
        try:
            return frame.withColumn(CARRY + str(op_id), F.struct(
                *user, F.xxhash64(F.col("_metadata.file_path")).alias(CARRIED_AT[0]),
                F.col("_metadata.row_index").alias(CARRIED_AT[1])))
        except Exception as err:  # noqa: BLE001 -- a read without file metadata
            log.info("source step %s carries no rows: %s", op_id, first_line(err))
            return frame

    def frames(self, op_id: int, sources: dict[int, DataFrame],
               every_row: bool = False, refit: frozenset[int] = frozenset()
               ) -> dict[int, DataFrame]:
        """Every step up to ``op_id`` rebuilt over other source rows: ``sources`` maps a
        source step to the rows to use instead of its pinned read (hidden columns
        included, e.g. a subset of :meth:`frame`); a source not in it reads no rows.
        ``every_row``: ``limit``, ``offset`` and ``dropDuplicates`` keep every row
        (:func:`~hippo.recorded.rebuild.build_step`). ``refit``: the models of these fit
        steps are fitted again on their rebuilt training rows (a removal's repair), not
        loaded as saved. Nothing is cached: each call plans anew."""
        built: dict[int, DataFrame] = {}
        for n in self.upstream(op_id):
            step = self.steps[n]
            if step.source is not None:
                built[n] = sources.get(n, self.frame(n).limit(0))
            else:
                built[n] = self._built(n, built, every_row, refit)
        return built

    def _built(self, n: int, built: dict[int, DataFrame], every_row: bool = False,
               refit: frozenset[int] = frozenset()) -> DataFrame:
        step = self.steps[n]
        if step.source is not None:
            info = step.source
            pinned = self.pinned(info.path, info.version, plain=info.ids != "row_tracking")
            return read_source(self.spark, info, info.slot, pinned)
        if step.spec is not None:
            return build_step(step.spec, [built[i] for i in step.inputs], every_row,
                              bool(set(step.inputs[1:]) & refit))
        return built[step.inputs[0]]  # a sink: what was written is its input's output
