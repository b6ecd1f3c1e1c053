"""Backward and forward lineage of one recorded run, computed by Spark.

A sink row's slots say where its lineage continues. A source slot holds source row
ids: the answer is those rows of the pinned source. A key slot holds group-key hashes
of an aggregate: the step's input is rebuilt from the pinned sources (its recorded spec,
replayed) and the rows whose key hashes match are the group, whose own slots continue
the walk. Forward runs the same walk the other way. Nothing row-sized reaches the
driver: every set of ids is a DataFrame.

Cell-level answers: a source row can contribute different columns along different
paths; its cells that contribute along no path are returned as null.
"""

from __future__ import annotations

import json
from functools import reduce
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from hippo.capture.ids import ID, content_hash, is_hidden, quoted
from hippo.capture.replay import build_pairs, build_step
from hippo.capture.sources import check_readable, read_source
from hippo.capture.state import Cell, LineageState
from hippo.errors import InvalidWhereError, UnknownColumnError
from hippo.query.catalog import Endpoint
from hippo.query.pushdown import (
    BARE, Hint, copies_filter, few, hint_cond, hintable, hintable_type, isin)
from hippo.store import tables

__all__ = ["Resolver", "apply_where"]

KEY = "__hippo_key"
# Source columns per slot whose values an aggregate's group passes on to the source read
# (a source's first columns are usually its key, which its files are often sorted by).
_COPIES = 2
# (source op, ids, columns, hint: what every row of ids satisfies, or None)
_Path = tuple[int, DataFrame, "frozenset[str] | None", "Hint | None"]

def apply_where(df: DataFrame, where: str | Column, target: str) -> DataFrame:
    """``df`` filtered by ``where``, or InvalidWhereError naming what is wrong."""
    from pyspark.errors import AnalysisException, ParseException

    user = [c for c in df.columns if not is_hidden(c)]
    text = where if isinstance(where, str) else str(where)
    if isinstance(where, str) and not where.strip():
        raise InvalidWhereError(text, target, user, "it is empty")
    try:
        cond = F.expr(where) if isinstance(where, str) else where
        out = df.filter(cond)
        out.schema  # noqa: B018 -- forces analysis so a missing column fails here
    except ParseException as err:
        raise InvalidWhereError(text, target, user, "it does not parse: "
                                + str(err).strip().splitlines()[0][:200]) from err
    except AnalysisException as err:
        raise InvalidWhereError(text, target, user,
                                str(err).strip().splitlines()[0][:300]) from err
    return out


def _check_columns(columns: list[str] | None, known: list[str], target: str) -> None:
    if columns is None:
        return
    if isinstance(columns, str):
        columns = [columns]
    for c in columns:
        if c not in known:
            raise UnknownColumnError(c, target, known)


def _slot_of(sink: Endpoint, slot: str) -> Column:
    return F.col("slots")[sink.detail["slots"].index(slot)]


def _nonempty(answers: dict[str, DataFrame]) -> dict[str, DataFrame]:
    """Compute each answer once (kept on the executors) and keep those with rows.

    Checking emptiness and then letting the user count would run the whole lineage
    query twice; a local checkpoint runs it once. (Computing the answers concurrently
    gained nothing measurable on 2 cores.)
    """
    out = {}
    for name, result in answers.items():
        result = result.localCheckpoint(eager=True)
        if not result.isEmpty():
            out[name] = result
    return out


