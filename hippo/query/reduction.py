"""Semi-join reduction of a group read: values that every row of a group holds.

A backward query that resolves an aggregate's group rebuilds the aggregate's input and
keeps the rows of the chosen group keys. Spark pushes a key filter into the source that
holds the key column, but not across a join: for TPC-H Q10 (grouped by customer) the
customer is read for its key while orders and lineitem are read whole, every lineitem
row hashed into its id, to find the few that join it. Here the values cross the joins
on the driver, before the group is read:

* equal columns: an inner join on ``a = b`` means every row after it holds the same
  value in both, so the values known for one hold for the other (across an outer join,
  only towards its optional side, whose unmatched rows are null there);
* reductions: a source whose rows are known to hold some values is read with them, as
  its own filters leave it (one small job), and the values those rows hold in its other
  join columns become known, for the sources on the other side of those joins.

Every set of values found is one that the group's rows hold in a column copying a
source column unchanged (``LineageState.copies``). They are added to the filter on the
group's input, where Spark pushes each into the scan of its source (skipping pages,
row groups and files by their statistics) wherever that keeps the same rows; the key
hash match still decides which rows belong, so answers are unchanged.

Not done: a source that reaches the group along two paths (a self-join), joins whose
sides are not plain renames of the step's inputs, and float columns (Spark matches NaN
to NaN, Python's sets do not) give no values.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from functools import reduce
from typing import Any

import networkx as nx
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from hippo.query import pushdown
from hippo.query.pushdown import Hint, few_sets, filtered, hintable_type, isin
from hippo.query.slots import Slots
from hippo.recorded import spec as S
from hippo.recorded.ids import LEFT, RIGHT, is_hidden, pos_name, positional
from hippo.recorded.state import KeySlot, LineageState

__all__ = ["reduced_where"]

log = logging.getLogger(__name__)

_Col = tuple[int, str]  # (source step, source column)
# Plan nodes that pass a source's rows on one for one (or drop them).
_ROWWISE = frozenset({"Project", "Filter", "Sort", "SubqueryAlias", "Repartition",
                      "RepartitionByExpression"})
# The sides of a join that receive the other side's values of an equal column: a side
# an outer join may pad with nulls holds the other's values where it holds any.
_RECEIVES = {"inner": ("left", "right"), "cross": ("left", "right"), "left": ("right",),
             "right": ("left",)}
# Types whose equal values are equal Python values: not floats, whose NaN Spark joins
# to NaN but Python's sets never match to another NaN.
_NOT_CROSSING = ("float", "double")
_RENAME = re.compile(r"^`?__c(\d+)`?(?: AS `(?:[^`]|``)*`)?$")
# Reading a source to learn values for its partners costs a job (0.1-0.3 s): at most
# this many per group read.
_READS = 3


@dataclass
class _Joins:
    """What values can cross on the way to one step: equal source columns, and where
    each source's rows can be read with its own filters applied."""

    flows: dict[_Col, set[_Col]] = field(default_factory=dict)  # values of a hold for b
    # Per source reaching the step along one path: the last step its rows pass before
    # meeting another input's, and that step's user position of each source column.
    reads: dict[int, tuple[int, dict[str, int]]] = field(default_factory=dict)


def reduced_where(slots: Slots, origin: KeySlot, inner: LineageState,
                  hints: dict[str, Hint]) -> Column | None:
    """A filter on the group's input (positional names) that every row of the chosen
    groups passes: values of source columns learned across joins from ``hints`` (per
    slot of ``inner``: source columns and the values the group's rows hold in them).
    None if nothing is learned beyond the hints."""
    run = slots.run
    joins = _joins_of(slots, origin.input_op)
    if not joins.flows:
        return None
    ops = [o.op for o in inner.slots.values() if o.kind == "source"]
    slot_op = {slot: o.op for slot, o in inner.slots.items()
               if o.kind == "source" and o.op in joins.reads and ops.count(o.op) == 1}
    known: dict[_Col, set[Any]] = {}
    for slot, hint in hints.items():
        if slot in slot_op:
            for column, values in hint:
                _learn(known, (slot_op[slot], column), values)
    if not known:
        return None
    seeded = set(known)
    _spread(known, joins.flows)
    # Values pay off only where the group's rows hold that source's row.
    big = {op for op in set(slot_op.values())
           if slots.source_bytes(op) >= pushdown.SCAN_BYTES}
    tried: set[int] = set()
    for _ in range(_READS):
        op, columns = _next_read(known, joins.flows, big, tried)
        if op is None:
            break
        tried.add(op)
        columns = [c for c in columns if c in joins.reads[op][1]]
        values = few_sets(*_read(run, op, joins.reads[op], known, columns)) if columns \
            else None
        if values is None:  # too many rows: what is known stays as it is
            continue
        for column, found in zip(columns, values, strict=True):
            _learn(known, (op, column), found)  # null among them if a row holds null
        _spread(known, joins.flows)
    return _on_group(run, origin, inner, slot_op, {c: v for c, v in known.items()
                                                   if c not in seeded})


