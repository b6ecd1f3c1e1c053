"""Every error hippo raises; one root, :class:`HippoError`.

Messages name the offending sink, source, column, run or path in backticks and list
what exists, so a user can correct the call without reading the store.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
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


def _listing(things: Iterable[str]) -> str:
    items = sorted({str(t) for t in things})
    return ", ".join(f"`{t}`" for t in items) if items else "(none)"


class HippoError(Exception):
    """Root of every error raised by hippo."""


class ConfigError(HippoError):
    """Thrown when a configuration file or setting cannot be used."""


class UnknownSinkError(HippoError):
    """Thrown when a query names a sink no successful run has written."""

    def __init__(self, sink: str, known: Iterable[str]) -> None:
        self.sink = sink
        super().__init__(f"unknown sink `{sink}`; sinks recorded: {_listing(known)}")


class UnknownSourceError(HippoError):
    """Thrown when a query names a source no successful run has read."""

    def __init__(self, source: str, known: Iterable[str]) -> None:
        self.source = source
        super().__init__(f"unknown source `{source}`; sources recorded: {_listing(known)}")


class UnknownRunError(HippoError):
    """Thrown when a run id does not exist, did not succeed, or lacks the sink/source."""

    def __init__(self, run_id: str, known: Iterable[str], why: str = "") -> None:
        self.run_id = run_id
        reason = f" ({why})" if why else ""
        super().__init__(f"unknown run `{run_id}`{reason}; successful runs: {_listing(known)}")


class UnknownColumnError(HippoError):
    """Thrown when a query names a column the sink or source does not have."""

    def __init__(self, column: str, where: str, known: Iterable[str]) -> None:
        self.column = column
        super().__init__(f"unknown column `{column}` in {where}; columns: {_listing(known)}")


class InvalidWhereError(HippoError):
    """Thrown when a `where` expression does not parse or names a missing column."""

    def __init__(self, where: str, target: str, known: Iterable[str], detail: str) -> None:
        self.where = where
        super().__init__(
            f"cannot evaluate where `{where}` on {target}: {detail}; columns: {_listing(known)}"
        )


class VersionUnavailableError(HippoError):
    """Thrown when a pinned Delta version needed by a query can no longer be read."""

    def __init__(self, path: str, version: int, detail: str) -> None:
        self.path = path
        self.version = version
        super().__init__(
            f"version {version} of `{path}` is no longer readable ({detail}); "
            "the lineage of runs that read it cannot be answered exactly"
        )


class UnsupportedStepError(HippoError):
    """Thrown when a transformation's lineage cannot be captured exactly."""


class RunStateError(HippoError):
    """Thrown when a run is used outside its `with` block or after it ended."""
