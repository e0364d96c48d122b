"""`bench --cluster`: variants as tasks of a real Dask scheduler and workers, started with Dask's own commands.

The scheduler and its two workers listen on loopback only, and every wait is bounded. One cluster serves the
tests of this module.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from clirun import cli_env, invoke, read_line_containing, run, start, wait_for

from recurrent_mnist.cluster import check_address, is_local_address, plain_tcp_warning
from recurrent_mnist.errors import ConfigError
from recurrent_mnist.runs.process import stop

distributed = pytest.importorskip("distributed")
DASK = str(Path(sys.executable).with_name("dask"))
WAIT_S = 90


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory):
    """A `dask scheduler` and two `dask worker` processes of one thread each, on loopback."""
    address = f"tcp://127.0.0.1:{_free_port()}"
    logs = tmp_path_factory.mktemp("dask-logs")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    started = []

    def start(name, *args):
        log = open(logs / f"{name}.log", "w")
        started.append((subprocess.Popen([DASK, *args], stdout=log, stderr=log, env=env), log))

    start("scheduler", "scheduler", "--host", "127.0.0.1", "--port", address.rsplit(":", 1)[1], "--no-dashboard")
    for n in (1, 2):
        start(f"worker{n}", "worker", address, "--nthreads", "1", "--resources", "threads=1", "--no-dashboard",
              "--name", f"worker{n}", "--death-timeout", "60")  # fmt: skip
    try:
        with distributed.Client(address, timeout=WAIT_S) as client:
            client.wait_for_workers(2, timeout=WAIT_S)
        yield address
    finally:
        for process, log in reversed(started):
            stop(process)
            log.close()


def _bench(data_dir, results, *extra, cwd, timeout=600):
    return run(
        *("bench", "--dataset", "mnist", "--data-dir", data_dir, "--cells", "lstm", "gru", "--seeds", "0", "1"),
        *("--units", "4", "--epochs", "1", "--threads", "1", "--no-measure-inference", "--results-dir", results),
        *("--run-name", "run", *map(str, extra)),
        cwd=cwd,
        timeout=timeout,
    )


def test_addresses_are_checked_and_a_plain_tcp_scheduler_elsewhere_is_warned_of():
    assert check_address("local:2") == ("local", 2)
    assert check_address("tls://scheduler.example:8786") == ("remote", "tls://scheduler.example:8786")
    for wrong in ("local:0", "local:x", "scheduler:8786", "http://host:8786"):
        with pytest.raises(ConfigError, match="no cluster address") as caught:
            check_address(wrong)
        assert caught.value.argument == "cluster"
    assert is_local_address("tcp://127.0.0.1:8786") and not is_local_address("tcp://10.1.2.3:8786")
    assert plain_tcp_warning("tcp://127.0.0.1:8786") is None and plain_tcp_warning("tls://10.1.2.3:8786") is None
    warning = plain_tcp_warning("tcp://10.1.2.3:8786")
    assert "accepts any client" in warning and "in clear" in warning and "tls://" in warning


@pytest.mark.slow
def test_the_cli_warns_once_of_a_plain_tcp_scheduler_elsewhere_and_names_a_bad_address(tmp_path):
    bad = invoke("bench", "--dataset", "mnist-sample", "--cluster", "scheduler:8786", cwd=tmp_path)
    assert bad.returncode == 2 and "no cluster address" in " ".join(bad.stderr.split()), bad.stderr
    # 192.0.2.1 (TEST-NET-1) is never reachable: the warning comes first, then one sentence, no traceback.
    # Dask's own setting shortens the wait for it.
    far = run("bench", "--dataset", "mnist-sample", "--cluster", "tcp://192.0.2.1:8786", "--epochs", "1",
              "--results-dir", tmp_path / "results", cwd=tmp_path, timeout=180,
              env={"DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "2s"})  # fmt: skip
    text = " ".join(far.stderr.split())
    assert far.returncode == 1, far.stderr
    assert text.count("accepts any client") == 1 and "did not answer" in text and "within 2 s" in text
    assert "Traceback" not in text


@pytest.mark.slow
def test_a_cluster_run_gives_the_local_accuracies_and_its_folder_reruns_locally_training_nothing(
    scheduler, tiny_data_dir, tmp_path
):
    remote = _bench(tiny_data_dir, tmp_path / "cluster", "--cluster", scheduler, cwd=tmp_path, timeout=600)
    assert remote.returncode == 0, remote.stdout + remote.stderr
    assert remote.stdout.count("started on tcp://127.0.0.1") == 4
    # Here in one process (--in-process trains exactly as an isolated variant, without a process each).
    local = _bench(tiny_data_dir, tmp_path / "local", "--in-process", cwd=tmp_path, timeout=600)
    assert local.returncode == 0, local.stdout + local.stderr

    def accuracies(folder):
        runs = pd.read_csv(folder / "run" / "runs.csv")
        assert (runs["status"] == "ok").all() and len(runs) == 4
        return runs.set_index(["cell", "seed"])["test_accuracy"].sort_index()

    pd.testing.assert_series_equal(accuracies(tmp_path / "cluster"), accuracies(tmp_path / "local"))
    environments = list((tmp_path / "cluster" / "run" / "variants").glob("*.json"))
    assert len(environments) == 4 and len(list((tmp_path / "cluster" / "run" / "logs").glob("*.log"))) == 4
    records = {path: path.stat().st_mtime_ns for path in environments}
    again = _bench(tiny_data_dir, tmp_path / "cluster", cwd=tmp_path, timeout=300)
    assert again.returncode == 0 and again.stdout.count("from an earlier run") == 4, again.stdout
    assert {path: path.stat().st_mtime_ns for path in environments} == records


def _cmdline(process) -> list:
    import psutil

    try:
        return process.cmdline()
    except psutil.Error:  # ended meanwhile
        return []


def _training_processes() -> list:
    """This test's training processes (`recurrent_mnist._worker`), wherever they run among its descendants."""
    import psutil

    return [p for p in psutil.Process().children(recursive=True) if "recurrent_mnist._worker" in _cmdline(p)]


