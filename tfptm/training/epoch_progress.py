"""One readable line per epoch, whatever Keras's own verbosity: speed, time left and validation metrics."""

import time

import keras


class EpochProgress(keras.callbacks.Callback):
    """Calls `report(line)` at the end of every epoch with its number, speed, ETA and validation metrics.

    Made for long runs whose progress bars are off (`tfptm train --quiet`, a
    log file): `epoch 2/5  31.4 examples/s  ETA 3m12s  loss 0.412  val_accuracy 0.851`.
    Speed counts training examples only (validation time is left out); the
    ETA assumes the remaining epochs run at the average epoch time so far,
    validation included. Epoch numbers are the `fit` epochs, so they run on
    across the stages of `tfptm.finetune`.

    Args:
        report: a callable taking one string (`tfptm.progress.Progress`, `print`).
        total_epochs: epochs planned in all, for `k/n` and the ETA.
        examples_per_epoch: training examples in one epoch, for examples/s.

    Example:
    >>> import numpy as np
    >>> lines = []
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    >>> model.compile("sgd", "mse")
    >>> _ = model.fit(np.zeros((8, 2)), np.zeros(8), epochs=2, verbose=0,
    ...               callbacks=[EpochProgress(lines.append, total_epochs=2, examples_per_epoch=8)])
    >>> [line.split()[:2] for line in lines]
    [['epoch', '1/2'], ['epoch', '2/2']]
    """

    def __init__(self, report, total_epochs, examples_per_epoch=None):
        super().__init__()
        self.report = report
        self.total_epochs = int(total_epochs)
        self.examples_per_epoch = examples_per_epoch
        self.epoch_seconds = []
        self.training_seconds = []  # per epoch, validation left out

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()
        self.training_done = None

    def on_test_begin(self, logs=None):
        if getattr(self, "started", None) is not None and self.training_done is None:
            self.training_done = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        now = time.perf_counter()
        self.epoch_seconds.append(now - self.started)
        training = (self.training_done or now) - self.started
        self.training_seconds.append(training)
        parts = [f"epoch {epoch + 1}/{self.total_epochs}"]
        if self.examples_per_epoch:
            parts.append(f"{self.examples_per_epoch / max(training, 1e-9):.1f} examples/s")
        left = max(0, self.total_epochs - epoch - 1)
        if left:
            parts.append(f"ETA {duration(left * sum(self.epoch_seconds) / len(self.epoch_seconds))}")
        logs = logs or {}
        shown = [key for key in ("loss", "accuracy") if key in logs] + sorted(k for k in logs if k.startswith("val_"))
        parts += [f"{key} {float(logs[key]):.4g}" for key in shown]
        self.report("  ".join(parts))
        self.started = None


def duration(seconds):
    """`seconds` as a short human duration.

    >>> duration(5.2), duration(192), duration(4000)
    ('5s', '3m12s', '1h06m')
    """
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
