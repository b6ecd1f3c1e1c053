"""Row ids: stable source ids and deterministic derived ids, as Spark column expressions.

A source row's id is a 64-bit xxhash of its values plus a null pattern, so it is the
same in every run over the same data and does not move when other rows are deleted.
Rows with identical values share an id: they are one record for lineage. Derived ids
are hashes of their parents' ids, so task retries and replays reproduce them.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column
from pyspark.sql import functions as F

ID = "__hippo_id"
SLOT_PREFIX = "__hs_"
HIDDEN_PREFIX = "__h"


def is_hidden(name: str) -> bool:
    """True for hippo's own columns, which users never see."""
    return name == ID or name.startswith(SLOT_PREFIX) or name.startswith("__hippo_")


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


def content_hash(cols: Sequence[Column], tag: str = "row") -> Column:
    """A deterministic 64-bit hash of the values of ``cols`` (nulls distinguished)."""
    cols = list(cols)
    return F.xxhash64(F.lit(tag), *cols, *_null_mask(cols))


def derived_id(tag: str, *parents: Column) -> Column:
    """An id computed from parent ids (and any extra values) for a derived row."""
    return content_hash(list(parents), tag)
