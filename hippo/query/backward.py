"""Backward lineage: the source rows (and cells) that made chosen sink rows.

The walk starts from the chosen written rows' slots and follows each slot to its
origin (:mod:`hippo.query.slots`) until it reaches sources. Cell level: a source row can
contribute different columns along different paths; its cells that contribute along no
path are returned as null. A cell whose expression references no column (``count(*)``)
is made by its rows: those rows are returned, without value columns.

An aggregate's group is read with the rows of the sources it comes from carried along
(:meth:`hippo.recorded.run.RecordedRun.carried`), so those sources' answers are taken
from the group's rows instead of being read again and matched by id: one source read
and one job per answer fewer. A source row is answered as often as the source holds it
(equal rows share an id; their file and position in it tell them apart).
"""

from __future__ import annotations

from functools import reduce
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from hippo.py4j_lists import selected
from hippo.query import pushdown
from hippo.query.pushdown import (
    BARE, Hint, few, few_sets, hint_cond, hintable, hintable_type, isin)
from hippo.query.reduction import reduced_where
from hippo.query.slots import (
    Slots, check_columns, computed_once, counted_local_rows, id_frame, nonempty, query_errors)
from hippo.query.where import checked_filter
from hippo.recorded.rebuild import rebuilt_plans
from hippo.recorded.ids import CARRY, ID, KEY, is_hidden, pos_name, quoted
from hippo.recorded.sink_rows import ROW_HASH
from hippo.recorded.state import MADE_BY_ROW, Cell, FrameSlot, KeySlot, LineageState, Origin
from hippo.session import session_conf

__all__ = ["backward", "lineage_of", "chosen_values", "copies_cond", "pushable_positions"]

# Source columns per slot whose values an aggregate's group passes on to the source read
# (a source's first columns are usually its key, which its files are often sorted by).
_COPIES = 2
# Whether an aggregate's group carries its source rows to the answers (off: each answer
# reads its source again; kept for side-by-side measurement, bench/carry_ab.py).
CARRY_ROWS = True
# A group that carries source rows is made into a local relation up to this many rows (a
# few MB in the driver's JVM: q5's groups hold about 1,500 rows of six sources), so its
# answers need no job; its ids and copies reach Python only up to HINT_ROWS rows.
_CARRIED_LOCAL = 5000
# (source op, ids (None when known: made into a frame only if a join needs them),
# columns, hint: what every row of ids satisfies, or None, known: the ids themselves
# when they are few and read to the driver, False when they are many, None when not
# read yet, carried: the source rows themselves as a group carried them (columns
# ``row``, the carried struct, and ``id``), or None, local: whether ``carried`` is a
# local relation)
_Path = tuple[int, "DataFrame | None", "frozenset[str] | None", "Hint | None",
              "list[int] | bool | None", "DataFrame | None", bool]
# Wanted refs per slot: None = every column, else refs (source column names, or positions
# at a group's input), with _ROWS when the rows themselves are wanted (a cell computed from
# no column, such as count(*), is made by its rows).
_Wanted = dict[str, "frozenset[Any] | None"]
_ROWS = ("rows",)  # equal to no column name and no position


def backward(slots: Slots, sink_name: str, where: str | Column, columns: list[str] | None,
             influencing: bool) -> dict[str, DataFrame]:
    """Source name -> the contributing source rows (cells, with ``columns``) of the
    sink rows ``where`` chooses."""
    columns_written = slots.run.sink(sink_name).columns
    with query_errors(slots.run, where, f"sink `{sink_name}`", columns_written), \
            rebuilt_plans(slots.spark):
        return _backward(slots, sink_name, where, columns, influencing)


def _backward(slots: Slots, sink_name: str, where: str | Column, columns: list[str] | None,
              influencing: bool) -> dict[str, DataFrame]:
    run = slots.run
    sink = run.sink(sink_name)
    written = slots.written(sink)
    user = [c for c in written.columns if c != ROW_HASH]
    target = f"sink `{sink_name}`"
    check_columns(columns, user, target)
    return lineage_of(slots, sink_name, checked_filter(written, where, target, user),
                      columns, influencing)


