"""Map a step's plan nodes onto a lineage type from :mod:`lineage_types`.

A step's :class:`~lineage_types.ColumnMapping` names user columns by position
(``__c0``, ``__c1``, ... from :func:`hippo.recorded.ids.pos_name`; input ``i`` of a
join or union is ``ColumnRef(i, ...)``): frames in the middle of a pipeline may carry
two columns of one name, and a mapping keyed by name would merge their lineage. The
step's ``columns`` give the names. This mapping is what the run's lineage state composes
(:meth:`hippo.recorded.state.LineageState.through`), so queries read it, not a copy.
"""

from __future__ import annotations

from collections.abc import Callable

from lineage_types import (
    ColumnMapping,
    ColumnRef,
    Identity,
    Key,
    LineageType,
    ManyToMany,
    ManyToOne,
    OneToMany,
    OneToOne,
    Passthrough,
)

from hippo.capture.plan import StepAnalysis, WindowFrame
from hippo.recorded.ids import pos_index, pos_name

__all__ = ["step_lineage_type", "source_lineage_type", "user_positions", "own_mapping",
           "framed_mapping"]

_FAN_OUT = {"Generate", "Join"}


def user_positions(columns: list[str], is_hidden: Callable[[str], bool]) -> dict[int, int]:
    """Full position -> user position of every user (not hidden) column."""
    users = [p for p, c in enumerate(columns) if not is_hidden(c)]
    return {full: u for u, full in enumerate(users)}


def step_lineage_type(
    analysis: StepAnalysis,
    input_columns: list[list[str]],
    output_columns: list[str],
    is_hidden: Callable[[str], bool],
    keyed: bool,
) -> LineageType:
    """The step's kind, positional user-column mapping and encoding (hidden columns left
    out); ``keyed`` for an aggregate or distinct, whose rows relate by group key."""
    users_in = [user_positions(cols, is_hidden) for cols in input_columns]
    mapping = own_mapping(analysis, input_columns, output_columns, is_hidden)
    if analysis.window_keys is not None:  # its own row, and its partition's rows by key
        framed = framed_mapping(analysis, input_columns, output_columns, is_hidden)
        both = ColumnMapping({c: mapping.contributing[c] | framed.contributing[c]
                              for c in mapping.contributing}, mapping.influencing)
        keys = tuple(pos_name(users_in[0][pos_index(k)]) for k in analysis.window_keys
                     if pos_index(k) in users_in[0])
        return ManyToMany(both, Key(keys))
    if keyed:
        keys = tuple(sorted((ref.column for ref in mapping.influencing if ref.input == 0),
                            key=pos_index))
        return ManyToOne(mapping, Key(keys))
    if set(analysis.kinds) & _FAN_OUT:
        return OneToMany(mapping, Passthrough())
    return OneToOne(mapping, Passthrough())


def own_mapping(
    analysis: StepAnalysis,
    input_columns: list[list[str]],
    output_columns: list[str],
    is_hidden: Callable[[str], bool],
) -> ColumnMapping:
    """The step's positional user-column mapping within a row: what each output column
    reads in the input row(s) it is computed from (a window step's frames aside)."""
    users_in = [user_positions(cols, is_hidden) for cols in input_columns]

    def refs(found: set[tuple[int, int]]) -> frozenset[ColumnRef]:
        return frozenset(ColumnRef(i, pos_name(users_in[i][p])) for i, p in found
                         if p in users_in[i])

    users_out = user_positions(output_columns, is_hidden)
    return ColumnMapping(
        {pos_name(u): refs(analysis.contributing[p]) for p, u in users_out.items()},
        refs(analysis.influencing),
    )


def framed_mapping(
    analysis: StepAnalysis,
    input_columns: list[list[str]],
    output_columns: list[str],
    is_hidden: Callable[[str], bool],
    frame: WindowFrame | None = None,
) -> ColumnMapping:
    """A window step's columns as read in each row's window ``frame`` (every frame if
    None): per output column the input columns its window functions read in the frame's
    rows, and the partition and order keys, which decide the frame's rows."""
    users_in = [user_positions(cols, is_hidden) for cols in input_columns]

    def refs(found: set[tuple[int, int]]) -> frozenset[ColumnRef]:
        return frozenset(ColumnRef(i, pos_name(users_in[i][p])) for i, p in found
                         if p in users_in[i])

    def read(by_frame: dict[WindowFrame, set[tuple[int, int]]]) -> set[tuple[int, int]]:
        if frame is not None:
            return by_frame.get(frame, set())
        return set().union(*by_frame.values())

    users_out = user_positions(output_columns, is_hidden)
    return ColumnMapping({pos_name(u): refs(read(analysis.framed[p]))
                          for p, u in users_out.items()},
                         refs(read(analysis.frame_influence)))


def source_lineage_type(columns: list[str]) -> LineageType:
    """A source or sink: every column is itself (positional, like every step)."""
    return Identity.of([pos_name(u) for u in range(len(columns))])
