"""Resolving a slot to rows: what backward and forward walks both need.

A sink row's slots say where its lineage continues. A source slot holds source row
ids. A key slot holds group-key hashes of an aggregate: the step's input is rebuilt
from the pinned sources (its recorded spec) and the rows whose key hashes match are the
group, whose own slots continue the walk. A match slot holds a semi join's left row id:
the right rows it matched are found by re-pairing the join's inputs. Nothing row-sized
reaches the driver: every set of ids is a DataFrame.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import reduce
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from hippo.errors import (
    HippoError,
    InvalidWhereError,
    UnknownColumnError,
    VersionUnavailableError,
    first_line,
    missing_file,
)
from hippo.recorded.ids import ID, KEY, content_hash, pos_name, positional, quoted
from hippo.recorded.rebuild import build_pairs
from hippo.recorded.run import RecordedRun
from hippo.recorded.sink_rows import ROW_HASH, row_hash, sink_rows_of
from hippo.recorded.state import FrameSlot, KeySlot, LineageState, Origin
from hippo.recorded.steps import Step
from hippo.query.pushdown import filtered, isin
from hippo.query.where import checked_filter
from hippo.session import jclass
from hippo.store import tables

log = logging.getLogger(__name__)

__all__ = ["Slots", "check_columns", "nonempty", "computed_once", "query_errors", "flag_any",
           "id_frame", "local_rows", "counted_local_rows", "chosen_ids", "cut_sources"]


def check_columns(columns: list[str] | None, known: list[str], target: str) -> None:
    if columns is None:
        return
    for c in [columns] if isinstance(columns, str) else columns:
        if c not in known:
            raise UnknownColumnError(c, target, known)


def computed_once(df: DataFrame) -> DataFrame:
    """``df`` as a local checkpoint that the caller's next action computes: it must run
    one right away (a count, a ``limit`` read, ``isEmpty``), in the same settings.

    An eager checkpoint is a job of its own before that action's, 0.05-0.1 s more per
    checkpoint. A lazy one keeps every partition that action computes (the storage
    level holds a partition whole before the action reads it), and after a job Spark
    computes the partitions the action did not reach, so later reads find all of them.
    """
    return df.localCheckpoint(eager=False)


def nonempty(answers: dict[str, DataFrame], small: frozenset[str] = frozenset(),
             direct: dict[str, DataFrame] | None = None,
             ready: frozenset[str] = frozenset()) -> dict[str, DataFrame]:
    """Compute each answer once and keep those with rows.

    Checking emptiness and then letting the user count would run the whole lineage
    query twice; a local checkpoint runs it once. An answer in ``small`` (its rows
    come from few ids known on the driver) is collected instead, into a local relation
    made in the JVM (exact types, no Python conversion): one job, its emptiness known
    without another, and the user's actions on it read no files (a larger one falls back
    to the checkpoint). (Computing the answers concurrently gained nothing measurable on
    2 cores; counting the rows on the way, as an observed metric, instead of asking the
    checkpoint whether it is empty, was 0.1 s slower per query: the count arrives through
    the listener bus.)

    ``direct`` holds, for some small answers, a plainer plan of the same rows that may
    repeat some of them (no shuffle to drop the repeats, no join): it is collected
    instead and its repeated rows dropped in the JVM; if it has too many rows, the
    answer itself is checkpointed. An answer in ``ready`` is a local relation with rows
    already: kept as it is.
    """
    out = {}
    direct = direct or {}
    for name, result in answers.items():
        if name in ready:
            out[name] = result
            continue
        if name in direct:
            kept = local_rows(direct[name], distinct=True)
        else:
            kept = local_rows(result) if name in small else None
        if kept is None:
            kept = computed_once(result)
            if kept.isEmpty():
                continue
        elif kept.isEmpty():  # a local relation: answered without a job
            continue
        out[name] = kept
    return out


# An answer of at most this many rows may be collected into a local relation.
_LOCAL_ROWS = 1000


def local_rows(df: DataFrame, distinct: bool = False) -> DataFrame | None:
    """``df`` computed into a local relation in the JVM, if it has at most
    ``_LOCAL_ROWS`` rows (read: at most one more), else None; with ``distinct``, rows
    equal in every value are kept once (Spark's ``Row`` equality: NaN equals NaN)."""
    got = counted_local_rows(df, distinct)
    return None if got is None else got[0]


def counted_local_rows(df: DataFrame, distinct: bool = False, most: int = _LOCAL_ROWS
                       ) -> tuple[DataFrame, int] | None:
    """:func:`local_rows` of at most ``most`` rows, and how many rows it holds."""
    spark = df.sparkSession
    jrows = df._jdf.limit(most + 1).collectAsList()
    if jrows.size() > most:
        return None
    if distinct:
        jvm = spark.sparkContext._jvm
        jrows = jclass(jvm, "java.util.ArrayList")(jclass(jvm, "java.util.LinkedHashSet")(jrows))
    local = DataFrame(spark._jsparkSession.createDataFrame(jrows, df._jdf.schema()), spark)
    return local, int(jrows.size())


_PART, _POS = "__hippo_part", "__hippo_pos"  # names no positional or hidden column has


def _sort(col: Column, asc: bool, nulls_first: bool) -> Column:
    if asc:
        return col.asc_nulls_first() if nulls_first else col.asc_nulls_last()
    return col.desc_nulls_first() if nulls_first else col.desc_nulls_last()


# SQLSTATE class 22 is "data exception": a division by zero, a cast that fails, ... (ANSI)
_DATA_ERROR = re.compile(r"SQLSTATE: 22[0-9A-Z]{3}")


@contextmanager
def query_errors(run: RecordedRun, where: str | Column, target: str,
                 columns: Sequence[str]) -> Iterator[None]:
    """Turn what can go wrong while a query runs into HippoErrors: a pinned file that
    vanished (vacuumed after the session checked it) into VersionUnavailableError naming
    the table and version; a ``where`` that fails on the data (``x / 0 > 1`` under ANSI
    SQL) into InvalidWhereError."""
    try:
        yield
    except HippoError:
        raise
    except Exception as err:
        text = str(err)
        if missing_file(err):
            for path, version in run.pinned_paths().items():
                if path in text:
                    raise VersionUnavailableError(
                        path, version, "a data file of it was removed, e.g. by VACUUM"
                    ) from err
            raise VersionUnavailableError(
                ", ".join(sorted(run.pinned_paths())), -1,
                f"a data file the query needed was removed: {first_line(err)}") from err
        if _DATA_ERROR.search(text):
            raise InvalidWhereError(str(where)[:300], target, columns,
                                    f"it fails on the data: {first_line(err)}") from err
        raise


def flag_any(rows: DataFrame, reached: list[tuple[str, DataFrame, list[int] | None]],
             slot_col: Callable[[str], Column]) -> DataFrame:
    """The rows (multiplicity kept) any of whose slots holds a reached id: per slot, the
    reached ids, and the same ids as a list when they are few and known on the driver
    (then a filter, with no join)."""
    if all(known is not None for _, _, known in reached):
        return rows.filter(reduce(lambda a, b: a | b, [
            isin(slot_col(slot), known) for slot, _, known in reached]))
    flagged = rows
    flags = []
    for j, (slot, ids, _) in enumerate(reached):
        flag, mark = f"__hippo_hit{j}", f"__hippo_mark{j}"  # names no user column has
        flags.append(flag)
        marks = ids.distinct().select(F.col("id").alias(mark), F.lit(True).alias(flag))
        flagged = flagged.join(marks, slot_col(slot) == F.col(mark), "left").drop(mark)
    cond = reduce(lambda a, b: a | b, [F.coalesce(F.col(f), F.lit(False)) for f in flags])
    return flagged.filter(cond).drop(*flags)


def id_frame(spark: SparkSession, ids: list[int]) -> DataFrame:
    """A DataFrame (column ``id``) of ids known on the driver: a local relation, which
    Spark broadcasts where it is joined."""
    return tables.local_frame(spark, [{"id": i} for i in ids], "id bigint")


class Slots:
    """The rows behind the slots of one recorded run."""

    def __init__(self, run: RecordedRun) -> None:
        self.run = run
        self.spark = run.spark
        self._sizes: dict[int, int] = {}
        # What other query modules derive from the recorded steps alone, once per run
        # (keyed by module and step; e.g. the joins before a group, hippo.query.reduction).
        self.derived: dict[tuple[str, int], Any] = {}

    def key_rows(self, origin: KeySlot, where: Column | None = None,
                 carry: frozenset[int] = frozenset()) -> DataFrame:
        """The aggregate's input rows, each with the hash of its group key; ``where`` (over
        positional names ``__c<i>``) keeps a superset of the rows asked about. ``carry``:
        source steps whose rows they carry where they can (:meth:`RecordedRun.carried`)."""
        df = self.run.carried(origin.input_op, carry)
        pos = positional(df)
        if where is not None:
            pos = filtered(pos, where)
        key = self.run.key_hash(origin)
        return pos.withColumn(KEY, key).toDF(*df.columns, KEY)

    def frame_rows(self, origin: FrameSlot, own: DataFrame | None = None,
                   hit: list[tuple[str, DataFrame, list[int] | None]] | None = None,
                   whole: bool = False) -> DataFrame:
        """The rows in the window frames of an ordered window step's rows, each with the
        id of the row whose frame holds it (column ``KEY``): of the rows whose ids
        ``own`` holds (column ``id``), or the frames holding a row any of whose slots
        holds a reached id (``hit``, as :func:`flag_any` takes it). Only the partitions
        of those rows are read and numbered. ``whole``: every row of the partition, the
        rows a frame may hold once rows are removed."""
        df = self.run.frame(origin.input_op)
        cols = df.columns
        pos = positional(df)
        idc = pos_name(cols.index(ID))
        rows = pos.withColumn(_PART, self.run.key_hash(origin))
        if own is not None:
            seed = rows.join(own.select(F.col("id").alias(idc)).distinct(), idc, "left_semi")
        else:
            seed = flag_any(rows, hit or [], lambda s: F.col(pos_name(cols.index(s))))
        rows = rows.join(seed.select(_PART).distinct(), _PART, "left_semi")
        order = [_sort(F.expr(sql), asc, first) for sql, asc, first in origin.order]
        numbered = rows.withColumn(_POS, F.row_number().over(
            Window.partitionBy(_PART).orderBy(*order, F.col(idc).asc_nulls_first())))
        by = ", ".join(f"{sql} {'ASC' if asc else 'DESC'} NULLS {'FIRST' if first else 'LAST'}"
                       for sql, asc, first in origin.order)
        lo, hi = F.lit(1), F.lit(None).cast("int")  # whole: every row of the partition
        if not whole and origin.span == "before":  # rows before its peers, and itself
            hi = F.expr(f"min({_POS}) OVER (PARTITION BY {_PART} ORDER BY {by} "
                        "RANGE BETWEEN CURRENT ROW AND CURRENT ROW)") - 1
        elif not whole:  # a frame is a run of consecutive rows in the order: first, last
            if origin.rows:
                by += f", {idc} ASC NULLS FIRST"
            over = f"OVER (PARTITION BY {_PART} ORDER BY {by} {origin.sql})"
            lo, hi = F.expr(f"min({_POS}) {over}"), F.expr(f"max({_POS}) {over}")
        owners = numbered.select(F.col(_PART).alias("__hippo_opart"), F.col(idc).alias(KEY),
                                 F.col(_POS).alias("__hippo_opos"), lo.alias("__hippo_lo"),
                                 hi.alias("__hippo_hi"))
        if own is not None:
            owners = owners.join(own.select(F.col("id").alias(KEY)).distinct(), KEY,
                                 "left_semi")
        # An empty frame (``lag`` of a partition's first row) has no first row: null.
        within = (F.col(_POS) >= F.col("__hippo_lo")) & (
            F.col("__hippo_hi").isNull() | (F.col(_POS) <= F.col("__hippo_hi")))
        if not whole and origin.span == "frame":
            within = within & F.col("__hippo_hi").isNotNull()
        if not whole and origin.span == "before":
            within = within | (F.col(_POS) == F.col("__hippo_opos"))
        members = numbered if hit is None else numbered.join(
            seed.select(idc).distinct(), idc, "left_semi")
        pairs = members.join(owners, (F.col(_PART) == F.col("__hippo_opart")) & within)
        return pairs.select(*[pos_name(i) for i in range(len(cols))], KEY).toDF(*cols, KEY)

    def group(self, origin: Origin, where: Column | None = None,
              carry: frozenset[int] = frozenset()) -> DataFrame:
        """Rows an aggregate or semi-join slot refers to (id column ``KEY``): the
        aggregate's input rows keyed by group hash (carrying the rows of the source
        steps in ``carry`` where they can), or the right rows a semi join matched, keyed
        by the left row's id."""
        if isinstance(origin, KeySlot):
            return self.key_rows(origin, where, carry)
        step = self.run.steps[origin.op]
        pairs = build_pairs(step.spec, [self.run.frame(i) for i in step.inputs])
        return pairs.withColumnRenamed("__hippo_l", KEY)

    def inner_state(self, origin: Origin) -> LineageState:
        """The lineage state of the rows an aggregate or semi-join slot refers to."""
        if isinstance(origin, (KeySlot, FrameSlot)):
            return self.run.steps[origin.input_op].state
        return self.run.steps[origin.right_op].state.renamed(origin.renames)

    def written(self, sink: Step) -> DataFrame:
        """The sink as this run wrote it, with each row's value hash (``ROW_HASH``)."""
        info = sink.sink
        df = self.run.pinned(info.path, info.version)
        return df.withColumn(ROW_HASH, row_hash(df.columns))

    @staticmethod
    def slot_of(sink: Step, slot: str) -> Column:
        return F.col("slots")[sink.sink.slots.index(slot)]

    def source_bytes(self, op: int) -> int:
        """The size Spark estimates for a source step's pinned rows (from its files'
        sizes; Delta may plan the scan with one small job), once per run. It only
        decides whether a filter is worth adding, so an estimate that fails is 0."""
        if op not in self._sizes:
            try:
                stats = self.run.frame(op)._jdf.queryExecution().optimizedPlan().stats()
                self._sizes[op] = int(str(stats.sizeInBytes()))
            except Exception as err:  # no estimate: no hint, the answer is the same
                log.info("no size estimate for source step %s: %s", op, first_line(err))
                self._sizes[op] = 0
        return self._sizes[op]

    @staticmethod
    def key_hash(sink: Step, written: DataFrame, slot: str | None = None) -> Column:
        """A keyed sink's written row's hash of the group key ``slot`` holds (by default
        the one its row id is), from the user columns that hold the key unchanged."""
        state = sink.state
        names = [c for c in written.columns if c != ROW_HASH]
        positions = state.keyed[state.id_slot if slot is None else slot]
        return content_hash([quoted(names[p]) for p in positions], "key")

    def sink_rows(self, sink: Step, prefilter: Column | None = None) -> DataFrame:
        """Each written row's id, value hash and slots: stored, hashed from the written
        row's group-key columns (keyed), or rebuilt by replay."""
        info = sink.sink
        if info.rows == "keyed":
            written = self.written(sink)
            return written.select(
                self.key_hash(sink, written).alias("hippo_row_id"),
                F.col(ROW_HASH).alias("row_hash"),
                F.array(*[self.key_hash(sink, written, s) for s in info.slots]).alias("slots"))
        if info.rows == "replay":
            frame = self.run.frame(sink.inputs[0])
            if prefilter is not None:
                frame = filtered(frame, prefilter)
            return sink_rows_of(frame, list(sink.columns), info.slots)
        if info.inline is not None:  # kept in the run's row: the same rows, made locally
            return tables.local_frame(self.spark, [
                {"run_id": self.run.run_id, "sink": info.name, "hippo_row_id": i,
                 "row_hash": h, "slots": list(s)} for i, h, s in info.inline
            ], tables.SCHEMAS[tables.SINK_ROWS]).select("hippo_row_id", "row_hash", "slots")
        return tables.read_table(self.spark, self.run.root, tables.SINK_ROWS).filter(
            (F.col("run_id") == self.run.run_id) & (F.col("sink") == info.name)).select(
            "hippo_row_id", "row_hash", "slots")


def chosen_ids(slots: Slots, sink: Step, where: str | Column) -> DataFrame:
    """The ids (column ``id``) of the sink rows, as written, that ``where`` chooses."""
    written = slots.written(sink)
    user = [c for c in written.columns if c != ROW_HASH]
    chosen = checked_filter(written, where, f"sink `{sink.sink.name}`", user)
    hashes = chosen.select(F.col(ROW_HASH).alias("row_hash")).distinct()
    return (slots.sink_rows(sink).join(hashes, "row_hash", "left_semi")
            .select(F.col("hippo_row_id").alias("id")).distinct())


def cut_sources(run: RecordedRun, lineage: dict[str, DataFrame]) -> dict[int, DataFrame]:
    """Per source step, its rows (hidden columns included) that a backward answer holds.

    ``lineage`` must be a row-level answer (``lineage_of(..., columns=None)``): each
    source row it reaches, with every column, as many times as the source holds it (the
    source joined to the reached ids; a value hint only skips rows of other ids). A
    source step's hidden columns are its id and its slot, a copy of the id, so the rows
    are taken from the answer, not found again by hashing every row of the source (4.4 s
    of a removal at 10 million rows). An answer without every column of the source
    falls back to that search. A cell-level answer (nulls where a cell is not reached)
    must not be passed.
    """
    cut = {}
    for source, rows in lineage.items():
        step = run.source(source)
        whole = run.frame(step.op_id)
        hidden = {ID, step.source.slot}
        user = [c for c in whole.columns if c not in hidden]
        if set(whole.columns) >= hidden and set(user) <= set(rows.columns):
            cut[step.op_id] = rows.select(*[  # the same column order
                F.col("hippo_row_id").alias(c) if c in hidden else F.col(quoted(c))
                for c in whole.columns])
            continue
        ids = rows.select(F.col("hippo_row_id").alias(ID)).distinct()
        cut[step.op_id] = whole.join(ids, ID, "left_semi").select(
            *[F.col(quoted(c)) for c in whole.columns])
    return cut
