"""Spark session set-up: Delta configured, settings from ``conf/``.

Precedence for every Spark setting: the ``conf`` argument, then (for the master) the
``master`` argument and ``SPARK_MASTER``, then ``conf/spark-defaults.conf`` (or the file
in ``HIPPO_CONF_DIR``), then built-in defaults. Under ``spark-submit`` the JVM is already
running, so jar settings must come from ``--properties-file conf/spark-defaults.conf``.

``python -m hippo.session --fetch-jars`` (``make setup``) resolves the jars ahead of time,
with retries: see :func:`fetch_jars`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import subprocess
import sys
import time
import tomllib
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

from pyspark.sql import SparkSession

from hippo.errors import ConfigError, JarResolutionError
from hippo.replies import prompt_replies

__all__ = [
    "spark_session", "configure_spark", "HippoSettings", "load_settings", "conf_dir", "fetch_jars",
    "jclass",
]

log = logging.getLogger(__name__)

_DEFAULTS = {
    "spark.master": "local[*]",
    "spark.jars.packages": "io.delta:delta-spark_4.1_2.13:4.4.0",
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}


def jclass(jvm: Any, name: str) -> Any:
    """The JVM class ``name`` (fully qualified), to call its static methods or
    constructors. Made without a Py4J round trip: ``jvm.org.apache...`` asks the JVM
    about each part of the name, one round trip each."""
    from py4j.java_gateway import JavaClass

    return JavaClass(name, jvm._gateway_client)


@contextmanager
def session_conf(spark: SparkSession, settings: dict[str, str]) -> Iterator[None]:
    """``settings`` set on the session inside, and as they were again after."""
    before = {k: spark.conf.get(k, None) for k in settings}
    for k, v in settings.items():
        spark.conf.set(k, v)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                spark.conf.unset(k)
            else:
                spark.conf.set(k, v)


def conf_dir() -> Path:
    """The folder holding ``spark-defaults.conf`` and ``hippo.toml``."""
    env = os.environ.get("HIPPO_CONF_DIR")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "conf"


def _read_spark_defaults(path: Path) -> dict[str, str]:
    conf: dict[str, str] = {}
    if not path.exists():
        return conf
    for n, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(None, 1)
        if len(parts) != 2:
            raise ConfigError(f"`{path}` line {n}: expected `key value`, got `{line}`")
        conf[parts[0]] = parts[1].strip()
    return conf


def spark_conf(master: str | None = None, conf: dict[str, str] | None = None) -> dict[str, str]:
    """The Spark settings :func:`spark_session` would use, after precedence."""
    merged = dict(_DEFAULTS)
    merged.update(_read_spark_defaults(conf_dir() / "spark-defaults.conf"))
    if os.environ.get("SPARK_MASTER"):
        merged["spark.master"] = os.environ["SPARK_MASTER"]
    if master:
        merged["spark.master"] = master
    merged.update(conf or {})
    return merged


def configure_spark(
    builder: SparkSession.Builder, conf: dict[str, str] | None = None
) -> SparkSession.Builder:
    """Add Delta and hippo's defaults to a builder the user owns.

    Like delta's ``configure_spark_with_delta_pip``: it adjusts the builder and returns it.
    Settings already in ``conf`` win; the master is left to the builder.

    Examples
    --------
    >>> builder = SparkSession.builder.appName("mine").master("local[2]")
    >>> spark = hippo.configure_spark(builder).getOrCreate()  # doctest: +SKIP
    """
    settings = spark_conf(conf=conf)
    settings.pop("spark.master", None)
    for key, value in settings.items():
        builder = builder.config(key, value)
    return builder


def _submitted_conf() -> dict[str, str]:
    """Settings spark-submit gave this process's JVM (empty when run with plain python)."""
    if not os.environ.get("PYSPARK_GATEWAY_PORT"):
        return {}
    from pyspark import SparkConf, SparkContext

    # Without a gateway SparkConf is a plain dict that ignores the JVM's settings, so
    # attach to spark-submit's JVM first (no SparkContext is started by this).
    SparkContext._ensure_initialized()
    return dict(SparkConf(loadDefaults=True, _jvm=SparkContext._jvm).getAll())


