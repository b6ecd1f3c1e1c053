"""A `where` is a predicate over the user's columns, never code (hippo.query.where)."""

from __future__ import annotations

import datetime as dt

import pytest
from pyspark.sql import functions as F
from pyspark.sql.types import IntegerType

from hippo.errors import InvalidWhereError
from hippo.query.where import checked_filter

COLUMNS = ["k", "s", "x", "d", "arr", "m", "st"]
SCHEMA = ("k int, s string, x double, d date, arr array<int>, m map<string,int>, "
          "st struct<a:int,b:string>, row_hash bigint, __hippo_id string, __hs_3 int")
TARGET = "sink `out`"


def _row(k: int) -> dict:
    return {
        "k": k,
        "s": chr(ord("a") + k % 5) + "x" * (k % 3),
        "x": None if k % 4 == 0 else k / 2,
        "d": dt.date(2024, 1, 1) + dt.timedelta(days=7 * k),
        "arr": [k, k + 1, 2 * k],
        "m": {"a": k % 6},
        "st": {"a": k % 7, "b": "y" if k % 2 else "z"},
        "row_hash": 1000 + k,
        "__hippo_id": f"id{k}",
        "__hs_3": k,
    }


ROWS = [_row(k) for k in range(40)]


@pytest.fixture(scope="module")
def sink(spark):
    return spark.createDataFrame([tuple(r.values()) for r in ROWS], SCHEMA)


def _keys(df) -> list[int]:
    return sorted(r["k"] for r in df.select("k").collect())


def _expected(pred) -> list[int]:
    return sorted(r["k"] for r in ROWS if pred(r))


def _refused(spark, sink, where, match):
    with pytest.raises(InvalidWhereError, match=match) as err:
        checked_filter(sink, where, TARGET, COLUMNS)
    assert spark.range(3).count() == 3  # the session still answers
    return err.value


ALLOWED = [
    ("k > 30 AND s LIKE 'a%'", lambda r: r["k"] > 30 and r["s"].startswith("a")),
    ("k BETWEEN 5 AND 9", lambda r: 5 <= r["k"] <= 9),
    ("k NOT IN (1, 4, 9) AND x IS NULL", lambda r: r["k"] not in (1, 4, 9) and r["x"] is None),
    ("upper(s) = 'CXX'", lambda r: r["s"] == "cxx"),
    ("K = 7", lambda r: r["k"] == 7),
    ("`k` >= 38", lambda r: r["k"] >= 38),
    ("arr[2] = 14", lambda r: r["arr"][2] == 14),
    ("m['a'] = 4", lambda r: r["m"]["a"] == 4),
    ("st.a = 5 AND `st`.`b` = 'y'", lambda r: r["st"]["a"] == 5 and r["st"]["b"] == "y"),
    ("exists(arr, v -> v > 70)", lambda r: any(v > 70 for v in r["arr"])),
    ("CASE WHEN k % 3 = 0 THEN true ELSE false END", lambda r: r["k"] % 3 == 0),
    ("CAST(k AS string) = '17'", lambda r: r["k"] == 17),
    ("coalesce(x, -1.0) < 0", lambda r: r["x"] is None),
    ("abs(x - 10) < 2", lambda r: r["x"] is not None and abs(r["x"] - 10) < 2),
    ("year(d) = 2024 AND month(d) = 3", lambda r: r["d"].year == 2024 and r["d"].month == 3),
    ("length(s) = 3 OR s RLIKE '^b'", lambda r: len(r["s"]) == 3 or r["s"].startswith("b")),
    ("unix_timestamp('2024-01-01', 'yyyy-MM-dd') > 0 AND k < 2", lambda r: r["k"] < 2),
]


@pytest.mark.parametrize("where,pred", ALLOWED, ids=[w for w, _ in ALLOWED])
def test_an_allowed_string_predicate_keeps_exactly_the_matching_rows(sink, where, pred):
    assert _keys(checked_filter(sink, where, TARGET, COLUMNS)) == _expected(pred)


