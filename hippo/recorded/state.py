"""The lineage a tracked DataFrame carries: slots, and per-column cell lineage.

Every tracked row carries hidden *slot* columns. A slot holds the id of one row the
tracked row came from, and the slot's *origin* says where that id is resolved:

* :class:`SourceSlot`: a source row id (passthrough);
* :class:`KeySlot`: a group of an aggregate or distinct step ``op``; the id is a hash of
  the group key, resolved by rebuilding step ``input_op``'s output and keeping the rows
  whose key hashes to it (key encoding);
* :class:`MatchSlot`: the left row id of a semi join step ``op``; the right rows it
  matched are found again by re-pairing the two inputs;
* :class:`FrameSlot`: a row's id at an ordered window step ``op``; the rows of its
  window frame are found again by numbering its partition's rows in the window's order.

``keyed`` maps a key slot to the user columns that still hold its group key unchanged,
so the slot's value is a function of the row itself (``content_hash`` of those columns);
``id_slot`` names the key slot the row id equals, if any. A sink whose every slot is
keyed and whose row id is one of them needs nothing stored per row.

``copies[p]`` is ``(slot, source column)`` when user column ``p`` is an unchanged copy of
that column of the slot's source row (so a query may filter the source by its values).

``contrib[p]`` lists, for user column ``p``, the ``(slot, ref)`` cells it is computed
from; ``influence`` the cells that decided whether the row exists. ``ref`` is a source
column name for a source slot and a column position in the key step's input otherwise;
``MADE_BY_ROW`` (None) where the column was computed from no column (a literal,
``count(*)``) of the row that slot leads to. An empty ``contrib[p]`` is made by the
whole row.

There is one column-lineage model: each step's positional
:class:`~lineage_types.ColumnMapping` (its recorded lineage type). A state is those
mappings composed along the path from the slots' origins, over slot cells instead of
input columns: :func:`through` is ``ColumnMapping.then`` applied to a state, and
:func:`started` begins a new composition at a key slot.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from lineage_types import ColumnMapping, ColumnRef

from hippo.errors import StoreFormatError
from hippo.recorded.ids import pos_index

__all__ = ["Cell", "MADE_BY_ROW", "SourceSlot", "KeySlot", "MatchSlot", "FrameSlot", "Origin",
           "LineageState", "origin_from_json", "through", "started"]

Cell = tuple[str, Any]  # (slot column, column name or position at the slot's origin)
MADE_BY_ROW = None  # a cell's ref: made by the row its slot leads to, from no column


@dataclass(frozen=True)
class SourceSlot:
    """Ids of rows of the source read by step ``op``."""

    source: str
    op: int
    kind: str = field(default="source", init=False)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "source": self.source, "op": self.op}


@dataclass(frozen=True)
class KeySlot:
    """Group-key hashes of aggregate (or distinct) step ``op`` over step ``input_op``."""

    op: int
    input_op: int
    keys: tuple[str, ...]  # group-key SQL over the input's positional names
    kind: str = field(default="key", init=False)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "op": self.op, "input_op": self.input_op,
                "keys": list(self.keys)}


@dataclass(frozen=True)
class MatchSlot:
    """Left row ids of semi join step ``op``, whose matched right rows are re-paired."""

    op: int
    left_op: int
    right_op: int
    renames: dict[str, str]  # slot renames the right side got in the join
    kind: str = field(default="match", init=False)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "op": self.op, "left_op": self.left_op,
                "right_op": self.right_op, "renames": dict(self.renames)}


@dataclass(frozen=True)
class FrameSlot:
    """Row ids at window step ``op`` over step ``input_op``: each row's window frame is
    found again among the rows of its partition (``keys``), numbered in ``order`` with
    ties ordered by the row id. ``span``: ``frame`` (the rows of frame ``sql``, a ROWS
    frame if ``rows``) or ``before`` (the rows ordered strictly before the row's peers,
    and the row itself: what a rank reads)."""

    op: int
    input_op: int
    keys: tuple[str, ...]
    span: str
    order: tuple[tuple[str, bool, bool], ...]
    rows: bool = False
    sql: str = ""
    bounds: tuple[str, str] = ("", "")
    kind: str = field(default="frame", init=False)

    @property
    def grows(self) -> bool:
        """Whether removing rows can bring other rows into a frame (a ROWS frame with an
        offset: ``lag``, ``ROWS BETWEEN 2 PRECEDING AND CURRENT ROW``)."""
        return self.span == "frame" and self.rows and any(
            b not in ("UNBOUNDED", "CURRENT") for b in self.bounds)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "op": self.op, "input_op": self.input_op,
                "keys": list(self.keys), "span": self.span,
                "order": [list(o) for o in self.order], "rows": self.rows, "sql": self.sql,
                "bounds": list(self.bounds)}


Origin = SourceSlot | KeySlot | MatchSlot | FrameSlot


def origin_from_json(data: dict[str, Any]) -> Origin:
    """A slot origin from its JSON form."""
    kind = data.get("kind")
    if kind == "source":
        return SourceSlot(str(data["source"]), int(data["op"]))
    if kind == "key":
        return KeySlot(int(data["op"]), int(data["input_op"]), tuple(data["keys"]))
    if kind == "frame":
        return FrameSlot(int(data["op"]), int(data["input_op"]), tuple(data["keys"]),
                         str(data["span"]), tuple((str(o[0]), bool(o[1]), bool(o[2]))
                                                  for o in data["order"]),
                         bool(data["rows"]), str(data["sql"]), tuple(data["bounds"]))
    if kind == "match":
        return MatchSlot(int(data["op"]), int(data["left_op"]), int(data["right_op"]),
                         dict(data["renames"]))
    raise StoreFormatError(f"unknown slot kind `{kind}`; known: `frame`, `key`, `match`, "
                           "`source`")


@dataclass(frozen=True)
class LineageState:
    """Slots and cell lineage of one tracked DataFrame (positions = user columns)."""

    slots: dict[str, Origin]
    contrib: tuple[frozenset[Cell], ...]
    influence: frozenset[Cell] = frozenset()
    order: frozenset[Cell] = field(default=frozenset())
    replay_exact: bool = True
    keyed: dict[str, tuple[int, ...]] = field(default_factory=dict)
    id_slot: str | None = None
    copies: tuple[tuple[str, str] | None, ...] = ()

    def copy_at(self, p: int) -> tuple[str, str] | None:
        """The ``(slot, source column)`` user column ``p`` copies, if any."""
        return self.copies[p] if p < len(self.copies) else None

    def renamed(self, mapping: dict[str, str]) -> LineageState:
        """The same lineage with slot columns renamed (for the right side of a join)."""
        if not mapping:
            return self

        def cells(cs: frozenset[Cell]) -> frozenset[Cell]:
            return frozenset((mapping.get(s, s), r) for s, r in cs)

        return replace(
            self,
            slots={mapping.get(s, s): o for s, o in self.slots.items()},
            contrib=tuple(cells(c) for c in self.contrib),
            influence=cells(self.influence),
            order=cells(self.order),
            keyed={mapping.get(s, s): p for s, p in self.keyed.items()},
            id_slot=mapping.get(self.id_slot, self.id_slot) if self.id_slot else None,
            copies=tuple(None if c is None else (mapping.get(c[0], c[0]), c[1])
                         for c in self.copies),
        )

    def restricted(self, slots: set[str]) -> LineageState:
        """Drop every cell of slots the DataFrame no longer carries."""

        def cells(cs: frozenset[Cell]) -> frozenset[Cell]:
            return frozenset(c for c in cs if c[0] in slots)

        return replace(
            self,
            slots={s: o for s, o in self.slots.items() if s in slots},
            contrib=tuple(cells(c) for c in self.contrib),
            influence=cells(self.influence),
            order=cells(self.order),
            keyed={s: p for s, p in self.keyed.items() if s in slots},
            id_slot=self.id_slot if self.id_slot in slots else None,
            copies=tuple(c if c is not None and c[0] in slots else None for c in self.copies),
        )

    def to_json(self) -> dict[str, Any]:
        def cells(cs: frozenset[Cell]) -> list[list[Any]]:
            return sorted(([s, r] for s, r in cs), key=lambda c: (c[0], str(c[1])))

        return {
            "slots": {s: o.to_json() for s, o in self.slots.items()},
            "contrib": [cells(c) for c in self.contrib],
            "influence": cells(self.influence),
            "order": cells(self.order),
            "replay_exact": self.replay_exact,
            "keyed": {s: list(p) for s, p in self.keyed.items()},
            "id_slot": self.id_slot,
            "copies": [None if c is None else list(c) for c in self.copies],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LineageState:
        def cells(cs: list[list[Any]]) -> frozenset[Cell]:
            return frozenset((s, r) for s, r in cs)

        return cls(
            slots={s: origin_from_json(o) for s, o in data["slots"].items()},
            contrib=tuple(cells(c) for c in data["contrib"]),
            influence=cells(data["influence"]),
            order=cells(data.get("order", [])),
            replay_exact=data.get("replay_exact", True),
            keyed={s: tuple(p) for s, p in data.get("keyed", {}).items()},
            id_slot=data.get("id_slot"),
            copies=tuple(None if c is None else (c[0], c[1]) for c in data.get("copies", [])),
        )


def through(mapping: ColumnMapping, states: Sequence[LineageState]
            ) -> tuple[tuple[frozenset[Cell], ...], frozenset[Cell]]:
    """The cells of a step's output columns and its influencing cells: the step's
    positional ``mapping`` composed with its inputs' states (``states[i]`` is input
    ``i``), as :meth:`ColumnMapping.then` composes two mappings. The inputs' own
    influencing cells are the caller's to carry (a key step drops them)."""

    def cells(refs: frozenset[ColumnRef]) -> frozenset[Cell]:
        out: set[Cell] = set()
        for ref in refs:
            found = states[ref.input].contrib[pos_index(ref.column)]
            # A column computed from no column (a literal, count(*)) is made by its row:
            # by that input's row, which an outer join may not have (``MADE_BY_ROW``).
            out |= found or {(slot, MADE_BY_ROW) for slot in states[ref.input].slots}
        return frozenset(out)

    return (tuple(cells(refs) for refs in mapping.contributing.values()),
            cells(mapping.influencing))


def started(mapping: ColumnMapping, slot: str, input: int = 0
            ) -> tuple[tuple[frozenset[Cell], ...], frozenset[Cell]]:
    """Like :func:`through`, for a step whose rows are resolved through ``slot`` (a key
    slot): input ``input``'s columns become the slot's cells ``(slot, position)``."""

    def cells(refs: frozenset[ColumnRef]) -> frozenset[Cell]:
        return frozenset((slot, pos_index(ref.column)) for ref in refs if ref.input == input)

    return (tuple(cells(refs) for refs in mapping.contributing.values()),
            cells(mapping.influencing))
