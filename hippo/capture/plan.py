"""Read a step's lineage off Spark's analyzed logical plan.

A step is the plan nodes a transformation put on top of its input plans. Walking them
gives (1) for every output column, the input columns its expression references
(contributing), (2) the input columns that decide whether or where a row exists
(influencing: filter predicates, join conditions, group keys), (3) the node kinds, which
fix the lineage type, (4) whether every expression is deterministic, and (5) a *spec*: the
same nodes as typed data (:mod:`hippo.recorded.spec`: expressions as SQL over positional
column names), from which :mod:`hippo.recorded.rebuild` rebuilds the step on freshly
read inputs in any process. Most of a spec's SQL is rendered later (:class:`_Sql`,
:func:`hippo.recorded.spec.rendered`), off the path of the user's pipeline.

Not checked here: that a spec's SQL parses back; the caller replays it once at capture
time and compares schemas, which catches that.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hippo.errors import UnsupportedStepError
from hippo.recorded import spec as S
from hippo.recorded.ids import ID, LEFT, RIGHT, pos_name
from hippo.session import jclass

if TYPE_CHECKING:
    from py4j.java_gateway import JavaObject
    from pyspark.sql import DataFrame

Ref = tuple[int, int]  # (input index, column position in that input)

_ATTR = ".AttributeReference"
_PASS_NODES = {"SubqueryAlias", "Repartition", "RepartitionByExpression", "ResolvedHint"}
_JOIN_HOW = {
    "Inner": "inner",
    "Cross": "cross",
    "LeftOuter": "left",
    "RightOuter": "right",
    "FullOuter": "full",
    "LeftSemi": "left_semi",
    "LeftAnti": "left_anti",
}
# Plan nodes a step with a window may also hold.
_WITH_WINDOW = {"Window", "Project", "SubqueryAlias", "ResolvedHint"}
# Window functions, by class: those whose value depends on the whole partition (its
# size), those whose value is their row's rank among the rows ordered before it, and
# those whose value does not depend on how ties are ordered.
_WINDOW_FUNCTIONS = {"AggregateExpression", "RowNumber", "Rank", "DenseRank", "PercentRank",
                     "CumeDist", "NTile", "Lag", "Lead", "NthValue"}
_WHOLE_PARTITION = {"PercentRank", "CumeDist", "NTile"}
_RANK_LIKE = {"Rank", "DenseRank"}
_NO_TIES = {"Rank", "DenseRank", "PercentRank", "CumeDist"}
_OUTER_GENERATORS = {"explode": "explode_outer", "posexplode": "posexplode_outer",
                     "inline": "inline_outer"}


@dataclass(frozen=True)
class WindowFrame:
    """The rows of its partition a window column reads, per row.

    ``kind``: ``whole`` (every row of the partition), ``before`` (the rows ordered
    strictly before the row's peers, and the row: rank and dense_rank) or ``frame`` (the
    rows of its frame, ``sql``, under ``order``; ties of a ``rows`` frame ordered by the
    row id). ``order`` is SQL over the input's positional names with direction and
    null ordering; ``bounds`` identify the frame (its SQL may be spelled differently
    after a rebuild).
    """

    kind: str
    order: tuple[tuple[str, bool, bool], ...] = ()
    rows: bool = False
    bounds: tuple[str, str] = ("", "")
    sql: str = field(default="", compare=False)


WHOLE = WindowFrame("whole")


def _bound(expr: JavaObject) -> str:
    cls = _cls(expr)
    if cls in ("UnboundedPreceding", "UnboundedFollowing"):
        return "UNBOUNDED"
    if cls == "CurrentRow":
        return "CURRENT"
    try:
        return str(expr.eval(None))
    except Exception:  # noqa: BLE001 -- a bound that does not fold: its SQL names it
        return str(expr.sql())


@dataclass
class StepAnalysis:
    """What one step's plan nodes say about lineage."""

    contributing: list[set[Ref]]
    influencing: set[Ref] = field(default_factory=set)
    kinds: list[str] = field(default_factory=list)
    deterministic: bool = True
    group_keys: list[str] = field(default_factory=list)
    order: set[Ref] = field(default_factory=set)
    spec: S.Node | None = None
    # Per output column, the input column it is an unchanged copy of (same value in every
    # output row, never nulled by an outer join or mixed by a union), else None.
    copies: list[Ref | None] = field(default_factory=list)
    # A window step: the partition keys (SQL over input 0's positional names; empty: one
    # partition), and per output column, per frame, the input columns it reads in the
    # frame's rows (``contributing`` holds what it reads in its own row); whether the
    # walk ordered ties by the row id (then the step is rebuilt from its spec).
    window_keys: list[str] | None = None
    framed: list[dict[WindowFrame, set[Ref]]] = field(default_factory=list)
    tie_broken: bool = False
    # Per frame: the input columns that decide which rows are in it (partition and
    # order keys).
    frame_influence: dict[WindowFrame, set[Ref]] = field(default_factory=dict)

    def frames(self) -> list[WindowFrame]:
        """The step's distinct window frames, in column order."""
        out: list[WindowFrame] = []
        for by_frame in self.framed:
            out.extend(f for f in by_frame if f not in out)
        return out


