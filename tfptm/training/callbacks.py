"""Callbacks for runs that can be stopped and resumed: early stopping, best
checkpoint, backups that survive a kill mid-epoch, TensorBoard, a CSV history,
and a NaN guard that ends the run with a clear error (floor 3)."""

import importlib.util
import json
import math
import os
import re
import shutil
import time
import warnings
from pathlib import Path

import keras

from tfptm.errors import TfptmError
from tfptm.files import ensure_writable_dir, write_json_atomic

STATE_FILE = "training_metadata.json"
_WEIGHTS = re.compile(r"^weights-(\d+)\.weights\.h5$")


class BackupAndRestore(keras.callbacks.BackupAndRestore):
    """Keras's `BackupAndRestore`, made safe to kill at any moment and aware of `finetune` stages.

    Run the same command again after a crash or a kill and training resumes
    from the last backup: at the start of the epoch it was in (Keras reruns
    an unfinished epoch) with the weights and optimizer state saved last, so
    the run ends with the same number of epochs. `save_freq` is `"epoch"` or a
    number of steps; a backup is also written at every epoch end, unless one
    was written less than `min_seconds` ago (a large model's weights and
    optimizer state take seconds to write: a kill then costs at most that
    much work).

    Unlike Keras's callback, every backup is committed by one atomic rename of
    a small JSON state file (which names its weights file), so a kill while
    writing leaves the previous backup intact. The state also records the
    `finetune` stage and the history so far: `tfptm.finetune` skips finished
    stages, resumes the current one and returns the whole history. The backup
    directory is deleted when training ends (unless `delete_checkpoint=False`).

    Example:
    >>> import os, tempfile, numpy as np, tfptm
    >>> backbone = tfptm.backbones.get("vgg_cnn", input_shape=(8, 8, 1), filters=(8,))
    >>> model = tfptm.build_model(backbone, tfptm.Head("multiclass", num_classes=2))
    >>> data = tfptm.data.from_arrays(np.random.rand(8, 8, 8, 1), np.arange(8) % 2, batch_size=4, seed=0)
    >>> backup = BackupAndRestore(tempfile.mkdtemp() + "/backup", save_freq=1)
    >>> history = tfptm.finetune(model, data, tfptm.training.two_stage(1, 1), callbacks=[backup], verbose=0)
    >>> len(history["loss"]), os.path.exists(backup.backup_dir)
    (2, False)
    """

    def __init__(self, backup_dir, save_freq="epoch", delete_checkpoint=True, min_seconds=0):
        super().__init__(str(backup_dir), save_freq=save_freq, delete_checkpoint=delete_checkpoint)
        if not isinstance(min_seconds, (int, float)) or min_seconds < 0:
            raise TfptmError(f"BackupAndRestore: min_seconds is {min_seconds!r}; expected a number >= 0")
        self.min_seconds, self._saved_at = min_seconds, None
        self.stage, self.stage_name, self.stage_done = 0, None, False  # set by `finetune` for each stage
        self.keep_between_fits = False  # `finetune` keeps the backup across its fits
        self.history = {}

    def state(self):
        """The last committed backup (`epoch`, `batch`, `stage`, `stage_done`, `history`, `weights`), or None."""
        path = Path(self.backup_dir) / STATE_FILE
        if not path.is_file():
            return None
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
            weights = Path(self.backup_dir) / state["weights"]
        except (ValueError, KeyError, TypeError) as error:
            raise TfptmError(f"Backup state {str(path)!r} is unreadable ({error}); delete the directory to start afresh")
        if not weights.is_file():
            raise TfptmError(f"Backup state {str(path)!r} names {weights.name!r}, which is missing")
        return state

    def on_train_begin(self, logs=None):
        self.model._initial_epoch = None  # Keras never clears what a restore set, so the next fit would reuse it
        if self._saved_at is None:
            self._saved_at = time.monotonic()  # the first backup comes `min_seconds` into training
        self._load_model()

    def _load_model(self):
        state = self.state()
        if state is None or state.get("stage", 0) > self.stage:
            return
        path = os.path.join(self.backup_dir, state["weights"])
        if state["stage"] < self.stage or state.get("stage_done"):
            # The end of an earlier stage: its weights, but not its optimizer (this stage has a fresh one).
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
                self.model.load_weights(path)
            return
        if self.model.optimizer is not None and not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        self.model.load_weights(path)
        self.model._initial_epoch = state["epoch"]  # what Keras's own callback sets
        self.history = state["history"]

    def complete_stage(self):
        """Records that the current `finetune` stage is finished, with its final weights."""
        self.stage_done = True
        self._save_model()

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch  # Keras only sets this at epoch end, so a resumed run saved epoch 0

    def on_epoch_end(self, epoch, logs=None):
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(float(value))
        if self.stage_name is not None:
            self.history.setdefault("stage", []).append(self.stage_name)
        self._current_epoch, self._last_batch_seen = epoch + 1, 0
        if self.min_seconds and time.monotonic() - self._saved_at < self.min_seconds:
            return  # the history is kept in memory and saved with the next backup
        self._save_model()

    def _save_model(self):
        directory = ensure_writable_dir(self.backup_dir, what="backup directory")
        numbers = [int(m[1]) for m in map(_WEIGHTS.match, os.listdir(directory)) if m]
        name = f"weights-{max(numbers, default=0) + 1}.weights.h5"
        self.model.save_weights(str(directory / name))
        state = {"epoch": self._current_epoch, "batch": self._last_batch_seen, "stage": self.stage,
                 "stage_done": self.stage_done, "weights": name, "history": self.history}  # fmt: skip
        write_json_atomic(directory / STATE_FILE, state)  # the commit point
        self._saved_at = time.monotonic()
        for other in os.listdir(directory):
            if _WEIGHTS.match(other) and other != name:
                os.remove(directory / other)

    def on_train_end(self, logs=None):
        if not self.keep_between_fits:
            self.finish()

    def finish(self):
        """Deletes the backup (if `delete_checkpoint`): the run it protected is complete."""
        if self.delete_checkpoint:
            shutil.rmtree(self.backup_dir, ignore_errors=True)


