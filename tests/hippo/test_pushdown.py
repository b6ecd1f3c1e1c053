"""IN lists handed to the JVM in one piece keep the rows ``Column.isin`` keeps, with
literals of the same types; a filter whose IN lists are made sets before it is pushed
down keeps the rows a plain filter keeps."""

from __future__ import annotations

import math

import pytest
from pyspark.sql import functions as F

from hippo.query.pushdown import filtered, isin

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


def _deep(data):
    """``data`` under a few projections, as a rebuilt step's input is."""
    for i in range(4):
        data = data.withColumn(f"y{i}", F.col("x")).drop(f"y{i - 1}" if i else "none")
    return data


@pytest.mark.parametrize("case", sorted(CASES) + ["int values, bigint column"])
def test_a_filter_with_its_in_lists_made_sets_keeps_the_rows_filter_keeps(spark, case):
    schema, values = CASES.get(case, ("x bigint", INTS))
    values = values + ([math.nan] if schema == "x double" else [])
    data = _deep(spark.createDataFrame(
        [(v,) for v in values + values[1::2][:5]] + [(None,)], schema))
    chosen = values[::2] + [None]
    cond = isin(F.col("x"), chosen) & isin(F.col("y3"), values[::4] + values[1::2])
    ours = filtered(data, cond)
    plain = data.filter(cond)
    assert ours.schema == plain.schema
    assert sorted(ours.collect(), key=repr) == sorted(plain.collect(), key=repr)
    assert ours.count() == len(values[::4])  # each value in both lists (null is in one)
    # Each list reaches the optimizer as one hash set, not a node (and cast) per value.
    condition = ours._jdf.queryExecution().analyzed().condition().toString()
    assert condition.count(" INSET ") == 2 and " IN (" not in condition, condition[:300]


def test_a_filter_with_few_values_or_no_in_list_is_unchanged(spark):
    data = _deep(spark.createDataFrame([(v,) for v in INTS], "x int"))
    for cond in (isin(F.col("x"), INTS[:3]), F.col("x") > 5, isin(F.col("y3"), [INTS[7]])):
        ours = filtered(data, cond)
        assert sorted(ours.collect()) == sorted(data.filter(cond).collect())


def test_a_filter_is_plain_where_spark_lacks_the_rules_it_uses(spark, monkeypatch):
    from py4j.protocol import Py4JError

    from hippo.query import pushdown

    real = pushdown.jclass

    def missing(jvm, name):
        if name.endswith("OptimizeIn"):
            raise Py4JError(f"{name} does not exist in the JVM")
        return real(jvm, name)

    monkeypatch.setattr(pushdown, "jclass", missing)
    data = _deep(spark.createDataFrame([(v,) for v in INTS], "x int"))
    cond = isin(F.col("x"), INTS[::2])
    ours = filtered(data, cond)
    assert sorted(ours.collect()) == sorted(data.filter(cond).collect())
    assert " IN (" in ours._jdf.queryExecution().analyzed().condition().toString()
