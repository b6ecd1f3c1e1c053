"""Delta commits that any number of processes can make at once.

Delta's optimistic concurrency needs a LogStore whose "create this commit file unless
it exists" is atomic. Object stores get that from their LogStore setting (see README);
on the local filesystem, Delta's LocalLogStore only excludes writers within one JVM
(delta-io/delta#683), and two processes committing the same version of a table can
both "win" or leave a half-written log. So on local paths hippo serializes its own
commits to each table with a lock file (the ``filelock`` library), one per table and
machine. Every commit also retries Delta's concurrent-modification exceptions (which a
writer outside hippo, or an object store, can still raise) with back-off.

Not covered: writers that do not use hippo's lock, on the local filesystem.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from filelock import FileLock, Timeout

from hippo.errors import StoreBusyError, first_line

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

__all__ = ["is_local", "local_path", "table_lock", "committed", "commit_version", "LOCK_TIMEOUT"]

log = logging.getLogger(__name__)

T = TypeVar("T")

# A commit holds its table's lock while Spark writes its files, so a lock can be held
# for as long as one sink takes to compute; the timeout only catches a stuck process.
LOCK_TIMEOUT = float(os.environ.get("HIPPO_LOCK_TIMEOUT", "3600"))
_RETRIES = 6
_CONFLICTS = (
    "ConcurrentAppendException", "ConcurrentDeleteReadException",
    "ConcurrentDeleteDeleteException", "ConcurrentTransactionException",
    "ConcurrentWriteException", "MetadataChangedException", "ProtocolChangedException",
    "FileAlreadyExistsException", "DELTA_CONCURRENT_", "DELTA_METADATA_CHANGED",
    "DELTA_PROTOCOL_CHANGED",
)


def is_local(path: str) -> bool:
    """Whether ``path`` is on the local filesystem (no scheme, or ``file:``)."""
    return "://" not in path or path.startswith("file:")


def local_path(path: str) -> str:
    """A local ``path`` without its ``file:`` scheme, if it has one."""
    return path[len("file:"):] if path.startswith("file:") else path


def _lock_dir() -> Path:
    folder = Path(os.environ.get("HIPPO_LOCK_DIR") or Path(tempfile.gettempdir()) / "hippo-locks")
    if not folder.is_dir():
        folder.mkdir(parents=True, exist_ok=True)
        try:  # shared by every user of the machine, like /tmp itself
            folder.chmod(0o1777)
        except OSError:
            pass
    return folder


@contextmanager
def table_lock(path: str) -> Iterator[None]:
    """Hold the machine-wide commit lock of the Delta table at ``path`` (local paths
    only; elsewhere the LogStore gives mutual exclusion and this does nothing)."""
    if not is_local(path):
        yield
        return
    key = hashlib.sha1(os.path.realpath(local_path(path)).encode()).hexdigest()[:20]
    lock = FileLock(str(_lock_dir() / f"{key}.lock"), mode=0o666)
    try:
        lock.acquire(timeout=LOCK_TIMEOUT)
    except Timeout as err:
        raise StoreBusyError(f"could not lock `{path}` for a commit within "
                             f"{LOCK_TIMEOUT:.0f} s (lock file `{lock.lock_file}`)") from err
    try:
        yield
    finally:
        lock.release()


def _conflict(err: BaseException) -> bool:
    text = str(err)
    return any(marker in text for marker in _CONFLICTS)


def committed(path: str, commit: Callable[[], T], what: str) -> T:
    """Run ``commit`` (one Delta transaction on the table at ``path``) under the table's
    lock, retrying Delta's concurrent-modification exceptions with back-off."""
    for attempt in range(_RETRIES):
        try:
            with table_lock(path):
                return commit()
        except Exception as err:
            if not _conflict(err) or attempt == _RETRIES - 1:
                if _conflict(err):
                    raise StoreBusyError(f"{what} kept conflicting with other writers of "
                                         f"`{path}` ({_RETRIES} tries): {first_line(err)}"
                                         ) from err
                raise
            pause = 0.2 * 2 ** attempt * (1 + random.random())
            log.info("%s conflicted with another writer of %s (%s); retrying in %.1f s",
                     what, path, first_line(err, 120), pause)
            time.sleep(pause)
    raise AssertionError("unreachable")


def commit_version(spark: SparkSession, path: str, tag: str, latest: int,
                   oldest: int = 0) -> int | None:
    """The version of the commit to ``path`` whose ``userMetadata`` is ``tag``, looking
    back from ``latest`` to ``oldest``; None if there is none.

    Reads commit files through Hadoop's FileSystem (no Spark job), newest first: the
    commit is the last one when nobody else wrote since, which is what usually happens.
    """
    import json

    from hippo.store.delta_log import commit_text

    for version in range(latest, oldest - 1, -1):
        try:
            text = commit_text(spark, path, version)
        except Exception:  # a commit cleaned up by log retention: stop looking
            return None
        for line in text.splitlines():
            if '"commitInfo"' in line:
                info = json.loads(line)["commitInfo"]
                if info.get("userMetadata") == tag:
                    return version
                break
    return None
