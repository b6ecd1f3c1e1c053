"""A throwaway Spark standalone cluster (one master, N workers) on 127.0.0.1, for tests.

:func:`standalone_cluster` starts the daemons with pyspark's bundled launcher
(``$SPARK_HOME/bin/spark-class``, ``SPARK_HOME`` being the installed pyspark package),
waits until the master reports every worker ALIVE, and always stops them on exit, also
when the ``with`` body (the test) fails or the start itself times out. Every process it
starts leads its own process group; stopping sends SIGTERM to the group (so the
executors and Python workers a worker spawned go too), waits, then SIGKILLs it.

Everything binds to loopback: ``SPARK_LOCAL_IP=127.0.0.1``, daemon and UI ports chosen
free on 127.0.0.1, applications submitted with ``spark.ui.enabled=false``. The master's
web UI stays on (loopback only): its ``/json/`` endpoint is how readiness and finished
applications are observed. Logs, pids and worker dirs live under the given folder.

Not handled: a port taken by someone else between choosing it and the daemon binding it
(the start then times out with the daemon's log in the message).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyspark

__all__ = ["StandaloneCluster", "Submission", "standalone_cluster", "spark_home", "free_port",
           "tail"]

LOOPBACK = "127.0.0.1"
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def spark_home() -> Path:
    """The installed pyspark package: it bundles ``bin/spark-class`` and the jars."""
    return Path(pyspark.__file__).resolve().parent


def free_port() -> int:
    """A TCP port nobody listens on at 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a log file (or a note that it is missing)."""
    if not path.exists():
        return f"<{path} does not exist>"
    text = path.read_text(errors="replace").splitlines()
    return f"--- tail of {path}:\n" + "\n".join(text[-lines:])


@dataclass
class _Daemon:
    name: str
    process: subprocess.Popen
    log: Path


@dataclass(frozen=True)
class Submission:
    """A finished spark-submit: its exit code and where its output went."""

    name: str
    returncode: int
    stdout: Path
    stderr: Path
    seconds: float

    @property
    def output(self) -> str:
        return self.stdout.read_text(errors="replace")

    def tails(self, lines: int = 40) -> str:
        return f"{tail(self.stdout, lines)}\n{tail(self.stderr, lines)}"


@dataclass
class StandaloneCluster:
    """A running cluster: its master URL, its master's JSON, and spark-submit on it."""

    master_url: str
    web_url: str
    env: dict[str, str]
    logs: Path
    daemons: list[_Daemon] = field(default_factory=list)

    def state(self) -> dict[str, Any]:
        """The master's status JSON: workers, active and completed applications."""
        with _NO_PROXY.open(f"{self.web_url}/json/", timeout=5) as response:
            return json.load(response)

    def daemon_logs(self, lines: int = 30) -> str:
        return "\n".join(tail(d.log, lines) for d in self.daemons)

    def submit(self, name: str, args: Sequence[str], timeout: float = 600,
               cwd: Path | None = None) -> Submission:
        """Run ``spark-submit --master <this cluster> ARGS``; output to ``logs/NAME.*``.

        A submission that outlives ``timeout`` seconds is killed (its process group) and
        reported with return code -9.
        """
        stdout, stderr = self.logs / f"{name}.out", self.logs / f"{name}.err"
        cmd = [str(spark_home() / "bin" / "spark-submit"), "--master", self.master_url,
               *args]
        start = time.monotonic()
        with stdout.open("w") as out, stderr.open("w") as err:
            out.write(f"$ {' '.join(cmd)}\n")
            out.flush()
            proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=self.env, cwd=cwd,
                                    start_new_session=True)
            try:
                returncode = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _stop(proc, grace=5)
                returncode = -9
                err.write(f"\n<killed after {timeout} s>\n")
        return Submission(name, returncode, stdout, stderr, time.monotonic() - start)


