"""The search space: `RowSequenceHyperModel`, a keras-tuner HyperModel of `RowSequenceClassifier` models.

Also the space's defaults and ranges, the objectives a search may optimise, and how one trial trains:
a loss that turns NaN fails the trial with its reason, and a trial reports the metrics of its best epoch.
"""

from __future__ import annotations

import math
import numbers

import keras
import keras_tuner
import numpy as np

from recurrent_mnist import settings
from recurrent_mnist.errors import ConfigError
from recurrent_mnist.model import RowSequenceClassifier
from recurrent_mnist.settings import BATCH_SIZE, BIDIRECTIONAL, DROPOUT, LAYERS, LEARNING_RATE, UNITS, check_range
from recurrent_mnist.training import INFERENCE_BATCH, TrainConfig, compile_model, input_pipeline
from recurrent_mnist.training.variant import release_models

# The searched settings, by hyperparameter name; each one's default is the first value tried,
# and its `search` range is the space when no option narrows it.
_SEARCHED = {s.name: s for s in (UNITS, LAYERS, DROPOUT, LEARNING_RATE, BATCH_SIZE)}
DEFAULTS = {name: setting.default for name, setting in _SEARCHED.items()} | {"bidirectional": BIDIRECTIONAL.default}
RANGES = {name: setting.search for name, setting in _SEARCHED.items()}
SEARCH_SPACE = ["cell", "reading", "units", "layers", "bidirectional", "dropout", "learning_rate", "batch_size"]
OBJECTIVES = settings.OBJECTIVE_DIRECTIONS


def trial_settings(values: dict) -> dict:
    """A trial's hyperparameters as `TrainConfig` fields: the same names, each in its setting's type.

    keras-tuner may hand an integer back as a float (its grid's log-sampled `Int`). A search over
    rows alone declares no `reading` (as searches before the readings), so a trial may lack it.
    """
    return {
        name: settings.SETTINGS[name].kind(values[name]) if name in settings.SETTINGS else values[name]
        for name in SEARCH_SPACE
        if name in values
    }


def _powers_of_two(low: int, high: int) -> list[int]:
    values = [low]
    while values[-1] * 2 <= high:
        values.append(values[-1] * 2)
    return values


