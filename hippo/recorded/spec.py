"""Step specs: a recorded step's plan nodes as typed data, a stored format.

A spec is the tree of plan nodes a transformation put on top of its inputs, with every
expression as SQL over positional column names (:func:`hippo.recorded.ids.positional`).
:mod:`hippo.recorded.rebuild` turns it back into a DataFrame over freshly read inputs,
in any process, months later; so a spec is written as JSON with the store's format
version, and read back by :func:`spec_from_json`, which keeps reading every older
version and refuses newer ones with :class:`~hippo.errors.StoreFormatError`.

While a run is being recorded an expression field may hold a deferred SQL text (any
object whose ``str`` is the SQL, rendered off the user's path); :func:`rendered` makes
every such field a plain string.

Not checked here: that the SQL parses, or that positions are within the inputs; the
capture replays each spec once against the run's own inputs and compares schemas.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, ClassVar

from hippo.errors import StoreFormatError

__all__ = [
    "FORMAT", "Node", "Input", "Project", "Filter", "Aggregate", "Distinct", "Dedup",
    "Join", "Generate", "Sort", "Limit", "Offset", "Union", "Repartition", "RepartitionBy",
    "Window", "Udfs", "Fit", "Transform", "Declared", "Explicit", "Pass", "spec_from_json",
    "rendered", "check_format", "walk",
]

# Version of every JSON document a run row holds (specs, lineage states, details).
# 1: the first typed format (the same JSON as the untyped specs before it).
# 2: a step's lineage type names columns by position (``__c3``), as its spec does; in 1
#    it named them, merging the lineage of two columns of one name. Only the stored
#    lineage changed; queries read the lineage state, the same in both.
FORMAT = 2

Sql = Any  # str, or a deferred SQL text while the run is recorded


@dataclass(frozen=True)
class Node:
    """A plan node of a step; ``names`` are its output column names."""

    op: ClassVar[str] = ""
    _CHILDREN: ClassVar[tuple[str, ...]] = ()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"op": self.op} if self.op else {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[_json_key(f.name)] = _dump(value)
        return out

    @property
    def inputs(self) -> list[Node]:
        """The node's child nodes, in order."""
        out: list[Node] = []
        for name in self._CHILDREN:
            value = getattr(self, name)
            out.extend(value if isinstance(value, tuple) else [value])
        return out


def _json_key(name: str) -> str:
    return "global" if name == "global_" else name


def _dump(value: Any) -> Any:
    if isinstance(value, Node):
        return value.to_json()
    if isinstance(value, tuple | list):
        return [_dump(v) for v in value]
    return value if value is None or isinstance(value, bool | int | float) else str(value)


@dataclass(frozen=True)
class Input(Node):
    """The step's ``input``-th input DataFrame, as recorded."""

    input: int

    def to_json(self) -> dict[str, Any]:
        return {"input": self.input}


@dataclass(frozen=True)
class Project(Node):
    op: ClassVar[str] = "project"
    _CHILDREN: ClassVar[tuple[str, ...]] = ("child",)
    child: Node
    names: tuple[str, ...]
    exprs: tuple[Sql, ...]


@dataclass(frozen=True)
class Filter(Node):
    op: ClassVar[str] = "filter"
    _CHILDREN: ClassVar[tuple[str, ...]] = ("child",)
    child: Node
    names: tuple[str, ...]
    cond: Sql


@dataclass(frozen=True)
class Aggregate(Node):
    op: ClassVar[str] = "aggregate"
    _CHILDREN: ClassVar[tuple[str, ...]] = ("child",)
    child: Node
    names: tuple[str, ...]
    groups: tuple[Sql, ...]
    aggs: tuple[Sql, ...]


@dataclass(frozen=True)
class Distinct(Node):
    op: ClassVar[str] = "distinct"
    _CHILDREN: ClassVar[tuple[str, ...]] = ("child",)
    child: Node
    names: tuple[str, ...]


@dataclass(frozen=True)
class Dedup(Node):
    op: ClassVar[str] = "dedup"
    _CHILDREN: ClassVar[tuple[str, ...]] = ("child",)
    child: Node
    names: tuple[str, ...]
    keys: tuple[int, ...]


@dataclass(frozen=True)
class Join(Node):
    op: ClassVar[str] = "join"
    _CHILDREN: ClassVar[tuple[str, ...]] = ("left", "right")
    left: Node
    right: Node
    names: tuple[str, ...]
    how: str
    cond: Sql | None