def _signal_group(proc: subprocess.Popen, sig: signal.Signals) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def _stop(proc: subprocess.Popen, grace: float = 30) -> None:
    """SIGTERM the process group ``proc`` leads, wait ``grace`` s, then SIGKILL what is left.

    The final SIGKILL also reaches children left behind in the group (executors, Python
    workers) after the leader exited.
    """
    _signal_group(proc, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    _signal_group(proc, signal.SIGKILL)
    proc.wait(timeout=10)


def _env(base: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("SPARK_MASTER", "SPARK_CONF_DIR")}
    conf = base / "conf"  # empty: no spark-env.sh or defaults from elsewhere
    conf.mkdir(parents=True, exist_ok=True)
    for name in ("logs", "pids", "work"):
        (base / name).mkdir(parents=True, exist_ok=True)
    env.update({
        "SPARK_HOME": str(spark_home()),
        "SPARK_CONF_DIR": str(conf),
        "SPARK_LOCAL_IP": LOOPBACK,
        "SPARK_MASTER_HOST": LOOPBACK,
        "SPARK_LOG_DIR": str(base / "logs"),
        "SPARK_PID_DIR": str(base / "pids"),
        "SPARK_WORKER_DIR": str(base / "work"),
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
    })
    return env


def _start(name: str, cls: str, args: list[str], env: dict[str, str], logs: Path) -> _Daemon:
    log = logs / f"{name}.log"
    cmd = [str(spark_home() / "bin" / "spark-class"), cls, *args]
    with log.open("w") as out:
        out.write(f"$ {' '.join(cmd)}\n")
        out.flush()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    return _Daemon(name, proc, log)


def _wait_for(cluster: StandaloneCluster, ready, what: str, deadline: float) -> dict[str, Any]:
    last = "no answer yet"
    while time.monotonic() < deadline:
        for d in cluster.daemons:
            if d.process.poll() is not None:
                raise RuntimeError(f"{d.name} exited with {d.process.returncode} while "
                                   f"waiting for {what}\n{cluster.daemon_logs()}")
        try:
            state = cluster.state()
        except (urllib.error.URLError, OSError, ValueError) as err:
            last = f"{type(err).__name__}: {err}"
        else:
            if ready(state):
                return state
            last = json.dumps({k: state.get(k) for k in ("status", "workers")})[:2000]
        time.sleep(1)
    raise TimeoutError(f"timed out waiting for {what} at {cluster.web_url}/json/; last "
                       f"seen: {last}\n{cluster.daemon_logs()}")


def _stop_all(cluster: StandaloneCluster) -> None:
    for daemon in reversed(cluster.daemons):  # workers (and their executors) first
        _stop(daemon.process)


@contextmanager
def standalone_cluster(base: Path, workers: int = 2, cores: int = 1, memory: str = "2g",
                       timeout: float = 90) -> Iterator[StandaloneCluster]:
    """A master and ``workers`` workers on 127.0.0.1, stopped when the block exits.

    Yields once the master lists every worker as ALIVE (within ``timeout`` seconds);
    raises with the daemons' logs if that does not happen. Whatever started is stopped
    on the way out, however the block or the start ends.

    Examples
    --------
    >>> with standalone_cluster(tmp_path / "cluster") as cluster:  # doctest: +SKIP
    ...     job = cluster.submit("demo", ["--properties-file", "conf/spark-defaults.conf",
    ...                                   "jobs/flights_demo.py"])
    ...     assert job.returncode == 0, job.tails()
    """
    base.mkdir(parents=True, exist_ok=True)
    env = _env(base)
    port, web_port = free_port(), free_port()
    cluster = StandaloneCluster(f"spark://{LOOPBACK}:{port}", f"http://{LOOPBACK}:{web_port}",
                                env, base / "logs")
    deadline = time.monotonic() + timeout
    try:
        cluster.daemons.append(_start(
            "master", "org.apache.spark.deploy.master.Master",
            ["--host", LOOPBACK, "--port", str(port), "--webui-port", str(web_port)],
            env, cluster.logs))
        state = _wait_for(cluster, lambda s: s.get("status") == "ALIVE", "the master",
                          deadline)
        cluster.master_url = state.get("url", cluster.master_url)
        for n in range(workers):
            work = base / "work" / f"worker-{n}"
            work.mkdir(parents=True, exist_ok=True)
            cluster.daemons.append(_start(
                f"worker-{n}", "org.apache.spark.deploy.worker.Worker",
                ["--host", LOOPBACK, "--port", "0", "--webui-port", str(free_port()),
                 "--cores", str(cores), "--memory", memory, "--work-dir", str(work),
                 cluster.master_url],
                env, cluster.logs))

        def all_alive(s: dict[str, Any]) -> bool:
            return sum(w.get("state") == "ALIVE" for w in s.get("workers", [])) >= workers

        _wait_for(cluster, all_alive, f"{workers} ALIVE workers", deadline)
        yield cluster
    finally:
        _stop_all(cluster)
