"""Value pushdown: filters that keep a superset of the rows a lineage query needs.

When a query starts from few rows, their values (group keys, or a source row's columns)
are brought to the driver and pushed into replays and source reads as ``IN`` lists, so
Spark skips Delta files and Parquet row groups by their statistics. The hash match
downstream still decides which rows belong, so answers are the same with or without
these filters. Not checked here: that a column is a copy (``LineageState.copies``).
"""

from __future__ import annotations

import re
import struct
from functools import reduce
from typing import Any

from py4j.protocol import Py4JError
from pyspark import SparkContext
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from hippo.recorded.ids import COLUMN, is_hidden, pos_name, quoted
from hippo.recorded.state import LineageState
from hippo.session import jclass

__all__ = ["Hint", "BARE", "HINT_ROWS", "SCAN_BYTES", "few", "few_sets", "hintable",
           "hintable_type", "isin", "filtered", "hint_cond", "copies_filter"]

Hint = list[tuple[str, list[Any]]]  # (source column, values): a conjunction of IN lists

# Up to this many chosen rows, their values are brought to the driver (a few KB) and
# pushed into the replays and source reads as IN lists, so Spark skips files and row
# groups by their statistics; more rows, and queries scan everything (still exact).
HINT_ROWS = 1000
BARE = re.compile(rf"^`?{COLUMN}(\d+)`?$")  # a group key that is a bare input column
# Types whose values survive the trip to Python and back as literals unchanged
# (timestamps may not: local-time conversions around DST changes).
_HINTABLE = ("tinyint", "smallint", "int", "bigint", "string", "boolean", "date", "float",
              "double", "decimal")


def few(df: DataFrame) -> list[Any] | None:
    """The rows of ``df`` if there are at most ``HINT_ROWS``, else None."""
    rows = df.limit(HINT_ROWS + 1).collect()
    return None if len(rows) > HINT_ROWS else rows


# A group of at most this many times HINT_ROWS rows passes its distinct values in a
# column on as an IN set (scalars, not rows: still a small read) to a source of at least
# SCAN_BYTES. A smaller source is scanned whole sooner than a set is read and planned:
# on flights (7 MB) the set made queries 0.1-0.5 s slower, on lineitem (196 MB) and
# orders (55 MB) of TPC-H SF 1 it made q5's backward 13.3 -> 8.6 s (row level).
_VALUES_PER_ROW = 20
SCAN_BYTES = 32 << 20


def few_sets(df: DataFrame, columns: list[str]) -> list[list[Any]] | None:
    """Each column's distinct values in ``df`` (None among them if a row holds null) if
    it has at most ``_VALUES_PER_ROW * HINT_ROWS`` rows, else None: one job, reading
    at most that many rows plus one."""
    most = _VALUES_PER_ROW * HINT_ROWS
    row = df.limit(most + 1).agg(F.count(F.lit(1)), *[
        agg for c in columns for agg in (F.collect_set(c), F.max(F.col(c).isNull()))]).first()
    if row is None or row[0] > most:
        return None
    return [list(row[1 + 2 * j]) + ([None] if row[2 + 2 * j] else [])
            for j in range(len(columns))]


def hintable(df: DataFrame, name: str) -> bool:
    return hintable_type(dict(df.dtypes).get(name, ""))


def hintable_type(dtype: str) -> bool:
    """Whether values of this Spark type (``DataFrame.dtypes`` form) may be pushed."""
    return dtype.split("(")[0] in _HINTABLE


def isin(col: Column, values: list[Any]) -> Column:
    distinct = set(values)
    known = [v for v in distinct if v is not None]
    cond = _isin(col, known) if known else F.lit(False)
    return cond | col.isNull() if None in distinct else cond


_INT32 = (-2**31, 2**31 - 1)
_MANY = 16  # from this many values on, the IN list is handed to the JVM in one piece