def lineage_of(slots: Slots, sink_name: str, chosen: DataFrame, columns: list[str] | None,
               influencing: bool, grown: bool = False) -> dict[str, DataFrame]:
    """Source name -> the source rows (cells) behind ``chosen``: rows of the sink as
    written, with their value hash (``ROW_HASH``). ``grown``: a window frame that
    removing rows can extend (``lag``) is taken as its whole partition, so the rows
    that would enter it are there too (what a removal's repair recomputes from)."""
    run = slots.run
    sink = run.sink(sink_name)
    user = [c for c in chosen.columns if c != ROW_HASH]
    state = sink.state
    keyed = sink.sink.rows == "keyed"
    # A keyed sink's rows' ids and slots are hashes of their own key columns: taken in
    # the same read as the chosen rows' values, not in a second scan of the sink.
    extra = [slots.key_hash(sink, chosen).alias("hippo_row_id"),
             F.array(*[slots.key_hash(sink, chosen, s) for s in sink.sink.slots]
                     ).alias("slots")] if keyed else []
    hashes, seen, got = _chosen(state, chosen, user, extra=extra)
    found = got if keyed else None  # the rows themselves, if few
    if found is None:
        prefilter = None
        if sink.sink.rows == "replay" and seen:
            prefilter = copies_cond(state, seen, list(sink.columns))
        rows = slots.sink_rows(sink, prefilter)
        if hashes is not None:  # few: a filter, not a join (no shuffle, no second scan)
            rows = rows.filter(isin(F.col("row_hash"), hashes))
            found = few(rows)
        else:
            rows = rows.join(chosen.select(F.col(ROW_HASH).alias("row_hash")).distinct(),
                             "row_hash", "left_semi")
    positions = None if columns is None else frozenset(
        p for p, c in enumerate(user) if c in columns)
    wanted = _wanted(state, positions, influencing)
    if found is None and len(wanted) > 1:  # every slot's ids come from these rows: once
        rows = rows.localCheckpoint(eager=True)
    work = _Work(slots.spark)
    for slot, refs in wanted.items():
        origin = state.slots[slot]
        values = _key_values(state, slot, seen)
        hint = (_copies_hint(state, slot, seen) if origin.kind == "source" else None) or None
        if found is None:
            ids = rows.select(slots.slot_of(sink, slot).alias("id")).where(
                F.col("id").isNotNull())
            work.add(slot, origin, ids, refs, values, hint, known=False)  # many rows
            continue
        at = sink.sink.slots.index(slot)
        known = list(dict.fromkeys(r["slots"][at] for r in found
                                   if r["slots"][at] is not None))
        if known:  # the chosen rows' ids, made on the driver: no job reads them again
            work.add(slot, origin, None, refs, values, hint, known)
    return _assemble(slots, work.done(slots, influencing, grown))


def pushable_positions(state: LineageState, chosen: DataFrame, user: list[str]) -> list[int]:
    """The user positions of a sink's rows that copy a source column or hold a group key,
    in a type whose values may be pushed down (no job)."""
    wanted = {p for p, copy in enumerate(state.copies) if copy is not None}
    for slot, positions in state.keyed.items():
        if state.slots[slot].kind == "key":
            wanted |= set(positions)
    return sorted(p for p in wanted if p < len(user) and hintable(chosen, user[p]))


def chosen_values(state: LineageState, chosen: DataFrame, user: list[str],
                  first: Column | None = None
                  ) -> tuple[list[Any] | None, dict[int, list[Any]] | None]:
    """The chosen rows' value hashes (or ``first`` of each) and, per user position that
    copies a source column or holds a group key, the values they hold there; both None
    if the rows are many (one read of at most 1,001 rows)."""
    hashes, seen, _ = _chosen(state, chosen, user, first)
    return hashes, seen


def _chosen(state: LineageState, chosen: DataFrame, user: list[str],
            first: Column | None = None, extra: list[Column] | None = None
            ) -> tuple[list[Any] | None, dict[int, list[Any]] | None, list[Any] | None]:
    """:func:`chosen_values`, and the rows read, which also hold ``extra`` (columns
    computed from each chosen row)."""
    pushable = pushable_positions(state, chosen, user)
    rows = few(chosen.select(F.col(ROW_HASH) if first is None else first,
                             *[F.col(quoted(user[p])) for p in pushable],
                             *(extra or [])).distinct())
    if rows is None:
        return None, None, None
    hashes = list(dict.fromkeys(r[0] for r in rows))
    return hashes, {p: [r[i + 1] for r in rows] for i, p in enumerate(pushable)}, rows


