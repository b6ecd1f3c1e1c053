"""Hidden column names and row ids, defined once for capture and every reader.

A source row's id is a 64-bit xxhash of its values plus a null pattern, so it is the
same in every run over the same data and does not move when other rows are deleted.
Rows with identical values share an id: they are one record for lineage. Derived ids
are hashes of their parents' ids, so task retries and replays reproduce them.

Recorded specs name columns by position (``__c3``; ``__l0``/``__r2`` for the two sides
of a join), so duplicate or awkward user names never make them ambiguous:
:func:`positional` gives a DataFrame those names.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from hippo.py4j_lists import renamed

__all__ = ["ID", "SLOT_PREFIX", "KEY", "CARRY", "CARRIED_AT", "RESERVED", "COLUMN", "LEFT",
           "RIGHT", "is_hidden", "quoted", "pos_name", "pos_index", "positional", "content_hash",
           "derived_id"]

ID = "__hippo_id"
SLOT_PREFIX = "__hs_"
# The id column of the rows a key or match slot refers to, while a query resolves it.
KEY = "__hippo_key"
# A query's rebuilt plans may carry each row of a source through the steps, as one struct
# column named this plus the source step's id (hippo.recorded.rebuild, "carried").
CARRY = "__hippo_carry_"
# The struct's last two fields: where the row is (a hash of its file's path, its index in
# that file), so equal rows of a source stay apart.
CARRIED_AT = ("__hippo_file", "__hippo_index")
# Names a user's columns may not take: hippo's hidden ones, and what answers add.
RESERVED = ("hippo_row_id",)


def is_hidden(name: str) -> bool:
    """True for hippo's own columns, which users never see."""
    return name == ID or name.startswith(SLOT_PREFIX) or name.startswith("__hippo_")


def quoted(name: str) -> str:
    """``name`` as a SQL identifier."""
    return "`" + name.replace("`", "``") + "`"


# Prefixes of positional column names: a step's input, and the two sides of a join.
COLUMN, LEFT, RIGHT = "__c", "__l", "__r"


def pos_name(position: int, prefix: str = COLUMN) -> str:
    """The positional name of column ``position``: ``__c3`` (``__l3``/``__r3`` in joins)."""
    return f"{prefix}{position}"


def pos_index(name: str, prefix: str = COLUMN) -> int:
    """The position a positional name stands for: ``pos_index("__c3") == 3``."""
    if not name.startswith(prefix) or not name[len(prefix):].isdigit():
        raise ValueError(f"`{name}` is not a positional column name ({prefix}<n>)")
    return int(name[len(prefix):])


def positional(df: DataFrame, prefix: str = COLUMN) -> DataFrame:
    """``df`` with its columns named by position: ``<prefix>0``, ``<prefix>1``, ..."""
    return renamed(df, [pos_name(i, prefix) for i in range(len(df.columns))])


def _null_mask(cols: Sequence[Column]) -> list[Column]:
    # xxhash64 skips nulls, so (1, null) and (null, 1) would collide without this.
    masks: list[Column] = []
    for start in range(0, len(cols), 62):
        chunk = cols[start : start + 62]
        mask = F.lit(0).cast("long")
        for bit, col in enumerate(chunk):
            mask = mask + F.when(col.isNull(), F.lit(1 << bit)).otherwise(F.lit(0)).cast("long")
        masks.append(mask)
    return masks


def _null_mask_sql(cols: Sequence[str]) -> list[str]:
    # The same masks as _null_mask, as SQL text.
    masks: list[str] = []
    for start in range(0, len(cols), 62):
        chunk = cols[start : start + 62]
        terms = [f"CAST(CASE WHEN ({c}) IS NULL THEN {1 << bit} ELSE 0 END AS BIGINT)"
                 for bit, c in enumerate(chunk)]
        masks.append(" + ".join(["CAST(0 AS BIGINT)", *terms]))
    return masks


def content_hash(cols: Sequence[Column | str], tag: str = "row") -> Column:
    """A deterministic 64-bit hash of the values of ``cols`` (nulls distinguished).

    ``cols`` are Columns, or SQL expressions (``quoted(name)`` for a column): given as
    SQL, the whole hash is one expression, built in one call to the JVM instead of a few
    per column. Both forms give the same value.
    """
    cols = list(cols)
    if cols and all(isinstance(c, str) for c in cols) or not cols:
        texts = [str(c) for c in cols]
        return F.expr(f"xxhash64('{tag}', " + ", ".join([*texts, *_null_mask_sql(texts)]) + ")"
                      if texts else f"xxhash64('{tag}')")
    cols = [F.expr(c) if isinstance(c, str) else c for c in cols]
    return F.xxhash64(F.lit(tag), *cols, *_null_mask(cols))


def derived_id(tag: str, *parents: Column | str) -> Column:
    """An id computed from parent ids (and any extra values) for a derived row; given as
    SQL (``quoted(name)``), in one call to the JVM (see :func:`content_hash`)."""
    return content_hash(list(parents), tag)
