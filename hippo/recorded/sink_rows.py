"""A sink's rows as lineage sees them: id, hash of the written values, slot ids.

Built the same way when an explicit sink's rows are stored at capture time and when a
replayed sink's rows are rebuilt at query time, so both find the written rows alike.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from hippo.recorded.ids import ID, content_hash, quoted

__all__ = ["ROW_HASH", "sink_rows_of", "row_hash"]

# The hidden column holding a written row's value hash while a query matches rows.
ROW_HASH = "__hippo_row_hash"


def row_hash(columns: Sequence[str]):
    """The hash of a written row's values (its user columns, in order)."""
    return content_hash([quoted(c) for c in columns], "row")


def sink_rows_of(df: DataFrame, user: Sequence[str], slots: Sequence[str]) -> DataFrame:
    """``hippo_row_id``, ``row_hash`` and ``slots`` of a sink's rows (``df`` carries
    hippo's hidden columns; ``user`` are the columns written)."""
    return df.select(
        F.col(ID).alias("hippo_row_id"),
        row_hash(user).alias("row_hash"),
        F.array(*[F.col(s) for s in slots]).cast("array<bigint>").alias("slots"),
    )