def _on_group(run: Any, origin: KeySlot, inner: LineageState, slot_op: dict[str, int],
              known: dict[_Col, set[Any]]) -> Column | None:
    names = run.frame(origin.input_op).columns
    user = [i for i, c in enumerate(names) if not is_hidden(c)]
    conds = []
    for u, full in enumerate(user):
        copy = inner.copy_at(u)
        if copy is not None and copy[0] in slot_op and (slot_op[copy[0]], copy[1]) in known:
            # Also a null there: the copies already leave out an outer join's padded
            # side, so this only keeps the filter sound should a copy ever hold one.
            column = F.col(pos_name(full))
            conds.append(isin(column, sorted(known[slot_op[copy[0]], copy[1]], key=repr))
                         | column.isNull())
    if conds:
        log.debug("group of step %s: %d values learned across joins", origin.op, len(conds))
    return reduce(lambda a, b: a & b, conds) if conds else None


def _learn(known: dict[_Col, set[Any]], col: _Col, values: Any) -> bool:
    """Narrow what is known of ``col`` to ``values``; whether that changed anything."""
    new = set(values)
    if col in known:
        new &= known[col]
        if new == known[col]:
            return False
    known[col] = new
    return True


def _spread(known: dict[_Col, set[Any]], flows: dict[_Col, set[_Col]]) -> None:
    changed = True
    while changed:
        changed = False
        for a, targets in flows.items():
            if a in known:
                for b in targets:
                    changed |= _learn(known, b, known[a])


def _next_read(known: dict[_Col, set[Any]], flows: dict[_Col, set[_Col]], big: set[int],
               tried: set[int]) -> tuple[int | None, list[str]]:
    """A source with known values, not read yet, whose other join columns would tell a
    useful source something (:func:`_useful`; values that would only come back to the
    source read do not count), and those columns."""
    known_ops = {op for op, _ in known}
    for op in sorted(known_ops - tried):
        columns = sorted({c for (o, c), targets in flows.items()
                          if o == op and (o, c) not in known
                          and any(b not in known
                                  and _useful(b[0], known_ops, flows, big, frozenset({op}))
                                  for b in targets)})
        if columns:
            return op, columns
    return None, []


def _useful(op: int, known_ops: set[int], flows: dict[_Col, set[_Col]], big: set[int],
            seen: frozenset[int] = frozenset()) -> bool:
    """Whether values for ``op`` are worth a read: it is large (``SCAN_BYTES``: its
    scan then skips what the values rule out), or nothing is known of it yet and its
    join columns lead on to such a source (a source already known is read with what is
    known of it instead)."""
    if op in seen:
        return False
    if op in big:
        return True
    if op in known_ops:
        return False
    return any(b[0] != op and _useful(b[0], known_ops, flows, big, seen | {op})
               for (o, _), targets in flows.items() if o == op for b in targets)


def _read(run: Any, op: int, at: tuple[int, dict[str, int]], known: dict[_Col, set[Any]],
          columns: list[str]) -> tuple[DataFrame, list[str]]:
    """The rows of source ``op`` holding the known values, as its own filters leave
    them (orders of one customer in Q10's date range, not all of theirs), and the
    names there of ``columns``."""
    end, positions = at
    frame = run.frame(end)
    user = [i for i, c in enumerate(frame.columns) if not is_hidden(c)]
    frame = positional(frame)
    conds = [isin(F.col(pos_name(user[positions[c]])), sorted(v, key=repr))
             for (o, c), v in known.items() if o == op and c in positions]
    if conds:
        frame = filtered(frame, reduce(lambda a, b: a & b, conds))
    return frame, [pos_name(user[positions[c]]) for c in columns]


def _joins_of(slots: Slots, target: int) -> _Joins:
    """The joins on the way to ``target``, found once per run."""
    key = (__name__, target)
    if key not in slots.derived:
        slots.derived[key] = _find_joins(slots.run, target)
    return slots.derived[key]


