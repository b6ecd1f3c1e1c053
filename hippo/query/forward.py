"""Forward lineage: the sink rows, as written, that chosen source rows reached.

The same walk as backward, the other way: for every sink of the run, each slot is
followed down to the source; a key or match slot's group is flagged when any of its
rows holds a reached id, and the group's id is reached in turn.
"""

from __future__ import annotations

from typing import Any

import networkx as nx
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from hippo.query.pushdown import copies_filter, few, hintable, isin
from hippo.query.slots import (
    Slots, check_columns, computed_once, flag_any, id_frame, nonempty, query_errors)
from hippo.query.where import checked_filter
from hippo.recorded.rebuild import rebuilt_plans
from hippo.recorded.ids import ID, KEY, is_hidden, quoted
from hippo.recorded.sink_rows import ROW_HASH
from hippo.recorded.state import Cell, FrameSlot, KeySlot, LineageState, Origin
from hippo.session import session_conf
from hippo.store import tables

__all__ = ["forward"]

# Lineage plans are built without Spark's constraint propagation (see rebuilt_plans).
# A group read only through IN filters on the chosen rows' values is one aggregate's
# rebuilt input with filters on top: there, propagation is cheap and infers the equal
# columns' filters across the input's joins (q3: `o_orderkey` from `l_orderkey`), so
# the other sides' scans skip files too (TPC-H q3 at SF 1, forward from one row: the
# group's read 0.62 -> 0.33 s).
# Only below this many steps upstream of the group, as propagation's cost grows with
# the aliases a long pipeline holds.
_INFERRED = {"spark.sql.constraintPropagation.enabled": "true"}
_INFERRED_STEPS = 16


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
    # The chosen rows' ids and values, if few: one read, then filters instead of joins.
    rows = few(picked.select(F.col(ID), *[F.col(quoted(c)) for c in pushable]))
    if rows == []:  # the where chose no row: nothing is reached
        return {}
    values = None if rows is None else {
        c: [r[i + 1] for r in rows] for i, c in enumerate(pushable)}
    if rows is None:
        chosen: _Ids = (picked.select(F.col(ID).alias("id")), None)
    else:
        known = list(dict.fromkeys(r[0] for r in rows))
        chosen = (id_frame(slots.spark, known), known)
    wanted_cols = None if columns is None else frozenset(columns)
    out: dict[str, DataFrame] = {}
    small = set()  # answers of few rows known on the driver
    direct: dict[str, DataFrame] = {}  # some of those, without a join or a shuffle
    reach = _Reach(slots, source.op_id, chosen, wanted_cols, values)
    for sink in run.sinks.values():
        state = sink.state
        reached = []
        for slot, origin in state.slots.items():
            refs = None if wanted_cols is None else _slot_refs(state, slot, None)
            ids = reach(slot, origin, refs)
            if ids is not None:
                reached.append((slot, *ids))
        if not reached:
            continue
        written = slots.written(sink)
        names = [c for c in written.columns if c != ROW_HASH]
        if sink.sink.rows == "keyed" and all(known is not None for *_, known in reached):
            # Each row's id and slots are hashes of its own key columns: the written
            # rows are flagged and answered in one read, without first reading the
            # flagged ids to the driver.
            near = copies_filter(state, written.columns, [s for s, *_ in reached],
                                 source.op_id, values, positional=False)
            if near is not None:
                written = written.filter(near)
            answer = flag_any(written, reached, lambda slot, sink=sink, w=written:
                              slots.key_hash(sink, w, slot))
            out[sink.sink.name] = answer.select(
                *[F.col(quoted(c)) for c in names],
                slots.key_hash(sink, answer).alias("hippo_row_id"))
            small.add(sink.sink.name)
            continue
        prefilter = None
        if sink.sink.rows == "replay":
            frame = run.frame(sink.inputs[0])
            prefilter = copies_filter(state, frame.columns, [s for s, *_ in reached],
                                      source.op_id, values, positional=False)
        hit = flag_any(slots.sink_rows(sink, prefilter), reached,
                       lambda slot, sink=sink: slots.slot_of(sink, slot))
        found = None
        if all(known is not None for *_, known in reached):
            found = few(hit.select("row_hash", "hippo_row_id"))
        if found == []:
            continue
        if found is None:
            written = written.dropDuplicates([ROW_HASH])
            hit = hit.select(F.col("row_hash").alias(ROW_HASH), "hippo_row_id")
        else:  # few rows: their hashes pick the written rows (no join over the sink)
            # Rows holding a chosen source row in a slot hold its values in their copies.
            near = copies_filter(state, written.columns, [s for s, *_ in reached],
                                 source.op_id, values, positional=False)
            if near is not None:
                written = written.filter(near)
            written = written.filter(isin(F.col(ROW_HASH), [r[0] for r in found]))
            ids = _id_of_hash(found)
            # Java rows holding bytes hash by identity: equal ones would not be dropped.
            if ids is not None and "binary" not in written.schema.simpleString():
                direct[sink.sink.name] = written.select(
                    *[F.col(quoted(c)) for c in names], ids.alias("hippo_row_id"))
            written = written.dropDuplicates([ROW_HASH])
            hit = tables.local_frame(slots.spark, [
                {ROW_HASH: r[0], "hippo_row_id": r[1]} for r in found],
                f"{ROW_HASH} bigint, hippo_row_id bigint")
            small.add(sink.sink.name)
        out[sink.sink.name] = written.join(hit, ROW_HASH).select(
            *[F.col(quoted(c)) for c in names], "hippo_row_id")
    return nonempty(out, frozenset(small), direct)


