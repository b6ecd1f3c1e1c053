"""A user's ``where``, checked before Spark analyzes or runs any of it.

A ``where`` is a predicate over an endpoint's own columns, never code (DESIGN principle 9).
:func:`checked_filter` checks it twice:

1. Before analysis. A string is only *parsed*, with the session's SQL parser; a Column is
   converted to its Catalyst expression, which parses the text of any ``F.expr`` in it
   and analyzes nothing. The unresolved tree, read once as flat JSON, must consist of
   allowlisted nodes: literals; comparison, logical, arithmetic, bitwise, IN, BETWEEN,
   LIKE, IS NULL, CASE and CAST operators; lambdas; and calls of built-in row functions
   on :data:`_FUNCTIONS`, which leaves out reflection, nondeterministic, side-effect,
   session, file and table functions, aggregates, windows and functions whose result
   can be arbitrarily large (``repeat``, ``sequence``). Every column name must be one of
   ``columns`` (a struct field may follow it). Anything else, including every node class
   not on the allowlist, is refused. This is the check that matters: analyzing a
   subquery already reads the other table's Delta log, so nothing is analyzed first.
   Still before analysis, every called name must be one of Spark's built-in functions
   *in this session*: its entry in the session's function registry is the built-in
   one (``spark.udf.register("upper", ...)`` puts a Python UDF in its place, and a name
   Spark has no built-in for would be looked up among temporary and persistent
   functions, whose analysis may read other tables).
2. After analysis of ``df.filter(...)``, when the tree calls a function or holds a
   Column's bound attribute: the plan is a filter of ``df``'s own rows; every column the
   condition references is one of ``columns`` (compared as the session compares names);
   the condition is deterministic and boolean. Built-ins on the allowlist cannot reach
   reflection, subqueries, session variables or the clock, so the resolved tree is not
   walked again (a walk costs ~0.7 ms per node).

What is NOT checked: cost. A regular expression that backtracks, a long IN list, a deep
CASE or text that takes the parser long to reject is accepted or refused only after it
has cost what it costs. Text with ``${`` is refused outright, because Spark substitutes
settings, system properties and environment variables into it, even a string literal
that merely contains those two characters. A tree deeper than Spark's stack (thousands
of nested parentheses, or thousands of ``|`` applied one after another to a Column) is
refused as too deep; the same predicate written flat as a string is fine, since Spark's
parser balances long AND/OR chains.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

from py4j.protocol import Py4JError
from pyspark.errors import AnalysisException, ParseException, PySparkException
from pyspark.sql import Column, DataFrame

from hippo.errors import InvalidWhereError
from hippo.session import jclass

if TYPE_CHECKING:
    from py4j.java_gateway import JavaObject

__all__ = ["checked_filter"]

log = logging.getLogger(__name__)

_E = "org.apache.spark.sql.catalyst.expressions."
_A = "org.apache.spark.sql.catalyst.analysis."

# Unresolved node classes a predicate may contain besides column references and function
# calls, which are checked by name. Full class names, so that no other class can pass
# under a short name.
_NODES = frozenset(
    [_E + n for n in """
        Literal
        EqualTo EqualNullSafe LessThan LessThanOrEqual GreaterThan GreaterThanOrEqual
        Not And Or In IsNull IsNotNull IsUnknown$$anon$1 IsNotUnknown$$anon$2
        Like ILike RLike LikeAny LikeAll NotLikeAny NotLikeAll
        CaseWhen Cast Collate UnresolvedCollation
        Add Subtract Multiply Divide Remainder IntegralDivide Pmod UnaryMinus UnaryPositive
        BitwiseAnd BitwiseOr BitwiseXor BitwiseNot ShiftLeft ShiftRight ShiftRightUnsigned
        Concat Substring StringTrim StringTrimLeft StringTrimRight StringLocate Overlay
        TimestampAdd TimestampDiff CreateNamedStruct NamePlaceholder$ SemiStructuredExtract Alias
        LambdaFunction UnresolvedNamedLambdaVariable
    """.split()]
    + [_A + "UnresolvedExtractValue"]
)
_ATTRIBUTE = _A + "UnresolvedAttribute"
_BOUND_ATTRIBUTE = _E + "AttributeReference"  # df["k"] in a Column
_FUNCTION = _A + "UnresolvedFunction"
# Optional children, which Spark's JSON also writes out in full under the field's name.
_OPTIONAL_CHILDREN = frozenset([(_E + "CaseWhen", "elseValue")])

# Built-in row functions a predicate may call: deterministic, without side effects, and
# reading nothing but their arguments. Lower case; operators are here because Columns
# call them by name ("=", "and", "isNotNull").
_FUNCTIONS = frozenset("""
    = == <=> < <= > >= ! not and or in between isnull isnotnull isnan equal_null
    like ilike rlike regexp regexp_like
    + - * / % div mod pmod negative positive & | ^ ~ << >> >>>
    bit_count bit_get getbit shiftleft shiftright shiftrightunsigned
    coalesce if ifnull nanvl nullif nullifzero nvl nvl2 zeroifnull when greatest least
    abs acos acosh asin asinh atan atan2 atanh bin bround cbrt ceil ceiling conv cos cosh
    cot csc degrees e exp expm1 factorial floor hex hypot ln log log10 log1p log2 pi pow
    power radians rint round sec sign signum sin sinh sqrt tan tanh unhex width_bucket
    try_add try_divide try_mod try_multiply try_subtract
    ascii base64 bit_length btrim char char_length character_length chr collate collation
    concat concat_ws contains decode elt encode endswith find_in_set format_number
    format_string initcap instr is_valid_utf8 lcase left len length levenshtein locate
    lower ltrim luhn_check make_valid_utf8 mask octet_length overlay position printf quote
    regexp_count regexp_extract regexp_extract_all regexp_instr regexp_replace
    regexp_substr replace reverse right rtrim soundex split split_part startswith substr
    substring substring_index to_binary to_char to_number to_varchar translate trim
    try_to_binary try_to_number try_validate_utf8 ucase unbase64 upper validate_utf8
    add_months convert_timezone date_add date_diff date_format date_from_unix_date
    date_part date_sub date_trunc dateadd datediff datepart day dayname dayofmonth
    dayofweek dayofyear extract from_unixtime from_utc_timestamp hour last_day make_date
    make_dt_interval make_interval make_time make_timestamp make_timestamp_ltz
    make_timestamp_ntz make_ym_interval minute month monthname months_between next_day
    quarter second time_diff time_trunc timestamp_micros timestamp_millis
    timestamp_seconds to_date to_time to_timestamp to_timestamp_ltz to_timestamp_ntz
    to_unix_timestamp to_utc_timestamp trunc try_make_interval try_make_timestamp
    try_make_timestamp_ltz try_make_timestamp_ntz try_to_date try_to_time try_to_timestamp
    unix_date unix_micros unix_millis unix_seconds unix_timestamp weekday weekofyear year
    bigint binary boolean cast date decimal double float int smallint string time
    timestamp tinyint typeof
    array array_append array_compact array_contains array_distinct array_except
    array_insert array_intersect array_join array_max array_min array_position
    array_prepend array_remove array_size array_union arrays_overlap arrays_zip flatten
    get slice sort_array cardinality element_at size try_element_at
    aggregate array_sort exists filter forall map_filter map_zip_with reduce transform
    transform_keys transform_values zip_with
    map map_concat map_contains_key map_entries map_from_arrays map_from_entries map_keys
    map_values str_to_map named_struct struct
    crc32 hash md5 sha sha1 sha2 xxhash64
    get_json_object json_array_length json_object_keys from_json to_json
    is_variant_null parse_json try_parse_json variant_get try_variant_get
    parse_url try_parse_url url_decode try_url_decode url_encode
