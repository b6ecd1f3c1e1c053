"""The SparkSession a job runs on, with a clear error when Delta is missing.

``hippo.spark_session`` keeps spark-submit's ``--master`` and ``--conf`` settings over
``conf/``; but under spark-submit the JVM is already up, so the Delta jars must come
from spark-submit itself (``--properties-file conf/spark-defaults.conf``).
"""

from __future__ import annotations

import os

from py4j.java_gateway import JavaClass
from pyspark.sql import SparkSession

import hippo

__all__ = ["job_session"]


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
