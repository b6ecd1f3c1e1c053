"""Spark session set-up: Delta configured, settings from ``conf/``.

Precedence for every Spark setting: the ``conf`` argument, then (for the master) the
``master`` argument and ``SPARK_MASTER``, then ``conf/spark-defaults.conf`` (or the file
in ``HIPPO_CONF_DIR``), then built-in defaults. Under ``spark-submit`` the JVM is already
running, so jar settings must come from ``--properties-file conf/spark-defaults.conf``.
"""

from __future__ import annotations

import os
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession

from hippo.errors import ConfigError

__all__ = ["spark_session", "configure_spark", "HippoSettings", "load_settings", "conf_dir"]

_DEFAULTS = {
    "spark.master": "local[*]",
    "spark.jars.packages": "io.delta:delta-spark_4.1_2.13:4.4.0",
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}


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
    return builder.getOrCreate()


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


def _fetch_jars() -> None:
    spark = spark_session("hippo-fetch-jars", master="local[1]")
    spark.range(1).count()
    spark.stop()


if __name__ == "__main__":
    import sys

    if "--fetch-jars" in sys.argv:
        _fetch_jars()
        print("Delta jars resolved and cached")
