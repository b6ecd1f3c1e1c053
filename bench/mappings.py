"""Column mappings declared by hand, one per step, next to each workload's code.

The oracle of :mod:`bench.cellwise` needs, for every step of a workload, which input
columns each output column is computed from (*contributing*) and which input columns
decide whether a row exists (*influencing*: filter predicates, join keys, group keys,
and the sort keys a limit cuts by). Each workload declares them by reading its own code
(``bench.tpch_queries.LINEAGE``, ``bench.workloads.FLIGHTS_LINEAGE``), so the oracle
does not take them from hippo's store or plan analysis, which it is there to check.

A declaration names only what a step computes. Every other output column is declared an
unchanged copy of the input column of the same name, which must then exist on exactly
one input side; join columns on both sides (``on="key"`` joins) say which side the
output takes. :func:`resolve` checks the declarations against the steps an eager run
made (:attr:`bench.cellwise.EagerRecorder.steps`): same steps in the same order, every
output column mapped, every referenced column present on its side.

Not checked here: that a declaration is *right*, i.e. that the code computes a column
from the columns declared. That is what the comparison with hippo's answers and with
its recorded mappings (``tests/bench/test_tpch_tiny.py``) is for: two derivations made
independently must agree.

Examples
--------
>>> steps = (filter_on("dep_delay"), group_agg(["carrier"], avg_delay="dep_delay"))
>>> steps[1].computed
{'avg_delay': ('dep_delay',)}
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench.cellwise import Step

__all__ = [
    "Ref", "Declared", "StepMapping", "DeclarationError", "resolve",
    "filter_on", "select", "with_column", "order_by", "limit", "join", "group_agg",
]

# An input column: a name found on exactly one input side, or (side, name).
Ref = str | tuple[int, str]
Refs = Ref | Sequence[Ref]


class DeclarationError(ValueError):
    """Raised when a declaration does not fit the steps or columns a workload has."""


@dataclass(frozen=True)
class Declared:
    """One step's lineage as written by hand.

    ``computed``: output column -> the input columns it is computed from (others are
    copies by name). ``influencing``: input columns deciding whether a row exists.
    ``left_copies``: columns on both join sides that the output copies from the left.
    ``copied``: for aggregates, exactly the output columns that are copies (the keys).
    """

    step: str
    computed: Mapping[str, tuple[Ref, ...]] = field(default_factory=dict)
    influencing: tuple[Ref, ...] = ()
    left_copies: tuple[str, ...] = ()
    copied: tuple[str, ...] | None = None


@dataclass(frozen=True)
class StepMapping:
    """One step's column mapping, with input columns as ``(side, name)``."""

    step: str
    columns: tuple[str, ...]
    contributing: Mapping[str, frozenset[tuple[int, str]]]
    influencing: frozenset[tuple[int, str]]


def _refs(refs: Refs) -> tuple[Ref, ...]:
    if isinstance(refs, str) or (isinstance(refs, tuple) and len(refs) == 2
                                 and isinstance(refs[0], int)):
        return (refs,)  # type: ignore[return-value]
    return tuple(refs)  # type: ignore[arg-type]


def _computed(items: Mapping[str, Refs]) -> dict[str, tuple[Ref, ...]]:
    return {name: _refs(refs) for name, refs in items.items()}


# -- one constructor per step kind of bench.cellwise.EagerFrame -------------------------
def filter_on(*predicate: Ref) -> Declared:
    """A filter whose condition reads ``predicate``; every column kept as it is."""
    return Declared("filter", influencing=predicate)


def select(**computed: Refs) -> Declared:
    """A select; ``computed`` names the output columns that are not plain copies."""
    return Declared("select", _computed(computed))


def with_column(name: str, *refs: Ref) -> Declared:
    """``withColumn(name, expression reading refs)``."""
    return Declared("withColumn", {name: refs})


def order_by() -> Declared:
    """A sort with no limit after it: it moves rows, it neither drops nor computes any."""
    return Declared("orderBy")


def limit(*sort_keys: Ref) -> Declared:
    """A limit right after a sort by ``sort_keys``, which decide the rows it keeps."""
    return Declared("limit", influencing=sort_keys)


