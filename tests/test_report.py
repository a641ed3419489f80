"""report.md: the model card a run leaves, with its PNG plots."""

import re

import numpy as np

import tfptm
from tfptm.evaluation import classification_metrics, parameter_counts, write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _summary(tmp_path):
    metrics = classification_metrics([0, 1, 2, 2, 1], [0, 1, 2, 1, 1], class_names=["cat", "dog", "eel"])
    saved = tmp_path / "run" / "export" / "m" / "1"
    saved.mkdir(parents=True)
    return {
        "metrics": {"scratch": classification_metrics([0, 1, 2], [0, 0, 0], ["cat", "dog", "eel"]), "model": metrics},
        "artifacts": {"saved_model": str(saved), "tflite": str(tmp_path / "elsewhere" / "m.tflite")},
        "parity": {
            "saved_model": {"max_abs_diff": 2e-7, "tolerance": 1e-5, "class_ids_agree": True, "num_examples": 5, "ok": True},
            "tflite": {"top1_agreement": 0.8, "max_prob_diff": 0.3, "min_agreement": 0.99, "num_examples": 5, "ok": False,
                       "keras_accuracy": 0.8, "tflite_accuracy": 0.6, "accuracy_delta": -0.2},
        },
        "sizes": {"saved_model": 2048, "tflite": 512},
    }


def test_report_is_a_complete_model_card(tmp_path):
    backbone = tfptm.backbones.get("vgg_cnn", input_shape=(8, 8, 1), filters=(4,))
    model = tfptm.build_model(backbone, tfptm.Head("multiclass", num_classes=3))
    backbone.trainable = False
    history = {"loss": [1.0, 0.7, 0.5], "accuracy": [0.3, 0.5, 0.7], "val_loss": [1.1, 0.9, 0.8],
               "stage": ["feature_extraction", "finetune", "finetune"]}
    staging, final = tmp_path / "staging", tmp_path / "run"
    staging.mkdir()
    written = write_report(staging, _summary(tmp_path), history=history, model=model, title="demo", final_dir=final)
    assert sorted(p.name for p in written) == ["confusion_matrix.png", "curves.png", "report.md"]
    for png in ("curves.png", "confusion_matrix.png"):
        data = (staging / png).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 2000
    report = (staging / "report.md").read_text()
    assert report.startswith("# demo\n")
    # both models in the metrics table, per-class scores of the main one ("model")
    assert re.search(r"^\| scratch \| 0\.333 \|", report, re.M) and re.search(r"^\| model \| 0\.800 \|", report, re.M)
    assert "## Per-class scores (model)" in report and "| eel | 1.000 | 0.500 | 0.667 | 2 |" in report
    assert "![confusion matrix](confusion_matrix.png)" in report and "![training curves](curves.png)" in report
    # parameter counts: the frozen backbone's weights count as frozen
    trainable, frozen = parameter_counts(model)
    assert frozen == backbone.count_params() and trainable == model.count_params() - frozen > 0
    assert f"| trainable (at the end of training) | {trainable:,} |" in report
    assert f"| frozen or non-trainable | {frozen:,} |" in report
    # artifacts: paths under the final run directory are relative, sizes and parity verdicts shown
    assert "| saved_model | `export/m/1` | 2.0 KiB | OK: max abs diff 2.0e-07 (tolerance 1e-05) on 5 examples |" in report
    assert "m.tflite` | 512 bytes | FAILED: top-1 agreement 80.0% (min 99%)" in report
    assert "accuracy delta -20.0 points" in report
    assert not list(staging.glob(".*partial*"))


def test_report_without_history_or_model_has_no_curves(tmp_path):
    summary = {"metrics": {"model": classification_metrics([0, 1], [0, 1])}, "artifacts": {}, "parity": {}}
    written = write_report(tmp_path, summary)
    assert sorted(p.name for p in written) == ["confusion_matrix.png", "report.md"]
    report = (tmp_path / "report.md").read_text()
    assert "## Training curves" not in report and "## Model" not in report and "## Artifacts" not in report


def test_confusion_matrix_counts_match_the_metrics(tmp_path):
    y_true, y_pred = np.array([0, 0, 1, 1, 1]), np.array([0, 1, 1, 1, 0])
    metrics = classification_metrics(y_true, y_pred)
    assert metrics["confusion_matrix"] == [[1, 1], [1, 2]]
    write_report(tmp_path, {"metrics": {"model": metrics}, "artifacts": {}, "parity": {}})
    assert (tmp_path / "confusion_matrix.png").read_bytes().startswith(PNG_MAGIC)


def test_multilabel_and_regression_get_their_own_tables_and_plots(tmp_path):
    from tfptm.evaluation import multilabel_metrics, regression_metrics

    multilabel = multilabel_metrics([[1, 0, 1], [0, 1, 1]], [[0.9, 0.1, 0.7], [0.2, 0.4, 0.8]], ["cat", "dog", "sun"])
    regression = regression_metrics([1.0, 2.0, 3.0, 4.0], [1.1, 1.9, 3.3, 3.8])
    for metrics, plot, heading in ((multilabel, "per_label_f1.png", "| model | subset accuracy | F1 (micro)"),
                                   (regression, "residuals.png", "| model | MAE | RMSE | R² |")):
        run_dir = tmp_path / metrics["task"]
        run_dir.mkdir()
        written = write_report(run_dir, {"metrics": {"model": metrics}})
        report = (run_dir / "report.md").read_text()
        assert plot in [p.name for p in written] and heading in report and "| accuracy |" not in report
        assert "confusion_matrix.png" not in [p.name for p in written] and "nan" not in report
    assert "| dog | 0.000 | 0.000 | 0.000 | 1 |" in (tmp_path / "multilabel" / "report.md").read_text()
