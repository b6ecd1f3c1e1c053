"""Session settings: precedence of arguments, SPARK_MASTER and conf/ files."""

from __future__ import annotations

import io
import logging
import zipfile

import pytest
from pyspark.sql import SparkSession

import hippo
from hippo.errors import ConfigError, JarResolutionError
from hippo.session import fetch_jars, load_settings, spark_conf

DELTA = "io.delta:delta-spark_4.1_2.13:4.4.0"
# What Spark's Ivy prints when Maven Central sends an empty body (abridged).
ZERO_BYTE_FAILURE = """\
:: resolving dependencies :: org.apache.spark#spark-submit-parent-1;1.0
\tfound io.delta#delta-storage;4.4.0 in central
\t[FAILED     ] io.delta#delta-storage;4.4.0!delta-storage.jar: Downloaded file size (0) \
doesn't match expected Content Length (28719) for https://repo1.maven.org/maven2/io/delta/\
delta-storage/4.4.0/delta-storage-4.4.0.jar. Please retry. (12ms)
\t\t::::::::::::::::::::::::::::::::::::::::::::::
\t\t::              FAILED DOWNLOADS            ::
\t\t:: io.delta#delta-storage;4.4.0!delta-storage.jar
Exception in thread "main" java.lang.RuntimeException: [download failed: \
io.delta#delta-storage;4.4.0!delta-storage.jar]
\tat org.apache.spark.util.MavenUtils$.resolveMavenCoordinates(MavenUtils.scala:539)
"""


def _jar_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as jar:
        jar.writestr("io/delta/Storage.class", b"\xca\xfe\xba\xbe" * 64)
    return buffer.getvalue()


def _failing(times: int, calls: list[dict[str, str]]):
    def resolve(settings: dict[str, str]) -> str | None:
        calls.append(settings)
        return ZERO_BYTE_FAILURE if len(calls) <= times else None
    return resolve


@pytest.fixture
def ivy_conf(monkeypatch, tmp_path):
    """conf/ naming the Delta package and an Ivy folder under tmp_path."""
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "spark-defaults.conf").write_text(
        f"spark.jars.packages {DELTA}\nspark.jars.ivy {tmp_path / 'ivy'}\n")
    monkeypatch.setenv("HIPPO_CONF_DIR", str(conf))
    return tmp_path / "ivy"


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


def test_fetch_jars_retries_after_doubling_delays_until_ivy_succeeds(ivy_conf, caplog):
    calls: list[dict[str, str]] = []
    slept: list[float] = []
    with caplog.at_level(logging.WARNING, logger="hippo.session"):
        fetch_jars(resolve=_failing(2, calls), sleep=slept.append)
    assert slept == [2, 4] and len(calls) == 3
    assert calls[0]["spark.jars.packages"] == DELTA and calls[0]["spark.master"] == "local[1]"
    retries = [r.getMessage() for r in caplog.records if r.name == "hippo.session"]
    assert len(retries) == 2
    assert retries[0].startswith(f"try 1 of 4 to resolve `{DELTA}` failed")
    assert "download failed" in retries[0] and retries[0].endswith("retrying in 2 s")


def test_fetch_jars_names_the_coordinates_cache_and_ivy_output_after_the_last_try(ivy_conf):
    slept: list[float] = []
    with pytest.raises(JarResolutionError, match=(
            rf"(?s)could not resolve `{DELTA}` into the Ivy cache `{ivy_conf / 'cache'}` after "
            r"4 tries; Ivy's last lines:\n.*Downloaded file size \(0\)")) as caught:
        fetch_jars(resolve=_failing(99, []), sleep=slept.append)
    assert slept == [2, 4, 8]
    assert caught.value.output.endswith(
        "[download failed: io.delta#delta-storage;4.4.0!delta-storage.jar]")
    assert "MavenUtils.scala" not in caught.value.output  # stack frames are left out


