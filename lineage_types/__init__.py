"""The lineage-type algebra of Hippo on Spark: pure Python, no Spark.

A lineage type describes, once per operator, how its output rows relate to its input
rows (:class:`OneToOne`, :class:`OneToMany`, :class:`ManyToOne`, :class:`ManyToMany`,
:class:`Identity`), which input cells each output column comes from
(:class:`ColumnMapping`), and how the row relation is stored (:class:`Passthrough`,
:class:`Key`, :class:`Explicit`, :class:`Chain`). Types round-trip through plain JSON and
compose along a path of operators.

Examples
--------
>>> from lineage_types import ColumnMapping, ColumnRef, Key, ManyToOne, OneToOne, Passthrough
>>> filtered = OneToOne(ColumnMapping.identity(["carrier", "delay"]).with_influencing(["delay"]),
...                     Passthrough())
>>> by_carrier = ManyToOne(ColumnMapping({"carrier": {ColumnRef(0, "carrier")},
...                                      "avg_delay": {ColumnRef(0, "delay")}},
...                                     influencing={ColumnRef(0, "carrier")}),
...                        Key(("carrier",)))
>>> path = filtered.then(by_carrier)
>>> path.kind, path.encoding
('many_to_one', Key(keys=('carrier',)))
>>> sorted(ref.column for ref in path.columns.influencing)
['carrier', 'delay']
"""

from __future__ import annotations

from lineage_types.columns import ColumnMapping, ColumnRef
from lineage_types.encodings import Chain, Encoding, Explicit, Key, Passthrough, encoding_from_json
from lineage_types.errors import LineageTypeError
from lineage_types.kinds import (
    Identity,
    LineageType,
    ManyToMany,
    ManyToOne,
    OneToMany,
    OneToOne,
    compose,
    compose_path,
    lineage_type_from_json,
)

__all__ = [
    "ColumnRef",
    "ColumnMapping",
    "Passthrough",
    "Key",
    "Explicit",
    "Chain",
    "Encoding",
    "LineageType",
    "OneToOne",
    "OneToMany",
    "ManyToOne",
    "ManyToMany",
    "Identity",
    "compose",
    "compose_path",
    "lineage_type_from_json",
    "encoding_from_json",
    "LineageTypeError",
]
