"""Declared lineage: code Spark cannot see into, with the lineage its author declares.

``tracked.apply(fn, lineage=OneToOne(key="id"))`` runs ``fn`` (any ``DataFrame ->
DataFrame`` function; ``mapInPandas``, ``mapInArrow`` and ``applyInPandas`` go through
it) on the rows' own columns, and relates its output rows to its input rows by the
declared key, which both must hold:

* ``OneToOne(key=k)``: each output row is the input row with the same ``k`` (``k``
  unique on both sides); ``OneToMany(key=k)``: each output row comes from the input
  row with its ``k`` (unique in the input). The output rows are joined to their
  parents and carry their ids and slots on (passthrough).
* ``ManyToOne(key=ks)`` / ``ManyToMany(key=ks)``: each output row comes from every input
  row of its group ``ks``; the rows get the group key's hash as a key slot, as an
  aggregate's do (key encoding).

A declaration's column mapping (``columns=ColumnMapping(...)`` over names) says which
input columns each output column comes from; without one, an output column comes from
the input column of its name, or else from every input column. The data is checked
against the declaration before anything is recorded (one small Spark job each): a
parent key that is not unique, an output key no input row holds, a key column missing
on either side raise :class:`~hippo.errors.HippoError`, never lineage.

The function is recorded with the step (cloudpickled, closure included), so replay,
trace and removal run it again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lineage_types import ColumnMapping, ColumnRef, Key, LineageType
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from hippo.capture.recorder import code_location
from hippo.errors import HippoError, listing
from hippo.recorded import spec as S
from hippo.recorded.ids import content_hash, is_hidden, pos_name, quoted
from hippo.recorded.rebuild import declared_rows, pickled
from hippo.recorded.state import KeySlot, LineageState
from hippo.recorded.steps import Step

if TYPE_CHECKING:
    from hippo.capture.tracked import TrackedDataFrame

__all__ = ["apply"]

_KINDS = ("one_to_one", "one_to_many", "many_to_one", "many_to_many")


def _check_keys(keys: tuple[str, ...], columns: list[str], where: str, step: str) -> None:
    missing = [k for k in keys if k not in columns]
    if missing:
        raise HippoError(f"{step}: the declared key {listing(missing)} is not a column of "
                         f"{where}; its columns: {listing(columns)}")


def _first_repeat(df: DataFrame, keys: tuple[str, ...]) -> Any:
    return df.groupBy(*[F.col(quoted(k)) for k in keys]).count().where("count > 1").first()


def _mapping(lineage: LineageType, user: list[str], out: list[str], step: str
             ) -> dict[str, list[str]]:
    """Per output column, the input columns it comes from (by name)."""
    if lineage.columns is None:
        return {c: [c] if c in user else list(user) for c in out}
    given: ColumnMapping = lineage.columns
    unknown = [c for c in given.contributing if c not in out]
    refs = [r.column for rs in given.contributing.values() for r in rs]
    bad = [c for c in refs if c not in user]
    if unknown or bad:
        raise HippoError(f"{step}: the declared columns name {listing(unknown or bad)}, not "
                         f"{'an output' if unknown else 'an input'} column; output columns: "
                         f"{listing(out)}; input columns: {listing(user)}")
    return {c: sorted({r.column for r in given.contributing.get(c, ())}, key=user.index)
            for c in out}


def apply(data: TrackedDataFrame, fn: Any, lineage: Any, step: str = "apply"
          ) -> TrackedDataFrame:
    """``fn(data.df)``, recorded with the declared ``lineage`` (module docstring)."""
    from hippo.capture.tracked import TrackedDataFrame

    if not isinstance(lineage, LineageType) or not isinstance(lineage.encoding, Key) \
            or lineage.kind not in _KINDS:
        raise HippoError(
            f"{step} needs lineage=OneToOne(key=...), OneToMany(key=...), ManyToOne(key=...) "
            f"or ManyToMany(key=...) from lineage_types, got {lineage!r:.120}")
    keys = tuple(lineage.encoding.keys)
    if not keys:
        raise HippoError(f"{step}: declare the key that relates output rows to input rows")
    recorder = data.recorder
    recorder.check_open()
    user = data.columns
    _check_keys(keys, user, "its input", step)
    out = fn(data.df)
    if not isinstance(out, DataFrame):
        raise HippoError(f"{step}: `{getattr(fn, '__name__', fn)}` returned "
                         f"{type(out).__name__}, not a DataFrame")
    out_cols = out.columns
    _check_keys(keys, out_cols, "its output", step)
    hidden = [c for c in out_cols if is_hidden(c) or c == "hippo_row_id"]
    if hidden or len(set(out_cols)) != len(out_cols):
        raise HippoError(f"{step}: its output has hippo's or repeated column names "
                         f"{listing(hidden or out_cols)}")
    mapping = _mapping(lineage, user, out_cols, step)
    kind = lineage.kind
    # The declaration against the data: one small job each.
    if kind in ("one_to_one", "one_to_many"):
        dup = _first_repeat(data.df, keys)
        if dup is not None:
            raise HippoError(
                f"{step} was declared {type(lineage).__name__} by key {listing(keys)}, but "
                f"{dup['count']} input rows hold the key {tuple(dup)[:-1]}: a parent key "
                "must be unique in the input")
    if kind == "one_to_one":
        dup = _first_repeat(out, keys)
        if dup is not None:
            raise HippoError(
                f"{step} was declared OneToOne by key {listing(keys)}, but {dup['count']} "
                f"output rows hold the key {tuple(dup)[:-1]}; declare OneToMany(key=...)")
    hashed = [quoted(k) for k in keys]
    orphan = out.select(content_hash(hashed, "key").alias("k")).join(
        data.df.select(content_hash(hashed, "key").alias("k")), "k", "left_anti").first()
    if orphan is not None:
        raise HippoError(
            f"{step} was declared {type(lineage).__name__} by key {listing(keys)}, but an "
            "output row holds key values no input row holds (or of another type): the "
            "declaration does not describe this function")

    op_id = recorder.next_op
    slot = recorder.new_slot() if kind.startswith("many") else ""
    frame = declared_rows(data.frame, out, kind, keys, slot)
    state = data.lineage_state
    full = data.frame.columns
    if slot:
        origin = KeySlot(op_id, data.op_id,
                         tuple(quoted(pos_name(full.index(k))) for k in keys))
        contrib = tuple(frozenset((slot, user.index(c)) for c in mapping[o]) for o in out_cols)
        new_state = LineageState(
            {slot: origin}, contrib, frozenset((slot, user.index(k)) for k in keys),
            replay_exact=state.replay_exact,
            keyed={slot: tuple(out_cols.index(k) for k in keys)},
            id_slot=slot if kind == "many_to_one" else None)
    else:
        def cells(cols: list[str]) -> frozenset:
            return frozenset().union(*[state.contrib[user.index(c)] for c in cols])

        new_state = LineageState(
            dict(state.slots), tuple(cells(mapping[o]) for o in out_cols),
            state.influence | cells(list(keys)), replay_exact=state.replay_exact)
    columns = ColumnMapping(
        {pos_name(p): frozenset(ColumnRef(0, pos_name(user.index(c))) for c in mapping[o])
         for p, o in enumerate(out_cols)},
        frozenset(ColumnRef(0, pos_name(user.index(k))) for k in keys))
    recorded = type(lineage)(columns, Key(tuple(pos_name(user.index(k)) for k in keys)))
    spec = S.Declared(S.Input(0), tuple(frame.columns), pickled(fn), kind, keys, slot)
    recorder.add(Step(op_id, step, (data.op_id,), ("Declared",), recorded, spec, new_state,
                      tuple(out_cols), True, code_location()))
    return TrackedDataFrame(recorder, frame, new_state, op_id)