@pytest.mark.slow
def test_fetch_jars_reports_what_sparks_own_ivy_printed(tmp_path):
    # An Ivy settings file with one empty local repository: no network, fails at once.
    settings = tmp_path / "ivysettings.xml"
    settings.write_text(
        "<ivysettings><settings defaultResolver='empty'/><resolvers>"
        f"<filesystem name='empty'><artifact pattern='{tmp_path}/repo/[artifact].[ext]'/>"
        "</filesystem></resolvers></ivysettings>")
    conf = {"spark.jars.packages": "io.delta:no-such-module_2.13:0.0.1",
            "spark.jars.ivy": str(tmp_path / "ivy"), "spark.jars.ivySettings": str(settings)}
    with pytest.raises(JarResolutionError, match=(
            r"(?s)`io.delta:no-such-module_2.13:0.0.1`.* after 1 try;.*"
            r"unresolved dependency: io.delta#no-such-module_2.13;0.0.1: not found\]$")):
        fetch_jars(conf, tries=1)


def test_a_failed_try_deletes_the_named_modules_empty_and_truncated_files_only(ivy_conf):
    jar = _jar_bytes()
    storage = ivy_conf / "cache" / "io.delta" / "delta-storage"
    spark_jar = ivy_conf / "cache" / "io.delta" / "delta-spark_4.1_2.13" / "jars"
    other = ivy_conf / "cache" / "org.antlr" / "antlr4-runtime" / "jars"
    for folder in (storage / "jars", spark_jar, other, ivy_conf / "jars"):
        folder.mkdir(parents=True)
    corrupt = [
        storage / "jars" / "delta-storage-4.4.0.jar",  # zero bytes
        storage / "ivy-4.4.0.xml.original",  # a pom cut mid-tag
        spark_jar / "delta-spark_4.1_2.13-4.4.0.jar",  # a jar cut before its directory
        spark_jar / "delta-spark_4.1_2.13-4.4.0.jar.part",  # a download left behind
        ivy_conf / "jars" / "io.delta_delta-storage-4.4.0.jar",  # Spark's copy, cut
    ]
    corrupt[0].write_bytes(b"")
    corrupt[1].write_text("<project><modelVersion>4.0.0</model")
    corrupt[2].write_bytes(jar[: len(jar) // 2])
    corrupt[3].write_bytes(jar[:10])
    corrupt[4].write_bytes(jar[:-30])
    intact = [storage / "ivy-4.4.0.xml",
              ivy_conf / "jars" / "io.delta_delta-spark_4.1_2.13-4.4.0.jar"]
    intact[0].write_text("<ivy-module version='1.0'/>")
    intact[1].write_bytes(jar)
    unnamed = other / "antlr4-runtime-4.13.1.jar"  # corrupt, but Ivy did not name the module
    unnamed.write_bytes(b"")

    fetch_jars(resolve=_failing(1, []), sleep=lambda _: None)

    assert [p.name for p in corrupt if p.exists()] == []
    assert all(p.exists() for p in intact) and unnamed.exists()


def _no_delay_both_ends(spark) -> tuple[bool, bool]:
    """TCP_NODELAY of the calling thread's Py4J connection: (Python end, JVM end)."""
    import socket

    from py4j.java_gateway import JavaClass

    client = spark.sparkContext._gateway._gateway_client
    connection = client.get_thread_connection()
    python_end = bool(connection.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
    thread = JavaClass("java.lang.Thread", client)
    target = thread._java_lang_class.getDeclaredField("target")
    target.setAccessible(True)
    serving = target.get(thread.currentThread())
    field = serving.getClass().getDeclaredField("socket")
    field.setAccessible(True)
    return python_end, bool(field.get(serving).getTcpNoDelay())


def test_py4j_connections_send_without_waiting_in_every_thread(spark):
    """Replies over 8 KiB (plan JSON, wide schemas) would wait up to 40 ms each for a
    delayed ACK; every thread's connection, opened before or after, sends at once, and
    threads that end leave no connection behind."""
    import gc
    import threading

    client = spark.sparkContext._gateway._gateway_client
    gc.collect()
    held = len(client.deque)  # connections of live threads (and of earlier tests')
    big = "x" * 20000
    found: list[tuple[bool, bool, int]] = []

    def in_thread() -> None:
        reply = spark._jvm.java.lang.StringBuilder(big).toString()  # a new connection
        found.append((*_no_delay_both_ends(spark), len(reply)))

    assert _no_delay_both_ends(spark) == (True, True)
    for _ in range(5):
        thread = threading.Thread(target=in_thread)
        thread.start()
        thread.join()
    assert found == [(True, True, 20000)] * 5
    gc.collect()
    # Each ended thread's connection is closed by py4j's finalizer, not kept by hippo.
    assert len(client.deque) <= held + 1
