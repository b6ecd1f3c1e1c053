"""A recorded step as stored: the typed form of one element of a run row's ``steps``.

Every field a reader needs is typed here (spec, lineage state, source and sink details),
read back with the run row's format version, so a run recorded months ago reads the same.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from lineage_types import LineageType, lineage_type_from_json

from hippo.errors import StoreFormatError
from hippo.recorded.spec import FORMAT, Node, check_format, spec_from_json
from hippo.recorded.state import LineageState

__all__ = ["SourceInfo", "SinkInfo", "Step", "SINK_ROWS_KINDS", "INLINE_ROWS", "pack_steps",
           "unpack_steps"]

# How a sink's written rows find their lineage: hashed from the row's own group-key
# columns (keyed), stored in ``sink_rows`` (explicit), or rebuilt by replay (replay).
SINK_ROWS_KINDS = ("keyed", "explicit", "replay")
# Up to this many rows, an explicit sink's rows' lineage is kept in the run's row: the
# run then makes one commit, not two (a sink_rows append took 0.25-0.65 s of a run).
INLINE_ROWS = 1000

_UNRENDERED = object()


def pack_steps(rows: list[dict[str, Any]]) -> str:
    """A run's steps (:meth:`Step.to_row` each) as the one JSON text its row stores.

    One text column instead of a Parquet struct of eleven fields: each Parquet column
    chunk carries its own metadata, which was most of a run row's file (TPC-H Q5's
    10.2 KiB became 6.8 KiB).
    """
    return json.dumps(rows, separators=(",", ":"))


def unpack_steps(text: str | None) -> list[dict[str, Any]]:
    """The steps of a stored run row (see :func:`pack_steps`)."""
    if not text:
        return []
    steps = json.loads(text)
    if not isinstance(steps, list):
        raise StoreFormatError(f"a run's steps must be a JSON array, got {text[:80]!r}")
    return steps


@dataclass(frozen=True)
class SourceInfo:
    """Where a source was read: a Delta path pinned at ``version``."""

    name: str
    path: str
    version: int
    ids: str  # "content" (hash of the row's values) or "row_tracking" (Delta's row ids)
    snapshot: bool  # a DataFrame source copied into the store
    slot: str

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "path": self.path, "version": self.version,
                "ids": self.ids, "snapshot": self.snapshot, "slot": self.slot}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SourceInfo:
        return cls(str(data["name"]), str(data["path"]), int(data["version"]),
                   str(data.get("ids", "content")), bool(data.get("snapshot", False)),
                   str(data["slot"]))


@dataclass(frozen=True)
class SinkInfo:
    """Where a sink was written, the Delta version this run's write made, and how its
    rows' lineage is found (one of :data:`SINK_ROWS_KINDS`)."""

    name: str
    path: str
    version: int | None
    mode: str
    slots: tuple[str, ...]
    rows: str
    # An explicit sink of at most INLINE_ROWS rows keeps its rows' lineage here, in the
    # run's row (``(hippo_row_id, row_hash, slots)`` each), not in ``sink_rows``.
    inline: tuple[tuple[Any, ...], ...] | None = None

    def to_json(self) -> dict[str, Any]:
        out = {"name": self.name, "path": self.path, "version": self.version,
               "mode": self.mode, "slots": list(self.slots), "rows": self.rows}
        if self.inline is not None:
            out["inline"] = [list(r) for r in self.inline]
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SinkInfo:
        rows = str(data.get("rows", "explicit"))
        if rows not in SINK_ROWS_KINDS:
            raise StoreFormatError(f"sink `{data.get('name')}`: unknown rows kind `{rows}`")
        version = data.get("version")
        inline = data.get("inline")
        return cls(str(data["name"]), str(data["path"]),
                   None if version is None else int(version), str(data.get("mode", "overwrite")),
                   tuple(data["slots"]), rows,
                   None if inline is None else tuple(tuple(r) for r in inline))


@dataclass(frozen=True)
class Step:
    """One step of a recorded run: a source read, a transformation, or a sink write."""

    op_id: int
    step: str  # "source", "sink", or the DataFrame method ("filter", "join", ...)
    inputs: tuple[int, ...]
    kinds: tuple[str, ...]  # plan node classes the step added
    lineage: LineageType
    spec: Node | None  # None for sources and sinks
    state: LineageState
    columns: tuple[str, ...]  # the user's output columns
    deterministic: bool
    code_location: str
    source: SourceInfo | None = None
    sink: SinkInfo | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_row(self, spec: Any = _UNRENDERED) -> dict[str, Any]:
        """The stored form (an element of the run row's ``steps``); ``spec`` is the spec's
        JSON form when the caller rendered it already."""
        detail: dict[str, Any] = dict(self.extra)
        if self.source is not None:
            detail["source"] = self.source.to_json()
        if self.sink is not None:
            detail["sink"] = self.sink.to_json()
        if spec is _UNRENDERED:
            spec = None if self.spec is None else self.spec.to_json()
        return {
            "op_id": self.op_id, "step": self.step, "inputs": list(self.inputs),
            "kinds": list(self.kinds), "lineage": self.lineage.to_json(),
            "spec": spec, "state": self.state.to_json(),
            "columns": list(self.columns), "deterministic": self.deterministic,
            "code_location": self.code_location, "detail": detail,
        }

    @classmethod
    def from_row(cls, row: Any, version: int = FORMAT) -> Step:
        """A step from its stored form (a Row or dict), written in format ``version``."""
        check_format(version, f"step {row['op_id']}")
        detail = dict(row["detail"] or {})
        spec = row["spec"]
        source = detail.pop("source", None)
        sink = detail.pop("sink", None)
        return cls(
            op_id=int(row["op_id"]), step=str(row["step"]), inputs=tuple(row["inputs"] or ()),
            kinds=tuple(row["kinds"] or ()),
            lineage=lineage_type_from_json(row["lineage"]),
            spec=None if spec is None else spec_from_json(spec, version),
            state=LineageState.from_json(row["state"]),
            columns=tuple(row["columns"] or ()), deterministic=bool(row["deterministic"]),
            code_location=str(row["code_location"]),
            source=None if source is None else SourceInfo.from_json(source),
            sink=None if sink is None else SinkInfo.from_json(sink),
            extra=detail,
        )