def _comparable(values: list[Any]) -> bool:
    """Whether an IN list of these values keeps every row holding one (NaN is left
    out: data skipping over NaN statistics is not relied on)."""
    return not any(isinstance(v, float) and v != v for v in values)


def _copies_hint(state: LineageState, slot: str,
                 seen: dict[int, list[Any]] | None) -> Hint:
    """For a source slot of the chosen rows: the source columns its rows hold the
    chosen rows' values in (the user columns that copy them)."""
    if not seen:
        return []
    return [(copy[1], seen[p]) for p in sorted(seen)
            if (copy := state.copy_at(p)) is not None and copy[0] == slot
            and _comparable(seen[p])]


def copies_cond(state: LineageState, seen: dict[int, list[Any]],
                names: list[str], keys: bool = False) -> Column | None:
    """A filter on a sink's frame (its written columns ``names``) keeping every row the
    chosen rows may be: its copies of source columns (``keys``: and its group keys) hold
    the chosen values. Spark pushes it through the steps into the source reads, which
    skip files by their statistics; a group key's filter goes below its aggregate."""
    conds = [isin(F.col(quoted(names[p])), seen[p]) for p in sorted(seen)
             if (keys or state.copy_at(p) is not None) and p < len(names)
             and _comparable(seen[p])]
    return reduce(lambda a, b: a & b, conds) if conds else None


class _Work:
    """The slots still to follow back, merged per (slot, wanted refs).

    Rows of a window step keep their slots and gain the window's, so the rows of a
    frame carry every earlier window's slots again: followed path by path, a chain of
    k windows would resolve 2^k times. Each slot is resolved once, for the union of the
    ids that reach it (a slot's rows only hold slots of earlier steps, so following
    them latest step first sees every id before it resolves a slot).
    """

    def __init__(self, spark: SparkSession) -> None:
        self.spark = spark
        self.todo: dict[tuple[str, Any], list[tuple[Origin, DataFrame, Any, Any]]] = {}
        self.paths: list[_Path] = []

    def add(self, slot: str, origin: Origin, ids: DataFrame | None,
            refs: frozenset[Any] | None, values: list[tuple[Any, ...]] | None = None,
            hint: Hint | None = None, known: list[int] | bool | None = None,
            carried: DataFrame | None = None, local: bool = False) -> None:
        """``ids`` may be None when ``known`` lists them: a source's answer reads few
        ids as a filter, so their frame (a local relation, ~13 ms to make) is made
        only where a join needs it. ``carried``: a source slot's rows, as the group
        that holds its ids carried them (``local``: in a local relation)."""
        if origin.kind == "source":
            self.paths.append((origin.op, ids, refs, hint, known, carried, local))
            return
        if ids is None:
            ids = id_frame(self.spark, known)
        self.todo.setdefault((slot, refs), []).append((origin, ids, values, hint))

    def done(self, slots: Slots, influencing: bool, grown: bool) -> list[_Path]:
        while self.todo:
            key = max(self.todo, key=lambda k: self.todo[k][0][0].op)
            items = self.todo.pop(key)
            origin, ids, values, hint = items[0]
            if len(items) > 1:
                ids = reduce(DataFrame.union, [i[1] for i in items]).distinct()
                values, hint = None, None
            _back(slots, origin, ids, key[1], influencing, self, values, hint, grown)
        return self.paths


def _key_values(state: LineageState, slot: str,
                seen: dict[int, list[Any]] | None) -> list[tuple[Any, ...]] | None:
    """The group keys of the chosen rows for a key slot they still hold, if few."""
    positions = state.keyed.get(slot)
    if state.slots[slot].kind != "key" or positions is None or seen is None:
        return None
    if not all(p in seen for p in positions):
        return None
    return list(dict.fromkeys(zip(*[seen[p] for p in positions])))