def _seq(seq: JavaObject) -> list[JavaObject]:
    return [seq.apply(i) for i in range(seq.size())]


# An attribute's text is ``name#id`` (``L`` after a long's id; a watermark's delay after).
_ATTR_TEXT = re.compile(r"(.*)#(\d+)L?(?:-T\d+ms)?", re.S)
_SEP = "\u0001"


def _output(node: JavaObject) -> list[tuple[str, int]]:
    """Names and attribute ids of ``node``'s output in two Py4J calls (its attributes'
    text joined on the JVM), not three per attribute; attribute by attribute only when
    a name holds the separator."""
    seq = node.output()
    text = str(seq.mkString(_SEP))
    parts = text.split(_SEP) if text else []
    found = [_ATTR_TEXT.fullmatch(p) for p in parts]
    if len(parts) == seq.size() and all(found):
        return [(m.group(1), int(m.group(2))) for m in found]  # type: ignore[union-attr]
    return [(str(a.name()), int(a.exprId().id())) for a in _seq(seq)]


def _cls(obj: JavaObject) -> str:
    return obj.getClass().getSimpleName().rstrip("$")


def _quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


_SUBQUERIES = {"ScalarSubquery", "ListQuery", "Exists", "InSubquery", "LateralSubquery"}
# Aggregate functions whose IGNORE NULLS flag Spark's SQL rendering drops.
_IGNORING_NULLS = {"First", "Last", "AnyValue"}
_OTHER_UDFS = {"ScalaUDF", "ScalaUDAF", "ScalaAggregator", "PythonUDAF", "PythonUDTF",
               "HiveSimpleUDF", "HiveGenericUDF", "HiveUDAFFunction", "HiveGenericUDTF"}
# Python UDF eval types a spec can record: plain (batched), Arrow-batched, scalar pandas.
_UDF_EVAL_TYPES = (100, 101, 200)


def _is_function(command: bytes) -> bool:
    """Whether a UDF's pickled command is its ``(function, return type)`` itself, not a
    reference to a broadcast copy."""
    from pyspark.serializers import CPickleSerializer

    try:
        loaded = CPickleSerializer().loads(command)
    except Exception:  # noqa: BLE001 -- a broadcast reference does not load here
        return False
    return isinstance(loaded, tuple) and len(loaded) == 2 and callable(loaded[0])


class _Sql:
    """An expression's SQL over positional column names, rendered on first use.

    Renaming an expression's attributes takes a few Py4J calls per tree node; a step
    leaves that to the run's background thread (rebuild check, spec rendering) instead
    of paying it while the user's pipeline is being built.
    """

    __slots__ = ("_walker", "_expr", "_names", "_alias", "_text")

    def __init__(self, walker: _Walker, expr: JavaObject, names: dict[int, str],
                 alias: str | None) -> None:
        self._walker, self._expr, self._names, self._alias = walker, expr, names, alias
        self._text: str | None = None

    def __str__(self) -> str:
        if self._text is None:
            sql = str(self._walker._rename(self._expr, self._names).sql())
            self._text = sql if self._alias is None else f"{sql} AS {_quote(self._alias)}"
        return self._text