@dataclass(frozen=True)
class Generate(Node):
    op: ClassVar[str] = "generate"
    _CHILDREN: ClassVar[tuple[str, ...]] = ("child",)
    child: Node
    names: tuple[str, ...]
    gen: Sql
    keep: tuple[int, ...]
    gen_names: tuple[str, ...]


@dataclass(frozen=True)
class Sort(Node):
    op: ClassVar[str] = "sort"
    _CHILDREN: ClassVar[tuple[str, ...]] = ("child",)
    child: Node
    names: tuple[str, ...]
    orders: tuple[tuple[Sql, bool, bool], ...]  # (expression, ascending, nulls first)
    global_: bool


@dataclass(frozen=True)
class Limit(Node):
    op: ClassVar[str] = "limit"
    _CHILDREN: ClassVar[tuple[str, ...]] = ("child",)
    child: Node
    names: tuple[str, ...]
    n: int


@dataclass(frozen=True)
class Offset(Node):
    op: ClassVar[str] = "offset"
    _CHILDREN: ClassVar[tuple[str, ...]] = ("child",)
    child: Node
    names: tuple[str, ...]
    n: int


@dataclass(frozen=True)
class Union(Node):
    op: ClassVar[str] = "union"
    _CHILDREN: ClassVar[tuple[str, ...]] = ("children",)
    children: tuple[Node, ...]
    names: tuple[str, ...]


@dataclass(frozen=True)
class Repartition(Node):
    op: ClassVar[str] = "repartition"
    _CHILDREN: ClassVar[tuple[str, ...]] = ("child",)
    child: Node
    names: tuple[str, ...]
    n: int
    shuffle: bool


@dataclass(frozen=True)
class RepartitionBy(Node):
    op: ClassVar[str] = "repartition_by"
    _CHILDREN: ClassVar[tuple[str, ...]] = ("child",)
    child: Node
    names: tuple[str, ...]
    exprs: tuple[Sql, ...]
    n: int | None


@dataclass(frozen=True)
class Window(Node):
    """Window functions over whole partitions: the child's columns, then one column per
    expression (``f(...) OVER (PARTITION BY ...) AS name``)."""

    op: ClassVar[str] = "window"
    _CHILDREN: ClassVar[tuple[str, ...]] = ("child",)
    child: Node
    names: tuple[str, ...]
    exprs: tuple[Sql, ...]


@dataclass(frozen=True)
class Udfs(Node):
    """The Python functions a step's SQL calls by the names ``__hippo_udf_<hash>``, each
    ``(name, its pickled (function, return type) in base64, Spark eval type,
    deterministic)``: registered in the session before ``child`` is rebuilt.

    A function pickled by reference (defined in an importable module, not in ``__main__``
    or a notebook) is that module's function when it is rebuilt, not the one recorded.
    """

    op: ClassVar[str] = "udfs"
    _CHILDREN: ClassVar[tuple[str, ...]] = ("child",)
    child: Node
    names: tuple[str, ...]
    udfs: tuple[tuple[str, str, int, bool], ...]


@dataclass(frozen=True)
class Fit(Node):
    """A pyspark.ml estimator fitted on the child's rows: the fitted model, saved with
    pyspark.ml's own persistence at ``model`` (class ``model_class``), and the
    estimator at ``estimator``. Rebuilt, the step is its training rows (the input of
    the transforms that apply the model, which refit it on them where asked)."""

    op: ClassVar[str] = "fit"
    _CHILDREN: ClassVar[tuple[str, ...]] = ("child",)
    child: Node
    names: tuple[str, ...]
    estimator: str
    estimator_class: str
    model: str
    model_class: str


@dataclass(frozen=True)
class Transform(Node):
    """A pyspark.ml transformer or model applied to the child's rows: every column kept,
    new ones appended. ``model`` is its saved form (class ``model_class``). A model
    fitted in the run (``fitted``) is refitted on input 1, the fit step's training
    rows, where a rebuild asks for it; its rows first gain ``slot``, the key slot by
    which a query finds the model's training rows."""

    op: ClassVar[str] = "transform"
    _CHILDREN: ClassVar[tuple[str, ...]] = ("child",)
    child: Node
    names: tuple[str, ...]
    model: str
    model_class: str
    fitted: bool
    estimator: str
    estimator_class: str
    slot: str