ALLOWED_COLUMNS = [
    ("gt_and_startswith", lambda: (F.col("k") > 30) & F.col("s").startswith("a"),
     lambda r: r["k"] > 30 and r["s"].startswith("a")),
    ("isin", lambda: F.col("k").isin([1, 4, 9]), lambda r: r["k"] in (1, 4, 9)),
    ("struct_field", lambda: F.col("st.a") == 5, lambda r: r["st"]["a"] == 5),
    ("lambda", lambda: F.exists("arr", lambda v: v > 70), lambda r: any(v > 70 for v in r["arr"])),
    ("when", lambda: F.when(F.col("k") > 35, True).otherwise(False), lambda r: r["k"] > 35),
    ("expr", lambda: F.expr("k < 3") | F.col("x").isNull(), lambda r: r["k"] < 3 or r["x"] is None),
]


@pytest.mark.parametrize("make,pred", [(m, p) for _, m, p in ALLOWED_COLUMNS],
                         ids=[i for i, _, _ in ALLOWED_COLUMNS])
def test_an_allowed_column_predicate_keeps_exactly_the_matching_rows(sink, make, pred):
    assert _keys(checked_filter(sink, make(), TARGET, COLUMNS)) == _expected(pred)


def test_a_column_of_the_dataframe_itself_is_allowed_when_visible(sink):
    assert _keys(checked_filter(sink, sink["k"] == 3, TARGET, COLUMNS)) == [3]


def test_the_filter_keeps_the_hidden_columns_for_hippo(sink):
    out = checked_filter(sink, "k = 1", TARGET, COLUMNS)
    assert out.columns == sink.columns
    assert out.select("row_hash").first()[0] == 1001


HOSTILE = [
    ("java_method('java.lang.System', 'exit', 3) = 1", "function `java_method` is not allowed"),
    ("reflect('java.lang.System', 'exit', 3) = 1", "function `reflect` is not allowed"),
    ("try_reflect('java.lang.System', 'exit', 3) = 1", "function `try_reflect` is not allowed"),
    ("EXISTS (SELECT 1)", "subqueries are not allowed"),
    ("(SELECT max(k) FROM range(10)) > 1", "subqueries are not allowed"),
    ("k IN (SELECT id FROM parquet.`/tmp/x`)", "subqueries are not allowed"),
    ("read_files('/tmp/x') = 1", "function `read_files` is not allowed"),
    ("rand() > 0.5", r"function `rand` is not allowed \(it is not deterministic\)"),
    ("uuid() = 'a'", "function `uuid` is not allowed"),
    ("unix_timestamp() > 0", "function `unix_timestamp` with fewer than 1 arguments"),
    ("raise_error('x') IS NULL", r"function `raise_error` is not allowed \(it has side effects\)"),
    ("current_user() = 'root'", "function `current_user` is not allowed"),
    ("count(*) > 1", "function `count` is not allowed"),
    ("sum(k) OVER () > 1", "window functions are not allowed"),
    ("struct(*) IS NOT NULL", r"`\*` is not allowed"),
    ("1; DROP TABLE x", "it does not parse"),
    ("k = 1 AND", "it ends in an alias `AND`"),
    ("k = :p", "parameter markers are not allowed"),
    ("IDENTIFIER('row_hash') = 1", r"IDENTIFIER\(\.\.\.\) is not allowed"),
    ("'${env:HOME}' = '/root'", r"`\$\{` is not allowed"),
    ("repeat(s, 1000000000) = 'a'", "function `repeat` is not allowed"),
    ("k + 1", r"it is not a boolean predicate \(its type is `INT`\)"),
]


@pytest.mark.parametrize("where,match", HOSTILE, ids=[w for w, _ in HOSTILE])
def test_a_hostile_string_is_refused_and_the_session_still_answers(spark, sink, where, match):
    _refused(spark, sink, where, match)


@pytest.mark.parametrize("where,name", [
    ("row_hash = 1001", "row_hash"),
    ("__hippo_id = 'id1'", "__hippo_id"),
    ("`__hs_3` = 1", "__hs_3"),
    ("ROW_HASH = 1001", "ROW_HASH"),
    ("nope = 1", "nope"),
    ("t.k = 1", "t.k"),
    ("current_date = d", "current_date"),
    ("transform(arr, v -> row_hash)[0] = 1", "row_hash"),
])
def test_a_hidden_or_unknown_column_is_refused_and_the_message_lists_only_user_columns(
        spark, sink, where, name):
    err = _refused(spark, sink, where, f"unknown column `{name}`")
    listing = str(err).rsplit("columns: ", 1)[1]
    assert listing == "`arr`, `d`, `k`, `m`, `s`, `st`, `x`"