def _key_hints(slots: Slots, origin: KeySlot, inner: LineageState,
               values: list[tuple[Any, ...]]) -> tuple[Column | None, dict[str, Hint]]:
    """For an aggregate's chosen group keys: a filter on its input (positional names)
    and, per input slot, the source columns its rows must hold those values in."""
    names = slots.run.frame(origin.input_op).columns
    user = [i for i, c in enumerate(names) if not is_hidden(c)]
    conds: list[Column] = []
    hints: dict[str, Hint] = {}
    for j, key in enumerate(origin.keys):
        bare = BARE.match(key)
        if bare is None:
            continue
        full = int(bare.group(1))
        conds.append(isin(F.col(pos_name(full)), [v[j] for v in values]))
        if full in user:
            copy = inner.copy_at(user.index(full))
            if copy is not None:
                hints.setdefault(copy[0], []).append((copy[1], [v[j] for v in values]))
    where = reduce(lambda a, b: a & b, conds) if conds else None
    return where, hints


def _wanted(state: LineageState, refs: frozenset[Any] | None, influencing: bool) -> _Wanted:
    """Per slot, the refs the chosen columns (``refs``: user positions, or None for all)
    come from. A column that references nothing (``count(*)``) still comes from its row,
    and so does ``_ROWS``: every slot of the row is wanted, with ``_ROWS``."""
    if refs is None:
        return {slot: None for slot in state.slots}
    positions = sorted(r for r in refs if r != _ROWS)
    cells: set[Cell] = set()
    rowwise = _ROWS in refs or not positions
    for p in positions:
        cells |= state.contrib[p]
        rowwise = rowwise or not state.contrib[p]
    if influencing:
        cells |= state.influence
    wanted: dict[str, set[Any]] = {slot: {_ROWS} for slot in state.slots} if rowwise else {}
    for slot, ref in cells:
        wanted.setdefault(slot, set()).add(_ROWS if ref is MADE_BY_ROW else ref)
    return {s: frozenset(r) for s, r in wanted.items()}


def _back(slots: Slots, origin: Origin, ids: DataFrame, refs: frozenset[Any] | None,
          influencing: bool, work: _Work,
          values: list[tuple[Any, ...]] | None = None, hint: Hint | None = None,
          grown: bool = False) -> None:
    """Resolve one key, match or frame slot: its rows' slots go back on ``work``."""
    where, hints = None, {}
    inner = slots.inner_state(origin)
    if values is not None and isinstance(origin, KeySlot):
        where, hints = _key_hints(slots, origin, inner, values)
        across = reduced_where(slots, origin, inner, hints)
        if across is not None:
            where = across if where is None else where & across
    wanted = _wanted(inner, refs, influencing)
    # An aggregate's group carries the rows of its wanted sources: no second read of them.
    sources = {slot: inner.slots[slot].op for slot in wanted
               if inner.slots[slot].kind == "source"
               } if CARRY_ROWS and isinstance(origin, KeySlot) else {}
    if isinstance(origin, FrameSlot):
        rows = slots.frame_rows(origin, own=ids, whole=grown and origin.grows)
    else:
        rows = slots.group(origin, where, frozenset(sources.values()))
    # User columns by position (names may repeat after a join); slots keep theirs.
    group = rows.toDF(*[c if is_hidden(c) else f"__v{i}" for i, c in enumerate(rows.columns)])
    group = group.join(ids.distinct().withColumnRenamed("id", KEY), KEY, "left_semi")
    carried = {slot: CARRY + str(op) for slot, op in sources.items()
               if CARRY + str(op) in rows.columns}
    # Copies say where a source's rows are for reading it again: not for carried ones.
    copies = {slot: pairs for slot, pairs in (
        _group_copies(origin, inner, rows, wanted) if values is not None else {}).items()
        if slot not in carried}
    # Every slot's ids, and the copies of source columns that say where those source
    # rows are, come from the same group: computed once, then read to the driver if
    # few (at most 1,001 rows, from the checkpoint).
    kept = [F.col(slot) for slot in wanted] + [
        F.col(f"__v{i}") for pairs in copies.values() for i, _ in pairs]
    local = None
    if carried:  # few: into a local relation, which the answers then read without a job
        with session_conf(slots.spark, _carrying(slots.spark)):  # planned by the checkpoint
            group = computed_once(group.select(*kept, *[F.col(c) for c in set(carried.values())]))
            got = counted_local_rows(group, most=_CARRIED_LOCAL)
        local = None if got is None else got[0]
        found = local.select(*kept).collect() if got and got[1] <= pushdown.HINT_ROWS else None
    else:
        group = computed_once(group.select(*kept))
        found = few(group)
    held = group if local is None else local
    if copies and found is not None:
        for slot, hint_ in _group_hints(found, copies).items():
            hints[slot] = hints.get(slot, []) + hint_
    elif copies:  # many rows: each source's first copy as a set of values, if not too many
        firsts = [(slot, pairs[0]) for slot, pairs in copies.items()
                  if slots.source_bytes(inner.slots[slot].op) >= pushdown.SCAN_BYTES]
        sets = few_sets(group, [f"__v{i}" for _, (i, _) in firsts]) if firsts else None
        for (slot, (_, source_col)), values_ in zip(firsts, sets or []):
            if _comparable(values_):
                hints[slot] = hints.get(slot, []) + [(source_col, values_)]
    for slot, slot_refs in wanted.items():
        rows_of = None
        if slot in carried:
            rows_of = held.where(F.col(slot).isNotNull()).select(
                F.col(carried[slot]).alias("row"), F.col(slot).alias("id"))
        if found is None:  # many: the ids stay on the executors
            slot_ids = group.select(F.col(slot).alias("id")).where(F.col("id").isNotNull())
            work.add(slot, inner.slots[slot], slot_ids, slot_refs, hint=hints.get(slot),
                     known=False, carried=rows_of, local=local is not None)
            continue
        known = list(dict.fromkeys(r[slot] for r in found if r[slot] is not None))
        if known:
            work.add(slot, inner.slots[slot], None, slot_refs,
                     hint=hints.get(slot), known=known, carried=rows_of,
                     local=local is not None)


