"""One column-lineage model: each step records a positional ``ColumnMapping`` and the
lineage queries read is those mappings composed, so two columns of one name never merge."""

from __future__ import annotations

from pyspark.sql import functions as F

from lineage_types import ColumnRef, compose_path
from hippo.recorded.ids import pos_name
from hippo.recorded.steps import Step, unpack_steps
from hippo.recorded.state import MADE_BY_ROW


def _steps(spark, store, run):
    row = (spark.read.format("delta").load(f"{store.path}/runs")
           .filter(F.col("run_id") == run.run_id).first())
    return [Step.from_row(s, row.format) for s in unpack_steps(row.steps)]


def test_two_columns_of_one_name_keep_their_own_lineage(spark, store, tmp_path):
    a = spark.createDataFrame([(1, 10), (2, 20)], "k int, v int")
    b = spark.createDataFrame([(1, 100), (2, 200), (2, 300)], "k int, w int")
    with store.run("dup") as run:
        left, right = run.source("a", a), run.source("b", b)
        joined = left.join(right, left["k"] == right["k"])
        assert joined.columns == ["k", "v", "k", "w"]
        out = joined.select(left["k"].alias("ka"), right["k"].alias("kb"), "v", "w")
        run.sink("out", out, str(tmp_path / "out"))
    join = next(s for s in _steps(spark, store, run) if s.step == "join")
    mapping = join.lineage.columns
    assert mapping.output_columns == tuple(pos_name(u) for u in range(4))
    assert mapping.sources_of(pos_name(0)) == {ColumnRef(0, pos_name(0))}
    assert mapping.sources_of(pos_name(2)) == {ColumnRef(1, pos_name(0))}
    assert mapping.influencing == {ColumnRef(0, pos_name(0)), ColumnRef(1, pos_name(0))}
    # The query answers the same: `kb` comes from b's `k` cells and no cell of a.
    cells = store.backward("out", where="w = 300", columns=["kb"])
    assert set(cells) == {"b"}
    assert [(r.k, r.w) for r in cells["b"].join(
        store.backward("out", where="w = 300")["b"], "hippo_row_id").select(
        cells["b"]["k"], "w").collect()] == [(2, 300)]


def test_the_state_a_query_reads_is_the_steps_mappings_composed(spark, store, tmp_path):
    df = spark.createDataFrame([(1, 2.0, "x"), (2, 3.0, "y")], "id int, a double, s string")
    with store.run("path") as run:
        src = run.source("src", df)
        out = (src.filter(F.col("a") > 1)
                  .withColumn("t", F.col("a") * F.col("id"))
                  .select("s", "t", F.lit(1).alias("one"), F.upper("s").alias("u"))
                  .filter(F.col("u") != "Q"))
        run.sink("out", out, str(tmp_path / "out"))
    steps = _steps(spark, store, run)
    path = compose_path([s.lineage for s in steps])  # source, 4 steps, sink: one line
    source, sink = steps[0], steps[-1]
    slot = source.source.slot
    position = {name: pos_name(u) for u, name in enumerate(source.columns)}
    state = sink.state
    assert len(state.contrib) == len(path.columns.output_columns) == 4
    for cells, refs in zip(state.contrib, path.columns.contributing.values()):
        assert {ColumnRef(0, position[c]) for s, c in cells
                if s == slot and c is not MADE_BY_ROW} == refs
    # The literal references no column: in the state it is made by its row (the source
    # row, through the slot), which a later join would not extend to the other side.
    assert state.contrib[2] == {(slot, MADE_BY_ROW)}
    assert {ColumnRef(0, position[c]) for s, c in state.influence} == path.columns.influencing
    assert path.columns.influencing == {ColumnRef(0, position["a"]), ColumnRef(0, position["s"])}
