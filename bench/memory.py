"""Peak memory of a local-mode Spark application: the JVM's RSS and the Python driver's.

In local mode the driver and the executors are one JVM, a child process of the Python
driver. A thread samples both resident set sizes (psutil) every ``interval`` seconds and
keeps the peak per phase label, with the highest 1-minute load average seen (other
processes on the machine make timings noisy; this says how busy it was).

Not measured: the JVM heap actually in use (RSS includes heap the JVM reserved earlier
and has not returned, so a phase's peak is never below an earlier phase's level).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import psutil

__all__ = ["MemorySampler"]


class MemorySampler:
    """Samples JVM and Python RSS in a background thread; peaks per phase, in bytes."""

    def __init__(self, interval: float = 0.2) -> None:
        self.interval = interval
        self.label = "between phases"
        self.peaks: dict[str, tuple[int, int]] = {}
        self.load: dict[str, float] = {}  # highest 1-minute load average seen per phase
        self._me = psutil.Process()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="memory-sampler", daemon=True)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @contextmanager
    def phase(self, label: str) -> Iterator[None]:
        """Attribute samples taken inside the block to ``label``."""
        previous = self.label
        self.label = label
        self.sample()
        try:
            yield
        finally:
            self.sample()
            self.label = previous

    def jvm_rss(self) -> int:
        total = 0
        for child in self._me.children(recursive=True):
            try:
                if "java" in child.name():
                    total += child.memory_info().rss
            except psutil.Error:
                continue
        return total

    def sample(self) -> None:
        jvm, py = self.jvm_rss(), self._me.memory_info().rss
        old = self.peaks.get(self.label, (0, 0))
        self.peaks[self.label] = (max(old[0], jvm), max(old[1], py))
        self.load[self.label] = max(self.load.get(self.label, 0.0), os.getloadavg()[0])

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def overall(self) -> tuple[int, int]:
        """The peak over all phases: (JVM bytes, Python bytes)."""
        return (max((p[0] for p in self.peaks.values()), default=0),
                max((p[1] for p in self.peaks.values()), default=0))
