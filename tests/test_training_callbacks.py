"""Callbacks: the NaN guard, a CSV history without repeated epochs, early stopping
with a best checkpoint, and resuming multi-stage `finetune` runs after a crash
and after a real SIGKILL mid-epoch."""

import csv
import importlib.util
import json
import os
import random
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfptm
from tfptm.errors import TfptmError
from tfptm.training.callbacks import STATE_FILE

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _data(digit_batch, batch_size=16):
    x, y = digit_batch
    return tfptm.data.from_arrays(x, y, batch_size=batch_size, seed=0)


def _csv_epochs(path):
    with open(path, newline="") as f:
        return [int(row["epoch"]) for row in csv.DictReader(f)]


def test_nan_loss_stops_at_once_naming_the_step(tiny_classifier, digit_batch):
    x, y = digit_batch
    x = x.astype("float32").copy()
    x[40:] = np.nan  # batches of 16: the third batch of the first epoch is the first with NaN
    seen = []

    class Count(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append(batch)

    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)  # tfptm.data refuses NaN features
    with pytest.raises(TfptmError, match=r"Training loss is nan at epoch 1, step 3 \(optimizer step 3\)"):
        tfptm.finetune(tiny_classifier, data, tfptm.training.full(3), callbacks=[tfptm.training.StopOnNaN(), Count()], verbose=0)
    assert seen == [0, 1]  # the guard ran first and nothing came after it


def test_csv_history_drops_rows_a_resumed_run_repeats(tmp_path, tiny_classifier, digit_batch):
    path = tmp_path / "history.csv"
    logger = tfptm.training.CSVLogger(path)
    tiny_classifier.fit(_data(digit_batch), epochs=3, callbacks=[logger], shuffle=False, verbose=0)
    with open(path, "a") as f:
        f.write("3,0.5,0.")  # a row cut off by a kill
    tiny_classifier.fit(_data(digit_batch), initial_epoch=1, epochs=4, callbacks=[logger], shuffle=False, verbose=0)
    assert _csv_epochs(path) == [0, 1, 2, 3]


def test_standard_callbacks_stop_early_and_keep_the_best_model(tmp_path, tiny_classifier, digit_batch):
    x, y = digit_batch
    callbacks = tfptm.training.callbacks.standard(tmp_path / "run", monitor="val_loss", patience=1)
    best = []

    class Track(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            best.append(logs["val_loss"])

    # A rate far too high: validation loss rises soon, and early stopping must end the stage.
    stages = [tfptm.training.Stage("hot", 30, 0.5, trainable_blocks="all", freeze_batchnorm=False)]
    history = tfptm.finetune(tiny_classifier, _data(digit_batch), stages, validation_data=(x[:32], y[:32]),
                             callbacks=callbacks + [Track()], verbose=0)  # fmt: skip
    epochs = len(history["loss"])
    assert epochs < 30 and history["stage"] == ["hot"] * epochs
    loaded = keras.saving.load_model(tmp_path / "run" / "best.keras")
    assert loaded.evaluate(x[:32], y[:32], verbose=0)[0] == pytest.approx(min(best), rel=1e-4)
    assert _csv_epochs(tmp_path / "run" / "history.csv") == list(range(epochs))
    if importlib.util.find_spec("tensorboard"):
        assert os.listdir(tmp_path / "run" / "logs")  # TensorBoard wrote something
    else:
        with pytest.raises(TfptmError, match="tensorboard package is not installed"):
            tfptm.training.callbacks.standard(tmp_path / "other", tensorboard=True)
    assert not (tmp_path / "run" / "backup").exists()  # removed when the run completed


class Crash(keras.callbacks.Callback):
    """Raises at a chosen (epoch, batch), or at the start of a chosen `fit` call."""

    def __init__(self, epoch=None, batch=None, fit_call=None):
        super().__init__()
        self.at, self.fit_call, self.fits = (epoch, batch), fit_call, 0

    def on_train_begin(self, logs=None):
        self.fits += 1
        if self.fits == self.fit_call:
            raise RuntimeError("crash between stages")

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.epoch, batch) == self.at:
            raise RuntimeError("crash mid-epoch")