def spark_session(
    app_name: str = "hippo", master: str | None = None, conf: dict[str, str] | None = None
) -> SparkSession:
    """A SparkSession with Delta configured; master from argument, SPARK_MASTER, conf/.

    Under ``spark-submit`` its own ``--master`` and ``--conf`` settings win over
    ``conf/`` (only the ``master`` and ``conf`` arguments override them), so one job
    file runs unchanged in local mode and on a cluster. With a local master, Python
    workers run this interpreter (``PYSPARK_PYTHON``, unless it is already set).

    Examples
    --------
    >>> spark = hippo.spark_session("delays")  # doctest: +SKIP
    """
    settings = spark_conf(master=master, conf=conf)
    submitted = _submitted_conf()
    for key in submitted:
        if key not in (conf or {}) and not (key == "spark.master" and master):
            settings.pop(key, None)
    if "spark.master" in submitted and not master and not os.environ.get("SPARK_MASTER"):
        settings.pop("spark.master", None)
    effective = settings.get("spark.master") or submitted.get("spark.master", "")
    if effective.startswith("local") and "PYSPARK_PYTHON" not in os.environ:
        # Local Python workers run this interpreter (hippo and the user's packages), not
        # whichever `python3` comes first on PATH. Cluster workers keep their own.
        os.environ["PYSPARK_PYTHON"] = sys.executable
    builder = SparkSession.builder.appName(app_name)
    if "spark.master" in settings:
        builder = builder.master(settings.pop("spark.master"))
    for key, value in settings.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    prompt_replies(spark)
    return spark


@dataclass(frozen=True)
class HippoSettings:
    """hippo's own settings (``conf/hippo.toml``, overridden by HIPPO_* variables)."""

    strict: bool = True
    row_ids: str = "content"


def load_settings(**overrides: Any) -> HippoSettings:
    """Settings after precedence: arguments > HIPPO_STRICT/HIPPO_ROW_IDS > hippo.toml."""
    path = conf_dir() / "hippo.toml"
    values: dict[str, Any] = {}
    if path.exists():
        try:
            values.update(tomllib.loads(path.read_text()))
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"`{path}` is not valid TOML: {err}") from err
    if "HIPPO_STRICT" in os.environ:
        values["strict"] = os.environ["HIPPO_STRICT"].lower() in ("1", "true", "yes")
    if "HIPPO_ROW_IDS" in os.environ:
        values["row_ids"] = os.environ["HIPPO_ROW_IDS"]
    values.update({k: v for k, v in overrides.items() if v is not None})
    known = set(HippoSettings.__dataclass_fields__)
    unknown = set(values) - known
    if unknown:
        raise ConfigError(
            f"unknown hippo setting(s) {', '.join(f'`{u}`' for u in sorted(unknown))}; "
            f"settings: {', '.join(f'`{k}`' for k in sorted(known))}"
        )
    if values.get("row_ids", "content") != "content":
        raise ConfigError(f"unknown row_ids strategy `{values['row_ids']}`; known: `content`")
    return HippoSettings(**values)


# Spark's JVM runs Ivy as it launches, and Ivy writes to the JVM's stderr; a child process
# per try captures that output and starts each try with a fresh JVM.
_RESOLVE_CHILD = """
import json, sys
from pyspark.sql import SparkSession
builder = SparkSession.builder
for key, value in json.loads(sys.argv[1]).items():
    builder = builder.config(key, value)
try:
    spark = builder.getOrCreate()
    spark.range(1).count()
    spark.stop()
except Exception as err:
    # A JVM that exits before its gateway starts (Ivy failed) has already said why.
    sys.exit(1 if "JAVA_GATEWAY_EXITED" in str(err) else f"{type(err).__name__}: {err}")
"""

_MODULE = re.compile(r"([\w.\-]+)#([\w.\-]+)")


