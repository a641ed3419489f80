"""Pre-training is backed up like fine-tuning (issue 16, class 7): a killed run resumes instead of starting over."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

import tfptm
from tfptm import pretrain
from conftest import assert_no_partial

CORPUS = ["the cat sat on the mat", "the dog sat on the rug", "a bird flew over the house",
          "the film was great fun", "the plot was dull and slow"] * 8
TINY = {"vocabulary_size": 60, "sequence_length": 8, "batch_size": 8, "num_layers": 1, "hidden_dim": 16,
        "intermediate_dim": 32}


class Interrupt(Exception):
    pass


class Counter(keras.callbacks.Callback):
    """Counts the epochs that really train; raises after `stop_after` of them (a crash mid-run)."""

    def __init__(self, stop_after=None):
        super().__init__()
        self.epochs, self.stop_after = [], stop_after

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append(epoch)
        if self.stop_after is not None and len(self.epochs) >= self.stop_after:
            raise Interrupt(f"stopped after epoch {epoch}")


@pytest.mark.parametrize("objective", [pretrain.masked_lm, pretrain.causal_lm])
def test_a_crashed_language_model_pretraining_resumes_where_its_backup_left_off(objective, tmp_path):
    backup_dir = tmp_path / "backup"
    keras.utils.set_random_seed(0)
    first = Counter(stop_after=2)
    with pytest.raises(Interrupt):
        objective(CORPUS, epochs=4, callbacks=[tfptm.training.BackupAndRestore(backup_dir), first], **TINY)
    assert json.loads((backup_dir / "training_metadata.json").read_text())["epoch"] == 2

    keras.utils.set_random_seed(0)
    again = Counter()
    result = objective(CORPUS, epochs=4, callbacks=[tfptm.training.BackupAndRestore(backup_dir), again], **TINY)
    assert again.epochs == [2, 3]  # only the epochs the backup had not finished
    assert len(result.history["loss"]) == 4 and result.history["stage"] == ["full"] * 4
    assert not backup_dir.exists()  # deleted once the run is complete (the default)


def test_a_kept_backup_of_a_finished_pretraining_restores_it_without_training(tmp_path):
    backup_dir = tmp_path / "backup"
    keras.utils.set_random_seed(0)
    done = pretrain.masked_lm(CORPUS, epochs=2, callbacks=[tfptm.training.BackupAndRestore(backup_dir, delete_checkpoint=False)],
                              **TINY)
    keras.utils.set_random_seed(1)  # other initial weights: only the restore can make them equal
    counter = Counter()
    again = pretrain.masked_lm(
        CORPUS, epochs=2, callbacks=[tfptm.training.BackupAndRestore(backup_dir, delete_checkpoint=False), counter], **TINY
    )
    assert counter.epochs == [] and len(again.history["loss"]) == 2
    assert again.tokenizer.vocabulary == done.tokenizer.vocabulary
    for a, b in zip(done.backbone.get_weights(), again.backbone.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert again.metrics == done.metrics


def test_supervised_pretraining_resumes_too(tmp_path):
    x = np.random.default_rng(0).random((32, 8, 8, 1), dtype="float32")
    y = np.arange(32) % 3
    data = tfptm.data.from_arrays(x, y, batch_size=8, seed=0)

    def run(callbacks):
        backbone = tfptm.backbones.get("vgg_cnn", input_shape=(8, 8, 1), filters=(4,))
        return pretrain.supervised(backbone, tfptm.Head("multiclass", num_classes=3), data, epochs=3, callbacks=callbacks)

    with pytest.raises(Interrupt):
        run([tfptm.training.BackupAndRestore(tmp_path / "b"), Counter(stop_after=1)])
    counter = Counter()
    result = run([tfptm.training.BackupAndRestore(tmp_path / "b"), counter])
    assert counter.epochs == [1, 2] and len(result.history["loss"]) == 3


# --- the CLI, killed with SIGKILL ---------------------------------------------------------------------------

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
EPOCHS = 6
SETS = ["pretrain.data.batch_size=8", "data.max_length=16", "data.batch_size=16", "finetune.backup_every_steps=2",
        "backbone.args={vocabulary_size: 200, max_sequence_length: 16, num_layers: 1, hidden_dim: 16, intermediate_dim: 32}",
        "finetune.learning_rate=1.0e-3"]


def _write_data(tmp_path):
    texts, labels = tfptm.datasets.load_reviews("train", count=200, seed=1)
    (tmp_path / "corpus.txt").write_text("\n".join(map(str, texts)) + "\n", encoding="utf-8")
    rows = ["text,label"] + [f'"{t}",{"pos" if l else "neg"}' for t, l in zip(texts[:60], labels[:60])]
    (tmp_path / "labelled.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return [f"pretrain.data.path={tmp_path / 'corpus.txt'}", f"data.path={tmp_path / 'labelled.csv'}"]


def _command(verb, sets):
    command = [sys.executable, "-m", "tfptm", verb, "mlm_then_finetune", "--out", "run"]
    for value in sets:
        command += ["--set", value]
    return command


def _epoch(state_file):
    try:
        return json.loads(state_file.read_text())["epoch"]
    except (OSError, ValueError, KeyError):
        return -1


def _kill_when(command, cwd, state_file, epochs):
    process = subprocess.Popen(command, cwd=cwd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while _epoch(state_file) < epochs and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert process.poll() is None, "the run ended before it could be killed"
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    return json.loads(state_file.read_text())


def _epochs_run(stdout):
    return [int(n) for n in re.findall(r"^Epoch (\d+)/\d+", stdout, flags=re.M)]


def test_killed_tfptm_pretrain_resumes_from_its_backup(tmp_path):
    sets = _write_data(tmp_path)[:1] + SETS + [f"pretrain.epochs={EPOCHS}"]
    command = _command("pretrain", sets)
    state = _kill_when(command, tmp_path, tmp_path / ".run.backup" / "pretrain" / "training_metadata.json", 2)
    assert not (tmp_path / "run").exists()

    again = subprocess.run(command, cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resuming pre-training from its backup" in again.stderr
    assert state["epoch"] >= 2 and _epochs_run(again.stdout) == list(range(state["epoch"] + 1, EPOCHS + 1)), (
        state, again.stdout[-2000:])
    assert (tmp_path / "run" / "pretrained" / "pretrained.json").is_file()
    assert_no_partial(tmp_path)
    assert sorted(os.listdir(tmp_path)) == ["corpus.txt", "labelled.csv", "run"]  # no backup left


def test_killed_tfptm_train_does_not_pretrain_again(tmp_path):
    sets = _write_data(tmp_path) + SETS + ["pretrain.epochs=2", "finetune.strategy=two_stage", "finetune.head_epochs=1", "finetune.epochs=3"]
    command = _command("train", sets)
    _kill_when(command, tmp_path, tmp_path / ".run.backup" / "backup" / "training_metadata.json", 1)
    pretrain_state = json.loads((tmp_path / ".run.backup" / "pretrain" / "training_metadata.json").read_text())
    assert pretrain_state["stage_done"] and pretrain_state["epoch"] == 2  # pre-training finished, and kept

    again = subprocess.run(command, cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resuming pre-training from its backup" in again.stderr and "finished" in again.stderr
    assert not re.findall(r"^Epoch \d+/2\s*$", again.stdout, flags=re.M)  # no pre-training epoch ran again
    assert max(_epochs_run(again.stdout)) == 4  # fine-tuning resumed and ran to its last epoch
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert history["stage"] == ["feature_extraction"] + ["finetune"] * 3  # the configured epochs, each once
    assert "train_loss" in summary["metrics"]["pretrain"]
    assert_no_partial(tmp_path)
    assert sorted(os.listdir(tmp_path)) == ["corpus.txt", "labelled.csv", "run"]
