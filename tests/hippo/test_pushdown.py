"""IN lists handed to the JVM in one piece keep the rows ``Column.isin`` keeps, with
literals of the same types."""

from __future__ import annotations

import math

import pytest
from pyspark.sql import functions as F

from hippo.query.pushdown import isin

INTS = list(range(-200, 200, 3))  # long enough for the one-piece path
CASES = {
    "int": ("x int", INTS),
    "bigint": ("x bigint", [v * 2**40 for v in INTS] + [2**63 - 1, -2**63]),
    "double": ("x double", [v / 7 for v in INTS] + [-0.0, math.inf, -math.inf]),
    "string": ("x string", [f"s{v}" for v in INTS]
               + ["", "it's", "a,b", "\\", "naïve 🦛", " ", "two\nlines\r"]),
}


def _both(chosen):
    """Ours, and ``Column.isin`` over the same values in the same order."""
    known = [v for v in set(chosen) if v is not None]
    theirs = F.col("x").isin(known)
    return isin(F.col("x"), chosen), theirs | F.col("x").isNull() if None in chosen else theirs


@pytest.mark.parametrize("case", sorted(CASES))
def test_an_in_list_keeps_the_rows_and_literals_column_isin_does(spark, case):
    schema, values = CASES[case]
    others = values[1::2]
    data = spark.createDataFrame([(v,) for v in values + others[:5]] + [(None,)], schema)
    chosen = values[::2] + [None]
    ours, theirs = _both(chosen)
    assert str(ours) == str(theirs)  # the same literals, of the same types
    kept = sorted(data.filter(ours).collect(), key=repr)
    assert kept == sorted(data.filter(theirs).collect(), key=repr)
    assert len(kept) == len(values[::2]) + 1  # each chosen value once, and the null
    for one in ([values[3]], [values[-1], None]):  # one value: an equality
        ours, theirs = _both(one)
        assert sorted(data.filter(ours).collect(), key=repr) == sorted(
            data.filter(theirs).collect(), key=repr), one


def test_floats_match_nan_and_signed_zeros_like_spark_does(spark):
    values = [v / 7 for v in INTS] + [math.nan, -0.0]
    data = spark.createDataFrame([(v,) for v in values + [0.0]], "x double")
    ours, theirs = _both(values)
    assert str(ours) == str(theirs)
    # Spark's equality: NaN = NaN, and 0.0 = -0.0.
    assert data.filter(ours).count() == data.filter(theirs).count() == len(values) + 1
    for one in ([math.nan], [-0.0]):
        ours, theirs = _both(one)
        assert data.filter(ours).count() == data.filter(theirs).count() == len(one) + (
            one == [-0.0]), one


def test_ints_some_wider_than_32_bits_keep_the_same_rows(spark):
    values = INTS + [2**40, -2**35]
    data = spark.createDataFrame([(v,) for v in values + [2**41, 8]], "x bigint")  # neither chosen
    ours, theirs = _both(values)
    assert sorted(r.x for r in data.filter(ours).collect()) == sorted(
        r.x for r in data.filter(theirs).collect()) == sorted(values)


def test_a_string_holding_the_separator_still_matches_itself(spark):
    values = [f"v{i}" for i in range(20)] + ["a\0b"]
    data = spark.createDataFrame([(v,) for v in values + ["a", "b"]], "x string")
    assert sorted(r.x for r in data.filter(isin(F.col("x"), values)).collect()) == sorted(values)