def _resolve_in_child(settings: dict[str, str]) -> str | None:
    """Start and stop a Spark session in a child process: None, or its output if it failed."""
    # Under spark-submit these would attach the child to this process's JVM.
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYSPARK_GATEWAY_PORT", "PYSPARK_GATEWAY_SECRET")}
    done = subprocess.run(
        [sys.executable, "-c", _RESOLVE_CHILD, json.dumps(settings)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, check=False,
    )
    return None if done.returncode == 0 else done.stdout


def _ivy_home(settings: dict[str, str]) -> Path:
    # Spark 4's default (MavenUtils), unless `spark.jars.ivy` moves it.
    return Path(settings.get("spark.jars.ivy") or Path.home() / ".ivy2.5.2").expanduser()


def _modules(coordinates: str, output: str) -> set[tuple[str, str]]:
    """(organisation, module) of each package asked for and each module Ivy's output names."""
    # Every module Ivy touched, not only the one it reported: a truncated jar already in
    # the cache passes resolution and fails later, under a message that names no module.
    asked = [c.strip().split(":") for c in coordinates.split(",") if ":" in c]
    named = {(m[1], m[2]) for m in _MODULE.finditer(output)}
    return {(parts[0], parts[1]) for parts in asked} | named


def _is_corrupt(path: Path) -> bool:
    """Zero bytes, a half-written download, a jar cut before its zip directory, or cut XML."""
    if path.stat().st_size == 0 or path.suffix == ".part":
        return True
    if path.suffix == ".jar":
        return not zipfile.is_zipfile(path)
    # Ivy keeps the pom as `ivy-<rev>.xml.original` beside its own `ivy-<rev>.xml`.
    if path.name.endswith((".xml", ".xml.original", ".pom")):
        try:
            ElementTree.parse(path)
        except ElementTree.ParseError:
            return True
    return False


def _remove_corrupt_artifacts(ivy_home: Path, modules: set[tuple[str, str]]) -> None:
    """Delete the modules' corrupt files from Ivy's cache and from Spark's copies of its jars."""
    for org, module in sorted(modules):
        candidates = [*(ivy_home / "cache" / org / module).rglob("*"),
                      *(ivy_home / "jars").glob(f"{org}_{module}-*.jar")]
        for path in candidates:
            if path.is_file() and _is_corrupt(path):
                path.unlink()
                log.info("deleted corrupt `%s`", path)


def _tail(output: str, lines: int = 12) -> str:
    # Java stack frames and Ivy's rows of colons crowd out the lines that say what failed.
    kept = [line.rstrip() for line in output.splitlines()
            if line.strip(": \t") and not line.lstrip().startswith("at ")]
    return "\n".join(kept[-lines:])


def fetch_jars(
    conf: dict[str, str] | None = None,
    *,
    tries: int = 4,
    first_delay: float = 2.0,
    resolve: Callable[[dict[str, str]], str | None] = _resolve_in_child,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Resolve ``spark.jars.packages`` into Spark's Ivy cache, retrying transient failures.

    Each try starts a local session in a child process (Spark's Ivy runs as its JVM
    launches). After a failed try, zero-byte or truncated files of the modules Ivy named
    are deleted and the next try waits ``first_delay`` seconds, doubling each time (2, 4,
    8 s by default). The packages and ``spark.jars.ivy`` come from :func:`spark_conf`, so
    ``conf/spark-defaults.conf`` stays the one place that names them. Not handled: a
    ``spark.jars.ivySettings`` file that moves the cache away from ``spark.jars.ivy``.

    Raises :class:`~hippo.errors.JarResolutionError`, naming the coordinates, the cache and
    Ivy's last lines, when the last try fails.

    Examples
    --------
    >>> hippo.session.fetch_jars()  # doctest: +SKIP
    """
    if tries < 1:
        raise ValueError(f"`tries` must be at least 1, got {tries}")
    settings = spark_conf(master="local[1]", conf={"spark.ui.enabled": "false", **(conf or {})})
    coordinates = settings.get("spark.jars.packages", "")
    ivy_home = _ivy_home(settings)
    log.info("resolving `%s` into `%s`", coordinates, ivy_home / "cache")
    for attempt in range(1, tries + 1):
        output = resolve(settings)
        if output is None:
            return
        _remove_corrupt_artifacts(ivy_home, _modules(coordinates, output))
        if attempt == tries:
            raise JarResolutionError(coordinates, str(ivy_home / "cache"), _tail(output), tries)
        delay = first_delay * 2 ** (attempt - 1)
        log.warning("try %d of %d to resolve `%s` failed (%s); retrying in %g s",
                    attempt, tries, coordinates, _tail(output, 1) or "no output", delay)
        sleep(delay)


def _main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m hippo.session")
    parser.add_argument("--fetch-jars", action="store_true",
                        help="resolve spark.jars.packages into Spark's Ivy cache (make setup)")
    args = parser.parse_args(argv)
    if not args.fetch_jars:
        parser.print_help()
        return
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    try:
        fetch_jars()
    except JarResolutionError as err:
        sys.exit(f"error: {err}")
    print("Delta jars resolved and cached")


if __name__ == "__main__":
    # The module `import hippo` already loaded, so the logger is `hippo.session`, not `__main__`.
    from hippo.session import _main as main

    main()