def _isin(col: Column, values: list[Any]) -> Column:
    """``col IN (values)``, keeping the rows ``Column.isin`` keeps.

    ``Column.isin`` makes two Py4J round trips per value (a literal, then a list
    element): 0.4 s for 1,000 values, and a removal at 10 million rows built eight such
    lists. Ints and floats are packed into one byte string instead, strings joined into
    one string, and the JVM unpacks them into a Scala sequence: a few round trips in
    all. The literals are of the types ``Column.isin`` gives the same Python values
    (ints as Java ints, floats as doubles, strings as strings), so Delta's data skipping
    reads the same filter. One difference: ints that do not all fit 32 bits are all
    longs here, where ``isin`` makes each an int or a long by its size (the same rows
    after Spark's type coercion). Other types, and strings holding a NUL (the
    separator), take ``Column.isin``.
    """
    if len(values) == 1:  # what Spark's optimizer makes of a one-value IN, in 2 round trips
        return col == F.lit(values[0])
    kinds = {type(v) for v in values}
    if len(values) < _MANY or len(kinds) != 1:
        return col.isin(values)
    kind = kinds.pop()
    sc = SparkContext._active_spark_context  # seen from every thread, unlike the session
    if sc is None:
        return col.isin(values)
    gateway = sc._gateway
    jvm = gateway.jvm
    runtime = jclass(jvm, "scala.runtime.ScalaRunTime")
    n = len(values)
    if kind is int:
        if all(_INT32[0] <= v <= _INT32[1] for v in values):
            array = _unpack(gateway, struct.pack(f">{n}i", *values), jvm.int, "asIntBuffer", 4)
            seq = runtime.wrapIntArray(array)
        else:
            array = _unpack(gateway, struct.pack(f">{n}q", *values), jvm.long, "asLongBuffer", 8)
            seq = runtime.wrapLongArray(array)
    elif kind is float:
        array = _unpack(gateway, struct.pack(f">{n}d", *values), jvm.double, "asDoubleBuffer", 8)
        seq = runtime.wrapDoubleArray(array)
    elif kind is str and not any("\0" in v for v in values):
        parts = jclass(jvm, "java.util.regex.Pattern").compile("\\x00").split("\0".join(values), -1)
        seq = runtime.genericWrapArray(parts)
    else:
        return col.isin(values)
    from pyspark.sql.classic.column import Column as ClassicColumn

    return ClassicColumn(col._jc.isin(seq))


def filtered(df: DataFrame, cond: Column) -> DataFrame:
    """``df.filter(cond)`` with the IN lists of ``cond`` already hash sets (``InSet``).

    Spark's optimizer turns a long IN list into a set only after it has pushed the
    filter down through the plan, copying the list at every step, with a cast per value
    where the column's type is wider than the values' (ints against a bigint column).
    On the rebuilt group of TPC-H Q5, IN lists of 400 and 6,000 keys took 0.4-0.7 s of
    optimizer time per query, against 0.03-0.06 s without them. Here the condition
    alone goes through Spark's own rules ``ConstantFolding`` (the casts become values)
    and ``OptimizeIn`` (a list of more than ten values becomes a set) first, so what the
    optimizer pushes down is one node per list; ``df`` keeps its analyzed plan.

    It costs 6-10 ms more than ``filter``: for filters that go down through a rebuilt
    plan, not for those on a source read (a shallow plan) or with few values. Where
    this Spark lacks the classes or signatures used, the plain filter is returned.
    """
    out = df.filter(cond)
    spark = df.sparkSession
    jvm = spark._jvm
    logical = "org.apache.spark.sql.catalyst.plans.logical."
    rules = "org.apache.spark.sql.catalyst.optimizer."
    try:
        plan = out._jdf.queryExecution().analyzed()
        if plan.getClass().getName() != logical + "Filter":
            return out
        alone = jclass(jvm, logical + "Filter")(plan.condition(),
                                                  jclass(jvm, logical + "OneRowRelation")())
        alone = jclass(jvm, rules + "OptimizeIn").apply(
            jclass(jvm, rules + "ConstantFolding").apply(alone))
        rebuilt = jclass(jvm, logical + "Filter")(alone.condition(), plan.child())
        return DataFrame(jclass(jvm, "org.apache.spark.sql.classic.Dataset").ofRows(
            spark._jsparkSession, rebuilt), spark)
    except Py4JError:  # another Spark: the optimizer will make the sets, later
        return out


def _unpack(gateway: Any, packed: bytes, element: Any, view: str, size: int) -> Any:
    """A Java array of primitive ``element`` from big-endian ``packed`` bytes."""
    array = gateway.new_array(element, len(packed) // size)
    getattr(jclass(gateway.jvm, "java.nio.ByteBuffer").wrap(bytearray(packed)), view)().get(array)
    return array


def hint_cond(hint: Hint, col: Any) -> Column:
    return reduce(lambda a, b: a & b, [isin(col(c), v) for c, v in hint])


def copies_filter(state: LineageState, names: list[str], slots: list[str],
                   source_op: int, values: dict[str, list[Any]] | None,
                   positional: bool) -> Column | None:
    """A filter on a frame (columns ``names``) keeping every row whose slots in
    ``slots`` may hold a chosen source row: its copies of that row's columns hold
    the chosen values. None when some slot has no such copy (scan everything)."""
    if values is None:
        return None
    user = [i for i, c in enumerate(names) if not is_hidden(c)]
    ors: list[Column] = []
    for slot in slots:
        origin = state.slots[slot]
        if origin.kind != "source" or origin.op != source_op:
            return None
        hint = [(u, copy[1]) for u in range(len(user))
                if (copy := state.copy_at(u)) is not None and copy[0] == slot
                and copy[1] in values]
        if not hint:
            return None
        ors.append(reduce(lambda a, b: a & b, [
            isin(F.col(pos_name(user[u])) if positional else F.col(quoted(names[user[u]])),
                  values[c]) for u, c in hint]))
    return reduce(lambda a, b: a | b, ors) if ors else None