class EarlyStopping(keras.callbacks.EarlyStopping):
    """Keras's `EarlyStopping` that remembers the best epoch across `fit` calls (the stages of `tfptm.finetune`).

    Keras's forgets its best score and weights at every `fit`, so with
    `restore_best_weights` a multi-stage run ended with the best epoch of its
    last stage, not of the run. This one carries them over: each stage ends
    with the best weights seen so far, and patience counts afresh per stage.

    Example:
    >>> import numpy as np
    >>> model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    >>> model.compile("sgd", "mse")
    >>> x, y = np.ones((8, 1)), np.ones(8)
    >>> stop = EarlyStopping(monitor="val_loss", restore_best_weights=True)
    >>> for start, rate in ((0, 0.1), (2, 10.0)):  # the second stage diverges
    ...     _ = model.optimizer.learning_rate.assign(rate)
    ...     _ = model.fit(x, y, validation_data=(x, y), initial_epoch=start, epochs=start + 2, verbose=0,
    ...                   callbacks=[stop])
    >>> stop.best_epoch, bool(model.evaluate(x, y, verbose=0) == stop.best)
    (1, True)
    """

    def on_train_begin(self, logs=None):
        best, weights, epoch = getattr(self, "best", None), self.best_weights, getattr(self, "best_epoch", 0)
        super().on_train_begin(logs)
        if weights is not None:
            self.best, self.best_weights, self.best_epoch = best, weights, epoch


class StopOnNaN(keras.callbacks.Callback):
    """Ends training with a `TfptmError` at the first step whose loss is NaN or infinite.

    Keras's `TerminateOnNaN` only prints and stops; this raises, so scripts
    and the CLI fail with a message that names the epoch and step.

    Example:
    >>> import numpy as np, tfptm
    >>> backbone = tfptm.backbones.get("vgg_cnn", input_shape=(8, 8, 1), filters=(8,))
    >>> model = tfptm.build_model(backbone, tfptm.Head("regression"))
    >>> x, y = np.random.rand(8, 8, 8, 1), np.full(8, np.nan)
    >>> model.fit(x, y, callbacks=[StopOnNaN()], verbose=0)
    Traceback (most recent call last):
    tfptm.errors.TfptmError: Training loss is nan at epoch 1, step 1 (optimizer step 1); ...
    """

    _epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.model.stop_training = True
            raise TfptmError(
                f"Training loss is {float(loss)} at epoch {self._epoch + 1}, step {batch + 1} "
                f"(optimizer step {int(self.model.optimizer.iterations)}); expected a finite loss: lower the "
                "learning rate, clip gradients (clipnorm), or check the data and labels for NaN and infinity"
            )