def _carrying(spark: SparkSession) -> dict[str, str]:
    """Settings for planning a group that carries source rows: a side of a join is
    broadcast up to twice the session's size. Each carried row is a second copy of
    the columns its source's scan reads anyway, so Spark's estimate of a side (its
    files' size scaled by its row width) doubles: q3's customer side went from a
    broadcast to a sort-merge join, whose two shuffles adaptive execution then turned
    into a broadcast again, two jobs later."""
    most = int(spark._jsparkSession.sessionState().conf().autoBroadcastJoinThreshold())
    return {"spark.sql.autoBroadcastJoinThreshold": str(2 * most)} if most > 0 else {}


def _group_copies(origin: Origin, inner: LineageState, rows: DataFrame,
                  wanted: _Wanted) -> dict[str, list[tuple[int, str]]]:
    """Per wanted source slot of an aggregate's group, the group's first columns (by
    position) that are unchanged copies of that source row's columns: at most
    ``_COPIES``, as a large group is kept whole on the executors with them."""
    if not isinstance(origin, KeySlot):
        return {}
    dtypes = rows.dtypes
    user = [i for i, c in enumerate(rows.columns) if not is_hidden(c)]
    copies: dict[str, list[tuple[int, str]]] = {}
    for u, i in enumerate(user):
        copy = inner.copy_at(u)
        if (copy is not None and copy[0] in wanted
                and inner.slots[copy[0]].kind == "source"
                and hintable_type(dtypes[i][1])
                and len(copies.get(copy[0], [])) < _COPIES):
            copies.setdefault(copy[0], []).append((i, copy[1]))
    return copies


def _group_hints(found: list[Any], copies: dict[str, list[tuple[int, str]]]
                 ) -> dict[str, Hint]:
    """The values the group's rows (``found``, read to the driver) hold in each copy."""
    return {slot: [(source_col, [r[f"__v{i}"] for r in found]) for i, source_col in pairs]
            for slot, pairs in copies.items()}


