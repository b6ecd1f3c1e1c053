"""Session settings: precedence of arguments, SPARK_MASTER and conf/ files."""

from __future__ import annotations

import pytest
from pyspark.sql import SparkSession

import hippo
from hippo.errors import ConfigError
from hippo.session import load_settings, spark_conf


def test_master_comes_from_argument_then_environment_then_conf(monkeypatch, tmp_path):
    (tmp_path / "spark-defaults.conf").write_text("spark.master local[3]\nspark.x 1\n")
    monkeypatch.setenv("HIPPO_CONF_DIR", str(tmp_path))
    monkeypatch.delenv("SPARK_MASTER", raising=False)
    assert spark_conf()["spark.master"] == "local[3]"
    monkeypatch.setenv("SPARK_MASTER", "local[1]")
    assert spark_conf()["spark.master"] == "local[1]"
    assert spark_conf(master="local[2]")["spark.master"] == "local[2]"
    assert spark_conf(conf={"spark.x": "2"})["spark.x"] == "2"


def test_delta_is_configured_even_without_conf_files(monkeypatch, tmp_path):
    monkeypatch.setenv("HIPPO_CONF_DIR", str(tmp_path / "nothing-here"))
    conf = spark_conf()
    assert conf["spark.sql.extensions"] == "io.delta.sql.DeltaSparkSessionExtension"
    assert conf["spark.jars.packages"].startswith("io.delta:delta-spark_4.1_2.13:")


def test_configure_spark_adjusts_the_users_builder_and_leaves_the_master_alone(monkeypatch):
    monkeypatch.delenv("HIPPO_CONF_DIR", raising=False)
    builder = SparkSession.builder.master("local[1]")
    assert hippo.configure_spark(builder) is builder
    options = builder._options
    assert options["spark.master"] == "local[1]"
    assert options["spark.sql.catalog.spark_catalog"].endswith("DeltaCatalog")


def test_a_malformed_conf_line_names_the_file_and_line(monkeypatch, tmp_path):
    (tmp_path / "spark-defaults.conf").write_text("# ok\nspark.only_a_key\n")
    monkeypatch.setenv("HIPPO_CONF_DIR", str(tmp_path))
    with pytest.raises(ConfigError, match=r"spark-defaults.conf` line 2"):
        spark_conf()


def test_hippo_settings_precedence_and_unknown_keys(monkeypatch, tmp_path):
    (tmp_path / "hippo.toml").write_text("strict = false\n")
    monkeypatch.setenv("HIPPO_CONF_DIR", str(tmp_path))
    monkeypatch.delenv("HIPPO_STRICT", raising=False)
    assert load_settings().strict is False
    monkeypatch.setenv("HIPPO_STRICT", "true")
    assert load_settings().strict is True
    assert load_settings(strict=False).strict is False
    (tmp_path / "hippo.toml").write_text("stirct = false\n")
    with pytest.raises(ConfigError, match=r"unknown hippo setting\(s\) `stirct`.*`strict`"):
        load_settings()


def test_under_spark_submit_its_master_and_conf_win_over_conf_files(monkeypatch):
    from hippo import session

    captured = {}

    class Builder:
        def appName(self, name):  # noqa: N802
            return self

        def master(self, value):
            captured["spark.master"] = value
            return self

        def config(self, key, value):
            captured[key] = value
            return self

        def getOrCreate(self):  # noqa: N802
            return captured

    monkeypatch.setattr(session.SparkSession, "builder", Builder())
    monkeypatch.setattr(session, "_submitted_conf", lambda: {
        "spark.master": "spark://127.0.0.1:7077", "spark.sql.shuffle.partitions": "3"})
    monkeypatch.delenv("SPARK_MASTER", raising=False)
    got = session.spark_session("job")
    assert "spark.master" not in got  # the submitted master stays
    assert "spark.sql.shuffle.partitions" not in got  # the submitted value stays
    assert got["spark.sql.extensions"] == "io.delta.sql.DeltaSparkSessionExtension"
    captured.clear()
    got = session.spark_session("job", master="local[1]", conf={"spark.sql.shuffle.partitions": "9"})
    assert got["spark.master"] == "local[1]" and got["spark.sql.shuffle.partitions"] == "9"


def test_local_python_workers_run_the_drivers_interpreter(spark):
    # Not whichever `python3` is first on PATH, which may lack the user's packages.
    import os
    import sys

    expected = os.environ.get("PYSPARK_PYTHON", sys.executable)
    ran = spark.sparkContext.parallelize([0], 1).map(
        lambda _: __import__("sys").executable).collect()
    assert ran == [expected] and expected == sys.executable
