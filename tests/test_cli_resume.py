"""`tfptm train` killed with SIGKILL mid-training, then run again: it resumes and ends with the configured epochs."""

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time

from conftest import assert_no_partial

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
RECIPE = """
backbone: {name: vgg_cnn, args: {input_shape: [8, 8, 1], filters: [8, 16], input_scale: 0.0625}}
data: {batch_size: 8, validation_fraction: 0.1}
head: {pooling: flatten}
finetune: {strategy: two_stage, head_epochs: 2, epochs: 3, backup_every_steps: 5}
"""
EPOCHS = 5


def backed_up_epochs(state_file):
    try:
        return json.loads(state_file.read_text())["epoch"]
    except (OSError, ValueError):  # no backup yet
        return -1


def test_killed_training_resumes_with_the_same_epochs(tmp_path):
    (tmp_path / "recipe.yaml").write_text(RECIPE)
    command = [sys.executable, "-m", "tfptm", "train", "recipe.yaml", "--out", "run"]
    state_file = tmp_path / ".run.backup" / "backup" / "training_metadata.json"

    first = subprocess.Popen(command, cwd=tmp_path, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while backed_up_epochs(state_file) < 2 and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)  # until the head stage is done: the kill lands in the second stage
        assert first.poll() is None, "training ended before it could be killed"
        os.kill(first.pid, signal.SIGKILL)
    finally:
        first.kill()
        first.wait()
    assert not (tmp_path / "run").exists()
    state = json.loads(state_file.read_text())  # the last backup committed before the kill

    again = subprocess.run(command, cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resuming from" in again.stderr
    # The second run trains only the epochs the backup had not finished (Keras numbers them from 1).
    epochs_run = [int(n) for n in re.findall(r"^Epoch (\d+)/\d+", again.stdout, flags=re.M)]
    assert state["epoch"] >= 2 and epochs_run == list(range(state["epoch"] + 1, EPOCHS + 1)), (state, epochs_run)

    run = tmp_path / "run"
    history = json.loads((run / "history.json").read_text())
    assert history["stage"] == ["feature_extraction"] * 2 + ["finetune"] * 3 and len(history["val_loss"]) == EPOCHS
    with open(run / "history.csv", newline="") as f:
        assert [int(row["epoch"]) for row in csv.DictReader(f)] == list(range(EPOCHS))
    summary = json.loads((run / "summary.json").read_text())
    assert summary["metrics"]["model"]["accuracy"] > 0.5
    assert_no_partial(tmp_path)
    assert sorted(os.listdir(tmp_path)) == ["recipe.yaml", "run"]  # no staging and no backup left
