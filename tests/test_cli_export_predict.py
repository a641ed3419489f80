"""`tfptm quickstart`, then `tfptm export` and `tfptm predict` on its run, in-process (one TensorFlow import)."""

import contextlib
import io
import json
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfptm
from conftest import assert_no_partial
from tfptm.cli import main

TINY = ["--source-epochs", "5", "--head-epochs", "5", "--finetune-epochs", "5", "--scratch-epochs", "1"]  # 10 shots


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory):
    """One tiny quickstart run for the whole file: `(run directory, its stdout, its stderr)`."""
    base = tmp_path_factory.mktemp("quickstart")
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(["quickstart", "digits", "--out", str(base / "run"), "--export-dir", str(base / "first_export"),
                       *TINY])
    assert status == 0, err.getvalue()[-3000:]
    return base / "run", out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def quickstart_run(quickstart):
    return quickstart[0]


@pytest.fixture(scope="module")
def digit_pngs(tmp_path_factory):
    """Three target digits (5, 7, 9) as PNG files scaled 0..255, and their raw 0..16 arrays."""
    images, labels = tfptm.datasets.load_digits()
    picked = np.stack([images[labels == digit][-1] for digit in (5, 7, 9)])
    folder = tmp_path_factory.mktemp("pngs")
    paths = []
    for digit, image in zip((5, 7, 9), picked):
        pixels = np.round(image * 255 / tfptm.datasets.DIGITS_PIXEL_MAX).astype("uint8")
        paths.append(folder / f"{digit}.png")
        tf.io.write_file(str(paths[-1]), tf.io.encode_png(pixels))
    return [str(p) for p in paths], picked


def test_quickstart_end_to_end_with_tiny_settings(quickstart, capsys):
    run, stdout, stderr = quickstart
    export = run.parent / "first_export"
    summary = json.loads((run / "summary.json").read_text())
    assert set(summary) >= {"metrics", "artifacts", "parity"}
    for model in ("finetuned", "scratch"):
        metrics = summary["metrics"][model]
        assert set(metrics) >= {"accuracy", "precision_macro", "recall_macro", "f1_macro", "per_class", "confusion_matrix"}
        assert sum(map(sum, metrics["confusion_matrix"])) == metrics["num_examples"] == 846
        assert list(metrics["per_class"]) == ["5", "6", "7", "8", "9"]
    saved = Path(summary["artifacts"]["saved_model"])
    assert saved == (export / "digits" / "1").resolve() and (saved / "saved_model.pb").is_file()
    assert Path(summary["artifacts"]["tflite_dynamic"]).is_file() and Path(summary["artifacts"]["tflite_dynamic_labels"]).is_file()
    assert Path(summary["artifacts"]["pretrained_backbone"]).is_file()
    # the run is a model card and a loadable model too
    assert Path(summary["artifacts"]["model"]) == (run / "model.keras").resolve() and (run / "model.keras").is_file()
    assert json.loads((run / "history.json").read_text())["stage"][0] == "feature_extraction"
    report = (run / "report.md").read_text()
    assert "| finetuned |" in report and "| scratch |" in report and "## Artifacts" in report
    assert (run / "curves.png").is_file() and (run / "confusion_matrix.png").is_file()
    assert summary["parity"]["saved_model"]["ok"] and summary["parity"]["saved_model"]["max_abs_diff"] <= 1e-5
    assert summary["parity"]["tflite_dynamic"]["ok"] and summary["parity"]["tflite_dynamic"]["top1_agreement"] >= 0.99
    assert "fine-tuned" in stdout and "from scratch" in stdout and "SavedModel" in stdout
    assert "pre-training the backbone" in stderr  # progress lines
    assert_no_partial(run.parent)
    # the same --out again is refused rather than mixed with the old run
    assert main(["quickstart", "digits", "--out", str(run), "--export-dir", str(export), "--source-epochs", "1"]) == 2
    assert "already exists" in capsys.readouterr().err


def test_run_records_what_export_needs(quickstart_run):
    summary = json.loads((quickstart_run / "summary.json").read_text())
    assert summary["class_names"] == ["5", "6", "7", "8", "9"] and summary["model_name"] == "digits"
    assert summary["image_scale"] == pytest.approx(16 / 255)
    representative = np.load(quickstart_run / "representative.npy")
    assert representative.shape == (50, 8, 8, 1) and representative.max() <= 16


def test_export_then_predict_with_the_saved_model_and_tflite(quickstart_run, digit_pngs, tmp_path, capsys):
    out = tmp_path / "export"
    assert main(["export", str(quickstart_run), "--out", str(out), "--models-config"]) == 0
    printed = capsys.readouterr().out
    assert printed.count("parity OK") == 2
    report = json.loads((out / "digits.export.json").read_text())
    assert set(report["parity"]) == {"saved_model", "tflite_dynamic"} and report["parity"]["saved_model"]["num_examples"] == 50
    assert "image_bytes" in report["signatures"] and 'name: "digits"' in (out / "models.config").read_text()

    paths, raw = digit_pngs
    lite = out / "digits.dynamic.tflite"
    keras_model = keras.saving.load_model(quickstart_run / "model.keras")
    # each artifact, fed the PNG files, answers as it does on the raw 0-16 digits (so the image scale is right)
    for artifact, expected in ((out / "digits" / "1", keras_model.predict(raw, verbose=0)),
                               (lite, tfptm.export.run_tflite(lite, raw))):
        assert main(["predict", str(artifact), *paths, "--top-k", "2", "--json"]) == 0
        rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert [row["input"] for row in rows] == paths and all(len(row["predictions"]) == 2 for row in rows)
        best = [row["predictions"][0] for row in rows]
        assert [b["label"] for b in best] == [str(5 + i) for i in expected.argmax(-1)], artifact
        assert np.allclose([b["score"] for b in best], expected.max(-1), atol=0.02), artifact

    assert main(["predict", str(out / "digits"), paths[0]]) == 0  # the model directory: its latest version
    line = capsys.readouterr().out.strip()
    assert line.startswith(paths[0] + "\t") and line.count("(") == 3  # top 3 by default


def test_predict_and_export_errors_are_one_line_status_2(quickstart_run, tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("not an image")
    assert main(["predict", str(quickstart_run.parent / "first_export" / "digits"), str(tmp_path / "notes.txt")]) == 2
    assert "is not an image TensorFlow can decode" in capsys.readouterr().err
    assert main(["export", str(tmp_path), "--out", str(tmp_path / "e")]) == 2
    assert "has no model.keras" in capsys.readouterr().err
    assert main(["export", str(quickstart_run), "--out", str(tmp_path / "e"), "--quantize", "int4"]) == 2
    assert "unknown ['int4']" in capsys.readouterr().err
