"""`tfptm compress RUN`: prune + QAT + int8 export of a real run, checked; bad requests refused before any work."""

import json

import numpy as np
import pytest

from tfptm.cli import main
from tfptm.jobs.train import run_recipe
from tfptm.recipes import bundled_path, load_recipe


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    path = tmp_path_factory.mktemp("compress") / "run"
    recipe = load_recipe(bundled_path("image_transfer"), sets=[
        "pretrain=null", "finetune.strategy=full", "finetune.epochs=6", "finetune.learning_rate=0.003",
        "export.tflite=[]", "export.saved_model=false"])
    run_recipe(recipe, path, progress=lambda message: None)
    return path


def test_prune_and_qat_to_int8_writes_a_checked_sparse_int8_model(run, tmp_path, capsys):
    out = tmp_path / "small"
    assert main(["compress", str(run), "--to", "int8", "--qat", "--prune", "0.5", "--epochs", "2",
                 "--out", str(out), "--no-saved-model"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == ["prune 0.5", "qat"]
    assert summary["sparsity"] == pytest.approx(0.5, abs=0.01)  # the pruned weights stayed 0 through QAT
    assert summary["parity"]["tflite_int8"]["ok"]
    original, compressed = summary["metrics"]["original"]["accuracy"], summary["metrics"]["compressed"]["accuracy"]
    assert compressed > original - 0.1, (original, compressed)
    tflite = next((out / "export").glob("*.int8.tflite"))
    meta = json.loads(tflite.with_suffix(".json").read_text())
    assert meta["quantization_aware"] is True and meta["compression"] == ["prune 0.5", "qat"]
    from tfptm.compress import sparsity
    from tfptm.rundir import load_model

    assert sparsity(load_model(out))["sparsity"] == pytest.approx(0.5, abs=0.01)  # the saved model is the sparse one
    assert not list(tmp_path.glob(".small*"))  # no staging left behind


@pytest.mark.parametrize("args, message", [
    (["--to", "dynamic", "--qat"], "--qat trains for int8"),
    (["--prune", "1.5"], "expected a share of weights between 0 and 1"),
    (["--prune", "0.5", "--prune-feedforward", "0.5"], "not both"),
])
def test_contradictory_requests_are_refused_before_any_work(run, tmp_path, capsys, args, message):
    assert main(["compress", str(run), "--out", str(tmp_path / "x"), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "x").exists()


def test_a_directory_that_is_not_a_run_is_refused(tmp_path, capsys):
    from tfptm.rundir import MODEL_FILE

    import tfptm

    backbone = tfptm.backbones.get("vgg_cnn", input_shape=(8, 8, 1), filters=(4,))
    tfptm.build_model(backbone, tfptm.Head("multiclass", num_classes=2)).save(tmp_path / MODEL_FILE)
    assert main(["compress", str(tmp_path), "--out", str(tmp_path / "x")]) == 2
    assert "not a run directory with recipe.yaml" in capsys.readouterr().err
    assert np.all([p.name != "x" for p in tmp_path.iterdir()])
