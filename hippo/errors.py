"""Every error hippo raises; one root, :class:`HippoError`.

Messages name the offending sink, source, column, run or path in backticks and list
what exists, so a user can correct the call without reading the store.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
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
    "listing",
    "first_line",
    "missing_file",
]

def listing(things: Iterable[str]) -> str:
    """``things`` as a sorted list of backticked names, or ``(none)``."""
    items = sorted({str(t) for t in things})
    return ", ".join(f"`{t}`" for t in items) if items else "(none)"

def first_line(err: BaseException, limit: int = 300) -> str:
    """The first line of an error's message (Py4J and Spark errors run to pages)."""
    text = str(err).strip().splitlines()
    return text[0][:limit] if text else type(err).__name__

_MISSING = ("FILE_NOT_EXIST", "FileNotFoundException", "DELTA_FILE_NOT_FOUND",
            "DELTA_VERSIONS_NOT_CONTIGUOUS", "DELTA_LOG_FILE_NOT_FOUND")

def missing_file(err: BaseException) -> bool:
    """Whether a Py4J/Spark error says a file it needed is gone (vacuumed, say)."""
    text = str(err)
    return any(marker in text for marker in _MISSING)

class HippoError(Exception):
    """Root of every error raised by hippo."""

class ConfigError(HippoError):
    """Thrown when a configuration file or setting cannot be used."""

class JarResolutionError(HippoError):
    """Thrown when Spark's Ivy still cannot resolve the Maven packages after its last try."""

    def __init__(self, coordinates: str, cache: str, output: str, tries: int) -> None:
        self.coordinates = coordinates
        self.cache = cache
        self.output = output
        super().__init__(
            f"could not resolve `{coordinates}` into the Ivy cache `{cache}` after {tries} "
            f"{'try' if tries == 1 else 'tries'}; Ivy's last lines:\n{output}"
        )


class UnknownSinkError(HippoError):
    """Thrown when a query names a sink no successful run has written."""

    def __init__(self, sink: str, known: Iterable[str]) -> None:
        self.sink = sink
        super().__init__(f"unknown sink `{sink}`; sinks recorded: {listing(known)}")

class UnknownSourceError(HippoError):
    """Thrown when a query names a source no successful run has read."""

    def __init__(self, source: str, known: Iterable[str]) -> None:
        self.source = source
        super().__init__(f"unknown source `{source}`; sources recorded: {listing(known)}")

class UnknownRunError(HippoError):
    """Thrown when a run id does not exist, did not succeed, or lacks the sink/source."""

    def __init__(self, run_id: str, known: Iterable[str], why: str = "") -> None:
        self.run_id = run_id
        reason = f" ({why})" if why else ""
        super().__init__(f"unknown run `{run_id}`{reason}; successful runs: {listing(known)}")

class UnknownColumnError(HippoError):
    """Thrown when a query names a column the sink or source does not have."""

    def __init__(self, column: str, where: str, known: Iterable[str]) -> None:
        self.column = column
        super().__init__(f"unknown column `{column}` in {where}; columns: {listing(known)}")

class InvalidWhereError(HippoError):
    """Thrown when a `where` expression does not parse or names a missing column."""

    def __init__(self, where: str, target: str, known: Iterable[str], detail: str) -> None:
        self.where = where
        super().__init__(
            f"cannot evaluate where `{where}` on {target}: {detail}; columns: {listing(known)}"
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

class StoreFormatError(HippoError):
    """Thrown when stored lineage was written in a format this hippo cannot read."""

class NotAStoreError(HippoError):
    """Thrown when a store's folder holds something that is not a hippo store."""

    def __init__(self, path: str, found: Iterable[str]) -> None:
        self.path = path
        super().__init__(f"`{path}` is not a hippo lineage store (no `runs` Delta table "
                         f"there); it holds: {listing(found)}")

class StoreBusyError(HippoError):
    """Thrown when a store commit could not get the store's lock or kept conflicting."""


class ReplayError(HippoError):
    """A recorded run (or part of it) cannot be recomputed exactly; the message says
    which step and why."""


class RemovalError(HippoError):
    """A removal or restore cannot be applied as asked; the message says why and what
    to do (the tables it would change are left as they were)."""