@pytest.mark.slow
def test_a_worker_killed_during_a_variant_loses_nothing_else(scheduler, tiny_data_dir, tmp_path):

    bench = start(
        *("bench", "--dataset", "mnist", "--data-dir", tiny_data_dir, "--cells", "lstm", "gru", "--seeds", "0"),
        *("--units", "4", "--epochs", "3", "--threads", "1", "--no-measure-inference"),
        *("--results-dir", tmp_path / "results", "--run-name", "run", "--cluster", scheduler),
        cwd=tmp_path,
    )
    try:
        read_line_containing(bench, "started on", timeout=WAIT_S * 2)
        training = []
        wait_for(lambda: training.extend(_training_processes()) or training, timeout=WAIT_S, process=bench)
        worker = training[0].parent()  # the Dask worker process that runs the task (its nanny restarts it)
        os.kill(worker.pid, signal.SIGKILL)
        stdout, stderr = bench.communicate(timeout=600)
    finally:
        if bench.poll() is None:
            bench.kill()
            bench.communicate()
    assert bench.returncode == 0, stdout + stderr
    runs = pd.read_csv(tmp_path / "results" / "run" / "runs.csv")
    assert sorted(runs["cell"]) == ["gru", "lstm"], runs
    for row in runs.to_dict("records"):  # retrained on a worker, or recorded as failed with the reason
        assert row["status"] == "ok" or "worker" in str(row["error"]), row


@pytest.mark.slow
def test_a_search_on_a_local_cluster_completes_every_trial_and_exits_by_itself(tiny_data_dir, tmp_path):
    search = run(
        *("tune", "--cluster", "local:2", "--workers", "2", "--dataset", "mnist", "--data-dir", tiny_data_dir),
        *("--cells", "lstm", "gru", "--units-max", "8", "--layers-max", "1", "--max-trials", "3", "--max-epochs", "1"),
        *("--threads", "1", "--results-dir", tmp_path / "results", "--run-name", "search"),
        cwd=tmp_path,
        timeout=900,
    )
    assert search.returncode == 0, search.stdout + search.stderr
    trials = pd.read_csv(tmp_path / "results" / "search" / "trials.csv")
    assert len(trials) == 3 and (trials["status"] == "completed").all(), trials
    assert "on dask-" in search.stdout  # the chief names the worker of each trial
    assert "A search worker" not in search.stderr, search.stderr  # each worker ended by itself, with exit code 0


def test_a_search_on_a_cluster_needs_a_chief_address_unless_local(tmp_path):
    refused = invoke("tune", "--cluster", "tcp://10.1.2.3:8786", "--dataset", "mnist-sample", cwd=tmp_path)
    assert refused.returncode == 2 and "--chief-address" in refused.stderr, refused.stderr
    alone = invoke("tune", "--workers", "2", "--dataset", "mnist-sample", cwd=tmp_path)
    assert alone.returncode == 2 and "applies only with --cluster" in " ".join(alone.stderr.split()), alone.stderr


