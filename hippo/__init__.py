"""Hippo on Spark: cell-level lineage of PySpark pipelines, stored in Delta tables."""

from __future__ import annotations

__version__ = "0.1.0"

from hippo.capture.run import Run
from hippo.capture.tracked import TrackedDataFrame, TrackedGroupedData
from hippo.errors import (
    ConfigError,
    HippoError,
    InvalidWhereError,
    RunStateError,
    UnknownColumnError,
    UnknownRunError,
    UnknownSinkError,
    UnknownSourceError,
    UnsupportedStepError,
    VersionUnavailableError,
)
from hippo.session import configure_spark, spark_session
from hippo.store.store import LineageStore

__all__ = [
    "spark_session",
    "configure_spark",
    "LineageStore",
    "Run",
    "TrackedDataFrame",
    "TrackedGroupedData",
    "HippoError",
    "ConfigError",
    "UnknownSinkError",
    "UnknownSourceError",
    "UnknownRunError",
    "UnknownColumnError",
    "InvalidWhereError",
    "VersionUnavailableError",
    "UnsupportedStepError",
    "RunStateError",
]
