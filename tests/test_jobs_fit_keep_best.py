"""The recipe run directory: one lean model file (no best.keras), training speed in summary.json, keep_best."""

import json
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfptm.jobs import run_recipe
from tfptm.recipes import parse_recipe
from tfptm.jobs.train import prepare
from tfptm.jobs.fit import callbacks, fit_recipe as train

TINY = """
backbone: {name: vgg_cnn, args: {input_shape: [8, 8, 1], filters: [8, 16], input_scale: 0.0625}}
data: {classes: [0, 1, 2], shots: 12, batch_size: 8, validation_fraction: 0.3}
optimizer: {name: sgd, momentum: 0.9}
"""


def test_run_directory_has_one_lean_model_and_training_speed(tmp_path):
    recipe = parse_recipe(TINY + "finetune: {strategy: two_stage, head_epochs: 1, epochs: 2}\n"
                                 "export: {saved_model: false}\n")
    lines = []
    started = time.perf_counter()
    summary = run_recipe(recipe, tmp_path / "run", progress=lines.append)
    wall = time.perf_counter() - started
    run = tmp_path / "run"
    assert [p.name for p in run.rglob("best*")] == []
    assert (run / "model.keras").is_file()
    history = json.loads((run / "history.json").read_text())
    training = json.loads((run / "summary.json").read_text())["training"]
    assert set(training) == {"seconds", "epochs", "examples_per_second", "training_seconds",
                             "training_examples_per_second"}
    assert training["epochs"] == len(history["loss"]) == 3
    assert 0 < training["seconds"] < wall
    num_train = summary["data"]["num_train"]
    # the training steps alone: less time than the whole (validation, backups left out), so a higher rate
    assert 0 < training["training_seconds"] < training["seconds"]
    assert training["training_examples_per_second"] == pytest.approx(3 * num_train / training["training_seconds"])
    assert training["examples_per_second"] == pytest.approx(3 * num_train / training["seconds"])
    assert len([line for line in lines if line.startswith("epoch ")]) == 3, lines
    # the model file is lean: it loads compiled, with a fresh optimizer
    loaded = keras.saving.load_model(run / "model.keras")
    assert loaded.optimizer is not None and int(loaded.optimizer.iterations) == 0


def test_keep_best_makes_an_early_stopping_callback_that_restores_weights(tmp_path):
    def early_stopping(recipe_text, validation):
        found = [c for c in callbacks(parse_recipe(TINY + recipe_text), tmp_path, validation)
                 if isinstance(c, keras.callbacks.EarlyStopping)]
        assert len(found) <= 1
        return found[0] if found else None

    kept = early_stopping("finetune: {strategy: full, epochs: 3}\n", validation=True)  # keep_best is the default
    assert kept is not None and kept.restore_best_weights and kept.monitor == "val_loss"
    assert kept.patience >= 1000  # patience null: never stops early, only restores
    assert early_stopping("finetune: {strategy: full, epochs: 3}\n", validation=False) is None
    assert early_stopping("finetune: {strategy: full, epochs: 3, keep_best: false}\n", validation=True) is None
    stopping = early_stopping("finetune: {strategy: full, epochs: 3, patience: 2}\n", validation=False)
    assert stopping.patience == 2 and stopping.monitor == "loss" and not stopping.restore_best_weights
    both = early_stopping("finetune: {strategy: full, epochs: 3, patience: 2, monitor: val_accuracy}\n",
                          validation=True)
    assert both.patience == 2 and both.monitor == "val_accuracy" and both.restore_best_weights


def trained(tmp_path, finetune):
    keras.utils.set_random_seed(0)
    recipe = parse_recipe(TINY + f"finetune: {finetune}\n")
    data, model, _ = prepare(recipe, tf.distribute.get_strategy(), lambda message: None)
    history = train(recipe, model, data, tmp_path / "work", verbose=0)
    final = model.evaluate(data.validation, verbose=0, return_dict=True)["loss"]
    return np.array(history["val_loss"]), final


def test_keep_best_ends_with_the_best_validation_epoch(tmp_path):
    # a high rate: validation loss goes up and down, its best epoch is not the last
    val_loss, final = trained(tmp_path, "{strategy: full, epochs: 6, learning_rate: 0.3}")
    assert val_loss.argmin() != len(val_loss) - 1, val_loss  # else this test would prove nothing
    assert final == pytest.approx(val_loss.min(), abs=1e-4), (val_loss, final)

    val_loss, final = trained(tmp_path, "{strategy: full, epochs: 6, learning_rate: 0.3, keep_best: false}")
    assert final == pytest.approx(val_loss[-1], abs=1e-4), (val_loss, final)


def test_keep_best_ends_with_the_best_epoch_across_stages(tmp_path):
    # the second stage's rate is far too high: all its epochs are worse on validation than the head stage's best
    val_loss, final = trained(tmp_path, "{strategy: two_stage, head_epochs: 3, head_learning_rate: 0.05, "
                                        "epochs: 3, learning_rate: 0.5}")
    assert val_loss.argmin() < 3, val_loss
    assert final == pytest.approx(val_loss.min(), abs=1e-4), (val_loss, final)
