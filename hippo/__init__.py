"""Hippo on Spark: cell-level lineage of PySpark pipelines, stored in Delta tables."""

from __future__ import annotations

import logging

__version__ = "0.1.0"

from hippo.capture.run import Run
from hippo.capture.tracked import TrackedDataFrame, TrackedGroupedData
from hippo.errors import (
    ConfigError,
    HippoError,
    InvalidWhereError,
    JarResolutionError,
    NotAStoreError,
    RemovalError,
    ReplayError,
    RunStateError,
    StoreBusyError,
    StoreFormatError,
    UnknownColumnError,
    UnknownRunError,
    UnknownSinkError,
    UnknownSourceError,
    UnsupportedStepError,
    VersionUnavailableError,
)
from hippo.session import configure_spark, spark_session
from hippo.lineage_store import LineageStore
from hippo.query.trace import TraceStep

# A library leaves handlers to the application; the `hippo` logger's records reach the
# root logger's handlers (e.g. `logging.basicConfig`), and pytest's caplog.
logging.getLogger("hippo").addHandler(logging.NullHandler())

__all__ = [
    "spark_session",
    "configure_spark",
    "LineageStore",
    "Run",
    "TrackedDataFrame",
    "TrackedGroupedData",
    "HippoError",
    "ConfigError",
    "JarResolutionError",
    "UnknownSinkError",
    "UnknownSourceError",
    "UnknownRunError",
    "UnknownColumnError",
    "InvalidWhereError",
    "VersionUnavailableError",
    "UnsupportedStepError",
    "RunStateError",
    "StoreFormatError",
    "NotAStoreError",
    "StoreBusyError",
    "ReplayError",
    "RemovalError",
    "TraceStep",
]
