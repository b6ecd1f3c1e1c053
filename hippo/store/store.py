"""LineageStore: the public front of hippo (capture runs, ask lineage questions)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession

from hippo.capture.run import Run
from hippo.query.catalog import Catalog
from hippo.query.resolve import Resolver
from hippo.session import HippoSettings, load_settings
from hippo.store import tables

__all__ = ["LineageStore"]


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
        self.spark = spark
        self.path = path if "://" in path else os.path.abspath(path)
        self.settings: HippoSettings = load_settings(strict=strict)
        self._catalog: Catalog | None = None
        self._resolvers: dict[str, Resolver] = {}

    def __repr__(self) -> str:
        return f"LineageStore({self.path!r})"

    @contextmanager
    def run(self, name: str, params: dict[str, Any] | None = None) -> Iterator[Run]:
        """Record one run of a pipeline; it commits on success and is marked failed on error."""
        run = Run(self, name, dict(params or {}))
        try:
            yield run
        except BaseException as err:
            run._finish(err)
            raise
        run._finish(None)

    def runs(self) -> DataFrame:
        """Every finished run: id, name, params, status, times, code and Spark versions."""
        return tables.read_table(self.spark, self.path, tables.RUNS).orderBy("started_at")

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
        endpoint = self._find("sink", sink, run_id)
        return self._resolver(endpoint.run_id).backward(endpoint, where, columns, influencing)

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
        endpoint = self._find("source", source, run_id)
        catalog = self._get_catalog()
        resolver = self._resolver(endpoint.run_id)
        return resolver.forward(endpoint, catalog.sinks_of(endpoint.run_id), where, columns)

    # -- internals --------------------------------------------------------------------
    def _get_catalog(self, refresh: bool = False) -> Catalog:
        if self._catalog is None or refresh:
            self._catalog = Catalog(self.spark, self.path)
        return self._catalog

    def _find(self, kind: str, name: str, run_id: str | None):
        from hippo.errors import HippoError

        try:
            return self._get_catalog().find(kind, name, run_id)
        except HippoError:
            # Another process may have recorded runs since the catalog was read.
            return self._get_catalog(refresh=True).find(kind, name, run_id)

    def _resolver(self, run_id: str) -> Resolver:
        if run_id not in self._resolvers:
            self._resolvers[run_id] = Resolver(self.spark, self.path, run_id)
        return self._resolvers[run_id]

    def _forget_cache(self) -> None:
        self._catalog = None
