"""keras-tuner's distributed mode: a chief that serves the oracle and ends by itself, and its workers.

The chief (`_serve`) runs keras-tuner's gRPC oracle service; it hands the trial of a worker that died
to the next worker that asks, and ends once the search is over and no live worker holds a trial. A
worker (`_run_worker`) takes trials from the chief until the chief says the search is over; the chief
writes the tables.
"""

from __future__ import annotations

import time

import pandas as pd

from recurrent_mnist import settings
from recurrent_mnist.errors import ConfigError
from recurrent_mnist.tuning.folder import _SearchFolder
from recurrent_mnist.tuning.oracles import Progress, _make_tuner, _search_arguments
from recurrent_mnist.tuning.tables import TuneResult, _failure_reason, _status


def _serve(oracle, host: str, port: int, folder: _SearchFolder, poll_s: float = 0.2) -> None:
    """Serves `oracle` to workers over keras-tuner's gRPC service until the search is over.

    keras-tuner's own chief loop (`oracle_chief.start_server`) waits until
    every worker it ever saw has been told to stop, checking every 20 seconds,
    so a worker that dies keeps it waiting for ever. Here a worker is live
    while it holds its lock file in the shared results folder (the kernel
    releases it when the process dies, even by kill -9; a worker that left no
    lock file, without a shared folder, counts as live). The trial of a worker
    that died goes back to the search for the next worker that asks. The chief
    ends once the oracle has stopped handing out trials (trial limit, time
    budget, nothing left to try) and no live worker holds a trial or has yet
    to be told.
    """
    # keras-tuner's service and servicer, as its own chief uses them (checked with keras-tuner 1.4.7-1.4.8).
    from concurrent import futures

    import grpc
    from keras_tuner.src import protos
    from keras_tuner.src.distribute.oracle_chief import OracleServicer

    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    servicer = OracleServicer(oracle)
    protos.get_service_grpc().add_OracleServicer_to_server(servicer, server)
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError:
        bound = 0
    if not bound:
        raise ConfigError(
            f"`oracle={host}:{port}`: the chief cannot listen there "
            "(the port is taken, or the address is not this machine's)"
        )
    folder.set_chief_state("serving", address)
    server.start()
    try:
        while True:
            time.sleep(poll_s)
            if oracle.listener_error is not None:
                raise oracle.listener_error
            _requeue_dead_workers(oracle, folder)
            if not _search_over(oracle, servicer) or _workers_busy(oracle, folder):
                continue
            # A worker that starts now reads "finishing" and leaves; one that locked just before is seen here.
            folder.set_chief_state("finishing", address)
            if _workers_busy(oracle, folder):
                folder.set_chief_state("serving", address)
                continue
            break
    finally:
        server.stop(grace=1.0).wait()


def _requeue_dead_workers(oracle, folder: _SearchFolder) -> None:
    locks = folder.live_workers()
    dead = [tuner_id for tuner_id in oracle.snapshot()["ongoing"] if locks.get(tuner_id) is False]
    if dead:
        oracle.requeue(dead)


def _search_over(oracle, servicer) -> bool:
    return servicer.stop_triggered or oracle.past_deadline() or oracle.snapshot()["exhausted"]


def _workers_busy(oracle, folder: _SearchFolder) -> bool:
    state = oracle.snapshot()
    locks = folder.live_workers()

    def live(tuner_id):
        return locks.get(tuner_id, True)  # no lock file: a worker elsewhere, assumed live

    if any(live(tuner_id) for tuner_id in state["ongoing"]):
        return True
    untold = (state["registered"] - state["stopped"]) | {w for w, held in locks.items() if held} - state["stopped"]
    return any(live(tuner_id) for tuner_id in untold)


def _run_worker(
    config, dataset, folder: _SearchFolder, worker_id: str, tensorboard_dir, emit: Progress, code: dict | None = None
) -> TuneResult:
    busy = f"a worker with `worker_id={worker_id}` is already running on {folder.path}; give each worker its own id"
    with folder.lock(folder.workers / f"{worker_id}.lock", busy, tries=10):
        folder.check_config(config.identity(), dataset.sha256, write=False)
        if code is not None:
            folder.check_code(code)
        host, port = settings.parse_oracle_address(config.oracle)
        emit(
            {
                "event": "search_start",
                "run_dir": str(folder.path),
                "role": "worker",
                "worker_id": worker_id,
                "tuner": config.tuner,
                "total": config.max_trials,
                "kept": 0,
                "deadline": None,
                "address": f"{host}:{port}",
                "dataset": dataset.describe(),
            }
        )
        if folder.search_ended():
            reason = "the chief has already ended this search"
            emit({"event": "search_end", "reason": reason, "trials": 0})
            return TuneResult(folder.path, pd.DataFrame(), pd.DataFrame(), None, [], "worker", stop_reason=reason)
        args, kwargs = _search_arguments(config, dataset, tensorboard_dir)
        tuner = _make_tuner(config, dataset, folder, len(args[0]), emit)
        tuner.search(*args, **kwargs)
        rows = []
        for trial_id in tuner.ran:
            trial = tuner.ended[trial_id]
            rows.append(
                {
                    "trial_id": trial_id,
                    "status": _status(trial.status, final=True),
                    **trial.hyperparameters.values,
                    "score": trial.score,
                    "error": _failure_reason(trial),
                }
            )
        reason = "the chief ended the search"
        emit({"event": "search_end", "reason": reason, "trials": len(rows)})
        return TuneResult(
            folder.path, pd.DataFrame(rows), pd.DataFrame(), None, [], "worker", ran=len(rows), stop_reason=reason
        )