def join(*keys: Ref, using: Iterable[str] = ()) -> Declared:
    """A join on ``keys`` (both sides' columns) and on the same-named columns ``using``,
    which the output holds once, from the left side (inner, left and left semi joins)."""
    using = tuple(using)
    return Declared("join", influencing=keys + tuple((s, u) for u in using for s in (0, 1)),
                    left_copies=using)


def group_agg(keys: Iterable[str], **aggregates: Refs) -> Declared:
    """``groupBy(*keys).agg(...)``: ``aggregates`` maps each aggregate's output column to
    the columns it reads (``()`` for ``count(lit(1))``); the keys are copied."""
    keys = tuple(keys)
    return Declared("groupBy.agg", _computed(aggregates), keys, copied=keys)


# -- checking against the steps an eager run made -----------------------------------------
def _side_of(ref: Ref, step: Step, what: str) -> tuple[int, str]:
    where = f"step {step.index} (`{step.name}`), {what}"
    if isinstance(ref, tuple):
        side, name = ref
        if not 0 <= side < len(step.in_columns) or name not in step.in_columns[side]:
            raise DeclarationError(f"{where}: input {side} has no column `{name}`; its "
                                   f"columns are {_listed(step.in_columns, side)}")
        return side, name
    sides = [i for i, cols in enumerate(step.in_columns) if ref in cols]
    if len(sides) != 1:
        found = "no input" if not sides else "both inputs"
        raise DeclarationError(f"{where}: `{ref}` is a column of {found}; say which side "
                               f"as (side, name). The inputs' columns: {step.in_columns}")
    return sides[0], ref


def _listed(in_columns: list[list[str]], side: int) -> str:
    if not 0 <= side < len(in_columns):
        return f"(none: the step has {len(in_columns)} input(s))"
    return ", ".join(f"`{c}`" for c in in_columns[side])


def _resolve_one(declared: Declared, step: Step) -> StepMapping:
    if declared.step != step.name:
        raise DeclarationError(f"step {step.index} is a `{step.name}`, declared as a "
                               f"`{declared.step}`")
    out = step.out_columns
    repeated = sorted({c for c in out if out.count(c) > 1})
    if repeated:
        raise DeclarationError(f"step {step.index} (`{step.name}`): output columns "
                               f"{repeated} repeat; a mapping by name cannot tell them apart")
    unknown = [c for c in declared.computed if c not in out]
    if unknown:
        raise DeclarationError(f"step {step.index} (`{step.name}`): declared columns "
                               f"{unknown} are not output columns; those are {out}")
    copies = [c for c in out if c not in declared.computed]
    if declared.copied is not None and sorted(copies) != sorted(declared.copied):
        raise DeclarationError(f"step {step.index} (`{step.name}`): the output copies "
                               f"{copies} but the declaration copies {list(declared.copied)}")
    contributing: dict[str, frozenset[tuple[int, str]]] = {}
    for col in out:
        if col in declared.computed:
            refs = {_side_of(r, step, f"column `{col}`") for r in declared.computed[col]}
        elif col in declared.left_copies:
            refs = {_side_of((0, col), step, f"column `{col}`")}
            _side_of((1, col), step, f"column `{col}`")
        else:
            refs = {_side_of(col, step, f"column `{col}` (a copy by name)")}
        contributing[col] = frozenset(refs)
    influencing = frozenset(_side_of(r, step, "influencing") for r in declared.influencing)
    return StepMapping(step.name, tuple(out), contributing, influencing)


def resolve(declared: Sequence[Declared], steps: Sequence[Step]) -> list[StepMapping]:
    """The declared mappings with every column placed on its input side, one per step.

    Raises
    ------
    DeclarationError
        If the declarations and the steps differ in number or kind, or a declaration
        names a column the step does not have (the message names the step and column).
    """
    if len(declared) != len(steps):
        raise DeclarationError(
            f"{len(declared)} step(s) declared, the workload made {len(steps)}: "
            f"{[s.name for s in steps]}")
    return [_resolve_one(d, s) for d, s in zip(declared, steps)]