def _find_joins(run: Any, target: int) -> _Joins:
    upstream = run.upstream(target)
    graph = run.graph.subgraph(upstream)
    # Paths counted with each input's multiplicity: a frame joined with itself is one
    # edge of the graph but two paths.
    paths = {target: 1}
    for n in reversed(list(nx.topological_sort(graph))):
        if n != target:
            paths[n] = sum(paths.get(m, 0) * run.steps[m].inputs.count(n)
                           for m in graph.successors(n))
    out = _Joins()
    for op in upstream:
        step = run.steps[op]
        if step.source is None or paths.get(op) != 1:
            continue
        end = op
        for n in nx.shortest_path(run.graph, op, target)[1:]:
            if len(run.steps[n].inputs) != 1 or not set(run.steps[n].kinds) <= _ROWWISE:
                break
            end = n
        state = run.steps[end].state
        positions: dict[str, int] = {}
        for u in range(len(state.copies)):
            copy = state.copy_at(u)
            if copy is not None and copy[0] == step.source.slot:
                positions.setdefault(copy[1], u)
        out.reads[op] = (end, positions)
    for n in upstream:
        step = run.steps[n]
        for node in (S.walk(step.spec) if step.spec is not None else []):
            if isinstance(node, S.Join) and node.cond is not None:
                _add_flows(run, step, node, out)
    return out


def _add_flows(run: Any, step: Any, node: S.Join, out: _Joins) -> None:
    receives = _RECEIVES.get(node.how, ())
    if not receives:
        return
    for left_pos, right_pos in _equal_pairs(run, node.cond):
        a = _source_column(run, step, node.left, left_pos, out)
        b = _source_column(run, step, node.right, right_pos, out)
        if (a is None or b is None or a[0] == b[0] or a[2] != b[2] or not hintable_type(a[2])
                or a[2] in _NOT_CROSSING):
            continue
        if "right" in receives:
            out.flows.setdefault(a[:2], set()).add(b[:2])
        if "left" in receives:
            out.flows.setdefault(b[:2], set()).add(a[:2])


def _equal_pairs(run: Any, cond: str) -> list[tuple[int, int]]:
    """The (left position, right position) of each ``__l<i> = __r<j>`` conjunct."""
    parser = run.spark._jsparkSession.sessionState().sqlParser()
    try:
        todo = [parser.parseExpression(cond)]
    except Exception:  # noqa: BLE001 -- a condition this parser does not read: no pairs
        return []
    pairs = []
    while todo:
        expr = todo.pop()
        kind = expr.nodeName()
        if kind == "And":
            todo += [expr.left(), expr.right()]
        elif kind == "EqualTo":
            names = [e.name() if e.nodeName() == "UnresolvedAttribute" else ""
                     for e in (expr.left(), expr.right())]
            sides = {n[:3]: n[3:] for n in names if n[:3] in (LEFT, RIGHT) and n[3:].isdigit()}
            if len(sides) == 2:
                pairs.append((int(sides[LEFT]), int(sides[RIGHT])))
    return pairs


def _input_of(node: S.Node, pos: int) -> tuple[int, int] | None:
    """The step input and position that column ``pos`` of ``node`` is, unchanged."""
    while not isinstance(node, S.Input):
        if isinstance(node, S.Project):
            match = _RENAME.match(node.exprs[pos])
            if match is None:
                return None
            pos = int(match.group(1))
        elif not isinstance(node, (S.Filter, S.Pass, S.Sort, S.Repartition, S.RepartitionBy)):
            return None
        node = node.child
    return node.input, pos


def _source_column(run: Any, step: Any, side: S.Node, pos: int,
                   out: _Joins) -> tuple[int, str, str] | None:
    """The (source step, source column, type) a join side's column copies, for a
    source that reaches the step along one path."""
    at = _input_of(side, pos)
    if at is None:
        return None
    op = step.inputs[at[0]]
    names = run.frame(op).columns
    if at[1] >= len(names) or is_hidden(names[at[1]]):
        return None
    state = run.steps[op].state
    copy = state.copy_at(sum(1 for c in names[:at[1]] if not is_hidden(c)))
    if copy is None:
        return None
    origin = state.slots.get(copy[0])
    if origin is None or origin.kind != "source" or origin.op not in out.reads:
        return None
    types = dict(run.frame(origin.op).dtypes)
    return (origin.op, copy[1], types[copy[1]]) if copy[1] in types else None