class CSVLogger(keras.callbacks.CSVLogger):
    """Keras's `CSVLogger` in append mode that never repeats an epoch.

    At the first epoch of each `fit` it drops rows for that epoch and later
    ones (left by a run that was killed and is now resumed, or by an earlier
    run in the same place), so the file holds each epoch once.

    Example:
    >>> import tempfile
    >>> logger = CSVLogger(tempfile.mkdtemp() + "/history.csv")
    >>> logger.append
    True
    """

    def __init__(self, filename, separator=","):
        super().__init__(str(filename), separator=separator, append=True)
        self._trimmed = False

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self._trimmed = False

    def on_epoch_begin(self, epoch, logs=None):
        if self._trimmed:
            return
        self._trimmed = True
        self.csv_file.flush()
        with open(self.filename, encoding="utf-8") as f:
            lines = f.readlines()
        keep = [line for line in lines[1:] if line.endswith("\n") and _row_epoch(line, self.sep) < epoch]
        if keep != lines[1:]:
            self.csv_file.truncate(0)  # append mode: later writes go to the new end
            self.csv_file.writelines(lines[:1] + keep)
            self.csv_file.flush()


def _row_epoch(line, separator):
    try:
        return int(line.split(separator, 1)[0])
    except ValueError:
        return math.inf  # a damaged row: drop it


def standard(
    run_dir,
    monitor="val_loss",
    mode="auto",
    patience=5,
    backup=True,
    backup_every_steps=100,
    tensorboard="auto",
    csv=True,
    checkpoint=True,
    early_stopping=True,
    restore_best_weights=True,
):
    """The usual callbacks for a run whose files go under `run_dir`.

    In order: `StopOnNaN`; `EarlyStopping` on `monitor` (tfptm's: restoring
    the best weights of all stages unless `restore_best_weights=False`;
    `patience` epochs); `ModelCheckpoint` of the best model to
    `run_dir/best.keras`; `TensorBoard` logs in `run_dir/logs` (`"auto"`: if
    the `tensorboard` package is installed, as Keras needs it); a `CSVLogger`
    to `run_dir/history.csv`; and `BackupAndRestore` in `run_dir/backup`,
    every `backup_every_steps` steps and epoch. The CSV row of an epoch is
    written before its backup, so a kill between the two reruns the epoch
    and rewrites the row rather than losing it.

    Example:
    >>> import tempfile
    >>> [type(c).__name__ for c in standard(tempfile.mkdtemp(), monitor="val_accuracy", tensorboard=False)]
    ['StopOnNaN', 'EarlyStopping', 'ModelCheckpoint', 'CSVLogger', 'BackupAndRestore']
    """
    run_dir = ensure_writable_dir(run_dir, what="run directory")
    callbacks = [StopOnNaN()]
    if early_stopping:
        callbacks.append(
            EarlyStopping(monitor=monitor, mode=mode, patience=patience, restore_best_weights=restore_best_weights)
        )
    if checkpoint:
        callbacks.append(
            keras.callbacks.ModelCheckpoint(str(run_dir / "best.keras"), monitor=monitor, mode=mode, save_best_only=True)
        )
    has_tensorboard = importlib.util.find_spec("tensorboard") is not None
    if tensorboard is True and not has_tensorboard:
        raise TfptmError("standard: tensorboard=True but the tensorboard package is not installed; pip install tensorboard")
    if tensorboard is True or (tensorboard == "auto" and has_tensorboard):
        callbacks.append(keras.callbacks.TensorBoard(str(run_dir / "logs")))
    if csv:
        callbacks.append(CSVLogger(run_dir / "history.csv"))
    if backup:
        callbacks.append(BackupAndRestore(run_dir / "backup", save_freq=backup_every_steps))
    return callbacks
