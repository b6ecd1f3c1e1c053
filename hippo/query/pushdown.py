"""Value pushdown: filters that keep a superset of the rows a lineage query needs.

When a query starts from few rows, their values (group keys, or a source row's columns)
are brought to the driver and pushed into replays and source reads as ``IN`` lists, so
Spark skips Delta files and Parquet row groups by their statistics. The hash match
downstream still decides which rows belong, so answers are the same with or without
these filters. Not checked here: that a column is a copy (``LineageState.copies``).
"""

from __future__ import annotations

import re
from functools import reduce
from typing import Any

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from hippo.recorded.ids import COLUMN, is_hidden, pos_name, quoted
from hippo.recorded.state import LineageState

__all__ = ["Hint", "BARE", "few", "hintable", "hintable_type", "isin", "hint_cond", "copies_filter"]

Hint = list[tuple[str, list[Any]]]  # (source column, values): a conjunction of IN lists

# Up to this many chosen rows, their values are brought to the driver (a few KB) and
# pushed into the replays and source reads as IN lists, so Spark skips files and row
# groups by their statistics; more rows, and queries scan everything (still exact).
_HINT_ROWS = 1000
BARE = re.compile(rf"^`?{COLUMN}(\d+)`?$")  # a group key that is a bare input column
# Types whose values survive the trip to Python and back as literals unchanged
# (timestamps may not: local-time conversions around DST changes).
_HINTABLE = ("tinyint", "smallint", "int", "bigint", "string", "boolean", "date", "float",
              "double", "decimal")


def few(df: DataFrame) -> list[Any] | None:
    """The rows of ``df`` if there are at most ``_HINT_ROWS``, else None."""
    rows = df.limit(_HINT_ROWS + 1).collect()
    return None if len(rows) > _HINT_ROWS else rows


def hintable(df: DataFrame, name: str) -> bool:
    return hintable_type(dict(df.dtypes).get(name, ""))


def hintable_type(dtype: str) -> bool:
    """Whether values of this Spark type (``DataFrame.dtypes`` form) may be pushed."""
    return dtype.split("(")[0] in _HINTABLE


def isin(col: Column, values: list[Any]) -> Column:
    distinct = set(values)
    known = [v for v in distinct if v is not None]
    cond = col.isin(known) if known else F.lit(False)
    return cond | col.isNull() if None in distinct else cond


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