@dataclass(frozen=True)
class Declared(Node):
    """A user's function over the child's rows, whose lineage the user declared: ``fn``
    (the pickled ``DataFrame -> DataFrame`` function, base64) is applied to the child's
    columns, and its rows find their input rows by the ``keys`` columns, which both
    hold: the parent row (``one_to_one``, ``one_to_many``) or the group (``many_to_one``,
    ``many_to_many``, whose rows gain ``slot``, the group key's hash)."""

    op: ClassVar[str] = "declared"
    _CHILDREN: ClassVar[tuple[str, ...]] = ("child",)
    child: Node
    names: tuple[str, ...]
    fn: str
    kind: str
    keys: tuple[str, ...]
    slot: str


@dataclass(frozen=True)
class Explicit(Node):
    """A step whose output the run materialized (``path``, a Delta table of its rows by
    positional name, hidden columns included) because recomputing it would not give the
    same rows or values (a sample, ``rand``): rebuilt as those rows whose ids the child
    still holds."""

    op: ClassVar[str] = "explicit"
    _CHILDREN: ClassVar[tuple[str, ...]] = ("child",)
    child: Node
    names: tuple[str, ...]
    path: str


@dataclass(frozen=True)
class Pass(Node):
    """A node that changes nothing a replay needs (an alias, a hint)."""

    op: ClassVar[str] = "pass"
    _CHILDREN: ClassVar[tuple[str, ...]] = ("child",)
    child: Node
    names: tuple[str, ...]


_NODES: dict[str, type[Node]] = {cls.op: cls for cls in (
    Project, Filter, Aggregate, Distinct, Dedup, Join, Generate, Sort, Limit, Offset, Union,
    Repartition, RepartitionBy, Window, Udfs, Fit, Transform, Declared, Explicit, Pass)}


def walk(node: Node) -> list[Node]:
    """``node`` and every node below it."""
    out, todo = [], [node]
    while todo:
        out.append(todo.pop())
        todo.extend(out[-1].inputs)
    return out


def check_format(version: int | None, what: str) -> int:
    """``version`` if this hippo reads it, else StoreFormatError naming ``what``."""
    version = 0 if version is None else int(version)
    if version > FORMAT:
        raise StoreFormatError(
            f"{what} was written in store format {version}; this hippo reads formats up "
            f"to {FORMAT}: upgrade hippo to read it")
    return version


def spec_from_json(data: Any, version: int = FORMAT) -> Node:
    """A spec from its JSON form (any format up to :data:`FORMAT`).

    Examples
    --------
    >>> spec_from_json({"op": "filter", "cond": "(__c0 > 1)", "names": ["a"],
    ...                 "child": {"input": 0}})
    Filter(child=Input(input=0), names=('a',), cond='(__c0 > 1)')
    """
    check_format(version, "a step spec")
    if not isinstance(data, dict):
        raise StoreFormatError(f"a step spec must be a JSON object, got {data!r:.80}")
    if "input" in data:
        return Input(int(data["input"]))
    cls = _NODES.get(data.get("op", ""))
    if cls is None:
        raise StoreFormatError(f"unknown spec node `{data.get('op')}`; known: "
                               + ", ".join(f"`{k}`" for k in sorted(_NODES)))
    values: dict[str, Any] = {}
    for f in fields(cls):
        key = _json_key(f.name)
        if key not in data:
            raise StoreFormatError(f"spec node `{cls.op}` lacks `{key}`")
        values[f.name] = _load(f.name, data[key], version)
    return cls(**values)


def _load(name: str, value: Any, version: int) -> Any:
    if name in ("child", "left", "right"):
        return spec_from_json(value, version)
    if name == "children":
        return tuple(spec_from_json(v, version) for v in value)
    if name == "orders":
        return tuple((str(o[0]), bool(o[1]), bool(o[2])) for o in value)
    if isinstance(value, list):
        return tuple(value)
    return value


def rendered(node: Node) -> Node:
    """``node`` with every deferred expression rendered to its SQL text."""
    changes: dict[str, Any] = {}
    for f in fields(node):
        value = getattr(node, f.name)
        changes[f.name] = _render(value)
    return replace(node, **changes)


def _render(value: Any) -> Any:
    if isinstance(value, Node):
        return rendered(value)
    if isinstance(value, tuple):
        return tuple(_render(v) for v in value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)
