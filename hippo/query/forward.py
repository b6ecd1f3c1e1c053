"""Forward lineage: the sink rows, as written, that chosen source rows reached.

The same walk as backward, the other way: for every sink of the run, each slot is
followed down to the source; a key or match slot's group is flagged when any of its
rows holds a reached id, and the group's id is reached in turn.
"""

from __future__ import annotations

from typing import Any

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from hippo.query.pushdown import copies_filter, few, hintable
from hippo.query.slots import Slots, check_columns, flag_any, nonempty, query_errors
from hippo.query.where import checked_filter
from hippo.recorded.rebuild import rebuilt_plans
from hippo.recorded.ids import ID, KEY, is_hidden, quoted
from hippo.recorded.sink_rows import ROW_HASH
from hippo.recorded.state import Cell, FrameSlot, KeySlot, LineageState, Origin

__all__ = ["forward"]


def forward(slots: Slots, source_name: str, where: str | Column,
            columns: list[str] | None) -> dict[str, DataFrame]:
    """Sink name -> the written rows the source rows ``where`` chooses reached."""
    columns_read = slots.run.source(source_name).columns
    with query_errors(slots.run, where, f"source `{source_name}`", columns_read), \
            rebuilt_plans(slots.spark):
        return _forward(slots, source_name, where, columns)


def _forward(slots: Slots, source_name: str, where: str | Column,
             columns: list[str] | None) -> dict[str, DataFrame]:
    run = slots.run
    source = run.source(source_name)
    src = run.frame(source.op_id)
    user = [c for c in src.columns if not is_hidden(c)]
    target = f"source `{source_name}`"
    check_columns(columns, user, target)
    picked = checked_filter(src, where, target, user)
    pushable = [c for c in user if hintable(src, c)]
    rows = few(picked.select(*[F.col(quoted(c)) for c in pushable])) if pushable else None
    if rows == []:  # the where chose no row: nothing is reached
        return {}
    # Each path filters the source again for the chosen ids: with data skipping that
    # costs as little as putting the few ids into the plan as a literal (measured).
    chosen = picked.select(F.col(ID).alias("id"))
    values = None if rows is None else {c: [r[i] for r in rows] for i, c in enumerate(pushable)}
    wanted_cols = None if columns is None else frozenset(columns)
    out: dict[str, DataFrame] = {}
    reach = _Reach(slots, source.op_id, chosen, wanted_cols, values)
    for sink in run.sinks.values():
        state = sink.state
        reached = []
        for slot, origin in state.slots.items():
            refs = None if wanted_cols is None else _slot_refs(state, slot, None)
            ids = reach(slot, origin, refs)
            if ids is not None:
                reached.append((slot, ids))
        if not reached:
            continue
        prefilter = None
        if sink.sink.rows == "replay":
            frame = run.frame(sink.inputs[0])
            prefilter = copies_filter(state, frame.columns, [s for s, _ in reached],
                                      source.op_id, values, positional=False)
        hit = flag_any(slots.sink_rows(sink, prefilter), reached,
                       lambda slot, sink=sink: slots.slot_of(sink, slot))
        written = slots.written(sink).dropDuplicates([ROW_HASH])
        names = [c for c in written.columns if c != ROW_HASH]
        result = written.join(hit.select(F.col("row_hash").alias(ROW_HASH), "hippo_row_id"),
                              ROW_HASH).select(*[F.col(quoted(c)) for c in names],
                                               "hippo_row_id")
        out[sink.sink.name] = result
    return nonempty(out)


def _slot_refs(state: LineageState, slot: str,
               positions: frozenset[Any] | None) -> frozenset[Any]:
    cells: set[Cell] = set(state.influence)
    for p, contrib in enumerate(state.contrib):
        if positions is None or p in positions:
            cells |= contrib
    return frozenset(r for s, r in cells if s == slot)


class _Reach:
    """The ids each slot holds that the chosen source rows reach, each slot resolved
    once per query (rows of a window step carry every earlier window's slots again, so
    a chain of k windows would otherwise resolve 2^k times); a window's slot's ids are
    computed once, so later plans read them instead of nesting theirs."""

    def __init__(self, slots: Slots, source_op: int, chosen: DataFrame,
                 columns: frozenset[str] | None, values: dict[str, list[Any]] | None) -> None:
        self.slots, self.source_op, self.chosen = slots, source_op, chosen
        self.columns, self.values = columns, values
        self.memo: dict[tuple[str, Any], DataFrame | None] = {}

    def __call__(self, slot: str, origin: Origin, refs: frozenset[Any] | None
                 ) -> DataFrame | None:
        key = (slot, refs)
        if key not in self.memo:
            found = self._reach(origin, refs)
            if found is not None and origin.kind in ("key", "frame") \
                    and "Window" in self.slots.run.steps[origin.op].kinds:
                found = found.localCheckpoint(eager=True)  # windows chain: cut the plan
            self.memo[key] = found
        return self.memo[key]

    def _reach(self, origin: Origin, refs: frozenset[Any] | None) -> DataFrame | None:
        slots, source_op, values = self.slots, self.source_op, self.values
        if origin.kind == "source":
            if origin.op != source_op:
                return None
            if self.columns is not None and not (refs or frozenset()) & self.columns:
                return None
            return self.chosen
        inner = slots.inner_state(origin)
        reached = []
        for slot, inner_origin in inner.slots.items():
            inner_refs = None if refs is None else _slot_refs(inner, slot, refs)
            ids = self(slot, inner_origin, inner_refs)
            if ids is not None:
                reached.append((slot, ids))
        if not reached:
            return None
        if isinstance(origin, FrameSlot):
            return slots.frame_rows(origin, hit=reached).select(
                F.col(KEY).alias("id")).distinct()
        where = None
        if isinstance(origin, KeySlot):
            names = slots.run.frame(origin.input_op).columns
            where = copies_filter(inner, names, [s for s, _ in reached], source_op, values,
                                  positional=True)
        rows = slots.group(origin, where)
        hit = flag_any(rows, reached, F.col)
        return hit.select(F.col(KEY).alias("id")).distinct()
