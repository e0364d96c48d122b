"""Bench variants as tasks of a Dask cluster (`bench --cluster`).

Each variant is one task (`_cluster_task.train_on_worker`). On its worker it
trains in a fresh Python process, exactly as `isolate=True` trains it here, and
the task returns the variant's records (row, history, environment, log); the
client writes the run folder, so no shared filesystem is needed. The tasks
travel as code and never import Keras in the Dask worker process, so only the
training process pays TensorFlow's start-up. Each worker loads the
data set itself, and a copy whose SHA-256 differs from the client's fails the
variant with both digests.

How many variants a worker runs at once follows from its cores: a worker
declares them as the Dask resource `threads` (`dask worker ADDRESS --resources
threads=16`), and each task asks for the run's `threads`, so a 16-core worker
runs eight 2-thread variants, not sixteen that oversubscribe it. `local:N`
starts N worker processes here, each declaring its share of this machine's
cores.

`distributed` is an optional extra (`pip install "recurrent-mnist[cluster]"`),
imported only when a cluster is used.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import pickle
import queue
import socket
import time
from collections.abc import Callable, Iterator
from urllib.parse import urlparse

from recurrent_mnist import _cluster_task
from recurrent_mnist._cluster_task import EVENTS_TOPIC, run_command, train_on_worker
from recurrent_mnist.environment import framework_name
from recurrent_mnist.errors import ConfigError, RecurrentMnistError

__all__ = [
    "RESOURCE",
    "ClusterError",
    "CommandTasks",
    "check_address",
    "commands_on_cluster",
    "connect",
    "is_local_address",
    "plain_tcp_warning",
    "run_variants",
]

# The Dask worker resource that holds a worker's cores; each variant asks for its run's threads.
RESOURCE = "threads"
# How long commands run as tasks (search workers) may take to end by themselves after the block.
COMMANDS_END_S = 30
# How many times Dask runs a variant again after its worker died (a kill, a lost machine).
RETRIES = 1


class ClusterError(RecurrentMnistError):
    """The cluster cannot be used or stopped answering; what finished is kept."""


def check_address(address: str) -> tuple[str, object]:
    """`("local", N)` for `local:N`, `("remote", address)` for `tcp://` or `tls://` addresses.

    Raises:
        ConfigError: any other form (argument `cluster`).
    """
    if address.startswith("local:"):
        count = address.removeprefix("local:")
        if count.isdigit() and int(count) >= 1:
            return "local", int(count)
    elif urlparse(address).scheme in ("tcp", "tls") and urlparse(address).hostname:
        return "remote", address
    raise ConfigError(
        f"{address!r} is no cluster address: give tcp://HOST:PORT or tls://HOST:PORT (a running Dask scheduler) "
        "or local:N (N worker processes on this machine)",
        argument="cluster",
    )


def is_local_address(address: str) -> bool:
    """Whether a scheduler address names this machine (a loopback address or this host's name)."""
    host = urlparse(address).hostname or ""
    if host in ("localhost", socket.gethostname()):
        return True
    with contextlib.suppress(ValueError):
        return ipaddress.ip_address(host).is_loopback
    return False


def plain_tcp_warning(address: str) -> str | None:
    """The warning a plain `tcp://` scheduler off this machine deserves, or None."""
    if not address.startswith("tcp://") or is_local_address(address):
        return None
    return (
        f"{address} is a plain tcp:// scheduler on another machine: it accepts any client and carries the data and "
        "the results in clear. Inside a trusted network only; elsewhere use tls:// with Dask's certificates "
        "(docs: Running on a cluster)."
    )


def _distributed():
    try:
        import cloudpickle
        import distributed
    except ImportError:
        raise ConfigError(
            "a cluster needs Dask distributed, an optional extra: pip install 'recurrent-mnist[cluster]'",
            argument="cluster",
        ) from None
    # The tasks travel as code (`_submit`), so that a worker runs them without importing this package's Keras side.
    if _cluster_task.__name__ not in cloudpickle.list_registry_pickle_by_value():
        cloudpickle.register_pickle_by_value(_cluster_task)
    return distributed


class _CallOnLoad:
    """Pickles as the call `function(*args)`: loading it runs the call, and gives its result."""

    def __init__(self, function: Callable, *args):
        self.function, self.args = function, args

    def __reduce__(self):
        return self.function, self.args


def _submit(client, function: Callable, *args, **options):
    """`client.submit(function, *args, **options)` for a function of `_cluster_task`, sent as its code.

    Dask pickles a task's function by reference, so a worker would import this package, and Keras with
    it, to find it. Here the call is pickled with cloudpickle (which sends `_cluster_task`'s functions by
    value) and the task is `pickle.loads` of it: loading runs the call on the worker.
    """
    import cloudpickle

    _distributed()  # registers `_cluster_task` to travel by value
    return client.submit(pickle.loads, cloudpickle.dumps(_CallOnLoad(function, *args)), pure=False, **options)


def connect_timeout_s() -> float:
    """How long to wait for a scheduler to answer and for a first worker: Dask's own setting,
    `distributed.comm.timeouts.connect` (30 s unless configured; `DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT=10s`)."""
    import dask

    _distributed()  # Dask's defaults for distributed.* are loaded with it
    return float(dask.utils.parse_timedelta(dask.config.get("distributed.comm.timeouts.connect"), default="s"))


@contextlib.contextmanager
def connect(address: str, threads: int) -> Iterator[object]:
    """A Dask `Client` of the cluster at `address`, with a worker able to run a variant of `threads` threads.

    `local:N` starts a `LocalCluster` of N worker processes on loopback, closed
    on leaving; a `tls://` scheduler uses Dask's security configuration
    (`distributed.comm.tls.*` in Dask's config or `DASK_DISTRIBUTED__COMM__TLS__*`).

    Raises:
        ConfigError: a malformed address, or no `distributed`.
        ClusterError: the scheduler does not answer, no worker joins, or none
            declares enough `threads`.
    """
    kind, value = check_address(address)
    distributed = _distributed()
    with contextlib.ExitStack() as stack:
        stack.enter_context(_dask_logs_quiet())
        if kind == "local":
            cores = max(threads, (os.cpu_count() or 1) // value)
            cluster = stack.enter_context(
                distributed.LocalCluster(
                    n_workers=value,
                    threads_per_worker=max(1, cores // threads),
                    processes=True,
                    host="127.0.0.1",
                    # Dask still serves its HTTP endpoints without a dashboard: on a free port, not 8787,
                    # so that two runs on one machine never collide.
                    dashboard_address=":0",
                    resources={RESOURCE: cores},
                    silence_logs=logging.ERROR,
                )
            )
            target = cluster
        else:
            target = value
        wait_s = connect_timeout_s()
        try:
            client = stack.enter_context(distributed.Client(target, timeout=wait_s))
            client.wait_for_workers(1, timeout=wait_s)
        except (OSError, TimeoutError) as exc:
            raise ClusterError(
                f"the Dask scheduler at {address} did not answer, or no worker joined it, within "
                f"{wait_s:g} s ({type(exc).__name__}: {exc}); Dask's distributed.comm.timeouts.connect sets the wait"
            ) from None
        _check_capacity(client, address, threads)
        yield client


@contextlib.contextmanager
def _dask_logs_quiet() -> Iterator[None]:
    """Keeps the client's Dask log records (reconnection attempts with their tracebacks) out of the terminal:
    every failure they announce reaches the user as one sentence of `ClusterError`, or as a failed variant."""
    # Dask's configuration puts handlers on "distributed" and on some of its loggers ("distributed.client"),
    # each with a level of its own: the handlers are what is raised here.
    names = [name for name in logging.root.manager.loggerDict if name.split(".")[0] == "distributed"]
    handlers = list({id(h): h for name in names for h in logging.getLogger(name).handlers}.values())
    levels = [handler.level for handler in handlers]
    for handler in handlers:
        handler.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for handler, level in zip(handlers, levels, strict=True):
            handler.setLevel(level)


def _check_capacity(client, address: str, threads: int) -> None:
    workers = client.scheduler_info()["workers"].values()
    if not any((worker.get("resources") or {}).get(RESOURCE, 0) >= threads for worker in workers):
        raise ClusterError(
            f"no worker of the cluster at {address} declares {threads} or more '{RESOURCE}' for a variant of "
            f"--threads {threads}: start each worker with its cores, `dask worker {address} --resources "
            f"{RESOURCE}=CORES`"
        )


def run_variants(
    client,
    address: str,
    tasks: list[tuple[dict, dict, dict]],
    threads: int,
    code: dict,
    emit: Callable[[dict], None],
    done: Callable[[dict, object, dict], None],
    batch_done: Callable[[], None] = lambda: None,
) -> None:
    """Submits each `(spec, label, planned)` of `tasks` and calls `done(label, planned, outcome)` as each finishes.

    `batch_done()` follows the `done` calls of variants that finished together (those found finished while
    the others were recorded too), so that what is rebuilt from all the records (the tables) is rebuilt once
    for them, not once each.

    A variant whose worker died more than `RETRIES` times is recorded as failed with the reason.
    Interrupted (Ctrl-C), it cancels what has not finished; what finished was passed to `done`.

    Raises:
        ClusterError: the scheduler stopped answering.
    """
    distributed = _distributed()
    futures = {}
    for spec, label, planned in tasks:
        future = _submit(client, train_on_worker, spec, code, label, resources={RESOURCE: threads}, retries=RETRIES)
        futures[future] = (label, planned)
        emit({"event": "variant_queued", **label, "at": time.time()})
    events: queue.Queue = queue.Queue()
    # The workers' progress events arrive on the client's own thread; they are shown from this one.
    client.subscribe_topic(EVENTS_TOPIC, lambda event: events.put(event[1]))
    pending = set(futures)
    try:
        while pending:
            with contextlib.suppress(TimeoutError, distributed.TimeoutError):
                finished, pending = distributed.wait(pending, timeout=0.5, return_when="FIRST_COMPLETED")
                pending = set(pending)
                while finished:
                    for future in finished:
                        _drain(events, emit)
                        label, planned = futures[future]
                        done(label, planned, _outcome(future, planned, address, distributed))
                    finished = {future for future in pending if future.done()}  # ended meanwhile
                    pending -= finished
                batch_done()
            _drain(events, emit)  # progress is shown from this thread only
            if client.status in ("closed", "closing"):
                raise ClusterError(_lost(address, "the connection closed"))
    except distributed.CancelledError:  # the scheduler cancels every task when it loses the client
        raise ClusterError(_lost(address, "the connection was lost")) from None
    except KeyboardInterrupt:
        client.cancel(list(pending))
        raise
    finally:
        with contextlib.suppress(Exception):
            client.unsubscribe_topic(EVENTS_TOPIC)


def _outcome(future, planned, address: str, distributed) -> dict:
    """A finished task's outcome; a failed task's as a failed row with the reason."""
    try:
        outcome = future.result()
    except (OSError, distributed.comm.CommClosedError) as exc:
        raise ClusterError(_lost(address, type(exc).__name__)) from None
    except Exception as exc:  # noqa: BLE001 - a variant's failure, recorded with its reason
        reason = f"{type(exc).__name__}: {exc}"
        if type(exc).__name__ == "KilledWorker":
            reason = f"its worker process died {RETRIES + 1} times while training it (KilledWorker)"
        return {"row": planned.variant.failed_row(reason), "history": []}
    if "failed" in outcome:  # the worker could not train it: another version, a crashed training process
        return {**outcome, "row": {**planned.variant.failed_row(outcome["failed"]), "framework": framework_name()}}
    return outcome


def _lost(address: str, why: str) -> str:
    return (
        f"the Dask scheduler at {address} stopped answering ({why}); the finished variants are kept: run the "
        "same command again to resume"
    )


def _drain(events: queue.Queue, emit: Callable[[dict], None]) -> None:
    while True:
        try:
            emit(events.get_nowait())
        except queue.Empty:
            return


class CommandTasks:
    """Commands to run as tasks of a connected cluster: `start()` submits them, `futures` follow them, and
    `outcomes` says, once the block of `commands_on_cluster` has ended, how each ended."""

    def __init__(self, client, commands: list[list[str]], threads: int, cwd: str | None):
        self.client, self.commands, self.threads, self.cwd = client, commands, threads, cwd
        self.futures: list | None = None
        self.outcomes: list[dict] = []

    def start(self) -> None:
        """Submits the commands (once)."""
        if self.futures is None:
            self.futures = [
                _submit(
                    self.client, run_command, command, self.cwd, resources={RESOURCE: self.threads}, retries=RETRIES
                )
                for command in self.commands
            ]

    def collect(self) -> None:
        """What each task returned, or why it did not finish; read while the client is connected (a
        closed client reports every future as cancelled)."""
        self.outcomes = []
        for future in self.futures or ():
            if future.status == "finished":
                self.outcomes.append(future.result())
            else:
                why = f"it did not end within {COMMANDS_END_S} s of the search's end and was stopped ({future.status})"
                self.outcomes.append({"worker": None, "returncode": None, "output": why})


@contextlib.contextmanager
def commands_on_cluster(
    address: str, commands: list[list[str]], threads: int, cwd: str | None
) -> Iterator[CommandTasks]:
    """Connects to the cluster at `address` for the block, which starts `commands` when it is ready for them.

    On leaving, waits up to `COMMANDS_END_S` for the tasks to end by themselves (a search worker
    ends when its chief says the search is over), records how each ended in `outcomes`, then
    cancels what is left.
    """
    distributed = _distributed()
    with connect(address, threads) as client:
        tasks = CommandTasks(client, commands, threads, cwd)
        try:
            yield tasks
            if tasks.futures:
                with contextlib.suppress(TimeoutError, distributed.TimeoutError):
                    distributed.wait(tasks.futures, timeout=COMMANDS_END_S)
            tasks.collect()
        finally:
            client.cancel([future for future in tasks.futures or () if not future.done()])