def _bigint(value: int) -> str:
    """A BIGINT literal in Spark SQL (the smallest one has no positive twin to negate)."""
    return "(-9223372036854775807L - 1L)" if value == -2**63 else f"{value}L"


def _id_of_hash(found: list[Any]) -> Column | None:
    """The row id of each written row's hash, as one map lookup (the map is one SQL
    text: one round trip, not two per entry), if each hash comes once in ``found``;
    else None (equal rows of different lineage, or a row stored twice: the join gives
    each its own answer row)."""
    ids = {row_hash: row_id for row_hash, row_id in found}
    if len(ids) != len(found):
        return None
    keys = ", ".join(_bigint(h) for h in ids)
    values = ", ".join(_bigint(i) for i in ids.values())
    return F.try_element_at(F.expr(f"map_from_arrays(array({keys}), array({values}))"),
                            F.col(ROW_HASH))


def _slot_refs(state: LineageState, slot: str,
               positions: frozenset[Any] | None) -> frozenset[Any]:
    cells: set[Cell] = set(state.influence)
    for p, contrib in enumerate(state.contrib):
        if positions is None or p in positions:
            cells |= contrib
    return frozenset(r for s, r in cells if s == slot)


# A slot's reached ids: as a DataFrame (column ``id``), and as a list when they are few.
_Ids = tuple[DataFrame, "list[int] | None"]


class _Reach:
    """The ids each slot holds that the chosen source rows reach, each slot resolved
    once per query (rows of a window step carry every earlier window's slots again, so
    a chain of k windows would otherwise resolve 2^k times). A group's or frame's
    reached ids are read once: to the driver if few, else kept on the executors, so
    later plans read them instead of nesting theirs."""

    def __init__(self, slots: Slots, source_op: int, chosen: _Ids,
                 columns: frozenset[str] | None, values: dict[str, list[Any]] | None) -> None:
        self.slots, self.source_op, self.chosen = slots, source_op, chosen
        self.columns, self.values = columns, values
        self.memo: dict[tuple[str, Any], _Ids | None] = {}

    def __call__(self, slot: str, origin: Origin, refs: frozenset[Any] | None
                 ) -> _Ids | None:
        key = (slot, refs)
        if key not in self.memo:
            found, settings = self._reach(origin, refs)
            if found is not None and origin.kind != "source":
                with session_conf(self.slots.spark, settings):
                    # Computed once, by this read: many ids stay on the executors
                    # as they are, not computed again into a checkpoint.
                    found = computed_once(found)
                    ids = few(found)
                if ids == []:
                    found = None
                elif ids is not None:
                    known = [r[0] for r in ids]
                    found = (id_frame(self.slots.spark, known), known)
                else:
                    found = (found, None)
            self.memo[key] = found
        return self.memo[key]

    def _reach(self, origin: Origin, refs: frozenset[Any] | None
               ) -> tuple[Any, dict[str, str]]:
        """A source slot's reached ids (``_Ids``), or a group's or frame's as a DataFrame
        (None if the chosen rows cannot reach the slot), and the session settings to
        read it with."""
        slots, source_op, values = self.slots, self.source_op, self.values
        if origin.kind == "source":
            if origin.op != source_op:
                return None, {}
            if self.columns is not None and not (refs or frozenset()) & self.columns:
                return None, {}
            return self.chosen, {}
        inner = slots.inner_state(origin)
        reached = []
        for slot, inner_origin in inner.slots.items():
            inner_refs = None if refs is None else _slot_refs(inner, slot, refs)
            ids = self(slot, inner_origin, inner_refs)
            if ids is not None:
                reached.append((slot, *ids))
        if not reached:
            return None, {}
        if isinstance(origin, FrameSlot):
            return slots.frame_rows(origin, hit=reached).select(
                F.col(KEY).alias("id")).distinct(), {}
        where = None
        if isinstance(origin, KeySlot):
            names = slots.run.frame(origin.input_op).columns
            where = copies_filter(inner, names, [s for s, *_ in reached], source_op, values,
                                  positional=True)
        rows = slots.group(origin, where)
        hit = flag_any(rows, reached, F.col)
        inferred = (where is not None  # values to infer from
                    and all(known is not None for *_, known in reached)  # no join on ids
                    and len(nx.ancestors(slots.run.graph, origin.input_op)) < _INFERRED_STEPS)
        return hit.select(F.col(KEY).alias("id")).distinct(), _INFERRED if inferred else {}
