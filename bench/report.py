"""What a benchmark result is printed with: the machine, Spark settings, the command,
markdown tables, and the RESULTS.md file the figures are appended to."""

from __future__ import annotations

import datetime as dt
import os
import platform
import shlex
import statistics
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psutil
from pyspark.sql import SparkSession

__all__ = ["machine", "code_version", "spark_settings", "command", "table", "dir_bytes", "human",
           "percentile", "Report"]

_SPARK_KEYS = (
    "spark.master", "spark.driver.memory", "spark.executor.memory", "spark.buffer.pageSize",
    "spark.sql.shuffle.partitions", "spark.default.parallelism",
    "spark.sql.adaptive.enabled", "spark.databricks.delta.snapshotPartitions",
    "spark.sql.parquet.compression.codec", "spark.ui.enabled", "spark.jars.packages",
)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _java_version() -> str:
    try:
        out = subprocess.run(["java", "-version"], capture_output=True, text=True, timeout=20)
        return (out.stderr or out.stdout).splitlines()[0]
    except (OSError, subprocess.TimeoutExpired, IndexError):
        return "unknown"


def machine() -> dict[str, str]:
    """nproc, memory, CPU model, OS, Python, Java."""
    return {
        "nproc": str(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                     else os.cpu_count()),
        "memory": human(psutil.virtual_memory().total),
        "cpu": _cpu_model(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "java": _java_version(),
    }


def code_version() -> str:
    """The git commit of the hippo package this process imported, and whether it is dirty."""
    import hippo

    root = Path(hippo.__file__).resolve().parent.parent
    snapshot = root / ".snapshot_commit"
    if snapshot.exists():  # a clean copy of one commit (bench runs pinned to it)
        return f"{snapshot.read_text().strip()} (clean copy at {root})"
    try:
        rev = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--",
                                "hippo", "lineage_types"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return (rev or "unknown") + (" + uncommitted changes in hippo/" if dirty else "")


def spark_settings(spark: SparkSession) -> dict[str, str]:
    """The Spark settings that bear on the figures (those set, and the version)."""
    conf = dict(spark.sparkContext.getConf().getAll())
    out = {"spark.version": spark.version}
    for key in _SPARK_KEYS:
        value = conf.get(key) or spark.conf.get(key, None)
        if value is not None:
            out[key] = value
    return out


def command() -> str:
    """The command line this process was started with."""
    module = Path(sys.argv[0]).stem if sys.argv and sys.argv[0].endswith(".py") else "run"
    return " ".join(shlex.quote(a) for a in [Path(sys.executable).name, "-m", f"bench.{module}",
                                             *sys.argv[1:]])


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def dir_bytes(path: str | Path) -> tuple[int, int]:
    """(sum of file sizes, bytes allocated on disk) of every file under ``path``."""
    size = alloc = 0
    for folder, _, files in os.walk(path):
        for name in files:
            st = os.stat(os.path.join(folder, name))
            size += st.st_size
            alloc += st.st_blocks * 512
    return size, alloc


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) with linear interpolation (numpy's default)."""
    if not values:
        return float("nan")
    if len(values) == 1:
        return float(values[0])
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return float(cuts[int(q) - 1]) if 1 <= q <= 99 else float(max(values) if q >= 100 else min(values))


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A markdown table."""
    cells = [[str(c) for c in headers]] + [[str(c) for c in r] for r in rows]
    lines = ["| " + " | ".join(cells[0]) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in cells[1:]]
    return "\n".join(lines)


class Report:
    """Collects a run's sections, prints each as it comes, and appends all to a file."""

    def __init__(self, path: Path, header: str) -> None:
        self.path = path
        self.parts = [header]
        self._saved = 0
        print(header, flush=True)

    def add(self, text: str) -> None:
        """Print a section and append it (with any not yet saved) to the results file."""
        self.parts.append(text)
        print("\n" + text, flush=True)
        self.save()

    def save(self) -> None:
        """Append the sections not saved yet to the results file (newest last)."""
        if self._saved == len(self.parts):
            return
        if not self.path.exists():
            self.path.write_text(
                "# Benchmark results\n\nAppended by `make bench` (`python -m bench.run`); "
                "each section says when, on what machine, with which settings and "
                "command.\n")
        with self.path.open("a") as fh:
            fh.write("\n\n" + "\n\n".join(self.parts[self._saved:]) + "\n")
        self._saved = len(self.parts)


def header(title: str, spark: SparkSession, extra: dict[str, str]) -> str:
    """A section heading with the date, machine, Spark settings and command."""
    when = dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    m = machine()
    lines = [f"## {title} ({when})", "",
             f"- command: `{command()}`",
             f"- machine: {m['nproc']} cores ({m['cpu']}), {m['memory']} RAM, {m['os']}; "
             f"Python {m['python']}, {m['java']}",
             "- spark: " + ", ".join(f"`{k}={v}`" for k, v in spark_settings(spark).items())]
    lines += [f"- {k}: {v}" for k, v in extra.items()]
    return "\n".join(lines)
