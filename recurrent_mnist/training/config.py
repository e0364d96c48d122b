"""`TrainConfig`: everything that defines one trained variant, checked against `recurrent_mnist.settings`.

Also the two decisions that follow from a configuration rather than being set:
how many training steps run per graph call, and whether XLA compiles the step.
No TensorFlow here: a configuration can be built and checked before TensorFlow starts.
"""

from __future__ import annotations

import dataclasses

from recurrent_mnist import settings
from recurrent_mnist.errors import ConfigError
from recurrent_mnist.fast_rnn.thresholds import AUTO_XLA_MAX_BATCH

__all__ = ["AUTO_XLA_MAX_BATCH", "TrainConfig", "steps_per_execution_for"]

# The settings a TrainConfig holds, by field name; `cell` is checked against the registry.
_CHECKED = (
    settings.UNITS,
    settings.LAYERS,
    settings.BIDIRECTIONAL,
    settings.DROPOUT,
    settings.RECURRENT_DROPOUT,
    settings.READING,
    settings.PERMUTATION_SEED,
    settings.EPOCHS,
    settings.BATCH_SIZE,
    settings.LEARNING_RATE,
    settings.CLIPNORM,
    settings.TRAIN_IMAGES,
    settings.VALIDATION_SPLIT,
    settings.EARLY_STOPPING,
    settings.TARGET_ACCURACY,
    settings.SEED,
    settings.STEPS_PER_EXECUTION,
    settings.JIT_COMPILE,
    settings.STRATEGY,
    settings.THREADS,
)


# Settings added after runs were first recorded: an identity names them only when they are not at their default.
_OMITTED_AT_DEFAULT = ("reading", "permutation_seed", "clipnorm", "train_images")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything that defines one trained variant.

    Every field but `cell` is a setting of `recurrent_mnist.settings` under the
    same name (its default, range and help are there); the same names are the
    columns of `runs.csv`.

    Attributes:
        cell: a registered cell name (`lstm`, `gru`, `simple_rnn`, ...).
        units, layers, bidirectional, dropout, recurrent_dropout: the model.
        reading, permutation_seed: how the model reads an image as a sequence
            (`recurrent_mnist.readings`).
        epochs, batch_size, learning_rate, clipnorm, validation_split,
            train_images, early_stopping, target_accuracy, seed: the training.
        steps_per_execution: training steps per call into the compiled graph.
        jit_compile: XLA on or off; None: the automatic choice (`uses_xla`).
        strategy: `"default"` (one device) or `"mirrored"`.
        threads: CPU threads of the training process: TensorFlow's inter-op
            threads (one intra-op thread each) and the fast layers' parallel
            batch chains. None (the default) means every core this process
            may use, resolved when the configuration is made, so that the
            number is recorded with every result.
    """

    cell: str = "lstm"
    units: int = settings.UNITS.default
    layers: int = settings.LAYERS.default
    bidirectional: bool = settings.BIDIRECTIONAL.default
    dropout: float = settings.DROPOUT.default
    recurrent_dropout: float = settings.RECURRENT_DROPOUT.default
    reading: str = settings.READING.default
    permutation_seed: int = settings.PERMUTATION_SEED.default
    epochs: int = settings.EPOCHS.default
    batch_size: int = settings.BATCH_SIZE.default
    learning_rate: float = settings.LEARNING_RATE.default
    clipnorm: float | None = settings.CLIPNORM.default
    validation_split: float = settings.VALIDATION_SPLIT.default
    train_images: int | None = settings.TRAIN_IMAGES.default
    early_stopping: int | None = settings.EARLY_STOPPING.default
    target_accuracy: float | None = settings.TARGET_ACCURACY.default
    seed: int = settings.SEED.default
    steps_per_execution: int = settings.STEPS_PER_EXECUTION.default
    jit_compile: bool | None = settings.JIT_COMPILE.default
    strategy: str = settings.STRATEGY.default
    threads: int | None = settings.THREADS.default

    def __post_init__(self):
        settings.check_fields(self, _CHECKED)
        (cell,) = settings.check_cells([self.cell], argument="cell")
        object.__setattr__(self, "cell", cell)

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        """A configuration from `to_dict()`'s output (a variant file, a checkpoint), refusing unknown fields."""
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown training settings: {', '.join(unknown)}")
        return cls(**values)

    def uses_xla(self, backend: str = "tensorflow") -> bool:
        """Whether training compiles with XLA: `jit_compile`, or the automatic choice when it is None.

        The automatic choice is XLA for the fast LSTM on one thread up to
        `AUTO_XLA_MAX_BATCH` rows (`recurrent_mnist.fast_rnn.thresholds`):
        XLA fuses each unrolled step's element-wise work, but runs the step on
        one thread, so it loses to parallel batch chains.
        """
        if self.jit_compile is not None:
            return self.jit_compile
        return (
            self.cell == "lstm"
            and self.batch_size <= AUTO_XLA_MAX_BATCH
            and not self.recurrent_dropout  # the stock layer, which XLA slows down
            and self.strategy == "default"
            and backend == "tensorflow"
            # XLA runs the step on one thread: it loses to parallel batch chains.
            and self.threads == 1
        )

    def effective_steps_per_execution(self) -> int:
        """`steps_per_execution`, or 1 under a distribution strategy (see `steps_per_execution_for`)."""
        return steps_per_execution_for(self.strategy, self.steps_per_execution)

    def model_kwargs(self) -> dict:
        """The `RowSequenceClassifier` arguments of this configuration."""
        return {
            "cell": self.cell,
            "units": self.units,
            "num_layers": self.layers,
            "bidirectional": self.bidirectional,
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "reading": self.reading,
            "permutation_seed": self.permutation_seed,
            "parallel_chains": self.threads,
        }

    def to_dict(self) -> dict:
        """Every field by its canonical name: the configuration columns of a `runs.csv` row."""
        return dataclasses.asdict(self)

    def columns(self) -> dict:
        """The configuration columns of this variant's `runs.csv` row.

        Every field by its canonical name, but `epochs` is `epochs_requested`:
        a row's `epochs` counts the epochs trained.
        """
        columns = self.to_dict()
        columns["epochs_requested"] = columns.pop("epochs")
        return columns

    def failed_row(self, reason: str) -> dict:
        """The `runs.csv` row of a variant that failed before it could report anything else."""
        return {**self.columns(), "epochs": 0, "status": "failed", "error": reason[:500]}

    def identity(self) -> dict:
        """What the variants of one run share: every field but the cell and the seed.

        The reading, its permutation seed, clipping and the training subset appear only where they
        differ from the defaults (the permutation seed only for the permuted
        reading), so that runs made before these settings existed keep their
        identity and resume.
        """
        shared = self.to_dict()
        del shared["cell"], shared["seed"]
        for name in _OMITTED_AT_DEFAULT:
            if shared[name] == settings.SETTINGS[name].default:
                del shared[name]
        if self.reading != "permuted-pixels":
            shared.pop("permutation_seed", None)
        return shared


def steps_per_execution_for(strategy: str, requested: int = settings.STEPS_PER_EXECUTION.default) -> int:
    """`requested` steps per execution, or 1 under a distribution strategy.

    Keras 3.15 / TF 2.21 fail on a multi-step execution under MirroredStrategy
    ("You must feed a value for placeholder tensor ... while/cond/Placeholder_1").
    """
    return requested if strategy == "default" else 1