class _Walker:
    def __init__(self, jvm: Any, inputs: list[JavaObject], input_ids: list[list[int]],
                 id_pos: int | None = None) -> None:
        self._jvm = jvm
        self._id_pos = id_pos  # where input 0 holds hippo's row id
        self._inputs = inputs
        self._input_ids = input_ids
        self._utils = jclass(jvm, "org.apache.spark.api.python.PythonUtils")
        self._empty = self._to_seq([])
        self.influencing: set[Ref] = set()
        self.kinds: list[str] = []
        self.deterministic = True
        self.group_keys: list[str] = []
        self.order: set[Ref] = set()
        self.same: dict[int, Ref] = {}
        self._trees: dict[int, tuple[JavaObject, list[dict[str, Any]]]] = {}
        self.not_same: set[int] = set()
        self._loose: int | None = None
        self.window_keys: list[str] | None = None
        self.framed: dict[int, dict[WindowFrame, set[Ref]]] = {}
        self.tie_broken = False
        self.frame_influence: dict[WindowFrame, set[Ref]] = {}
        self.udfs: dict[int, tuple[str, str, int, bool]] = {}  # result id -> spec entry
        self._one_row: JavaObject | None = None  # Seq(OneRowRelation), made on first use

    # -- expressions ------------------------------------------------------------------
    def _to_seq(self, items: list[JavaObject]) -> JavaObject:
        jlist = jclass(self._jvm, "java.util.ArrayList")()
        for item in items:
            jlist.add(item)
        return self._utils.toSeq(jlist)

    def _rename(self, expr: JavaObject, names: dict[int, str]) -> JavaObject:
        cls = _cls(expr)
        if cls == "AttributeReference":
            eid = expr.exprId().id()
            if eid not in names:
                raise UnsupportedStepError(
                    f"expression `{expr.sql()}` references a column outside its input "
                    "(correlated subqueries are not supported)"
                )
            return expr.withName(names[eid]).withQualifier(self._empty)
        if cls in _SUBQUERIES:
            raise UnsupportedStepError(f"subquery expression `{expr.sql()}` is not supported")
        if cls in _OTHER_UDFS:
            raise UnsupportedStepError(f"`{expr.sql()}` ({cls}) is not supported; Python UDFs "
                                       "and scalar pandas UDFs are")
        if cls == "AggregateExpression":
            fn = expr.aggregateFunction()
            if _cls(fn) in _IGNORING_NULLS and fn.ignoreNulls():
                return self._ignoring_nulls(expr, fn, names)
        children = _seq(expr.children())
        if cls == "PythonUDF":  # renamed to the name its recorded function gets
            name = self._udf(expr)
            return expr.copy(name, expr.func(), expr.dataType(),
                             self._to_seq([self._rename(c, names) for c in children]),
                             expr.evalType(), expr.udfDeterministic(), expr.resultId())
        if not children:
            return expr
        return expr.withNewChildren(self._to_seq([self._rename(c, names) for c in children]))

    def _ignoring_nulls(self, agg: JavaObject, fn: JavaObject,
                        names: dict[int, str]) -> JavaObject:
        """first / last / any_value IGNORE NULLS: Spark's SQL for them drops the flag
        (``first(x)``), so the expression is rendered as text that keeps it
        (``first(x, true)``)."""
        distinct = "DISTINCT " if agg.isDistinct() else ""
        text = f"{fn.prettyName()}({distinct}{self._rename(fn.child(), names).sql()}, true)"
        if agg.filter().isDefined():
            text += f" FILTER (WHERE {self._rename(agg.filter().get(), names).sql()})"
        return jclass(self._jvm, "org.apache.spark.sql.catalyst.expressions.PrettyAttribute")(
            text, agg.dataType())

    def _udf(self, expr: JavaObject) -> str:
        """The name a Python UDF is recorded under (``__hippo_udf_<hash of its pickled
        function>``), recording the function on first sight."""
        key = int(expr.resultId().id())
        if key not in self.udfs:
            eval_type = int(expr.evalType())
            if eval_type not in _UDF_EVAL_TYPES:
                raise UnsupportedStepError(
                    f"Python UDF `{expr.name()}` of eval type {eval_type} is not supported "
                    "here; plain, Arrow-optimized and scalar pandas UDFs are")
            command = bytes(expr.func().command().unsafeArray())
            if not _is_function(command):
                raise UnsupportedStepError(
                    f"Python UDF `{expr.name()}` could not be recorded: its pickled function "
                    "is broadcast (a closure over a large object); pass the object in "
                    "another way")
            deterministic = bool(expr.udfDeterministic())
            digest = hashlib.sha256(command + f"{eval_type} {deterministic}".encode()
                                    ).hexdigest()[:16]
            self.udfs[key] = (f"__hippo_udf_{digest}", base64.b64encode(command).decode(),
                              eval_type, deterministic)
        return self.udfs[key][0]

    def _collect_udfs(self, expr: JavaObject) -> None:
        """Record every Python UDF in ``expr`` now (a spec lists its step's functions)."""
        if _cls(expr) == "PythonUDF":
            self._udf(expr)
        for child in _seq(expr.children()):
            self._collect_udfs(child)

    def _sql(self, expr: JavaObject, names: dict[int, str]) -> str:
        if not expr.deterministic():
            self.deterministic = False
        return str(self._rename(expr, names).sql())

    def _later(self, expr: JavaObject, names: dict[int, str], named: bool = False) -> _Sql:
        """``expr``'s SQL over positional names, rendered when the spec is first written
        out (in the run's background thread). What the step needs now is checked now,
        from the expression's JSON (one call): determinism, subqueries, and references
        outside the step's input."""
        if not expr.deterministic():
            self.deterministic = False
        tree = self._tree(expr)
        alias = None
        udfs = False
        for node in tree:
            cls = node["class"].rsplit(".", 1)[-1]
            if cls in _SUBQUERIES:
                raise UnsupportedStepError(f"subquery expression `{expr.sql()}` is not supported")
            if cls in _OTHER_UDFS:
                raise UnsupportedStepError(
                    f"`{node.get('name', cls)}` ({cls}) is not supported; Python UDFs and "
                    "scalar pandas UDFs are")
            udfs = udfs or cls == "PythonUDF"
            if cls == "AttributeReference" and int(node["exprId"]["id"]) not in names:
                raise UnsupportedStepError(
                    f"expression `{expr.sql()}` references a column outside its input "
                    "(correlated subqueries are not supported)")
        if named and tree[0]["class"].endswith(_ATTR):
            alias = str(tree[0]["name"])
        if udfs:
            self._collect_udfs(expr)
        return _Sql(self, expr, names, alias)

    def _tree(self, expr: JavaObject) -> list[dict[str, Any]]:
        key = id(expr)
        if key not in self._trees:
            self._trees[key] = (expr, json.loads(expr.toJSON()))
        return self._trees[key][1]

    def _expression_trees(self, node: JavaObject, *fields: str
                          ) -> list[list[list[dict[str, Any]]]]:
        """Per field of ``node`` holding a list of expressions, their JSON trees, in one
        call: ``node`` over a one-row relation, as JSON, holds them all."""
        if self._one_row is None:
            self._one_row = self._to_seq([jclass(
                self._jvm, "org.apache.spark.sql.catalyst.plans.logical.OneRowRelation")()])
        plan = json.loads(node.withNewChildren(self._one_row).toJSON())
        return [plan[0][f] for f in fields]

    def _refs(self, expr: JavaObject) -> list[int]:
        """Ids of the attributes ``expr`` references (``Expression.references``)."""
        return [int(n["exprId"]["id"]) for n in self._tree(expr) if n["class"].endswith(_ATTR)]

    # -- nodes ------------------------------------------------------------------------
    def _match_input(self, node: JavaObject) -> tuple[int, bool] | None:
        """(input index, whether ``node`` is that input's plan itself) or None."""
        for i, plan in enumerate(self._inputs):
            if node.fastEquals(plan):
                return i, True
        if self._loose is not None and node.sameResult(self._inputs[self._loose]):
            return self._loose, False
        return None

    def _contains_input(self, node: JavaObject) -> bool:
        if self._match_input(node) is not None:
            return True
        return any(self._contains_input(c) for c in _seq(node.children()))

    def _side(self, node: JavaObject, i: int, n: int):
        """Walk one side of a join or union that stands for input ``i``.

        Self-joins and self-unions get fresh attribute ids on one side during analysis,
        so no node of that side equals its input plan any more; there the input is found
        by ``sameResult`` (equality up to attribute ids), against input ``i`` only.
        """
        saved = self._loose
        if n == len(self._inputs) and not self._contains_input(node):
            self._loose = i
        try:
            return self.walk(node)
        finally:
            self._loose = saved

    def _boundary(self, node: JavaObject, i: int,
                  exact: bool) -> tuple[list[int], dict[int, set[Ref]], S.Node]:
        ids = self._input_ids[i] if exact else [eid for _, eid in _output(node)]
        if len(ids) != len(self._input_ids[i]):
            raise UnsupportedStepError("a join or union input changed shape during analysis")
        self.same.update({eid: (i, pos) for pos, eid in enumerate(ids)})
        return ids, {eid: {(i, pos)} for pos, eid in enumerate(ids)}, S.Input(i)

    def walk(self, node: JavaObject):
        """Return (output exprIds, exprId -> input refs, spec) for ``node``."""
        match = self._match_input(node)
        if match is not None:
            return self._boundary(node, *match)
        cls = _cls(node)
        self.kinds.append(cls)
        handler = getattr(self, f"_node_{cls}", None)
        if handler is not None:
            return handler(node)
        if cls in _PASS_NODES:
            return self._pass(node)
        raise UnsupportedStepError(f"plan node `{cls}` is not supported yet")

    def _child(self, node: JavaObject):
        ids, refs, spec = self.walk(node.child())
        names = {eid: pos_name(pos) for pos, eid in enumerate(ids)}
        return ids, refs, spec, names

    def _out_names(self, node: JavaObject) -> tuple[str, ...]:
        return tuple(name for name, _ in _output(node))

    def _map(self, refs: dict[int, set[Ref]], eids: list[int]) -> set[Ref]:
        found: set[Ref] = set()
        for eid in eids:
            found |= refs.get(eid, set())
        return found

    def _pass(self, node: JavaObject):
        ids, refs, spec, _ = self._child(node)
        cls = _cls(node)
        out_names = self._out_names(node)
        out: S.Node = S.Pass(spec, out_names)
        if cls == "Repartition":
            out = S.Repartition(spec, out_names, int(node.numPartitions()), bool(node.shuffle()))
        elif cls == "RepartitionByExpression":
            names = {eid: pos_name(pos) for pos, eid in enumerate(ids)}
            exprs = _seq(node.partitionExpressions())
            if any(_cls(e) == "SortOrder" for e in exprs):
                raise UnsupportedStepError("repartitionByRange is not supported yet")
            n = node.optNumPartitions()
            out = S.RepartitionBy(spec, out_names, tuple(self._sql(e, names) for e in exprs),
                                  int(n.get()) if n.isDefined() else None)
        return [eid for _, eid in _output(node)], refs, out

    def _node_Project(self, node: JavaObject):
        _, refs, spec, names = self._child(node)
        # The JSON of every expression at once gives each one's class, id, name and
        # references, so plain and renamed columns (most of any project list) need no
        # more calls; the others are fetched one by one for their SQL.
        ids, out_names, sqls = [], [], []
        out_refs: dict[int, set[Ref]] = {}
        exprs = node.projectList()
        for i, tree in enumerate(self._expression_trees(node, "projectList")[0]):
            top = tree[0]
            eid = int(top["exprId"]["id"])
            attrs = [int(n["exprId"]["id"]) for n in tree if n["class"].endswith(_ATTR)]
            bare = top["class"].endswith(_ATTR) or (
                top["class"].endswith(".Alias") and len(tree) == 2
                and tree[1]["class"].endswith(_ATTR))
            if bare and attrs[-1] in names:
                inner = attrs[-1]
                sqls.append(f"{names[inner]} AS {_quote(top['name'])}")
                if inner in self.same:
                    self.same[eid] = self.same[inner]
                    if inner in self.not_same:
                        self.not_same.add(eid)
            else:
                e = exprs.apply(i)
                self._trees[id(e)] = (e, tree)
                sqls.append(self._later(e, names, named=True))
            ids.append(eid)
            out_names.append(str(top["name"]))
            out_refs[eid] = self._map(refs, attrs)
            framed: dict[WindowFrame, set[Ref]] = {}
            for a in attrs:
                for frame, found in self.framed.get(a, {}).items():
                    framed.setdefault(frame, set()).update(found)
            if framed:
                self.framed[eid] = framed
        return ids, out_refs, S.Project(spec, tuple(out_names), tuple(sqls))

    def _node_Filter(self, node: JavaObject):
        ids, refs, spec, names = self._child(node)
        cond = node.condition()
        self.influencing |= self._map(refs, self._refs(cond))
        return ids, refs, S.Filter(spec, self._out_names(node), self._later(cond, names))

    def _node_Sample(self, node: JavaObject):
        # Which rows a sample keeps depends on how they are split into tasks: the step is
        # recorded with its output materialized (an explicit encoding), never recomputed.
        ids, refs, spec, _ = self._child(node)
        self.deterministic = False
        return ids, refs, S.Pass(spec, self._out_names(node))

    def _node_Aggregate(self, node: JavaObject):
        _, refs, spec, names = self._child(node)
        groups = _seq(node.groupingExpressions())
        aggs = _seq(node.aggregateExpressions())
        trees = self._expression_trees(node, "groupingExpressions", "aggregateExpressions")
        for e, tree in zip(groups + aggs, trees[0] + trees[1], strict=True):
            self._trees[id(e)] = (e, tree)
        for g in groups:
            self.influencing |= self._map(refs, self._refs(g))
        self.group_keys = [self._sql(g, names) for g in groups]
        agg_ids = [int(tree[0]["exprId"]["id"]) for tree in trees[1]]
        out_refs = {eid: self._map(refs, self._refs(e)) for eid, e in zip(agg_ids, aggs)}
        return agg_ids, out_refs, S.Aggregate(
            spec, self._out_names(node), tuple(self.group_keys),
            tuple(self._later(e, names, named=True) for e in aggs))

    def _node_Distinct(self, node: JavaObject):
        ids, refs, spec, _ = self._child(node)
        self.influencing |= self._map(refs, ids)
        self.group_keys = [pos_name(pos) for pos in range(len(ids))]
        return ids, refs, S.Distinct(spec, self._out_names(node))

    def _node_Deduplicate(self, node: JavaObject):
        ids, refs, spec, _ = self._child(node)
        keys = [a.exprId().id() for a in _seq(node.keys())]
        self.influencing |= self._map(refs, keys)
        positions = [ids.index(k) for k in keys]
        if sorted(positions) == list(range(len(ids))):
            self.group_keys = [pos_name(pos) for pos in range(len(ids))]
            return ids, refs, S.Distinct(spec, self._out_names(node))
        return ids, refs, S.Dedup(spec, self._out_names(node), tuple(positions))

    def _node_Join(self, node: JavaObject):
        how = _JOIN_HOW.get(_cls(node.joinType()))
        if how is None:
            raise UnsupportedStepError(f"join type `{node.joinType()}` is not supported yet")
        # Self-joins get fresh attribute ids on one side, so children are inputs by position.
        lids, lrefs, lspec = self._side(node.left(), 0, 2)
        rids, rrefs, rspec = self._side(node.right(), 1, 2)
        names = {eid: pos_name(pos, LEFT) for pos, eid in enumerate(lids)}
        names.update({eid: pos_name(pos, RIGHT) for pos, eid in enumerate(rids)})
        refs = {**lrefs, **rrefs}
        cond = node.condition()
        cond_sql = None
        if cond.isDefined():
            expr = cond.get()
            self.influencing |= self._map(refs, self._refs(expr))
            cond_sql = self._later(expr, names)
        ids = lids if how in ("left_semi", "left_anti") else lids + rids
        if how in ("left", "full"):
            self.not_same.update(rids)
        if how in ("right", "full"):
            self.not_same.update(lids)
        return ids, refs, S.Join(lspec, rspec, self._out_names(node), how, cond_sql)

    def _node_Generate(self, node: JavaObject):
        ids, refs, spec, names = self._child(node)
        gen = node.generator()
        gen_refs = self._map(refs, self._refs(gen))
        gen_sql = self._sql(gen, names)
        if node.outer():
            pretty = str(gen.prettyName())
            if pretty not in _OUTER_GENERATORS:
                raise UnsupportedStepError(f"outer generator `{pretty}` is not supported")
            gen_sql = _OUTER_GENERATORS[pretty] + gen_sql[len(pretty):]
        dropped = {int(x) for x in _seq(node.unrequiredChildIndex())}
        kept = [pos for pos in range(len(ids)) if pos not in dropped]
        gen_ids = [a.exprId().id() for a in _seq(node.generatorOutput())]
        out_refs = dict(refs)
        out_refs.update({eid: set(gen_refs) for eid in gen_ids})
        return [ids[p] for p in kept] + gen_ids, out_refs, S.Generate(
            spec, self._out_names(node), gen_sql, tuple(kept),
            tuple(str(a.name()) for a in _seq(node.generatorOutput())))

    def _node_Sort(self, node: JavaObject):
        ids, refs, spec, names = self._child(node)
        orders = []
        for o in _seq(node.order()):
            self.order |= self._map(refs, self._refs(o))
            orders.append((self._later(o.child(), names), _cls(o.direction()) == "Ascending",
                           _cls(o.nullOrdering()) == "NullsFirst"))
        return ids, refs, S.Sort(spec, self._out_names(node), tuple(orders),
                                 bool(getattr(node, "global")()))

    def _node_GlobalLimit(self, node: JavaObject):
        local = node.child()
        if _cls(local) != "LocalLimit":
            raise UnsupportedStepError("a global limit without a local limit is not supported")
        self.kinds.append("LocalLimit")
        ids, refs, spec = self.walk(local.child())
        n = int(str(node.limitExpr().sql()))
        return ids, refs, S.Limit(spec, self._out_names(node), n)

    def _node_Offset(self, node: JavaObject):
        ids, refs, spec, _ = self._child(node)
        n = int(str(node.offsetExpr().sql()))
        return ids, refs, S.Offset(spec, self._out_names(node), n)

    def _node_Window(self, node: JavaObject):
        ids, refs, spec, names = self._child(node)
        keys: list[str] = []
        part_refs: set[Ref] = set()
        for part in _seq(node.partitionSpec()):
            top = self._tree(part)[0]
            eid = int(top["exprId"]["id"]) if top["class"].endswith(_ATTR) else None
            if eid is None or self.same.get(eid, (1, 0))[0] != 0:
                raise UnsupportedStepError(
                    f"a window partitioned by `{part.sql()}`: partition by columns of the "
                    "DataFrame (add computed keys with withColumn first)")
            keys.append(pos_name(self.same[eid][1]))
            part_refs |= self._map(refs, [eid])
        self.influencing |= part_refs
        if self.window_keys is not None and self.window_keys != keys:
            raise UnsupportedStepError(
                "windows over different partitions in one step: add one window column "
                "per withColumn")
        self.window_keys = keys
        id_ref = (0, self._id_pos) if self._id_pos is not None else None
        id_eid = next((eid for eid in ids if self.same.get(eid) == id_ref), None)
        out_refs = dict(refs)
        out_ids = list(ids)
        sqls: list[str | _Sql] = []
        for e in _seq(node.windowExpressions()):
            win = e.child() if _cls(e) == "Alias" else e
            if _cls(win) != "WindowExpression":
                raise UnsupportedStepError(f"window expression `{e.sql()}` is not supported")
            eid = e.exprId().id()
            frame, own, framed, sql, order_refs = self._window_expr(e, win, names, refs, id_eid)
            self.frame_influence.setdefault(frame, set()).update(part_refs | order_refs)
            out_ids.append(eid)
            out_refs[eid] = own
            self.framed[eid] = {frame: framed}
            sqls.append(sql)
        return out_ids, out_refs, S.Window(spec, self._out_names(node), tuple(sqls))

    def _window_expr(self, e: JavaObject, win: JavaObject, names: dict[int, str],
                     refs: dict[int, set[Ref]], id_eid: int | None
                     ) -> tuple[WindowFrame, set[Ref], set[Ref], str | _Sql, set[Ref]]:
        """One window expression: its frame, the input columns it reads in its own row
        and in its frame's rows, and its SQL (ties of a position-dependent function
        ordered by the row id, so a query finds the same frame again)."""
        wspec = win.windowSpec()
        fn = win.windowFunction()
        fcls = _cls(fn)
        frame = wspec.frameSpecification()
        if _cls(frame) != "SpecifiedWindowFrame":
            raise UnsupportedStepError(f"window `{e.sql()}`: its frame is not resolved")
        rows = _cls(frame.frameType()) == "RowFrame"
        bounds = (_bound(frame.lower()), _bound(frame.upper()))
        orders = _seq(wspec.orderSpec())
        last = orders[-1].child() if orders else None
        tie_broken = (id_eid is not None and last is not None
                      and _cls(last) == "AttributeReference"
                      and self.same.get(last.exprId().id()) == self.same[id_eid])
        user_orders = orders[:-1] if tie_broken else orders
        order = []
        order_refs: set[Ref] = set()
        for o in user_orders:
            order_refs |= self._map(refs, self._refs(o.child()))
            order.append((self._sql(o.child(), names), _cls(o.direction()) == "Ascending",
                          _cls(o.nullOrdering()) == "NullsFirst"))
        if fcls not in _WINDOW_FUNCTIONS:
            raise UnsupportedStepError(
                f"window function `{fn.prettyName()}` is not supported yet; aggregates, "
                "row_number, rank, dense_rank, percent_rank, cume_dist, ntile, lag, lead "
                "and nth_value are")
        own: set[Ref] = set()
        framed = self._map(refs, self._refs(fn))
        if fcls in ("Lag", "Lead"):
            if fn.ignoreNulls():
                raise UnsupportedStepError(
                    f"`{e.sql()}`: lag and lead IGNORE NULLS are not supported yet")
            framed = self._map(refs, self._refs(fn.input()))
            own = self._map(refs, self._refs(fn.default()))
        self.influencing |= order_refs
        if not order and bounds != ("UNBOUNDED", "UNBOUNDED"):
            raise UnsupportedStepError(f"window `{e.sql()}`: a frame needs an ORDER BY")
        if not order or fcls in _WHOLE_PARTITION or bounds == ("UNBOUNDED", "UNBOUNDED"):
            kind = "whole"
        elif fcls in _RANK_LIKE:
            kind = "before"
        else:
            kind = "frame"
        found = WindowFrame(kind, tuple(order) if kind != "whole" else (),
                            rows and kind == "frame", bounds if kind == "frame" else ("", ""),
                            str(frame.sql()) if kind == "frame" else "")
        if not (orders and rows and fcls not in _NO_TIES and not tie_broken):
            return found, own, framed, self._later(e, names, named=True), order_refs
        if id_eid is None:
            raise UnsupportedStepError(f"window `{e.sql()}` over rows without hippo's row id")
        self.tie_broken = True
        self._collect_udfs(e)
        if not e.deterministic():
            self.deterministic = False
        parts = [str(self._rename(p, names).sql()) for p in _seq(wspec.partitionSpec())]
        by = [str(self._rename(o, names).sql()) for o in orders] + [
            f"{names[id_eid]} ASC NULLS FIRST"]
        over = " ".join(([f"PARTITION BY {', '.join(parts)}"] if parts else [])
                        + [f"ORDER BY {', '.join(by)}", str(frame.sql())])
        sql = f"{self._rename(fn, names).sql()} OVER ({over}) AS {_quote(str(e.name()))}"
        return found, own, framed, sql, order_refs

    def _node_Union(self, node: JavaObject):
        kids = _seq(node.children())
        walked = [self._side(k, i, len(kids)) for i, k in enumerate(kids)]
        first_ids = walked[0][0]
        out_refs: dict[int, set[Ref]] = {}
        for pos, eid in enumerate(first_ids):
            merged: set[Ref] = set()
            for ids, refs, _ in walked:
                merged |= refs.get(ids[pos], set())
            out_refs[eid] = merged
        ids = [eid for _, eid in _output(node)]
        self.not_same.update(ids)
        if ids != first_ids:
            out_refs = {ids[p]: out_refs[first_ids[p]] for p in range(len(ids))}
        return ids, out_refs, S.Union(tuple(w[2] for w in walked), self._out_names(node))


