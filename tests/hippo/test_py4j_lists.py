"""Column lists sent to the JVM in a few Py4J calls: the same frames as PySpark's."""

from __future__ import annotations

import pytest

from hippo.py4j_lists import renamed, selected

NAMES = [f"n{i}" for i in range(40)] + ["a,b", "we ird `x`", "line\nbreak", "", "ü.v"]


@pytest.fixture
def wide(spark):
    return spark.range(3).selectExpr(*[f"id * {i} AS c{i}" for i in range(len(NAMES))])


def _calls(spark, work):
    """How many commands the Py4J client sends while ``work`` runs (not counting the
    memory commands that free Java objects Python collected meanwhile)."""
    client = spark.sparkContext._gateway._gateway_client
    sent = 0
    original = client.send_command

    def counted(command, *args, **kwargs):
        nonlocal sent
        sent += not command.startswith("m\n")
        return original(command, *args, **kwargs)

    client.send_command = counted
    try:
        return work(), sent
    finally:
        del client.send_command


def test_renamed_and_selected_give_what_todf_and_selectexpr_give(spark, wide):
    mine, calls = _calls(spark, lambda: renamed(wide, NAMES))
    theirs, their_calls = _calls(spark, lambda: wide.toDF(*NAMES))
    assert mine.columns == theirs.columns == NAMES
    assert mine.collect() == theirs.collect()
    assert calls <= 6 < len(NAMES) < their_calls  # one round trip per name in PySpark

    exprs = ["`we ird ``x``` + 1 AS y", "`a,b`", "`line\nbreak` * 2", "`ü.v`"]
    got, calls = _calls(spark, lambda: selected(mine, exprs))
    want = mine.selectExpr(*exprs)
    assert got.schema == want.schema
    assert got.collect() == want.collect()
    assert calls <= 6


def test_a_name_with_a_nul_character_goes_through_pyspark(spark, wide):
    names = ["x\x00y"] + NAMES[1:]
    assert renamed(wide, names).columns == wide.toDF(*names).columns == names
