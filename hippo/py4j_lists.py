"""Lists of strings handed to the JVM in three Py4J calls, whatever their length.

PySpark turns a Python list into a Java one through Py4J's converter: a ``new
ArrayList`` and then one ``add`` call, one round trip, per element. ``df.toDF(*names)``
of 30 names is 32 round trips, and hippo renames and projects frames by position at
every recorded step, in every rebuild check and in every rebuilt plan a query reads.
Here the strings travel as one text, joined by a NUL character, and are split by a
``java.util.regex.Pattern`` on the JVM side: a rename of 30 columns took 1.7 ms instead
of 3.5 ms (median of 200, alternated), 1.2 ms of either being Spark's own work.

Not covered: a string that itself holds a NUL character; those lists go through PySpark's
own conversion.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from pyspark.sql import DataFrame

from hippo.session import jclass

if TYPE_CHECKING:
    from py4j.java_gateway import JavaObject

__all__ = ["string_seq", "renamed", "selected"]

_SEP = "\x00"


def string_seq(df: DataFrame, items: Sequence[str]) -> JavaObject | None:
    """``items`` as a Scala ``Seq[String]`` in ``df``'s JVM; None if an item holds the
    separator (use PySpark's conversion then)."""
    if any(_SEP in item for item in items):
        return None
    jvm: Any = df.sparkSession._jvm
    parts = jclass(jvm, "java.util.regex.Pattern").compile("\\x00").split(_SEP.join(items), -1)
    return jclass(jvm, "scala.collection.immutable.ArraySeq").unsafeWrapArray(parts)


def renamed(df: DataFrame, names: Sequence[str]) -> DataFrame:
    """``df.toDF(*names)``."""
    return _with_strings(df, "toDF", names, df.toDF)


def selected(df: DataFrame, exprs: Sequence[str]) -> DataFrame:
    """``df.selectExpr(*exprs)``: SQL expressions (a quoted name is a column)."""
    return _with_strings(df, "selectExpr", exprs, df.selectExpr)


def _with_strings(df: DataFrame, method: str, items: Sequence[str],
                  pyspark_call: Callable[..., DataFrame]) -> DataFrame:
    """The Dataset method ``method`` called with ``items`` as its one ``Seq[String]``
    argument; PySpark's ``pyspark_call(*items)`` when none or one holds a NUL."""
    seq = string_seq(df, items) if items else None
    if seq is None:
        return pyspark_call(*items)
    return DataFrame(getattr(df._jdf, method)(seq), df.sparkSession)