""".split())

# With fewer arguments these read the clock or the session's time zone.
_MIN_ARGS = {"unix_timestamp": 1, "to_unix_timestamp": 1, "convert_timezone": 3}

# Why some functions are not on the list, for the message; the rest are simply not on it.
_WHY = {
    **dict.fromkeys(["java_method", "reflect", "try_reflect"], "it calls Java code"),
    **dict.fromkeys(
        "rand randn random uniform randstr uuid shuffle monotonically_increasing_id "
        "spark_partition_id input_file_name input_file_block_start input_file_block_length "
        "current_date current_timestamp current_time curdate now localtimestamp "
        "current_timezone".split(),
        "it is not deterministic"),
    **dict.fromkeys(["raise_error", "assert_true"], "it has side effects"),
    **dict.fromkeys(
        "current_user user session_user current_database current_schema current_catalog "
        "version secret".split(),
        "it reads the session"),
    **dict.fromkeys(
        "read_files range explode explode_outer inline inline_outer posexplode "
        "posexplode_outer stack from_protobuf from_avro".split(),
        "it reads files or produces rows"),
    **dict.fromkeys(
        "count count_if sum avg mean min max min_by max_by first last any some every "
        "bool_and bool_or collect_list collect_set array_agg approx_count_distinct "
        "percentile percentile_approx median mode stddev variance row_number rank "
        "dense_rank lag lead ntile".split(),
        "aggregate and window functions do not filter rows"),
    **dict.fromkeys(
        "repeat space lpad rpad array_repeat sequence".split(),
        "its result can be arbitrarily large"),
}

# Unresolved node classes refused with a clearer message than their class name.
_REFUSED = {
    **dict.fromkeys(
        "ScalarSubquery Exists ListQuery InSubquery LateralSubquery".split(),
        "subqueries are not allowed"),
    **dict.fromkeys(["UnresolvedStar", "UnresolvedRegex"], "`*` is not allowed"),
    **dict.fromkeys(
        ["WindowExpression", "UnresolvedWindowExpression"], "window functions are not allowed"),
    "AggregateExpression": "aggregate functions are not allowed",
    **dict.fromkeys(["NamedParameter", "PosParameter"], "parameter markers are not allowed"),
    "ExpressionWithUnresolvedIdentifier": "IDENTIFIER(...) is not allowed",
}
_UDFS = frozenset(["PythonUDF", "ScalaUDF", "ScalaUDAF", "ScalaAggregator"])

@dataclass(frozen=True)
class _Where:
    """The ``where`` being checked, for messages."""

    text: str
    target: str
    columns: tuple[str, ...]

    def refuse(self, detail: str, err: BaseException | None = None) -> NoReturn:
        log.info("refused where on %s: %s", self.target, detail)
        text = self.text if len(self.text) <= 300 else self.text[:300] + "..."
        raise InvalidWhereError(text, self.target, self.columns, detail) from err


def checked_filter(
    df: DataFrame, where: str | Column, target: str, columns: Sequence[str]
) -> DataFrame:
    """``df`` filtered by ``where``, once ``where`` is shown to be a plain predicate.

    ``where`` is a SQL expression string or a Column over ``columns``, the columns the
    user sees; ``df`` may hold other, hidden columns, which ``where`` cannot name. The
    module docstring lists what is allowed. Nothing in ``where`` is analyzed or run
    before the check passes.

    Parameters
    ----------
    df : DataFrame
        The rows to filter, possibly with hidden columns.
    where : str or Column
        The user's predicate.
    target : str
        What ``df`` is, for messages, such as ``"sink `out`"``.
    columns : sequence of str
        The columns ``where`` may reference.

    Returns
    -------
    DataFrame
        ``df.filter(where)``, analyzed.

    Raises
    ------
    InvalidWhereError
        If ``where`` is empty, does not parse, names a column not in ``columns``, calls a
        function not on the allowlist, holds a subquery, star, aggregate or window, is
        nondeterministic or not boolean; the message names what was refused.

    Examples
    --------
    >>> sink = spark.createDataFrame([(1, "a", 7), (2, "b", 8)],
    ...                              "k int, s string, row_hash int")  # doctest: +SKIP
    >>> checked_filter(sink, "k > 1 AND upper(s) = 'B'", "sink `out`", ["k", "s"]).count()
    ... # doctest: +SKIP
    1
    >>> checked_filter(sink, "reflect('java.lang.System', 'exit', 3) = 1", "sink `out`",
    ...                ["k", "s"])  # doctest: +SKIP
    Traceback (most recent call last):
    hippo.errors.InvalidWhereError: cannot evaluate where `reflect(...) = 1` on sink `out`:
    function `reflect` is not allowed (it calls Java code); columns: `k`, `s`
    """
    expr, ctx = _expression(df, where, target, tuple(columns))
    with _spark_errors(ctx):
        nodes = json.loads(expr.toJSON())
    _check_unresolved(nodes, ctx)
    called = {_parts(n["nameParts"]).lower() for n in nodes if n["class"] == _FUNCTION}
    _check_built_in(df, called, ctx)
    with _spark_errors(ctx):
        # The checked expression itself, not a re-parse of the text.
        jc = jclass(df.sparkSession._jvm,
                    "org.apache.spark.sql.classic.ExpressionUtils").column(expr)
        out = df.filter(Column(jc))
    # A tree of columns, literals and operators resolves to itself (operators are not
    # looked up in the function registry), so only one with a function call or a
    # Column's bound attribute is checked again after analysis.
    if called or any(n["class"] == _BOUND_ATTRIBUTE for n in nodes):
        _check_resolved(df, out, ctx)
    log.debug("where on %s accepted (%d nodes)", target, len(nodes))
    return out


def _expression(
    df: DataFrame, where: Any, target: str, columns: tuple[str, ...]
) -> tuple[JavaObject, _Where]:
    """The unresolved Catalyst expression of ``where``; nothing is analyzed."""
    jsession = df.sparkSession._jsparkSession
    if isinstance(where, str):
        ctx = _Where(where, target, columns)
        if not where.strip():
            ctx.refuse("it is empty")
        _check_no_substitution(where, ctx)
        with _spark_errors(ctx):
            return jsession.sessionState().sqlParser().parseExpression(where), ctx
    if isinstance(where, Column):
        jc = getattr(where, "_jc", None)
        ctx = _Where(jc.toString() if jc is not None else str(where), target, columns)
        if jc is None:
            ctx.refuse("only Columns of a classic SparkSession can be checked")
        # Converting parses the text of any F.expr(...) in the Column, substituting ${...}.
        _check_no_substitution(ctx.text, ctx)
        with _spark_errors(ctx):
            return jsession.expression(jc), ctx
    ctx = _Where(repr(where)[:100], target, columns)
    ctx.refuse(f"it must be a SQL string or a Column, not `{type(where).__name__}`")


@contextmanager
def _spark_errors(ctx: _Where) -> Iterator[None]:
    """Turn what Spark raises while parsing, converting or analyzing into a refusal."""
    try:
        yield
    except ParseException as err:
        if "FAILED_TO_PARSE_TOO_COMPLEX" in str(err):  # the parser's own stack ran out
            ctx.refuse("it is nested too deeply for Spark", err)
        ctx.refuse("it does not parse: " + _first_line(err), err)
    except AnalysisException as err:
        condition = err.getCondition() or ""
        if condition == "DATATYPE_MISMATCH.FILTER_NOT_BOOLEAN":
            kind = re.search(r'of type "([^"]+)"', str(err))
            ctx.refuse("it is not a boolean predicate"
                       + (f" (its type is `{kind.group(1)}`)" if kind else ""), err)
        if condition.startswith("UNRESOLVED_COLUMN"):
            # Spark's suggestions may name hidden columns; the message lists the user's.
            name = (err.getMessageParameters() or {}).get("objectName", "")
            ctx.refuse(f"unknown column {name}".rstrip(), err)
        ctx.refuse(_first_line(err), err)
    except PySparkException as err:
        ctx.refuse(_first_line(err), err)
    except Py4JError as err:
        if "StackOverflowError" in str(err):
            ctx.refuse("it is nested too deeply for Spark", err)
        ctx.refuse("Spark could not read it: " + _first_line(err), err)
    except (ValueError, RecursionError) as err:
        ctx.refuse("its expression tree cannot be read", err)


def _check_no_substitution(text: str, ctx: _Where) -> None:
    if "${" in text:
        ctx.refuse("`${` is not allowed (Spark would substitute settings and environment "
                   "variables into the text)")


def _check_unresolved(nodes: list[dict[str, Any]], ctx: _Where) -> None:
    """Refuse any node of the unresolved tree (flat, pre-order) not on the allowlists."""
    known = {c.lower() for c in ctx.columns}
    if nodes and nodes[0]["class"] == _E + "Alias":
        ctx.refuse(f"it ends in an alias `{nodes[0].get('name')}` (a word left over "
                   "after the predicate?)")
    for node in nodes:
        cls = node["class"]
        short = cls.rsplit(".", 1)[-1]
        if cls == _ATTRIBUTE:
            _check_name(node["nameParts"], known, ctx)
        elif cls == _BOUND_ATTRIBUTE:
            if str(node.get("name", "")).lower() not in known:
                ctx.refuse(f"unknown column `{node.get('name')}`")
        elif cls == _FUNCTION:
            _check_call(node, ctx)
        elif short in _UDFS:
            ctx.refuse(f"user-defined function `{node.get('name', short)}` is not allowed")
        elif short in _REFUSED:
            ctx.refuse(_REFUSED[short])
        elif cls not in _NODES:
            ctx.refuse(f"`{short}` is not allowed in a where")
        for field, value in node.items():
            # An expression or plan held outside the children (a FILTER clause, a
            # subquery's plan) would not be walked: refuse it.
            if isinstance(value, list) and value and isinstance(value[0], dict) \
                    and "class" in value[0] and (cls, field) not in _OPTIONAL_CHILDREN:
                ctx.refuse(f"`{short}` with a nested `{field}` is not allowed")


def _parts(rendered: str) -> str:
    """The inside of Spark's ``[a, b]`` rendering of a name's parts."""
    return rendered[1:-1] if rendered.startswith("[") and rendered.endswith("]") else rendered


def _check_name(rendered: str, known: set[str], ctx: _Where) -> None:
    # Spark renders name parts joined by ", ", so `a, b` and a.b look alike; either way the
    # first part must be a user column (what follows is a struct field), and the resolved
    # check compares exact names.
    inner = _parts(rendered)
    low = inner.lower()
    if low in known or any(low.startswith(c + ", ") for c in known):
        return
    ctx.refuse(f"unknown column `{inner.replace(', ', '.')}`")


def _check_call(node: dict[str, Any], ctx: _Where) -> None:
    inner = _parts(node["nameParts"])
    name = inner.lower()
    if ", " in inner:
        ctx.refuse(f"function `{inner.replace(', ', '.')}` is not allowed (qualified name)")
    if name not in _FUNCTIONS:
        why = _WHY.get(name, "it is not a built-in row function on hippo's allowlist")
        ctx.refuse(f"function `{inner}` is not allowed ({why})")
    if node.get("isDistinct") or node.get("filter") or node.get("ignoreNulls") \
            or node.get("orderingWithinGroup") or node.get("isInternal"):
        ctx.refuse(f"function `{inner}` with DISTINCT, FILTER, IGNORE NULLS or WITHIN GROUP "
                   "is not allowed")
    arguments = node.get("arguments") or []
    if node.get("num-children") != len(arguments):
        ctx.refuse(f"function `{inner}` has clauses besides its arguments")
    if len(arguments) < _MIN_ARGS.get(name, 0):
        ctx.refuse(f"function `{inner}` with fewer than {_MIN_ARGS[name]} arguments is not "
                   "allowed (it reads the clock or the session's time zone)")


def _check_built_in(df: DataFrame, called: set[str], ctx: _Where) -> None:
    """Refuse, before analysis, a called name that is not one of Spark's built-in
    functions in this session: Spark looks a name up among the built-ins first, then
    among the session's temporary functions and the catalog's persistent ones (whose
    analysis could read other tables), and ``spark.udf.register("upper", ...)`` puts a
    Python UDF in the built-in's place."""
    if not called:
        return
    jvm = df.sparkSession._jvm
    registry = df.sparkSession._jsparkSession.sessionState().functionRegistry()
    builtin = jclass(jvm, "org.apache.spark.sql.catalyst.analysis.FunctionRegistry").builtin()
    for name in sorted(called):
        ident = jclass(jvm, "org.apache.spark.sql.catalyst.FunctionIdentifier").apply(name)
        spark_own = builtin.lookupFunction(ident)
        if not spark_own.isDefined():
            ctx.refuse(f"function `{name}` is not one of Spark's built-in functions")
        # The session's registry starts as a copy of the built-in one, sharing its
        # entries; registering a function under the name replaces the session's entry.
        if not registry.lookupFunction(ident).equals(spark_own):
            ctx.refuse(f"function `{name}` is registered in this session as a user-defined "
                       "function in place of Spark's built-in")