def _output_ids(df: DataFrame, plan: JavaObject) -> list[int]:
    """The attribute ids of ``df``'s output, remembered on ``df`` (a DataFrame's analyzed
    plan never changes, and each step's output is the next step's input)."""
    ids = getattr(df, "_hippo_output_ids", None)
    if ids is None:
        ids = [eid for _, eid in _output(plan)]
        df._hippo_output_ids = ids
    return ids


def analyze_step(result: DataFrame, inputs: list[DataFrame]) -> StepAnalysis:
    """Lineage of the nodes ``result``'s plan adds on top of ``inputs``' plans."""
    jvm = result.sparkSession._jvm
    plans = [df._jdf.queryExecution().analyzed() for df in inputs]
    first = inputs[0].columns if inputs else []
    walker = _Walker(jvm, plans, [_output_ids(df, plan) for df, plan in zip(inputs, plans)],
                     first.index(ID) if ID in first else None)
    ids, refs, spec = walker.walk(result._jdf.queryExecution().analyzed())
    others = sorted(set(walker.kinds) - _WITH_WINDOW)
    if walker.window_keys is not None and others:
        # Its partitions are of the rows the Window node sees, which its key slot finds
        # among the step's input rows only when nothing else in the step makes rows.
        raise UnsupportedStepError(
            f"a window in the same step as {', '.join(f'`{k}`' for k in others)}: compute "
            "the window in a withColumn of its own")
    result._hippo_output_ids = ids  # the next step's input: its ids are known now
    if walker.udfs:  # the functions its SQL calls, registered before it is rebuilt
        spec = S.Udfs(spec, tuple(getattr(spec, "names", ())),
                      tuple(sorted(set(walker.udfs.values()))))
    return StepAnalysis(
        contributing=[set(refs.get(eid, set())) for eid in ids],
        influencing=walker.influencing,
        kinds=walker.kinds,
        deterministic=walker.deterministic,
        group_keys=walker.group_keys,
        order=walker.order,
        spec=spec,
        copies=[None if eid in walker.not_same else walker.same.get(eid) for eid in ids],
        window_keys=walker.window_keys,
        framed=[dict(walker.framed.get(eid, {})) for eid in ids],
        tie_broken=walker.tie_broken,
        frame_influence=walker.frame_influence,
    )