def _certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key: the CA, the scheduler's, the workers' and the client's."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command to make a certificate")
def test_a_tls_cluster_trains_with_the_certificates_of_dasks_configuration(tiny_data_dir, tmp_path):
    cert, key = _certificate(tmp_path)
    tls = ("--tls-ca-file", cert, "--tls-cert", cert, "--tls-key", key)
    port = _free_port()
    address = f"tls://127.0.0.1:{port}"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    logs = [open(tmp_path / f"{name}.log", "w") for name in ("scheduler", "worker")]
    processes = [
        subprocess.Popen([DASK, "scheduler", "--protocol", "tls", "--host", "127.0.0.1", "--port", str(port),
                          "--no-dashboard", *map(str, tls)], stdout=logs[0], stderr=logs[0], env=env),
        subprocess.Popen([DASK, "worker", address, "--nthreads", "1", "--resources", "threads=1", "--no-dashboard",
                          *map(str, tls)], stdout=logs[1], stderr=logs[1], env=env),
    ]  # fmt: skip
    try:
        client_env = {
            **cli_env(),
            "DASK_DISTRIBUTED__COMM__TLS__CA_FILE": str(cert),
            "DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT": str(cert),
            "DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY": str(key),
        }
        bench = subprocess.run(
            [sys.executable, "-m", "recurrent_mnist_cli", "bench", "--dataset", "mnist", "--data-dir",
             str(tiny_data_dir), "--cells", "lstm", "--units", "4", "--epochs", "1", "--threads", "1",
             "--no-measure-inference", "--results-dir", str(tmp_path / "results"), "--cluster", address],
            cwd=tmp_path, env=client_env, capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
    finally:
        for process in reversed(processes):
            stop(process)
        for log in logs:
            log.close()
    assert bench.returncode == 0, bench.stdout + bench.stderr
    assert f"started on {address.rsplit(':', 1)[0]}" in bench.stdout and "accepts any client" not in bench.stderr


@pytest.mark.slow
def test_a_worker_with_other_code_fails_the_variant_naming_both_versions():
    from recurrent_mnist.cluster import train_on_worker
    from recurrent_mnist.training import TrainConfig

    spec = {"train_config": TrainConfig(cell="lstm", units=4, epochs=1).to_dict(), "imports": []}
    client_code = {"version": "0.0.9", "source_sha256": "f" * 64}
    with distributed.LocalCluster(n_workers=1, processes=False, dashboard_address=":0") as cluster:
        with distributed.Client(cluster) as client:
            outcome = client.submit(train_on_worker, spec, client_code, {"cell": "lstm", "seed": 0}).result(timeout=60)
    reason = outcome["failed"]
    assert "row" not in outcome and outcome["history"] == []  # the client records the failed row
    assert "runs recurrent-mnist" in reason and "the client 0.0.9 (source ffffffff)" in reason, reason


@pytest.mark.slow
def test_a_worker_process_runs_a_task_without_importing_keras():
    """The task travels as code and imports the package's light modules with Keras deferred: a Dask worker
    spends no TensorFlow start-up on it (the training process it starts does, once)."""
    from recurrent_mnist import cluster
    from recurrent_mnist.training import TrainConfig

    spec = {"train_config": TrainConfig(cell="lstm", units=4, epochs=1).to_dict(), "imports": []}
    with cluster.connect("local:1", 1) as client:
        # Another version's code: the task answers without training, after importing what it needs.
        outcome = cluster._submit(client, cluster.train_on_worker, spec, {"source_sha256": "f" * 64}, {}).result(60)
        assert "install the client's version on every worker" in outcome["failed"]
        loaded = client.run(lambda: sorted(m for m in ("keras", "tensorflow") if m in __import__("sys").modules))
    assert list(loaded.values()) == [[]]


@pytest.mark.slow
def test_ctrl_c_cancels_the_training_on_the_worker_and_a_lost_scheduler_ends_the_command_in_a_sentence(
    tiny_data_dir, tmp_path
):
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    log = open(tmp_path / "dask.log", "w")
    dask = [
        subprocess.Popen([DASK, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                         stdout=log, stderr=log, env=env),
        subprocess.Popen([DASK, "worker", address, "--nthreads", "1", "--resources", "threads=1", "--no-dashboard",
                          "--death-timeout", "20"], stdout=log, stderr=log, env=env),
    ]  # fmt: skip
    bench = (
        *("bench", "--dataset", "mnist", "--data-dir", tiny_data_dir, "--cells", "lstm", "--units", "4"),
        *("--epochs", "1000", "--threads", "1", "--no-measure-inference", "--results-dir", tmp_path / "results"),
        *("--run-name", "run", "--cluster", address),
    )
    try:
        interrupted = start(*bench, cwd=tmp_path)
        read_line_containing(interrupted, "epoch 1/1000", timeout=WAIT_S * 2)
        assert _training_processes()
        interrupted.send_signal(signal.SIGINT)
        out, err = interrupted.communicate(timeout=60)
        assert interrupted.returncode == 130 and "run the same command again to resume" in " ".join(err.split()), err
        wait_for(lambda: not _training_processes(), timeout=30)  # the task was cancelled, its training ended

        lost = start(*bench, cwd=tmp_path, env={"DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "5s"})  # reconnects
        read_line_containing(lost, "epoch 1/1000", timeout=WAIT_S * 2)
        stop(dask[0])
        out, err = lost.communicate(timeout=120)
    finally:
        for process in reversed(dask):
            stop(process)
        log.close()
    text = " ".join(err.split())
    assert lost.returncode == 1 and f"the Dask scheduler at {address} stopped answering" in text, out + err
    assert "Traceback" not in err and "run the same command again to resume" in text
    wait_for(lambda: not _training_processes(), timeout=30)  # the worker's training ended with its worker
