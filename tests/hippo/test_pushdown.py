"""IN lists handed to the JVM in one piece are the lists ``Column.isin`` builds."""

from __future__ import annotations

import math

import pytest
from pyspark.sql import functions as F

from hippo.query.pushdown import isin

INTS = list(range(-200, 200, 3))  # long enough for the one-piece path
CASES = {
    "int": ("x int", INTS),
    "bigint": ("x bigint", [v * 2**40 for v in INTS] + [2**63 - 1, -2**63]),
    "double": ("x double", [v / 7 for v in INTS] + [-0.0, math.inf, -math.inf, math.nan]),
    "string": ("x string", [f"s{v}" for v in INTS] + ["", "it's", "a,b", "\\", "naïve 🦛", " ", "two\nlines\r"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_an_in_list_keeps_the_rows_and_literals_column_isin_does(spark, case):
    schema, values = CASES[case]
    data = spark.createDataFrame([(v,) for v in values + values[:5]] + [(None,)], schema)
    chosen = values[::2] + [None]
    ours, theirs = isin(F.col("x"), chosen), F.col("x").isin(values[::2]) | F.col("x").isNull()
    # Same literals, of the same types: the same filter for Delta's data skipping.
    assert str(ours).replace(" ", "") == str(theirs).replace(" ", "") or sorted(
        str(ours)) == sorted(str(theirs))
    assert sorted(data.filter(ours).collect(), key=repr) == sorted(
        data.filter(theirs).collect(), key=repr)
    assert data.filter(ours).count() == len(values[::2]) + len(
        [v for v in values[:5] if v in values[::2]]) + 1


def test_a_string_holding_the_separator_still_matches_itself(spark):
    values = [f"v{i}" for i in range(20)] + ["a\0b"]
    data = spark.createDataFrame([(v,) for v in values + ["a", "b"]], "x string")
    assert sorted(r.x for r in data.filter(isin(F.col("x"), values)).collect()) == sorted(values)