def _assemble(slots: Slots, paths: list[_Path]) -> dict[str, DataFrame]:
    by_source: dict[int, list[_Path]] = {}
    for path in paths:
        by_source.setdefault(path[0], []).append(path)
    out: dict[str, DataFrame] = {}
    small = set()  # answers read by few ids known on the driver
    ready = set()  # answers made into local relations with rows already
    for op_id, items in by_source.items():
        name = slots.run.steps[op_id].source.name
        col_sets = {p[2] for p in items}
        if len(col_sets) == 1 and all(p[5] is not None for p in items):
            answer, rows = _carried_answer(slots, op_id, items, next(iter(col_sets)))
            if rows is None or rows > 0:
                out[name] = answer
            if rows:
                ready.add(name)
            continue
        src = slots.run.frame(op_id)
        hinted = [p[3] for p in items if p[3] and all(hintable(src, c) for c, _ in p[3])]
        if len(hinted) == len(items):  # every path says where its rows are
            src = src.filter(reduce(lambda a, b: a | b, [
                hint_cond(h, lambda c: F.col(quoted(c))) for h in hinted]))
        cols = [c for c in src.columns if not is_hidden(c)]
        if len(col_sets) == 1:
            only = next(iter(col_sets))
            keep = cols if only is None else [c for c in cols if c in only]
            if all(isinstance(p[4], list) for p in items):
                known = list(dict.fromkeys(i for p in items for i in p[4]))
            else:
                ids = reduce(DataFrame.union, [_ids(slots, p) for p in items]).distinct()
                many = any(p[4] is False for p in items)
                found = None if many else few(ids)
                known = None if found is None else [r[0] for r in found]
            if known is not None:  # few: a filter, not a join (no shuffle, no second scan)
                result = src.filter(isin(F.col(ID), known))
                small.add(name)
            else:
                result = src.join(ids.withColumnRenamed("id", ID), ID, "left_semi")
            result = result.select(*[F.col(quoted(c)) for c in keep],
                                   F.col(ID).alias("hippo_row_id"))
        else:
            result = _nulled(slots, src, cols, items)
        out[name] = result
    return nonempty(out, frozenset(small), ready=frozenset(ready))


def _carried_answer(slots: Slots, op_id: int, items: list[_Path],
                    only: frozenset[str] | None) -> tuple[DataFrame, int | None]:
    """A source's answer from the rows its paths' groups carried (each source row
    once, as often as the source holds it: rows are told apart by where they are), and
    its number of rows if it is a local relation already (else None)."""
    cols = [c for c in slots.run.frame(op_id).columns if not is_hidden(c)]
    keep = [quoted(c) for c in cols if only is None or c in only]
    rows = reduce(DataFrame.union, [p[5] for p in items])  # type: ignore[misc]
    # SQL text: one call to the JVM for the whole list (hippo.py4j_lists)
    answer = [*[f"`row`.{c} AS {c}" for c in keep], "id AS hippo_row_id"]
    if len(items) == 1 and items[0][6]:  # equal rows are one row: kept once, in the JVM
        got = counted_local_rows(rows, distinct=True, most=_CARRIED_LOCAL)
        if got is not None:
            return selected(got[0], answer), got[1]
    # The struct as a grouping key: a hash aggregate with no buffer (a drop of duplicates
    # by columns would keep the first of every other column, strings among them, which
    # Spark aggregates by sorting).
    return selected(rows.distinct(), answer), None


def _ids(slots: Slots, path: _Path) -> DataFrame:
    """A path's ids as a frame (column ``id``)."""
    return path[1] if path[1] is not None else id_frame(slots.spark, path[4])


def _nulled(slots: Slots, src: DataFrame, cols: list[str], items: list[_Path]) -> DataFrame:
    every = set().union(*[set(cols) if p[2] is None else p[2] for p in items])
    keep = [c for c in cols if c in every]
    flagged = [
        _ids(slots, p).select("id", *[F.lit(p[2] is None or c in p[2]).alias(f"__hippo_f{j}")
                            for j, c in enumerate(keep)])
        for p in items
    ]
    # Computed once: read by the check below and by the answer.
    flags = computed_once(reduce(DataFrame.union, flagged).groupBy("id").agg(
        *[F.max(f"__hippo_f{j}").alias(f"__hippo_f{j}") for j in range(len(keep))]))
    # A column only some paths read (one side of a union of a source with itself) is
    # answered only if a chosen row reaches the source along such a path.
    seen = flags.agg(*[F.max(f"__hippo_f{j}") for j in range(len(keep))]).first()
    joined = src.join(flags.withColumnRenamed("id", ID), ID, "inner")
    return joined.select(
        *[F.when(F.col(f"__hippo_f{j}"), F.col(quoted(c))).alias(c)
          for j, c in enumerate(keep) if seen is not None and seen[j]],
        F.col(ID).alias("hippo_row_id"))
