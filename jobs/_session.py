"""The SparkSession a job runs on, with a clear error when Delta is missing.

``hippo.spark_session`` keeps spark-submit's ``--master`` and ``--conf`` settings over
``conf/``; but under spark-submit the JVM is already up, so the Delta jars must come
from spark-submit itself (``--properties-file conf/spark-defaults.conf``).
"""

from __future__ import annotations

import os

from py4j.java_gateway import JavaClass
from pyspark.sql import DataFrame, SparkSession

import hippo

__all__ = ["job_session", "show_frame"]


def job_session(app_name: str) -> SparkSession:
    """A Delta-enabled session on spark-submit's master, or local mode under python."""
    spark = hippo.spark_session(app_name)
    # py4j resolves classes through the context class loader, which holds the jars
    # spark-submit fetched; a missing class comes back as a JavaPackage.
    if os.environ.get("PYSPARK_GATEWAY_PORT") and not isinstance(
            spark._jvm.io.delta.sql.DeltaSparkSessionExtension, JavaClass):
        spark.stop()
        raise hippo.ConfigError(
            "spark-submit did not put the Delta jars on the classpath; pass "
            "`--properties-file conf/spark-defaults.conf`")
    return spark


def show_frame(name: str, df: DataFrame, output: str | None, rows: int) -> None:
    """Print a job's DataFrame (its row count, then ``rows`` rows); with ``output``, also
    write it as the Delta table ``output/<name>`` for another program to read, and count
    and show what was written, so a lineage answer is computed once, not three times."""
    if output:
        path = f"{output}/{name}"
        df.write.format("delta").mode("overwrite").save(path)
        df = df.sparkSession.read.format("delta").load(path)
    print(f"--- {name}: {df.count()} row(s)")
    df.show(rows, truncate=False)
