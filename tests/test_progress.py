"""Progress a person can follow: step counts that reach their total and move between Keras's reports."""

from __future__ import annotations

import io

import pytest
from recurrent_mnist_cli.views import events as views_events
from recurrent_mnist_cli.views.bench import BenchProgress
from rich.console import Console

from recurrent_mnist.training import TrainConfig, train_variant


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(views_events.time, "monotonic", fake)
    return fake


def test_a_58_step_epoch_reports_a_step_before_its_end_and_ends_at_58(tiny):
    # 522 training images at batch 9: 58 steps an epoch, reported every 50 (the default steps per call).
    events = []
    config = TrainConfig(cell="simple_rnn", units=4, epochs=2, batch_size=9, train_images=522)
    train_variant(tiny, config, emit=events.append, measure=False)
    begins = [e for e in events if e["event"] == "epoch_begin"]
    assert [(e["steps"], e["steps_per_call"]) for e in begins] == [(58, 50), (58, 50)]
    first, second = ([e["step"] for e in events if e["event"] == "batch" and e["epoch"] == n] for n in (1, 2))
    assert first == [50, 58], events  # the first call (tracing included) is reported before the epoch ends
    assert second[-1] == 58 and set(second) <= {50, 58}, events


def test_the_clock_moves_between_reports_but_never_past_the_running_call(clock):
    step_clock = views_events.StepClock()
    step_clock.epoch_begins(1, steps=58, chunk=10)
    clock.now += 30.0  # tracing and compilation, then the first call's ten steps
    step_clock.reached(1, 10, 58)
    clock.now += 5.0
    assert step_clock.estimate() == 10  # no pace yet: the first call compiled
    clock.now += 5.0  # the second call: ten steps in 10 s
    step_clock.reached(1, 20, 58)
    clock.now += 4.0
    assert step_clock.estimate() == pytest.approx(24.0)
    clock.now += 60.0  # a slow call: the estimate waits at the end of the running call
    assert 20 < step_clock.estimate() < 30
    step_clock.reached(1, 58, 58)
    assert step_clock.estimate() == 58


def _bench_events(steps: int, chunk: int):
    yield {"event": "variant_start", "cell": "lstm", "seed": 0, "index": 1, "total": 2, "epochs": 2}
    for epoch in (1, 2):
        yield {"event": "epoch_begin", "epoch": epoch, "epochs": 2, "steps": steps, "steps_per_call": chunk}
        for step in [*range(chunk, steps, chunk), steps]:
            yield {"event": "batch", "epoch": epoch, "step": step, "steps": steps, "accuracy": 0.5}


def test_the_bench_view_counts_58_of_58_and_the_overall_bar_moves_within_a_variant(clock):
    view = BenchProgress(Console(file=io.StringIO(), width=120))
    with view:
        view(
            {
                "event": "run_start",
                "run_dir": "results/x",
                "kept": 0,
                "total": 2,
                "dataset": {"name": "mnist-sample", "train_size": 4000, "test_size": 1000, "source": "sample"},
            }
        )
        seen = []
        for event in _bench_events(steps=58, chunk=50):
            clock.now += 2.0
            view(event)
            current = view.progress.tasks[view.current]
            seen.append((current.completed, current.total, view.progress.tasks[view.overall].completed))
        assert seen[-1][:2] == (116, 116)
        assert seen[0][1] is None and all(done <= total for done, total, _ in seen[1:])
        assert seen[2][0] == 50  # within the first epoch, before its end
        overall = [fraction for *_, fraction in seen]
        assert overall == sorted(overall) and 0 < overall[2] < 1 and overall[-1] == pytest.approx(1.0)
        view({"event": "variant_end", "cell": "lstm", "seed": 0, "row": {"status": "ok", "test_accuracy": 0.9}})
        assert view.progress.tasks[view.overall].completed == 1


def test_on_a_cluster_each_running_variant_has_its_row_with_its_worker_and_epoch():
    view = BenchProgress(Console(file=io.StringIO(), width=120))
    run_start = {"event": "run_start", "run_dir": "results/x", "kept": 0, "total": 2}
    dataset = {"name": "mnist-sample", "train_size": 4000, "test_size": 1000, "source": "sample"}
    label = {"cell": "lstm", "index": 1, "total": 2, "epochs": 3}
    with view:
        view({**run_start, "dataset": dataset})
        for seed in (0, 1):
            view({"event": "variant_queued", **label, "seed": seed, "at": 0.0})
        assert view.progress.tasks[view.overall].fields["status"] == "2 queued on the cluster"
        view({"event": "variant_started", **label, "seed": 0, "worker": "tcp://127.0.0.1:1", "at": 0.0})
        view({"event": "epoch_end", **label, "seed": 0, "worker": "tcp://127.0.0.1:1", "epoch": 1,
              "logs": {"accuracy": 0.25}, "epoch_time_s": 1.0})  # fmt: skip
        rows = {task.description: task for task in view.progress.tasks}
        row = rows["lstm seed 0 on tcp://127.0.0.1:1"]
        assert (row.completed, row.total, row.fields["status"]) == (1, 3, "epoch 1/3 acc 0.250")
        assert view.progress.tasks[view.overall].fields["status"] == "1 queued on the cluster"
        view({"event": "variant_end", **label, "seed": 0, "worker": "tcp://127.0.0.1:1",
              "row": {"status": "ok", "test_accuracy": 0.5, "epoch_time_s": 1.0}})  # fmt: skip
        assert [task.description for task in view.progress.tasks] == ["variants"]
