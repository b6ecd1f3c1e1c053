"""Map a step's plan nodes onto a lineage type from :mod:`lineage_types`."""

from __future__ import annotations

from collections.abc import Callable

from lineage_types import (
    ColumnMapping,
    ColumnRef,
    Identity,
    Key,
    LineageType,
    ManyToOne,
    OneToMany,
    OneToOne,
    Passthrough,
)

from hippo.capture.plan import StepAnalysis

__all__ = ["step_lineage_type", "source_lineage_type"]

_FAN_OUT = {"Generate", "Join"}


def step_lineage_type(
    analysis: StepAnalysis,
    input_columns: list[list[str]],
    output_columns: list[str],
    is_hidden: Callable[[str], bool],
    key_columns: list[str] | None,
) -> LineageType:
    """The step's kind, user-column mapping and encoding (hidden columns left out)."""
    contributing: dict[str, set[ColumnRef]] = {}
    for pos, name in enumerate(output_columns):
        if is_hidden(name):
            continue
        refs = {
            ColumnRef(i, input_columns[i][p])
            for i, p in analysis.contributing[pos]
            if not is_hidden(input_columns[i][p])
        }
        contributing.setdefault(name, set()).update(refs)
    influencing = frozenset(
        ColumnRef(i, input_columns[i][p])
        for i, p in analysis.influencing
        if not is_hidden(input_columns[i][p])
    )
    mapping = ColumnMapping(
        {k: frozenset(v) for k, v in contributing.items()}, influencing
    )
    kinds = set(analysis.kinds)
    if key_columns is not None:
        return ManyToOne(mapping, Key(tuple(key_columns)))
    if kinds & _FAN_OUT:
        return OneToMany(mapping, Passthrough())
    return OneToOne(mapping, Passthrough())


def source_lineage_type(columns: list[str]) -> LineageType:
    return Identity.of(columns)
