"""LineageStore: the public front of hippo (record runs, ask lineage questions).

It only checks its arguments and delegates: recording to :mod:`hippo.capture`, the
store's tables to :mod:`hippo.store`, questions to :mod:`hippo.query`.
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession

from hippo.capture.run import Run, finish
from hippo.diagnose.ledger import removals
from hippo.diagnose.remove import RemovalReport, remove
from hippo.diagnose.restore import restore
from hippo.diagnose.replay import replay
from hippo.errors import HippoError, UnknownRunError
from hippo.query.backward import backward
from hippo.query.catalog import Catalog, Endpoint, load_run, runs_version
from hippo.query.forward import forward
from hippo.query.slots import Slots
from hippo.query.trace import TraceStep, trace
from hippo.replies import prompt_replies
from hippo.session import HippoSettings, load_settings
from hippo.store import tables

__all__ = ["LineageStore"]

# How many runs' rebuilt plans a store keeps for its queries (each holds its steps'
# DataFrames: plans only, no rows). Older ones are dropped, and Py4J releases their
# JVM objects.
RUNS_KEPT = 8

log = logging.getLogger(__name__)


def _check_str(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise HippoError(f"`{name}` must be a non-empty string, got {value!r:.80}")
    return value


def _check_where(where: Any) -> str | Column:
    if isinstance(where, str | Column):
        return where
    raise HippoError(f"`where` must be a SQL predicate string or a Column, got "
                     f"{type(where).__name__}")


def _check_columns(columns: Any, what: str = "columns") -> list[str] | None:
    if columns is None:
        return None
    if isinstance(columns, str):
        return [columns]
    if isinstance(columns, list | tuple) and all(isinstance(c, str) for c in columns):
        return list(columns)
    raise HippoError(f"`{what}` must be a list of names, got {columns!r:.80}")


class LineageStore:
    """A folder of Delta tables holding the lineage of recorded runs.

    Parameters
    ----------
    spark : SparkSession
        A session with Delta configured (:func:`hippo.spark_session`).
    path : str
        Folder of the store; created on first use. Relative local paths are made
        absolute, so executors on a cluster see the same folder.
    strict : bool, optional
        Refuse steps whose lineage cannot be captured exactly (default from conf/).

    Examples
    --------
    >>> store = hippo.LineageStore(spark, "lineage")  # doctest: +SKIP
    >>> with store.run("delays") as run:  # doctest: +SKIP
    ...     flights = run.source("flights", "data/flights")
    ...     run.sink("late", flights.filter("dep_delay > 15"), "out/late")
    >>> store.backward("late", where="carrier = 'AA'")["flights"].show()  # doctest: +SKIP
    """

    def __init__(self, spark: SparkSession, path: str, strict: bool | None = None) -> None:
        _check_str(path, "path")
        self.spark = spark
        prompt_replies(spark)
        self.path = path if "://" in path else os.path.abspath(path)
        self.settings: HippoSettings = load_settings(strict=strict)
        self._catalog: Catalog | None = None
        # The runs queried lately, least recent first: their rebuilt plans stay warm.
        self._runs: OrderedDict[str, Slots] = OrderedDict()

    def __repr__(self) -> str:
        return f"LineageStore({self.path!r})"

    @contextmanager
    def run(self, name: str, params: dict[str, Any] | None = None) -> Iterator[Run]:
        """Record one run of a pipeline; it commits on success and is marked failed on error."""
        _check_str(name, "name")
        tables.create_tables(self.spark, self.path)
        run = Run(self.spark, self.path, name, dict(params or {}), self.settings.strict)
        try:
            yield run
        except BaseException as err:
            finish(run, err)
            raise
        finally:
            self._catalog = None
        finish(run, None)

    def runs(self) -> DataFrame:
        """Every finished run: id, name, params, status, times, code and Spark versions,
        and the version each sink was written as."""
        return (tables.read_table(self.spark, self.path, tables.RUNS)
                .drop("steps", "format").orderBy("started_at"))

    def backward(
        self,
        sink: str,
        where: str | Column,
        columns: list[str] | None = None,
        run_id: str | None = None,
        influencing: bool = False,
    ) -> dict[str, DataFrame]:
        """The source rows (and cells, with ``columns``) that made the chosen sink rows.

        Returns source name -> DataFrame of the source's columns (only the contributing
        ones when ``columns`` is given; cells that contribute along no path are null)
        plus ``hippo_row_id``. ``influencing=True`` adds the cells that decided whether
        the rows exist (filter predicates, join and group keys).

        Examples
        --------
        >>> store.backward("by_carrier", where="carrier = 'AA'", columns=["avg_delay"])  # doctest: +SKIP
        {'flights': DataFrame[arr_delay: double, hippo_row_id: bigint]}
        """
        endpoint = self._find("sink", _check_str(sink, "sink"), run_id)
        return backward(self._slots(endpoint.run_id), sink, _check_where(where),
                        _check_columns(columns), bool(influencing))

    def forward(
        self,
        source: str,
        where: str | Column,
        columns: list[str] | None = None,
        run_id: str | None = None,
    ) -> dict[str, DataFrame]:
        """The sink rows, as written, that the chosen source rows (or cells) reached.

        Returns sink name -> DataFrame of the sink's columns plus ``hippo_row_id``.

        Examples
        --------
        >>> store.forward("flights", where="flight = 1545")  # doctest: +SKIP
        {'by_carrier': DataFrame[carrier: string, avg_delay: double, hippo_row_id: bigint]}
        """
        endpoint = self._find("source", _check_str(source, "source"), run_id)
        return forward(self._slots(endpoint.run_id), source, _check_where(where),
                       _check_columns(columns))

    def trace(self, sink: str, where: str | Column, run_id: str | None = None
              ) -> list[TraceStep]:
        """The steps from the sources to ``sink``, in order, each with the rows of its
        output that lead to the sink rows ``where`` chooses.

        Each :class:`~hippo.query.trace.TraceStep` has the step's ``op_id``, ``step``
        (the tracked method), ``name`` (of a source or sink), ``kind`` (its lineage type),
        ``code_location`` (``file:line`` of the user's code), ``inputs``, ``columns`` and
        ``rows``: a DataFrame of the step's columns plus ``hippo_row_id``. Only what
        those rows need is computed (their lineage), not the whole pipeline.

        Examples
        --------
        >>> for step in store.trace("by_carrier", where="carrier = 'AA'"):  # doctest: +SKIP
        ...     print(step.step, step.code_location); step.rows.show()
        """
        endpoint = self._find("sink", _check_str(sink, "sink"), run_id)
        return trace(self._slots(endpoint.run_id), sink, _check_where(where))

    def replay(
        self,
        run_id: str,
        sinks: list[str] | None = None,
        where: str | Column | None = None,
    ) -> dict[str, DataFrame]:
        """Recompute a recorded run's sinks from its pinned inputs, as the run recorded
        its steps (not as today's code would).

        Returns sink name -> DataFrame of the recomputed rows, with the sink's columns.
        ``sinks`` (default: every sink of the run) chooses sinks; ``where`` chooses
        output rows, and only those are recomputed, from only their backward lineage.
        Downstream of ``limit`` or ``dropDuplicates``, the rows the run
        picked come from its recorded lineage, not from picking again. Raises
        ReplayError for a sink downstream of nondeterministic expressions (``rand``,
        ``uuid``), naming the step.

        Examples
        --------
        >>> store.replay(run.run_id, where="carrier = 'AA'")["by_carrier"].show()  # doctest: +SKIP
        """
        recorded = self._recorded(_check_str(run_id, "run_id"))
        names = list(recorded.run.sinks) if sinks is None else _check_columns(sinks, "sinks")
        for name in names:
            recorded.run.sink(name)
        return replay(recorded, names, None if where is None else _check_where(where))

    def remove(
        self,
        source: str,
        where: str | Column,
        run_id: str | None = None,
        dry_run: bool = False,
    ) -> RemovalReport:
        """Remove the source rows ``where`` chooses and repair every output they reached.

        The rows are copied to the store's quarantine, deleted from the source table, and
        each affected sink repaired in one Delta transaction, incrementally (only the
        affected rows, from their lineage) or by a full recompute, whichever the estimate
        says is cheaper and exact; the removal is recorded as a new run. With ``dry_run``
        nothing changes, and each sink's ``preview`` shows every affected row's value now
        (``before``) and after. Returns a RemovalReport: ``run_id`` (for
        :meth:`restore`), ``removed``, and per sink the changed, deleted and added row
        counts and how it was repaired.

        Examples
        --------
        >>> report = store.remove("flights", where="dep_delay > 1000", dry_run=True)  # doctest: +SKIP
        >>> report.sinks["by_carrier"].preview.show()  # doctest: +SKIP
        """
        endpoint = self._find("source", _check_str(source, "source"), run_id)
        report = remove(self._slots(endpoint.run_id), source, _check_where(where),
                        bool(dry_run))
        if not dry_run:
            self._catalog = None
        return report

    def restore(self, removal_run_id: str) -> dict[str, int]:
        """Undo a removal: its source and sinks go back to their versions before it, its
        quarantined rows are dropped (they are back in the source), and its run is
        marked ``restored``. Returns each table's path and the version it is back at."""
        back = restore(self.spark, self.path, _check_str(removal_run_id, "removal_run_id"))
        self._catalog = None
        return back

    def removals(self) -> DataFrame:
        """Every removal's latest state: ``started`` (its process stopped part way;
        restore it), ``applied`` or ``restored``, with its source, predicate, the run it
        repaired, the tables it changed (versions before and after) and its report."""
        return removals(self.spark, self.path)

    # -- internals --------------------------------------------------------------------
    def _recorded(self, run_id: str) -> Slots:
        """The successful run ``run_id`` (UnknownRunError listing the runs if none)."""
        if self._catalog is None or run_id not in self._catalog.run_ids:
            self._catalog = Catalog(self.spark, self.path)
        if run_id not in self._catalog.run_ids:
            raise UnknownRunError(run_id, self._catalog.run_ids[:20])
        return self._slots(run_id)

    def _find(self, kind: str, name: str, run_id: str | None) -> Endpoint:
        if run_id is not None:
            _check_str(run_id, "run_id")
        # Another process may have recorded runs since the catalog was read: "the latest
        # run" is only known after checking the runs table's version (no Spark job).
        fresh = (self._catalog is not None
                 and (run_id is not None or self._catalog.version == runs_version(
                     self.spark, self.path)))
        if fresh:
            try:
                return self._catalog.find(kind, name, run_id)
            except HippoError:
                pass
        self._catalog = Catalog(self.spark, self.path)
        return self._catalog.find(kind, name, run_id)

    def _slots(self, run_id: str) -> Slots:
        if run_id in self._runs:
            self._runs.move_to_end(run_id)
            return self._runs[run_id]
        slots = self._runs[run_id] = Slots(load_run(self.spark, self.path, run_id))
        while len(self._runs) > RUNS_KEPT:  # the least recent run's plans are let go
            self._runs.popitem(last=False)
        return slots
