"""Anomaly removal with repair, and its what-if preview (undone by :mod:`.restore`).

``remove`` takes the source rows a ``where`` chooses out of a recorded run's source and
repairs every sink they reached, so each sink equals a recomputation of the run on the
cleaned sources:

1. a sink written straight from a group-by of counts and exact sums, reached through
   linear steps, is repaired by subtraction (:mod:`hippo.diagnose.invert`): the
   group-by over the removed rows alone, taken from the written rows;
2. for the other sinks the affected output rows are found by forward lineage, and the
   repair is *incremental* (only the affected rows are recomputed, from
   their backward lineage less the removed rows) or *full* (the run is replayed on the
   cleaned sources), chosen from an estimate of their costs and from whether the path
   from the source to the sink lets a removal bring rows in (then only a full
   recompute is exact); the choice and its reason are recorded;
3. with ``dry_run`` nothing changes: the report previews each affected row's value now
   and after;
4. otherwise the removed rows are copied to the store's ``quarantine`` table, deleted
   from the source table, the changes written into each sink in one Delta transaction
   (a MERGE matching rows by their value hash, or an overwrite where identical rows
   make a MERGE ambiguous), and the removal recorded as a new run (same steps, the new
   versions) plus a ``removals`` row linking it to the run it repaired.

Removals and restores of one store are serialized across processes (a lock per store),
and each checks first that no table it would change has moved since the run it
repairs; it refuses with RemovalError otherwise. The commits are in this order: a
``started`` event in ``removals`` (every table it may change, at its version before),
the quarantine, the source, each sink (and its lineage rows), the removal's run, an
``applied`` event. Queries see the repaired lineage only after the run row. A process
that stops part way loses nothing (a removed row is in the source or the quarantine);
the removal stays ``started``, further removals are refused until it is restored, and
``restore`` rolls back exactly the tables its tagged commits reached. A restore that
itself stops part way is finished by calling it again: tables its own tagged commits
already restored are left as they are.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from hippo.diagnose.invert import NOT_GROUP_BY, Inversion, invertible, subtracted
from hippo.diagnose.ledger import (
    commit,
    event,
    fault,
    incomplete,
    now,
    removal_lock,
    restored_to,
)
from hippo.errors import RemovalError, listing
from hippo.query.backward import lineage_of
from hippo.query.forward import forward
from hippo.query.slots import Slots, computed_once, cut_sources, query_errors
from hippo.query.where import checked_filter
from hippo.recorded import spec as S
from hippo.recorded.ids import ID, content_hash, is_hidden, quoted
from hippo.recorded.rebuild import rebuilt_plans
from hippo.recorded.run import RecordedRun
from hippo.recorded.sink_rows import ROW_HASH, row_hash, sink_rows_of
from hippo.recorded.state import FrameSlot, KeySlot
from hippo.recorded.steps import Step, pack_steps, unpack_steps
from hippo.session import session_conf
from hippo.store import tables
from hippo.store.delta_log import latest_version

log = logging.getLogger(__name__)

__all__ = ["SinkRepair", "RemovalReport", "remove", "INCREMENTAL_SHARE"]

# Incremental repair recomputes each affected row from its lineage, a few joins per
# row's sources; a full recompute reads every source once. Above this share of a sink's
# rows affected, the estimate says a full recompute is cheaper.
INCREMENTAL_SHARE = 1 / 3
# A repair MERGE by subtraction whose changed rows Spark sizes at most this (by their
# types' default sizes) is joined to the sink by broadcast: no shuffle of the sink's
# rows to find the files it touches.
_BROADCAST_BYTES = 32 << 20
# Plan nodes that, after an aggregate the removal reaches, cannot bring rows in.
_AFTER_AGGREGATE_OK = {"Project", "Sort", "Repartition", "RepartitionByExpression", "Union",
                       "SubqueryAlias", "Transform", "Fit"}


@dataclass(frozen=True)
class SinkRepair:
    """How one sink was (or, in a dry run, would be) repaired."""

    sink: str
    changed: int
    deleted: int
    added: int
    how: str  # "incremental" or "full"
    why: str
    write: str  # "merge", "overwrite", or "none" (a dry run, or nothing changed)
    preview: DataFrame | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class RemovalReport:
    """What a removal did (or, with ``dry_run``, would do)."""

    run_id: str | None  # the removal's run (None for a dry run); pass it to restore
    repaired_run: str
    source: str
    where: str
    removed: int
    sinks: dict[str, SinkRepair]
    dry_run: bool
    # Wall seconds per phase: "plan" (finding the removed rows and computing every
    # sink's repair), then, unless a dry run, "quarantine" (the started event and the
    # quarantined rows), "source" (the delete), "sinks" (their writes), "record" (the
    # removal's run and its applied event).
    seconds: dict[str, float] = field(default_factory=dict, compare=False)

    def to_json(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "repaired_run": self.repaired_run,
                "source": self.source, "where": self.where, "removed": self.removed,
                "dry_run": self.dry_run,
                "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
                "sinks": {n: {"changed": r.changed, "deleted": r.deleted, "added": r.added,
                              "how": r.how, "why": r.why, "write": r.write}
                          for n, r in self.sinks.items()}}


# -- planning ---------------------------------------------------------------------------
def _is_key_step(step: Step) -> bool:
    """An aggregate, distinct or window step: its values come from other rows too."""
    return any(isinstance(o, (KeySlot, FrameSlot)) and o.op == step.op_id
               for o in step.state.slots.values())


def _window_on_copies(run: RecordedRun, step: Step) -> bool:
    """Whether ``step`` is a window whose partition and order keys are unchanged source
    columns: values an earlier aggregate computed can change its values, never which
    rows share a partition or how they are ordered."""
    if not set(step.kinds) <= _AFTER_AGGREGATE_OK | {"Window"}:
        return False
    origins = [o for o in step.state.slots.values()
               if isinstance(o, (KeySlot, FrameSlot)) and o.op == step.op_id]
    if not origins:
        return False
    columns = run.frame(step.inputs[0]).columns
    state = run.steps[step.inputs[0]].state
    for origin in origins:
        sqls = list(origin.keys) + [o[0] for o in getattr(origin, "order", ())]
        for full in {int(m) for sql in sqls for m in re.findall(r"__c(\d+)", sql)}:
            if is_hidden(columns[full]):
                return False
            user = sum(1 for c in columns[:full] if not is_hidden(c))
            if state.copy_at(user) is None:
                return False
    return True


def _joins(step: Step) -> list[S.Join]:
    nodes = S.walk(step.spec) if step.spec is not None else []
    return [node for node in nodes if isinstance(node, S.Join)]


def full_only(run: RecordedRun, source_op: int, sink: Step) -> str | None:
    """Why removing rows of ``source_op`` can bring rows into ``sink`` (then only a full
    recompute is exact), or None if a removal can only change or delete its rows."""
    reached = nx.descendants(run.graph, source_op) | {source_op}
    after_agg: dict[int, bool] = {}
    for n in run.upstream(sink.op_id):
        step = run.steps[n]
        if n not in reached or n == source_op:
            continue
        where = f"`{step.step}` at {step.code_location}"
        if not step.state.replay_exact:
            return f"{where} picks rows, and without the removed ones it may pick others"
        if isinstance(step.spec, S.Declared) and step.spec.kind == "many_to_many":
            return (f"{where} was declared ManyToMany: its rows are told apart by their "
                    "values, which a removal changes, so they are recomputed whole")
        fed = [i for i in step.inputs if i in reached]
        if any(after_agg.get(i) for i in fed) and not set(step.kinds) <= _AFTER_AGGREGATE_OK \
                and not _window_on_copies(run, step):
            return (f"{where} filters, joins or groups values an earlier aggregate "
                    "computed, and a removal can change those values so rows come in")
        for join in _joins(step):
            sides = {"left": step.inputs[0] in reached,
                     "right": len(step.inputs) > 1 and step.inputs[1] in reached}
            bringing = {"left_anti": ["right"], "left": ["right"], "left_outer": ["right"],
                        "right": ["left"], "right_outer": ["left"],
                        "full": ["left", "right"], "full_outer": ["left", "right"]}
            if any(sides[s] for s in bringing.get(join.how, [])):
                return (f"{where} is a {join.how.replace('_', ' ')} join: removing rows "
                        "of one side can bring unmatched rows of the other into the output")
        after_agg[n] = any(after_agg.get(i) for i in fed) or _is_key_step(step)
    return None


def _refit(run: RecordedRun, source_op: int) -> frozenset[int]:
    """The fit steps whose training rows a removal from ``source_op`` can reach: their
    models are fitted again on the cleaned rows; the others are applied as saved."""
    return frozenset(n for n in nx.descendants(run.graph, source_op)
                     if run.steps[n].step == "fit")


# -- computing the repair --------------------------------------------------------------
def _new_rows(frame: DataFrame, sink: Step) -> DataFrame:
    """``hippo_row_id``, ``new_hash`` and the user columns of recomputed sink rows."""
    user = [c for c in frame.columns if not is_hidden(c)]
    return frame.select(F.col(ID).alias("hippo_row_id"), row_hash(user).alias("new_hash"),
                        *[F.col(quoted(c)) for c in user]).toDF(
        "hippo_row_id", "new_hash", *sink.columns)


def _changes(old: DataFrame, new: DataFrame) -> DataFrame:
    """Per row id: old and new row counts and hashes, and the change."""
    old_g = old.groupBy("hippo_row_id").agg(F.count(F.lit(1)).alias("old_n"),
                                            F.first("row_hash").alias("old_hash"))
    new_g = new.groupBy("hippo_row_id").agg(F.count(F.lit(1)).alias("new_n"),
                                            F.first("new_hash").alias("new_hash"))
    joined = old_g.join(new_g, "hippo_row_id", "full")
    change = (F.when(F.col("old_n").isNull(), "added")
              .when(F.col("new_n").isNull(), "deleted")
              .when((F.col("old_hash") != F.col("new_hash")) | (F.col("old_n") != F.col("new_n")),
                    "changed")
              .otherwise("unchanged"))
    return joined.withColumn("change", change)


def _counted_changes(old: DataFrame, new: DataFrame) -> tuple[DataFrame, dict[str, int]]:
    """:func:`_changes`, computed once, and how many ids each kind of change has (at
    most four rows reach the driver)."""
    changes = computed_once(_changes(old, new))
    return changes, _counts(changes)


def _counts(changes: DataFrame) -> dict[str, int]:
    return {r["change"]: r["count"] for r in changes.groupBy("change").count().collect()}


@dataclass
class _Plan:
    sink: Step
    how: str
    why: str
    new: DataFrame | None  # recomputed rows in scope (hippo_row_id, new_hash, user columns)
    frame: DataFrame | None  # the same rows with hippo's hidden columns
    changes: DataFrame | None  # None: nothing changes
    counts: dict[str, int]
    one_row_per_id: bool = False  # known without a look: every id one row, values distinct


def _plan(slots: Slots, sink: Step, source_op: int, cleaned: DataFrame, removed: DataFrame,
          affected: DataFrame | None, force_full: str | None = None,
          inversion: Inversion | str | None = None) -> _Plan:
    """How to repair ``sink``: by subtraction (``inversion``), or else from lineage or a
    full recompute; a string ``inversion`` says why subtraction does not apply."""
    run = slots.run
    written = slots.written(sink)
    removed_ids = removed.select(ID).distinct()
    if isinstance(inversion, Inversion) and force_full is None:
        changes = computed_once(subtracted(run, inversion, source_op, removed, written))
        counts = _counts(changes)
        new = changes.filter(F.col("new_n").isNotNull()).select(
            "hippo_row_id", "new_hash", *[F.col("after." + quoted(c)).alias(c)
                                          for c in sink.columns])
        groups = sum(counts.values())
        why = (f"the removed rows reach {groups} groups: their counts and exact sums are "
               "subtracted from the written rows (no other group's rows are read; a full "
               "recompute reads every source row)")
        return _Plan(sink, "incremental", why, new, None, changes, counts, one_row_per_id=True)
    old = slots.sink_rows(sink).select("hippo_row_id", "row_hash")
    total = written.count()
    n_affected = 0 if affected is None else affected.count()
    unsafe = force_full or full_only(run, source_op, sink)
    share = n_affected / max(total, 1)
    if unsafe is None and affected is None:
        return _Plan(sink, "incremental", "no row of it is affected", None, None, None, {})
    if unsafe is None and share <= INCREMENTAL_SHARE:
        assert affected is not None
        how = "incremental"
        why = (f"{n_affected} of {total} rows affected ({share:.1%}, at most "
               f"{INCREMENTAL_SHARE:.0%}): recomputing them from their lineage is cheaper")
        ids = affected.select("hippo_row_id").distinct()
        chosen = written.join(affected.select(
            row_hash([c for c in affected.columns if c != "hippo_row_id"]).alias(ROW_HASH)
        ).distinct(), ROW_HASH, "left_semi")
        cut = cut_sources(run, lineage_of(slots, sink.sink.name, chosen, None, False,
                                              grown=True))
        if source_op in cut:
            cut[source_op] = cut[source_op].join(removed_ids, ID, "left_anti").select(
                *[F.col(quoted(c)) for c in cut[source_op].columns])
        frame = run.frames(sink.inputs[0], cut, refit=_refit(run, source_op))[sink.inputs[0]]
        frame = frame.join(ids.withColumnRenamed("hippo_row_id", ID), ID, "left_semi").select(
            *[F.col(quoted(c)) for c in frame.columns])
        old = old.join(ids, "hippo_row_id", "left_semi")
    else:
        how = "full"
        why = unsafe or (f"{n_affected} of {total} rows affected ({share:.1%}, over "
                         f"{INCREMENTAL_SHARE:.0%}): one recompute of the whole sink is cheaper")
        sources = {s.op_id: run.frame(s.op_id) for s in run.sources.values()}
        sources[source_op] = cleaned
        frame = run.frames(sink.inputs[0], sources,
                           refit=_refit(run, source_op))[sink.inputs[0]]
    frame = frame.localCheckpoint(eager=True)
    new = _new_rows(frame, sink)
    changes, counts = _counted_changes(old, new)
    if isinstance(inversion, str) and inversion != NOT_GROUP_BY:
        why += f"; not by subtraction: {inversion}"
    return _Plan(sink, how, why, new, frame, changes, counts)


def _preview(slots: Slots, plan: _Plan) -> DataFrame:
    """Per changed, deleted or added row id: the change, its values before and after,
    and how many rows of the sink hold it before and after (rows equal in every value
    and lineage share an id)."""
    if plan.changes is None or plan.new is None:
        return slots.spark.createDataFrame(
            [], "hippo_row_id bigint, change string, before string, after string, "
                "rows_before bigint, rows_after bigint")
    changed = plan.changes.filter(F.col("change") != "unchanged")
    if "before" in plan.changes.columns:  # subtraction: both values are at hand
        return changed.select("hippo_row_id", "change", "before", "after",
                              F.coalesce("old_n", F.lit(0)).alias("rows_before"),
                              F.coalesce("new_n", F.lit(0)).alias("rows_after"))
    cols = list(plan.sink.columns)
    written = slots.written(plan.sink)
    before = written.dropDuplicates([ROW_HASH]).select(
        F.col(ROW_HASH).alias("old_hash"), F.struct(*[F.col(quoted(c)) for c in cols]).alias("before"))
    after = plan.new.dropDuplicates(["hippo_row_id"]).select(
        "hippo_row_id", F.struct(*[F.col(quoted(c)) for c in cols]).alias("after"))
    return (changed.join(before, "old_hash", "left").join(after, "hippo_row_id", "left")
            .select("hippo_row_id", "change", "before", "after",
                    F.coalesce("old_n", F.lit(0)).alias("rows_before"),
                    F.coalesce("new_n", F.lit(0)).alias("rows_after")))


def _mergeable(slots: Slots, plan: _Plan) -> bool:
    """Whether a MERGE matching rows by value hash touches exactly the affected rows:
    no two affected ids share a value, no unaffected row has an affected value, and a
    changed id keeps its number of rows."""
    touched = plan.changes.filter(F.col("change").isin("changed", "deleted"))
    stats = touched.agg(F.count(F.lit(1)).alias("ids"),
                        F.countDistinct("old_hash").alias("hashes"),
                        F.sum("old_n").alias("rows"),
                        F.sum(F.when((F.col("change") == "changed")
                                     & (F.col("old_n") != F.col("new_n")), 1).otherwise(0))
                        .alias("resized")).first()
    if not stats["ids"]:
        return True
    if stats["ids"] != stats["hashes"] or stats["resized"]:
        return False
    written = slots.written(plan.sink)
    same = written.join(touched.select(F.col("old_hash").alias(ROW_HASH)), ROW_HASH,
                        "left_semi").count()
    return same == stats["rows"]


def _merge(spark: SparkSession, plan: _Plan, tag: str) -> int:
    from delta.tables import DeltaTable

    cols = list(plan.sink.columns)
    q = [quoted(c) for c in cols]
    c = plan.changes
    edits = c.filter(F.col("change").isin("changed", "deleted")).select(
        F.col("old_hash").alias("__hippo_old"), "hippo_row_id",
        F.when(F.col("change") == "deleted", "delete").otherwise("update").alias("__hippo_op"),
        *(["after"] if "after" in c.columns else []))
    if "after" in c.columns:  # subtraction: the new values are at hand, nothing is added
        rows = edits.select("__hippo_old", "__hippo_op",
                            *[F.col("after." + x).alias(col) for x, col in zip(q, cols)])
    else:
        edits = edits.join(plan.new.dropDuplicates(["hippo_row_id"]), "hippo_row_id", "left")
        adds = plan.new.join(c.filter(F.col("change") == "added").select("hippo_row_id"),
                             "hippo_row_id", "left_semi").select(
            F.lit(None).cast("long").alias("__hippo_old"), "hippo_row_id",
            F.lit("insert").alias("__hippo_op"), *[F.col(x) for x in ["new_hash", *q]])
        rows = edits.select("__hippo_old", "__hippo_op", *q).unionByName(
            adds.select("__hippo_old", "__hippo_op", *q))
    path = plan.sink.sink.path
    cond = content_hash([f"t.{x}" for x in q], "row") == F.col("s.__hippo_old")
    if "after" in c.columns:  # one row per id, nothing added: the rows are counted
        edited = plan.counts.get("changed", 0) + plan.counts.get("deleted", 0)
        if edited * rows._jdf.schema().defaultSize() <= _BROADCAST_BYTES:
            rows = F.broadcast(rows)

    def merge() -> None:
        builder = (DeltaTable.forPath(spark, path).alias("t").merge(rows.alias("s"), cond)
                   .whenMatchedDelete(condition="s.__hippo_op = 'delete'")
                   .whenMatchedUpdate(condition="s.__hippo_op = 'update'",
                                      set={x: f"s.{x}" for x in q}))
        if plan.counts.get("added"):  # else a matched-only MERGE: Delta skips a full join
            builder = builder.whenNotMatchedInsert(condition="s.__hippo_op = 'insert'",
                                                   values={x: f"s.{x}" for x in q})
        # The source is made of local checkpoints: Delta need not copy it once more.
        with session_conf(spark, {"spark.databricks.delta.merge.materializeSource": "none"}):
            builder.execute()

    return commit(spark, path, tag, f"repairing sink `{plan.sink.sink.name}`", merge)


def _overwrite(spark: SparkSession, plan: _Plan, tag: str) -> int:
    path = plan.sink.sink.path
    rows = plan.new.select(*[quoted(c) for c in plan.sink.columns])
    return commit(spark, path, tag, f"rewriting sink `{plan.sink.sink.name}`",
                   lambda: rows.write.format("delta").mode("overwrite").save(path))


# -- remove ----------------------------------------------------------------------------
def _check_unmoved(spark: SparkSession, path: str, version: int | None, what: str,
                   run_id: str) -> None:
    now = latest_version(spark, path)
    if version is None or (now != version and not restored_to(spark, path, version)):
        raise RemovalError(
            f"{what} `{path}` is at version {now}, but run `{run_id}` recorded version "
            f"{version}; the removal would repair outputs against data that has moved on. "
            "Record a new run over the current data and remove against it")


def remove(slots: Slots, source_name: str, where: str | Column, dry_run: bool) -> RemovalReport:
    """Remove the rows ``where`` chooses from source ``source_name`` of the run behind
    ``slots`` and repair its sinks (see the module docstring)."""
    run = slots.run
    spark = slots.spark
    root = run.root
    text = where if isinstance(where, str) else str(where)
    source = run.source(source_name)
    info = source.source
    reached = [s for s in run.sinks.values()
               if source.op_id in nx.ancestors(run.graph, s.op_id)]
    with removal_lock(root), rebuilt_plans(spark), query_errors(
            run, where, f"source `{source_name}`", list(source.columns)):
        # A dry run changes nothing and reads the run's pinned versions: an interrupted
        # removal does not stop it (and it skips this read of the removals table).
        stopped = [] if dry_run else incomplete(spark, root)
        if stopped:
            raise RemovalError(
                f"removal {listing(stopped)} of this store stopped part way (its process "
                "ended); every row it removed is in the source or the quarantine. Undo it "
                "with store.restore(...) before removing again")
        if info.snapshot and not dry_run:
            raise RemovalError(
                f"source `{source_name}` of run `{run.run_id}` was a DataFrame, snapshotted "
                "into the store: there is no table of yours to remove its rows from. Write "
                "it as a Delta table and read that with run.source(name, path) to remove "
                "from it (dry_run=True still previews)")
        if not dry_run:
            _check_unmoved(spark, info.path, info.version, f"source `{source_name}` at", run.run_id)
            for sink in reached:
                if sink.sink.mode != "overwrite":
                    raise RemovalError(
                        f"sink `{sink.sink.name}` was appended to (mode `{sink.sink.mode}`); "
                        "a removal repairs only sinks its run overwrote")
                _check_unmoved(spark, sink.sink.path, sink.sink.version,
                               f"sink `{sink.sink.name}` at", run.run_id)
        t0 = time.perf_counter()
        whole = run.frame(source.op_id)
        user = [c for c in whole.columns if not is_hidden(c)]
        removed = checked_filter(whole, where, f"source `{source_name}`", user)
        removed = computed_once(removed)
        n_removed = removed.count()
        removed_ids = removed.select(ID).distinct()
        cleaned = whole.join(removed_ids, ID, "left_anti").select(
            *[F.col(quoted(c)) for c in whole.columns])
        inversions = {s.sink.name: invertible(run, source.op_id, s) for s in reached}
        for name, inv in inversions.items():
            if not isinstance(inv, Inversion):
                log.info("sink `%s` is not repaired by subtraction: %s", name, inv)
        lineage_needed = not all(isinstance(i, Inversion) for i in inversions.values())
        affected = forward(slots, source_name, where, None) if n_removed and lineage_needed else {}
        plans = {s.sink.name: _plan(
            slots, s, source.op_id, cleaned, removed, affected.get(s.sink.name),
            inversion=inversions[s.sink.name]) for s in reached if n_removed}
        repairs = {}
        for name, plan in plans.items():
            counts = plan.counts
            repairs[name] = SinkRepair(name, counts.get("changed", 0), counts.get("deleted", 0),
                                       counts.get("added", 0), plan.how, plan.why, "none",
                                       _preview(slots, plan) if dry_run else None)
        report = RemovalReport(None, run.run_id, source_name, text, n_removed, repairs, dry_run,
                               {"plan": time.perf_counter() - t0})
        if dry_run or not n_removed:
            return report
        return _apply(slots, report, plans, removed, source, user, where, cleaned)


def _apply(slots: Slots, report: RemovalReport, plans: dict[str, _Plan], removed: DataFrame,
           source: Step, user: list[str], where: str | Column,
           cleaned: DataFrame) -> RemovalReport:
    run = slots.run
    spark = slots.spark
    root = run.root
    removal_id = uuid.uuid4().hex
    started = now()
    seconds = dict(report.seconds)
    clock = [time.perf_counter()]

    def phase(name: str) -> None:
        now = time.perf_counter()
        seconds[name] = seconds.get(name, 0.0) + now - clock[0]
        clock[0] = now

    info = source.source
    tables.create_tables(spark, root, (tables.QUARANTINE, tables.REMOVALS))
    base = {"repaired_run": run.run_id, "source": report.source, "path": info.path,
            "predicate": report.where, "removed": report.removed}
    # Every table the removal may change, at its version before: an interrupted removal
    # is rolled back from this row.
    versions: dict[str, tuple[int | None, int | None]] = {info.path: (info.version, None)}
    for plan in plans.values():
        versions[plan.sink.sink.path] = (plan.sink.sink.version, None)
    event(spark, root, removal_id, "started", base, versions, None)
    quarantined = removed.select(
        F.lit(removal_id).alias("removal_id"), F.lit(report.source).alias("source"),
        F.lit(info.path).alias("path"), F.lit(info.version).cast("long").alias("version"),
        F.col(ID).alias("hippo_row_id"),
        F.to_json(F.struct(*[F.col(quoted(c)) for c in user])).alias("row"))
    tables.append_frame(quarantined, root, tables.QUARANTINE)
    phase("quarantine")
    fault("quarantined")
    cond = F.expr(where) if isinstance(where, str) else where

    def delete() -> None:
        from delta.tables import DeltaTable

        DeltaTable.forPath(spark, info.path).delete(cond)

    versions[info.path] = (info.version, commit(spark, info.path, removal_id,
                                                 f"removing rows from `{info.path}`", delete))
    phase("source")
    fault("source_deleted")
    repairs = {}
    sink_versions = dict(run.sink_versions)
    for name, plan in plans.items():
        repair = report.sinks[name]
        if not any(plan.counts.get(k) for k in ("changed", "deleted", "added")):
            repairs[name] = repair
            versions.pop(plan.sink.sink.path, None)
            continue
        if plan.one_row_per_id or _mergeable(slots, plan):
            version, write = _merge(spark, plan, removal_id), "merge"
        else:
            if plan.how == "incremental":  # identical rows: rewrite the whole sink
                plan = _plan(slots, plan.sink, source.op_id, cleaned, removed, None,
                             force_full="the sink holds identical rows a MERGE cannot tell apart")
            version, write = _overwrite(spark, plan, removal_id), "overwrite"
        counts = plan.counts
        repairs[name] = SinkRepair(name, counts.get("changed", 0), counts.get("deleted", 0),
                                   counts.get("added", 0), plan.how, plan.why, write)
        versions[plan.sink.sink.path] = (plan.sink.sink.version, version)
        sink_versions[name] = version
        if plan.sink.sink.rows == "explicit":
            _store_sink_rows(slots, plan, removal_id)
        fault("sink_repaired")
    for sink in run.sinks.values():  # explicit sinks the removal left as they were
        done = repairs.get(sink.sink.name)
        if sink.sink.rows == "explicit" and (done is None or done.write == "none"):
            _store_sink_rows(slots, _Plan(sink, "", "", None, None, None, {}), removal_id)
    phase("sinks")
    _record_run(slots, removal_id, source, versions[info.path][1], sink_versions, started)
    fault("run_recorded")
    report = RemovalReport(removal_id, run.run_id, report.source, report.where,
                           report.removed, repairs, False, seconds)
    event(spark, root, removal_id, "applied", base, versions, json.dumps(report.to_json()))
    phase("record")  # the dict the report holds
    return report


def _store_sink_rows(slots: Slots, plan: _Plan, removal_id: str) -> None:
    """The repaired sink's rows' lineage, as the removal's run: the repaired run's rows
    less the affected ones, plus the recomputed ones (all of them after a full repair)."""
    run = slots.run
    sink = plan.sink
    kept = slots.sink_rows(sink).select("hippo_row_id", "row_hash", "slots")
    if plan.frame is None or plan.changes is None:  # unchanged: the same rows
        fresh = kept
    elif plan.how == "full":
        fresh = sink_rows_of(plan.frame, list(sink.columns), sink.sink.slots)
    else:
        fresh = kept.join(plan.changes.select("hippo_row_id"), "hippo_row_id",
                          "left_anti").unionByName(
            sink_rows_of(plan.frame, list(sink.columns), sink.sink.slots))
    rows = fresh.select(F.lit(removal_id).alias("run_id"), F.lit(sink.sink.name).alias("sink"),
                        "hippo_row_id", "row_hash", "slots")
    tables.append_frame(rows, run.root, tables.SINK_ROWS)


def _record_run(slots: Slots, removal_id: str, source: Step, source_version: int,
                sink_versions: dict[str, int], started: _dt.datetime) -> None:
    """The removal as a run: the repaired run's steps, reading the cleaned source."""
    import pyspark

    from hippo import __version__

    run = slots.run
    old = (tables.read_table(slots.spark, run.root, tables.RUNS)
           .filter(F.col("run_id") == run.run_id).first())
    steps = unpack_steps(old["steps"])
    for row in steps:
        if row["op_id"] == source.op_id:
            row["detail"]["source"]["version"] = source_version
        # Its explicit sinks' rows are the ones _store_sink_rows put in sink_rows.
        row["detail"].get("sink", {}).pop("inline", None)
    tables.append_rows(slots.spark, run.root, tables.RUNS, [{
        "run_id": removal_id, "name": old["name"], "params": old["params"],
        "status": "succeeded", "started_at": started, "ended_at": now(),
        "code_version": old["code_version"], "spark_version": pyspark.__version__,
        "hippo_version": __version__,
        "error": None, "sinks": sink_versions, "format": old["format"], "steps": pack_steps(steps),
    }])