def test_a_subquery_on_another_table_is_refused_without_reading_it(spark, sink, tmp_path):
    missing = tmp_path / "no_such_table"
    where = f"k IN (SELECT k FROM delta.`{missing}`)"
    err = _refused(spark, sink, where, "subqueries are not allowed")
    # Had Spark analyzed it, the error would be its own, about the missing path.
    assert err.__cause__ is None
    assert not missing.exists()


def test_a_predicate_nested_deeper_than_spark_can_parse_is_refused(spark, sink):
    _refused(spark, sink, "NOT " * 5000 + "k = 1", "it is nested too deeply for Spark")


@pytest.mark.parametrize("where,match", [(5, "not `int`"), (None, "not `NoneType`"),
                                         (b"k = 1", "not `bytes`"), ("", "it is empty"),
                                         ("  \n", "it is empty")])
def test_an_empty_string_or_a_value_of_another_type_is_refused(spark, sink, where, match):
    _refused(spark, sink, where, match)


def test_a_python_udf_registered_by_name_is_refused(spark):
    session = spark.newSession()  # keeps the UDF out of the shared session
    session.udf.register("my_udf", lambda v: v, IntegerType())
    df = session.createDataFrame([(1,)], "k int")
    with pytest.raises(InvalidWhereError, match="function `my_udf` is not allowed"):
        checked_filter(df, "my_udf(k) = 1", TARGET, ["k"])


HOSTILE_COLUMNS = [
    ("udf", lambda spark, sink: F.udf(lambda v: v, IntegerType())("k") == 1,
     "user-defined function `<lambda>` is not allowed"),
    ("expr_java_method", lambda spark, sink: F.expr("java_method('java.lang.System', 'exit', 3) = 1"),
     "function `java_method` is not allowed"),
    ("expr_env", lambda spark, sink: F.expr("k = 1") | F.expr("'${env:HOME}' = 'x'"),
     r"`\$\{` is not allowed"),
    ("rand", lambda spark, sink: F.rand() > 0.5, "function `rand` is not allowed"),
    ("scalar_subquery", lambda spark, sink: spark.range(3).select(F.max("id")).scalar() > 1,
     "subqueries are not allowed"),
    ("hidden_by_name", lambda spark, sink: F.col("__hippo_id") == "id1",
     "unknown column `__hippo_id`"),
    ("hidden_of_dataframe", lambda spark, sink: sink["row_hash"] == 1001,
     "unknown column `row_hash`"),
    ("aliased", lambda spark, sink: (F.col("k") > 1).alias("x"), "it ends in an alias `x`"),
]


@pytest.mark.parametrize("make,match", [(m, x) for _, m, x in HOSTILE_COLUMNS],
                         ids=[i for i, _, _ in HOSTILE_COLUMNS])
def test_a_hostile_column_is_refused_and_the_session_still_answers(spark, sink, make, match):
    _refused(spark, sink, make(spark, sink), match)


@pytest.fixture(scope="module")
def many(spark):
    return spark.range(0, 12000, 7).select(
        F.col("id").cast("int").alias("k"), (F.col("id") * 2).alias("row_hash"))


def test_an_in_list_of_five_thousand_values_keeps_exactly_those_rows(many):
    where = "k IN (" + ", ".join(map(str, range(5000))) + ")"
    out = checked_filter(many, where, TARGET, ["k"])
    assert _keys(out) == [k for k in range(0, 12000, 7) if k < 5000]


@pytest.mark.slow
def test_two_thousand_terms_joined_by_or_keep_exactly_those_rows(many):
    where = " OR ".join(f"k = {2 * i}" for i in range(2000))
    out = checked_filter(many, where, TARGET, ["k"])
    assert _keys(out) == [k for k in range(0, 12000, 7) if k < 4000 and k % 2 == 0]


def test_a_udf_registered_under_a_built_in_name_is_refused(spark):
    session = spark.newSession()  # its own function registry: the suite's stays clean
    df = session.createDataFrame([("a", 1)], "s string, n int")
    session.udf.register("upper", lambda s: s)
    for where in ("upper(s) = 'A'", F.upper("s") == "A"):
        with pytest.raises(InvalidWhereError, match="function `upper` is registered in this "
                                                    "session as a user-defined function"):
            checked_filter(df, where, "sink `t`", ["s", "n"])
    assert spark.createDataFrame([("a",)], "s string").selectExpr("upper(s)").first()[0] == "A"