class RowSequenceHyperModel(keras_tuner.HyperModel):
    """The search space of `RowSequenceClassifier` models, as a keras-tuner HyperModel.

    `build(hp)` declares, with the component's defaults as the first values tried:

    | name | kind | range | default |
    | --- | --- | --- | --- |
    | `cell` | choice | `cells` | the first cell |
    | `reading` | choice | `readings` (declared unless only rows) | the first reading |
    | `units` | int, powers of two times the minimum | 16 to 256 | 128 |
    | `layers` | int | 1 to 3 | 1 |
    | `bidirectional` | boolean | | False |
    | `dropout` | float, steps of 0.1 | 0 to 0.5 | 0 |
    | `learning_rate` | float, log scale | 1e-4 to 1e-2 | 1e-3 |
    | `batch_size` | int, powers of two times the minimum (in `fit`) | 32 to 256 | 128 |

    A range whose minimum equals its maximum, and a single cell, are fixed
    rather than searched; a default outside a narrowed range becomes the
    nearest value inside it. `fit(hp, model, ...)` trains with the searched
    batch size, stops early when the objective stops improving, fails the
    trial (`keras_tuner.errors.FailedTrialError`) when the loss becomes NaN or
    infinite, and returns the metrics of the best epoch with `best_epoch` and
    `epochs`. Given numpy arrays on the TensorFlow backend, it trains through
    the same `tf.data` pipeline as `bench` (uint8 images, reshuffled every
    epoch from the global seed, no autotune stall). What the functions `fit`
    traces register in TensorFlow's global state is removed when it returns
    (`training.variant.release_models`, without clearing Keras's session,
    which keras-tuner does before it builds the next trial's model): the trials
    of a search in one process train without its memory growing.

    Args:
        cells: the cell names to choose from. Defaults to `("lstm",)`.
        num_classes: number of output logits. Defaults to 10.
        input_shape: `(H, W)` of the images; when given, models are built
            at once (keras-tuner can then count their parameters).
        units, layers, dropout, learning_rate, batch_size: `(min, max)`
            ranges; see the table for the defaults.
        bidirectional: None searches both; True or False fixes it.
        readings: how the models read an image (`recurrent_mnist.readings`),
            one to fix it or several to choose from. Defaults to `("rows",)`.
        permutation_seed: the pixel order of the `permuted-pixels` reading.
            Defaults to 0.
        recurrent_dropout: the recurrent state's dropout of every model (not
            searched). Defaults to 0.
        clipnorm: the gradient norm Adam clips to in every trial; None (the
            default) does not clip.
        objective: `"val_accuracy"` (default) or `"val_loss"`: what early
            stopping watches and what picks the best epoch.
        early_stopping: stop a trial after this many epochs without a better
            objective. Defaults to 3; None trains every epoch.
        steps_per_execution: training steps per call into the compiled
            graph, as in `TrainConfig`. Defaults to 50; use
            `training.steps_per_execution_for(strategy)` under a distribution
            strategy.
        jit_compile: compile each training step with XLA; None (the default)
            decides per trial by `TrainConfig.uses_xla`'s automatic rule.
        strategy: the `tf.distribute` strategy name the trials run under
            (`"default"` or `"mirrored"`), for that rule.
        **kwargs: passed to `keras_tuner.HyperModel` (`name`, `tunable`).

    Example:

    >>> import keras_tuner
    >>> hypermodel = RowSequenceHyperModel(cells=("lstm", "gru"), units=(32, 64))
    >>> model = hypermodel.build(keras_tuner.HyperParameters())
    >>> (model.cell, model.units, model.num_layers)
    ('lstm', 64, 1)
    """

    def __init__(
        self,
        cells=("lstm",),
        num_classes=10,
        input_shape=None,
        units=RANGES["units"],
        layers=RANGES["layers"],
        bidirectional=None,
        dropout=RANGES["dropout"],
        learning_rate=RANGES["learning_rate"],
        batch_size=RANGES["batch_size"],
        recurrent_dropout=settings.RECURRENT_DROPOUT.default,
        readings=(settings.READING.default,),
        permutation_seed=settings.PERMUTATION_SEED.default,
        clipnorm=settings.CLIPNORM.default,
        objective="val_accuracy",
        early_stopping=settings.TUNE_EARLY_STOPPING,
        steps_per_execution=settings.STEPS_PER_EXECUTION.default,
        jit_compile=settings.JIT_COMPILE.default,
        strategy=settings.STRATEGY.default,
        parallel_chains="auto",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.cells = settings.check_cells(cells)
        if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) or num_classes < 2:
            raise ConfigError(f"`num_classes` must be an integer >= 2. Received: num_classes={num_classes!r}")
        self.num_classes = int(num_classes)
        if input_shape is not None and (len(tuple(input_shape)) != 2 or not all(int(d) > 0 for d in input_shape)):
            raise ConfigError(f"`input_shape` must be (height, width). Received: input_shape={input_shape!r}")
        self.input_shape = None if input_shape is None else tuple(int(d) for d in input_shape)
        self.units = check_range(UNITS, units)
        self.layers = check_range(LAYERS, layers)
        self.dropout = check_range(DROPOUT, dropout)
        self.learning_rate = check_range(LEARNING_RATE, learning_rate)
        self.batch_size = check_range(BATCH_SIZE, batch_size)
        if bidirectional is not None:
            BIDIRECTIONAL.check(bidirectional)
        self.bidirectional = bidirectional
        self.objective = settings.OBJECTIVE.check(objective)
        self.early_stopping = settings.EARLY_STOPPING.check(early_stopping)
        self.steps_per_execution = settings.STEPS_PER_EXECUTION.check(steps_per_execution)
        self.recurrent_dropout = settings.RECURRENT_DROPOUT.check(recurrent_dropout)
        self.readings = settings.check_readings(readings)
        self.permutation_seed = settings.PERMUTATION_SEED.check(permutation_seed)
        self.clipnorm = settings.CLIPNORM.check(clipnorm)
        self.jit_compile = settings.JIT_COMPILE.check(jit_compile)
        self.strategy = settings.STRATEGY.check(strategy)
        self.parallel_chains = parallel_chains

    # -- one declaration per hyperparameter -------------------------------------------

    @staticmethod
    def _int(hp, name, bounds, default, powers=False) -> int:
        low, high = bounds
        if low == high:
            return int(hp.Fixed(name, low))
        if powers:
            values = _powers_of_two(low, high)
            if len(values) == 1:
                return int(hp.Fixed(name, low))
            nearest = min(values, key=lambda v: abs(math.log(v / default)))
            # int(): keras-tuner's grid hands out log-sampled Int values as floats (8.0).
            return int(hp.Int(name, low, values[-1], step=2, sampling="log", default=nearest))
        return int(hp.Int(name, low, high, default=min(max(default, low), high)))

    @staticmethod
    def _float(hp, name, bounds, default, log=False):
        low, high = bounds
        if low == high:
            return hp.Fixed(name, low)
        default = min(max(default, low), high)
        if log:
            return hp.Float(name, low, high, sampling="log", default=default)
        step = min(0.1, high - low)
        return hp.Float(name, low, high, step=step, default=round(low + round((default - low) / step) * step, 10))

    def declare_hyperparameters(self, hp):
        # The batch size is used in `fit`; declared here too, so the oracle knows it before the first trial.
        self.batch_size_value(hp)

    def batch_size_value(self, hp) -> int:
        """Declares (or reads) the batch size."""
        return self._int(hp, "batch_size", self.batch_size, DEFAULTS["batch_size"], powers=True)

    def build(self, hp):
        if len(self.cells) == 1:
            cell = hp.Fixed("cell", self.cells[0])
        else:
            cell = hp.Choice("cell", list(self.cells), default=self.cells[0])
        if self.bidirectional is None:
            bidirectional = hp.Boolean("bidirectional", default=DEFAULTS["bidirectional"])
        else:
            bidirectional = hp.Fixed("bidirectional", self.bidirectional)
        model = RowSequenceClassifier(
            cell=cell,
            reading=self._reading(hp),
            permutation_seed=self.permutation_seed,
            units=self._int(hp, "units", self.units, DEFAULTS["units"], powers=True),
            num_classes=self.num_classes,
            num_layers=self._int(hp, "layers", self.layers, DEFAULTS["layers"]),
            bidirectional=bool(bidirectional),
            dropout=self._float(hp, "dropout", self.dropout, DEFAULTS["dropout"]),
            recurrent_dropout=self.recurrent_dropout,
            parallel_chains=self.parallel_chains,
        )
        if self.input_shape is not None:
            model.build((None, *self.input_shape))
        learning_rate = self._float(hp, "learning_rate", self.learning_rate, DEFAULTS["learning_rate"], log=True)
        jit_compile = self.uses_xla(cell, self.batch_size_value(hp))
        return compile_model(
            model, learning_rate, self.steps_per_execution, jit_compile=jit_compile, clipnorm=self.clipnorm
        )

    def _reading(self, hp) -> str:
        if self.readings == (settings.READING.default,):
            return self.readings[0]  # not declared: a search over rows stays what it was before the readings
        if len(self.readings) == 1:
            return hp.Fixed("reading", self.readings[0])
        return hp.Choice("reading", list(self.readings), default=self.readings[0])

    def uses_xla(self, cell: str, batch_size: int) -> bool:
        """Whether a trial of `cell` at `batch_size` compiles with XLA: `jit_compile`, or bench's automatic rule."""
        if self.jit_compile is not None:
            return self.jit_compile
        threads = self.parallel_chains if isinstance(self.parallel_chains, int) else None
        trial = TrainConfig(
            cell=cell,
            batch_size=batch_size,
            recurrent_dropout=self.recurrent_dropout,
            strategy=self.strategy,
            threads=threads,
        )
        return trial.uses_xla(keras.backend.backend())

    def fit(self, hp, model, *args, callbacks=None, **kwargs):
        guard = _StopOnNonFiniteLoss()
        callbacks = [guard, *(callbacks or [])]
        if self.early_stopping is not None:
            callbacks.append(
                keras.callbacks.EarlyStopping(
                    monitor=self.objective, mode=OBJECTIVES[self.objective], patience=self.early_stopping
                )
            )
        kwargs.setdefault("verbose", 0)
        batch_size = self.batch_size_value(hp)
        pipelined = _pipelined(args, kwargs, batch_size)
        if pipelined is not None:
            args, kwargs = pipelined
        else:
            kwargs["batch_size"] = batch_size
        # The model is still keras-tuner's until the next trial clears the session and collects it.
        with release_models(clear_session=False):
            history = model.fit(*args, callbacks=callbacks, **kwargs)
        if guard.failure:
            raise keras_tuner.errors.FailedTrialError(guard.failure)
        return _best_epoch_metrics(history, self.objective)