def _check_resolved(df: DataFrame, out: DataFrame, ctx: _Where) -> None:
    """Belt and braces: what the checked names resolved to (module docstring, step 2)."""
    plan = out._jdf.queryExecution().analyzed()
    if plan.nodeName() != "Filter" or not plan.child().equals(df._jdf.queryExecution().analyzed()):
        ctx.refuse("Spark rewrote the filter into more than a filter of the rows")
    jvm = df.sparkSession._jvm
    cond = plan.condition()
    # A resolved column keeps the user's spelling, so compare as Spark resolved it.
    folded = df.sparkSession.conf.get("spark.sql.caseSensitive", "false") != "true"
    fold = str.lower if folded else str
    visible = {fold(c) for c in ctx.columns}
    # The referenced attributes' names in one call, as a schema's JSON.
    schema = jclass(jvm, "org.apache.spark.sql.catalyst.types.DataTypeUtils").fromAttributes(
        cond.references().toSeq())
    for field in json.loads(schema.json())["fields"]:
        if fold(field["name"]) not in visible:
            ctx.refuse(f"unknown column `{field['name']}`")
    if not cond.deterministic():
        ctx.refuse("it is not deterministic")
    kind = cond.dataType().typeName()
    if kind != "boolean":
        ctx.refuse(f"it is not a boolean predicate (its type is `{kind}`)")


def _first_line(err: BaseException) -> str:
    lines = [line for line in str(err).strip().splitlines() if line.strip()]
    return (lines[0] if lines else type(err).__name__)[:300]

