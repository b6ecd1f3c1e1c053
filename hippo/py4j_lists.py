"""Lists of strings handed to the JVM in three Py4J calls, whatever their length.

PySpark turns a Python list into a Java one through Py4J's converter: a ``new
ArrayList`` and then one ``add`` call, one round trip, per element. ``df.toDF(*names)``
of 30 names is 32 round trips; hippo renames and projects frames by position at every
recorded step and in every rebuild check, 3,000-4,000 such calls per TPC-H run, about
0.3 s of driver time. Here the strings travel as one text, joined by a NUL character,
and are split by a ``java.util.regex.Pattern`` on the JVM side.

Not covered: a string that itself holds a NUL character; those lists go through PySpark's
own conversion.
"""

from __future__ import annotations

from collections.abc import Sequence
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
    if not names:
        return df.toDF()
    seq = string_seq(df, names)
    if seq is None:
        return df.toDF(*names)
    return DataFrame(df._jdf.toDF(seq), df.sparkSession)


def selected(df: DataFrame, exprs: Sequence[str]) -> DataFrame:
    """``df.selectExpr(*exprs)``: SQL expressions (a quoted name is a column)."""
    if not exprs:
        return df.selectExpr()
    seq = string_seq(df, exprs)
    if seq is None:
        return df.selectExpr(*exprs)
    return DataFrame(df._jdf.selectExpr(seq), df.sparkSession)
