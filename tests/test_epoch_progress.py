"""EpochProgress: one line per epoch with speed, ETA and validation metrics; what `tfptm train --quiet` shows."""

import re
import time

import keras
import numpy as np
import pytest

import tfptm
from tfptm.cli import main
from tfptm.training import EpochProgress

LINE = re.compile(r"^epoch (\d+)/(\d+)  ([\d.]+) examples/s(?:  ETA (\S+))?((?:  \w+ \S+)*)$")


def seconds(duration):
    """The inverse of tfptm.training.epoch_progress.duration: '5s', '3m12s', '1h06m'."""
    match = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", duration)
    assert match and duration, duration
    h, m, s = (int(g or 0) for g in match.groups())
    return 3600 * h + 60 * m + s


class SlowValidation(keras.callbacks.Callback):
    def on_test_end(self, logs=None):
        time.sleep(1.0)


def small_model():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(3)])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    return model


def test_lines_have_epoch_speed_eta_and_validation_metrics():
    x, y = np.random.default_rng(0).normal(size=(64, 4)).astype("float32"), np.arange(64) % 3
    lines = []
    progress = EpochProgress(lines.append, total_epochs=3, examples_per_epoch=64)
    small_model().fit(x, y, batch_size=16, epochs=3, validation_data=(x[:16], y[:16]), verbose=0,
                      callbacks=[progress, SlowValidation()])
    assert len(lines) == 3, lines
    parsed = [LINE.match(line) for line in lines]
    assert all(parsed), lines
    assert [(int(m[1]), int(m[2])) for m in parsed] == [(1, 3), (2, 3), (3, 3)]
    # ETA on every epoch but the last; it counts validation time (1s an epoch here)
    assert parsed[0][4] and parsed[1][4] and parsed[2][4] is None, lines
    assert seconds(parsed[0][4]) >= 2 and seconds(parsed[1][4]) >= 1, lines
    # speed counts training only: with 1s of validation per epoch it would be under 64 examples/s
    assert float(parsed[2][3]) > 128, lines
    for line in lines:
        metrics = dict(part.split(" ") for part in line.split("  ")[1:] if not part.startswith("ETA")
                       and not part.endswith("examples/s"))
        assert set(metrics) == {"loss", "accuracy", "val_loss", "val_accuracy"}, line
        assert all(np.isfinite(float(value)) for value in metrics.values())


def test_without_validation_and_without_a_size():
    x, y = np.zeros((8, 4), "float32"), np.arange(8) % 3
    lines = []
    small_model().fit(x, y, epochs=2, verbose=0, callbacks=[EpochProgress(lines.append, total_epochs=2)])
    assert [line.split("  ")[0] for line in lines] == ["epoch 1/2", "epoch 2/2"]
    assert not any("val_" in line or "examples/s" in line for line in lines), lines
    assert "ETA" in lines[0] and "ETA" not in lines[1]


def test_epoch_numbers_run_on_across_finetune_stages(tiny_classifier, digit_batch):
    x, y = digit_batch
    lines = []
    stages = tfptm.training.two_stage(1, 2)
    total = sum(stage.epochs for stage in stages)
    tfptm.finetune(tiny_classifier, tfptm.data.from_arrays(x, y, seed=0), stages, verbose=0,
                   validation_data=tfptm.data.from_arrays(x[:16], y[:16], shuffle=False),
                   callbacks=[EpochProgress(lines.append, total, len(x))])
    assert [line.split("  ")[0] for line in lines] == ["epoch 1/3", "epoch 2/3", "epoch 3/3"]
    assert all("val_loss" in line for line in lines)


@pytest.mark.parametrize("validation", [False, True])
def test_tfptm_train_quiet_prints_one_line_per_epoch(tmp_path, monkeypatch, capsys, validation):
    monkeypatch.chdir(tmp_path)
    tiny = ["--set", "pretrain=null", "--set", "finetune.head_epochs=2", "--set", "finetune.epochs=1",
            "--set", "backbone.args={input_shape: [8, 8, 1], filters: [8], input_scale: 0.0625}",
            "--set", "export.saved_model=false", "--set", "export.tflite=[]"]
    if validation:
        tiny += ["--set", "data.validation_fraction=0.2"]
    assert main(["train", "image_transfer", "--out", "run", "--quiet", *tiny]) == 0
    err = capsys.readouterr().err
    epochs = [line for line in err.splitlines() if re.search(r"\bepoch \d+/\d+", line)]
    assert len(epochs) == 3, err
    assert [re.search(r"epoch (\d+/\d+)", line)[1] for line in epochs] == ["1/3", "2/3", "3/3"], err
    assert all("examples/s" in line for line in epochs)
    assert all(("val_loss" in line) == validation for line in epochs), epochs
    assert "Epoch 1/" not in err and "━" not in err  # no Keras progress bars
    assert (tmp_path / "run" / "summary.json").is_file()