def _pipelined(args, kwargs, batch_size):
    """`fit`'s (x, y) and validation arrays as `training.input_pipeline`s, or None to leave them to Keras."""
    if len(args) != 2 or not all(isinstance(a, np.ndarray) for a in args) or "x" in kwargs or "y" in kwargs:
        return None
    validation = kwargs.get("validation_data")
    if validation is not None and not (
        isinstance(validation, (tuple, list))
        and len(validation) == 2
        and all(isinstance(a, np.ndarray) for a in validation)
    ):
        return None
    # Seeded from numpy's global generator, which keras.utils.set_random_seed seeds for each trial.
    train = input_pipeline(*args, batch_size, shuffle_seed=int(np.random.randint(2**31 - 1)))
    if train is None:  # another Keras backend
        return None
    kwargs = {**kwargs, "shuffle": False}  # the pipeline reshuffles every epoch
    if validation is not None:
        kwargs["validation_data"] = input_pipeline(*validation, INFERENCE_BATCH)
    return (train,), kwargs


class _StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Stops training when the training or validation loss is NaN or infinite, keeping the reason."""

    def __init__(self):
        super().__init__()
        self.failure = None
        self._epoch = 1

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch + 1

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.failure = f"the loss became {float(loss)} in epoch {self._epoch}"
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        for key in ("loss", "val_loss"):
            value = (logs or {}).get(key)
            if self.failure is None and value is not None and not math.isfinite(float(value)):
                self.failure = f"the {key.replace('_', ' ')} became {float(value)} in epoch {epoch + 1}"
                self.model.stop_training = True


def _best_epoch_metrics(history, objective: str) -> dict:
    values = history.history.get(objective)
    if not values:
        raise keras_tuner.errors.FailedTrialError(f"{objective} was not reported (no validation data?)")
    scored = [(float(v), i) for i, v in enumerate(values) if math.isfinite(float(v))]
    if not scored:
        raise keras_tuner.errors.FailedTrialError(f"{objective} was never a finite number")
    pick = max if OBJECTIVES[objective] == "max" else min
    best = pick(scored, key=lambda pair: pair[0])[1]
    metrics = {name: float(series[best]) for name, series in history.history.items() if len(series) > best}
    metrics["best_epoch"] = history.epoch[best] + 1
    metrics["epochs"] = history.epoch[-1] + 1
    return metrics