class Resolver:
    """Lineage queries over one successful run of a store."""

    def __init__(self, spark: SparkSession, root: str, run_id: str) -> None:
        self.spark = spark
        self.root = root
        self.run_id = run_id
        rows = (
            tables.read_table(spark, root, tables.OPERATORS)
            .filter(F.col("run_id") == run_id)
            .collect()
        )
        self.ops = {r.op_id: r for r in rows}
        self._frames: dict[int, DataFrame] = {}
        self._pinned: dict[tuple[str, int, bool], DataFrame] = {}

    # -- replay -------------------------------------------------------------------------
    def state(self, op_id: int) -> LineageState:
        return LineageState.from_json(json.loads(self.ops[op_id].state))

    def detail(self, op_id: int) -> dict[str, Any]:
        return json.loads(self.ops[op_id].detail)

    def pinned(self, path: str, version: int, plain: bool = True) -> DataFrame:
        """A pinned Delta version, checked readable once per query session (read as
        plain Parquet where that gives the same rows, unless ``plain`` is False)."""
        if (path, version, plain) not in self._pinned:
            self._pinned[(path, version, plain)] = check_readable(self.spark, path, version,
                                                                  plain)
        return self._pinned[(path, version, plain)]

    def frame(self, op_id: int) -> DataFrame:
        """The step's output as the run computed it, hidden columns included."""
        if op_id not in self._frames:
            op = self.ops[op_id]
            if op.step == "source":
                info = self.detail(op_id)["source"]
                pinned = self.pinned(info["path"], info["version"],
                                     plain=info.get("ids") != "row_tracking")
                df = read_source(self.spark, info, pinned)
            else:
                df = build_step(json.loads(op.spec), [self.frame(i) for i in op.inputs])
            self._frames[op_id] = df
        return self._frames[op_id]

    def key_rows(self, origin: dict[str, Any], where: Column | None = None) -> DataFrame:
        """The aggregate's input rows, each with the hash of its group key; ``where`` (over
        positional names ``__c<i>``) keeps a superset of the rows asked about."""
        df = self.frame(origin["input_op"])
        names = df.columns
        pos = df.toDF(*[f"__c{i}" for i in range(len(names))])
        if where is not None:
            pos = pos.filter(where)
        key = content_hash(list(origin["keys"]), "key")
        return pos.withColumn(KEY, key).toDF(*names, KEY)

    def group(self, origin: dict[str, Any],
              where: Column | None = None) -> tuple[DataFrame, LineageState]:
        """Rows an aggregate or semi-join slot refers to (id column ``KEY``), and their
        lineage state: the aggregate's input rows keyed by group hash, or the right rows
        a semi join matched, keyed by the left row's id."""
        if origin["kind"] == "key":
            return self.key_rows(origin, where), self.inner_state(origin)
        op = self.ops[origin["op"]]
        pairs = build_pairs(json.loads(op.spec), [self.frame(i) for i in op.inputs])
        return pairs.withColumnRenamed("__hippo_l", KEY), self.inner_state(origin)

    def inner_state(self, origin: dict[str, Any]) -> LineageState:
        """The lineage state of the rows an aggregate or semi-join slot refers to."""
        if origin["kind"] == "key":
            return self.state(origin["input_op"])
        return self.state(origin["right_op"]).renamed(origin["renames"])

    def written(self, sink: Endpoint) -> DataFrame:
        """The sink as this run wrote it, with each row's value hash."""
        df = self.pinned(sink.detail["path"], sink.detail["version"])
        return df.withColumn("row_hash", content_hash([quoted(c) for c in df.columns], "row"))

    def sink_rows(self, sink: Endpoint, prefilter: Column | None = None) -> DataFrame:
        """Each written row's id, value hash and slots: stored, hashed from the written
        row's group-key columns (keyed), or rebuilt by replay."""
        if sink.detail.get("rows") == "keyed":
            state = self.state(sink.op_id)
            written = self.written(sink)
            names = [c for c in written.columns if c != "row_hash"]

            def key(slot: str) -> Column:
                return content_hash([quoted(names[p]) for p in state.keyed[slot]], "key")

            return written.select(
                key(state.id_slot).alias("hippo_row_id"), "row_hash",
                F.array(*[key(s) for s in sink.detail["slots"]]).alias("slots"))
        if sink.detail.get("rows") == "replay":
            op = self.ops[sink.op_id]
            frame = self.frame(op.inputs[0])
            if prefilter is not None:
                frame = frame.filter(prefilter)
            return tables.sink_rows_of(frame, list(op.columns),
                                       sink.detail["slots"])
        return tables.read_table(self.spark, self.root, tables.SINK_ROWS).filter(
            (F.col("run_id") == self.run_id) & (F.col("sink") == sink.name)).select(
            "hippo_row_id", "row_hash", "slots")

    # -- backward -----------------------------------------------------------------------
    def backward(self, sink: Endpoint, where: str | Column, columns: list[str] | None,
                 influencing: bool) -> dict[str, DataFrame]:
        written = self.written(sink)
        user = [c for c in written.columns if c != "row_hash"]
        _check_columns(columns, user, f"sink `{sink.name}`")
        chosen = apply_where(written, where, f"sink `{sink.name}`")
        hashes = chosen.select("row_hash").distinct()
        rows = self.sink_rows(sink).join(hashes, "row_hash", "left_semi")
        state = self.state(sink.op_id)
        positions = [p for p, c in enumerate(user) if columns is None or c in columns]
        wanted = self._wanted(state, positions, columns is None, influencing)
        paths: list[_Path] = []
        for slot, refs in wanted.items():
            ids = rows.select(_slot_of(sink, slot).alias("id")).where(F.col("id").isNotNull())
            values = self._key_values(state, slot, chosen, user)
            self._back(state.slots[slot], ids, refs, influencing, paths, values)
        return self._assemble(paths)

    @staticmethod
    def _key_values(state: LineageState, slot: str, chosen: DataFrame,
                    user: list[str]) -> list[tuple[Any, ...]] | None:
        """The group keys of the chosen rows for a key slot they still hold, if few."""
        positions = state.keyed.get(slot)
        if state.slots[slot]["kind"] != "key" or positions is None:
            return None
        if not all(hintable(chosen, user[p]) for p in positions):
            return None
        rows = few(chosen.select(*[F.col(quoted(user[p])) for p in positions]).distinct())
        return None if rows is None else [tuple(r) for r in rows]

    def _key_hints(self, origin: dict[str, Any], inner: LineageState,
                   values: list[tuple[Any, ...]]) -> tuple[Column | None, dict[str, Hint]]:
        """For an aggregate's chosen group keys: a filter on its input (positional names)
        and, per input slot, the source columns its rows must hold those values in."""
        names = self.frame(origin["input_op"]).columns
        user = [i for i, c in enumerate(names) if not is_hidden(c)]
        conds: list[Column] = []
        hints: dict[str, Hint] = {}
        for j, key in enumerate(origin["keys"]):
            bare = BARE.match(key)
            if bare is None:
                continue
            column = bare.group(1)
            full = int(column[3:])
            conds.append(isin(F.col(column), [v[j] for v in values]))
            if full in user:
                copy = inner.copy_at(user.index(full))
                if copy is not None:
                    hints.setdefault(copy[0], []).append((copy[1], [v[j] for v in values]))
        where = reduce(lambda a, b: a & b, conds) if conds else None
        return where, hints

    @staticmethod
    def _wanted(state: LineageState, positions: list[int], all_columns: bool,
                influencing: bool) -> dict[str, frozenset[Any] | None]:
        if all_columns:
            return {slot: None for slot in state.slots}
        cells: set[Cell] = set()
        for p in positions:
            cells |= state.contrib[p]
        if influencing:
            cells |= state.influence
        wanted: dict[str, set[Any]] = {}
        for slot, ref in cells:
            wanted.setdefault(slot, set()).add(ref)
        return {s: frozenset(r) for s, r in wanted.items()}

    def _back(self, origin: dict[str, Any], ids: DataFrame, refs: frozenset[Any] | None,
              influencing: bool, paths: list[_Path],
              values: list[tuple[Any, ...]] | None = None, hint: Hint | None = None) -> None:
        if origin["kind"] == "source":
            paths.append((origin["op"], ids, refs, hint))
            return
        where, hints = None, {}
        if values is not None and origin["kind"] == "key":
            where, hints = self._key_hints(origin, self.inner_state(origin), values)
        rows, inner = self.group(origin, where)
        positions = list(range(len(inner.contrib))) if refs is None else sorted(refs)
        wanted = self._wanted(inner, positions, refs is None, influencing)
        # User columns by position (names may repeat after a join); slots keep theirs.
        group = rows.toDF(*[c if is_hidden(c) else f"__v{i}" for i, c in enumerate(rows.columns)])
        group = group.join(ids.distinct().withColumnRenamed("id", KEY), KEY, "left_semi")
        copies = self._group_copies(origin, inner, rows, wanted) if values is not None else {}
        if len(wanted) > 1 or copies:
            # Every slot's answer reads the same group: compute it once (its ids, and
            # the copies of source columns that say where those source rows are).
            kept = [F.col(slot) for slot in wanted] + [
                F.col(f"__v{i}") for pairs in copies.values() for i, _ in pairs]
            group = group.select(*kept).localCheckpoint(eager=True)
        if copies:
            for slot, hint in self._group_hints(group, copies).items():
                hints[slot] = hints.get(slot, []) + hint
        for slot, slot_refs in wanted.items():
            slot_ids = group.select(F.col(slot).alias("id")).where(F.col("id").isNotNull())
            self._back(inner.slots[slot], slot_ids, slot_refs, influencing, paths,
                       hint=hints.get(slot))

    def _group_copies(self, origin: dict[str, Any], inner: LineageState, rows: DataFrame,
                      wanted: dict[str, Any]) -> dict[str, list[tuple[int, str]]]:
        """Per wanted source slot of an aggregate's group, the group's first columns (by
        position) that are unchanged copies of that source row's columns: at most
        ``_COPIES``, as a large group is kept whole on the executors with them."""
        if origin["kind"] != "key":
            return {}
        dtypes = rows.dtypes
        user = [i for i, c in enumerate(rows.columns) if not is_hidden(c)]
        copies: dict[str, list[tuple[int, str]]] = {}
        for u, i in enumerate(user):
            copy = inner.copy_at(u)
            if (copy is not None and copy[0] in wanted
                    and inner.slots[copy[0]]["kind"] == "source"
                    and hintable_type(dtypes[i][1])
                    and len(copies.get(copy[0], [])) < _COPIES):
                copies.setdefault(copy[0], []).append((i, copy[1]))
        return copies

    @staticmethod
    def _group_hints(group: DataFrame, copies: dict[str, list[tuple[int, str]]]
                     ) -> dict[str, Hint]:
        """The values the group's rows hold in each copy, if the group is small."""
        cols = [i for pairs in copies.values() for i, _ in pairs]
        found = few(group.select(*[f"__v{i}" for i in cols]))  # reads at most 1,001 rows
        if found is None:
            return {}
        return {slot: [(source_col, [r[f"__v{i}"] for r in found]) for i, source_col in pairs]
                for slot, pairs in copies.items()}

    def _assemble(self, paths: list[_Path]) -> dict[str, DataFrame]:
        by_source: dict[int, list[_Path]] = {}
        for path in paths:
            if path[2] is None or path[2]:
                by_source.setdefault(path[0], []).append(path)
        out: dict[str, DataFrame] = {}
        for op_id, items in by_source.items():
            name = self.detail(op_id)["source"]["name"]
            src = self.frame(op_id)
            hinted = [p[3] for p in items if p[3] and all(hintable(src, c) for c, _ in p[3])]
            if len(hinted) == len(items):  # every path says where its rows are
                src = src.filter(reduce(lambda a, b: a | b, [
                    hint_cond(h, lambda c: F.col(quoted(c))) for h in hinted]))
            cols = [c for c in src.columns if not is_hidden(c)]
            col_sets = {p[2] for p in items}
            if len(col_sets) == 1:
                only = next(iter(col_sets))
                keep = cols if only is None else [c for c in cols if c in only]
                ids = reduce(DataFrame.union, [p[1] for p in items]).distinct()
                result = src.join(ids.withColumnRenamed("id", ID), ID, "left_semi").select(
                    *[F.col(f"`{c}`") for c in keep], F.col(ID).alias("hippo_row_id"))
            else:
                result = self._nulled(src, cols, items)
            out[name] = result
        return _nonempty(out)

    @staticmethod
    def _nulled(src: DataFrame, cols: list[str], items: list[_Path]) -> DataFrame:
        every = set().union(*[set(cols) if p[2] is None else p[2] for p in items])
        keep = [c for c in cols if c in every]
        flagged = [
            p[1].select("id", *[F.lit(p[2] is None or c in p[2]).alias(f"__f{j}")
                                for j, c in enumerate(keep)])
            for p in items
        ]
        flags = reduce(DataFrame.union, flagged).groupBy("id").agg(
            *[F.max(f"__f{j}").alias(f"__f{j}") for j in range(len(keep))])
        joined = src.join(flags.withColumnRenamed("id", ID), ID, "inner")
        return joined.select(
            *[F.when(F.col(f"__f{j}"), F.col(f"`{c}`")).alias(c) for j, c in enumerate(keep)],
            F.col(ID).alias("hippo_row_id"))

    # -- forward ------------------------------------------------------------------------
    def forward(self, source: Endpoint, sinks: list[Endpoint], where: str | Column,
                columns: list[str] | None) -> dict[str, DataFrame]:
        src = self.frame(source.op_id)
        user = [c for c in src.columns if not is_hidden(c)]
        _check_columns(columns, user, f"source `{source.name}`")
        picked = apply_where(src, where, f"source `{source.name}`")
        chosen = picked.select(F.col(ID).alias("id"))
        pushable = [c for c in user if hintable(src, c)]
        rows = few(picked.select(*[F.col(quoted(c)) for c in pushable])) if pushable else None
        values = None if rows is None else {c: [r[i] for r in rows] for i, c in enumerate(pushable)}
        wanted_cols = None if columns is None else frozenset(columns)
        out: dict[str, DataFrame] = {}
        for sink in sinks:
            state = self.state(sink.op_id)
            reached = []
            for slot, origin in state.slots.items():
                refs = None if wanted_cols is None else self._slot_refs(state, slot, None)
                ids = self._reach(origin, refs, source.op_id, chosen, wanted_cols, values)
                if ids is not None:
                    reached.append((slot, ids))
            if not reached:
                continue
            prefilter = None
            if sink.detail.get("rows") == "replay":
                frame = self.frame(self.ops[sink.op_id].inputs[0])
                prefilter = copies_filter(state, frame.columns, [s for s, _ in reached],
                                                source.op_id, values, positional=False)
            hit = self._flag_any(self.sink_rows(sink, prefilter), reached,
                                 lambda slot, sink=sink: _slot_of(sink, slot))
            written = self.written(sink).dropDuplicates(["row_hash"])
            names = [c for c in written.columns if c != "row_hash"]
            result = written.join(hit.select("row_hash", "hippo_row_id"), "row_hash").select(
                *[F.col(f"`{c}`") for c in names], "hippo_row_id")
            out[sink.name] = result
        return _nonempty(out)

    @staticmethod
    def _slot_refs(state: LineageState, slot: str,
                   positions: frozenset[Any] | None) -> frozenset[Any]:
        cells: set[Cell] = set(state.influence)
        for p, contrib in enumerate(state.contrib):
            if positions is None or p in positions:
                cells |= contrib
        return frozenset(r for s, r in cells if s == slot)

    def _reach(self, origin: dict[str, Any], refs: frozenset[Any] | None, source_op: int,
               chosen: DataFrame, columns: frozenset[str] | None,
               values: dict[str, list[Any]] | None = None) -> DataFrame | None:
        if origin["kind"] == "source":
            if origin["op"] != source_op:
                return None
            if columns is not None and not (refs or frozenset()) & columns:
                return None
            return chosen
        inner = self.inner_state(origin)
        reached = []
        for slot, inner_origin in inner.slots.items():
            inner_refs = None if refs is None else self._slot_refs(inner, slot, refs)
            ids = self._reach(inner_origin, inner_refs, source_op, chosen, columns, values)
            if ids is not None:
                reached.append((slot, ids))
        if not reached:
            return None
        where = None
        if origin["kind"] == "key":
            names = self.frame(origin["input_op"]).columns
            where = copies_filter(inner, names, [s for s, _ in reached], source_op,
                                        values, positional=True)
        rows, _ = self.group(origin, where)
        hit = self._flag_any(rows, reached, F.col)
        return hit.select(F.col(KEY).alias("id")).distinct()

    @staticmethod
    def _flag_any(rows: DataFrame, reached: list[tuple[str, DataFrame]], slot_col) -> DataFrame:
        """The rows (multiplicity kept) any of whose slots holds a reached id."""
        flagged = rows
        flags = []
        for j, (slot, ids) in enumerate(reached):
            flag = f"__hit{j}"
            flags.append(flag)
            marks = ids.distinct().select(F.col("id").alias(f"__id{j}"), F.lit(True).alias(flag))
            flagged = flagged.join(marks, slot_col(slot) == F.col(f"__id{j}"), "left").drop(f"__id{j}")
        cond = reduce(lambda a, b: a | b, [F.coalesce(F.col(f), F.lit(False)) for f in flags])
        return flagged.filter(cond).drop(*flags)
