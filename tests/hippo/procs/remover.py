"""A child process for the removal fault tests: ``python remover.py STORE SOURCE WHERE``
runs one removal; the parent sets ``HIPPO_FAULT`` so it is killed part way."""

from __future__ import annotations

import sys

import hippo
from tests.conftest import NO_BROADCAST, NO_CODEGEN, SHORT_LIVED_JVM


def main() -> None:
    store_path, source, where = sys.argv[1:4]
    spark = hippo.spark_session("remover", master="local[1]",
                                conf={"spark.sql.shuffle.partitions": "2",
                                      "spark.ui.enabled": "false",
                                      "spark.driver.extraJavaOptions": SHORT_LIVED_JVM,
                                      **NO_CODEGEN, **NO_BROADCAST})
    spark.sparkContext.setLogLevel("ERROR")
    report = hippo.LineageStore(spark, store_path).remove(source, where=where)
    print(report.run_id)


if __name__ == "__main__":
    main()
