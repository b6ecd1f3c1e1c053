"""Rebuild a recorded step from its spec on freshly read inputs.

Specs come from :func:`hippo.capture.plan.analyze_step`: plan nodes as data, with every
expression as SQL over positional column names (``__c3``; ``__l0``/``__r2`` for the two
sides of a join), so duplicate or awkward column names never make them ambiguous. Each
node's result is renamed to the recorded output names, so the rebuilt DataFrame has the
same schema as the one the run computed.
"""

from __future__ import annotations

from functools import reduce
from typing import Any

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

__all__ = ["build_step", "build_pairs"]


def _positional(df: DataFrame, prefix: str = "__c") -> DataFrame:
    return df.toDF(*[f"{prefix}{i}" for i in range(len(df.columns))])


def _order(sql: str, ascending: bool, nulls_first: bool) -> Column:
    col = F.expr(sql)
    if ascending:
        return col.asc_nulls_first() if nulls_first else col.asc_nulls_last()
    return col.desc_nulls_first() if nulls_first else col.desc_nulls_last()


def build_step(spec: dict[str, Any], inputs: list[DataFrame]) -> DataFrame:
    """The DataFrame ``spec`` describes, computed over ``inputs``."""
    if "input" in spec:
        return inputs[spec["input"]]
    op = spec["op"]
    if op == "join":
        left = _positional(build_step(spec["left"], inputs), "__l")
        right = _positional(build_step(spec["right"], inputs), "__r")
        cond = F.expr(spec["cond"]) if spec["cond"] else None
        if cond is None:
            out = left.crossJoin(right) if spec["how"] in ("inner", "cross") else left.join(
                right, how=spec["how"])
        else:
            out = left.join(right, cond, "inner" if spec["how"] == "cross" else spec["how"])
    elif op == "union":
        kids = [_positional(build_step(c, inputs)) for c in spec["children"]]
        out = reduce(DataFrame.union, kids)
    else:
        child = _positional(build_step(spec["child"], inputs))
        out = _unary(op, spec, child)
    return out.toDF(*spec["names"])


def build_pairs(spec: dict[str, Any], inputs: list[DataFrame]) -> DataFrame:
    """For a step containing a semi join: every (left row, right row) pair it matched.

    The join node is rebuilt as an inner join, so the result has the left side's columns
    then the right side's (both with their hidden columns).
    """
    node = spec
    while node.get("op") != "join":
        if "child" not in node:
            raise ValueError("the step has no join to pair rows of")
        node = node["child"]
    left_df = build_step(node["left"], inputs)
    right_df = build_step(node["right"], inputs)
    names = left_df.columns + right_df.columns
    left = _positional(left_df, "__l")
    right = _positional(right_df, "__r")
    cond = F.expr(node["cond"]) if node["cond"] else None
    out = left.crossJoin(right) if cond is None else left.join(right, cond, "inner")
    return out.toDF(*names)


def _unary(op: str, spec: dict[str, Any], child: DataFrame) -> DataFrame:
    if op == "project":
        return child.select(*[F.expr(s) for s in spec["exprs"]])
    if op == "filter":
        return child.filter(F.expr(spec["cond"]))
    if op == "aggregate":
        groups = [F.expr(g) for g in spec["groups"]]
        aggs = [F.expr(a) for a in spec["aggs"]]
        grouped = child.groupBy(*groups).agg(*aggs)
        names = [f"__g{i}" for i in range(len(groups))] + [f"__a{i}" for i in range(len(aggs))]
        return grouped.toDF(*names).select(*names[len(groups):])
    if op == "distinct":
        return child.distinct()
    if op == "dedup":
        return child.dropDuplicates([f"__c{p}" for p in spec["keys"]])
    if op == "generate":
        kept = [f"__c{p}" for p in spec["keep"]]
        return child.select(*kept, F.expr(spec["gen"]).alias(*spec["gen_names"]))
    if op == "sort":
        orders = [_order(*o) for o in spec["orders"]]
        return child.orderBy(*orders) if spec["global"] else child.sortWithinPartitions(*orders)
    if op == "limit":
        return child.limit(spec["n"])
    if op == "offset":
        return child.offset(spec["n"])
    if op == "repartition":
        return child.repartition(spec["n"]) if spec["shuffle"] else child.coalesce(spec["n"])
    if op == "repartition_by":
        exprs = [F.expr(e) for e in spec["exprs"]]
        return child.repartition(spec["n"], *exprs) if spec["n"] else child.repartition(*exprs)
    if op == "pass":
        return child
    raise ValueError(f"unknown spec op `{op}`")