def _run(run_dir, digit_batch, crash=None):
    keras.utils.set_random_seed(0)
    backbone = tfptm.backbones.get("vgg_cnn", input_shape=(8, 8, 1), filters=(8,), input_scale=1 / 16)
    model = tfptm.build_model(backbone, tfptm.Head("multiclass", num_classes=3))
    fits = []

    class Fits(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            fits.append(self.model._initial_epoch)

    callbacks = tfptm.training.callbacks.standard(run_dir, monitor="loss", patience=100, backup_every_steps=1, tensorboard=False)
    history = tfptm.finetune(model, _data(digit_batch), tfptm.training.two_stage(2, 2),
                             callbacks=callbacks + [Fits()] + ([crash] if crash else []), verbose=0)  # fmt: skip
    return model, history, fits


@pytest.mark.parametrize(
    "crash, first_fit_resumes_at",
    [
        (Crash(epoch=2, batch=1), 2),  # mid-epoch in the second stage: resume its first epoch
        (Crash(epoch=1, batch=2), 1),  # mid-epoch in the first stage
        (Crash(fit_call=2), None),  # after the first stage completed: skip it, start the second
    ],
)
def test_finetune_resumes_after_a_crash_with_each_epoch_once(tmp_path, digit_batch, crash, first_fit_resumes_at):
    with pytest.raises(RuntimeError, match="crash"):
        _run(tmp_path, digit_batch, crash)
    state = json.loads((tmp_path / "backup" / STATE_FILE).read_text())
    model, history, fits = _run(tmp_path, digit_batch)
    assert history["stage"] == ["feature_extraction"] * 2 + ["finetune"] * 2
    assert len(history["loss"]) == len(history["accuracy"]) == 4
    assert _csv_epochs(tmp_path / "history.csv") == [0, 1, 2, 3]
    if first_fit_resumes_at is None:
        assert state["stage_done"] and fits == [None]  # only the second stage's fit ran
    else:
        assert fits[0] == first_fit_resumes_at
    assert not (tmp_path / "backup").exists()


def test_keras_backup_is_refused_for_several_stages(tmp_path, tiny_classifier, digit_batch):
    backup = keras.callbacks.BackupAndRestore(str(tmp_path / "b"))
    with pytest.raises(TfptmError, match="use tfptm.training.BackupAndRestore"):
        tfptm.finetune(tiny_classifier, _data(digit_batch), tfptm.training.two_stage(1, 1), callbacks=[backup], verbose=0)


SCRIPT = """
import json, os, sys, time
import numpy as np, keras
import tfptm

run = sys.argv[1]
keras.utils.set_random_seed(0)
backbone = tfptm.backbones.get("vgg_cnn", input_shape=(8, 8, 1), filters=(8,))
model = tfptm.build_model(backbone, tfptm.Head("multiclass", num_classes=2))
rng = np.random.default_rng(0)
x, y = rng.random((64, 8, 8, 1)).astype("float32"), np.arange(64) % 2
data = tfptm.data.from_arrays(x, y, batch_size=4, seed=0)


class Slow(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        time.sleep(0.03)


callbacks = tfptm.training.callbacks.standard(run, monitor="loss", patience=100, backup_every_steps=1, tensorboard=False)
resumed = callbacks[-1].state()
history = tfptm.finetune(model, data, tfptm.training.two_stage(2, 2), callbacks=[Slow()] + callbacks, verbose=0)
with open(os.path.join(run, "result.json"), "w") as f:
    json.dump({"resumed": resumed and {k: resumed[k] for k in ("epoch", "batch", "stage")}, "history": history}, f)
"""


def test_sigkill_mid_epoch_then_the_same_command_finishes_the_run(tmp_path):
    script, run = tmp_path / "train.py", tmp_path / "run"
    script.write_text(SCRIPT)
    command = [sys.executable, str(script), str(run)]
    env = {**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "2"}
    delay = random.uniform(0.0, 2.0)  # training takes about 4 s after the first backup
    with open(tmp_path / "first.log", "w") as log:
        proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 90
            while not (run / "backup" / STATE_FILE).exists() and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
            time.sleep(delay)
            assert proc.poll() is None, f"training ended before the kill at +{delay:.2f}s: {(tmp_path / 'first.log').read_text()[-2000:]}"
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (run / "result.json").exists()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    result = json.loads((run / "result.json").read_text())
    assert result["resumed"] is not None, f"killed at +{delay:.2f}s"
    assert result["history"]["stage"] == ["feature_extraction"] * 2 + ["finetune"] * 2, f"killed at +{delay:.2f}s"
    assert len(result["history"]["loss"]) == 4
    assert _csv_epochs(run / "history.csv") == [0, 1, 2, 3]
    assert keras.saving.load_model(run / "best.keras").output.shape == (None, 2)
    assert not (run / "backup").exists()
