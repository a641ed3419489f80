import numpy as np
import pytest

import tfptm


def test_metrics_match_a_hand_computation():
    y_true = [0, 0, 1, 1, 2, 2]
    y_pred = [0, 1, 1, 1, 2, 0]
    m = tfptm.evaluation.classification_metrics(y_true, y_pred, class_names=["a", "b", "c"])
    assert m["accuracy"] == pytest.approx(4 / 6)
    # precision: a 1/2, b 2/3, c 1/1; recall: a 1/2, b 2/2, c 1/2
    assert m["precision_macro"] == pytest.approx((1 / 2 + 2 / 3 + 1) / 3)
    assert m["recall_macro"] == pytest.approx((1 / 2 + 1 + 1 / 2) / 3)
    assert m["per_class"]["b"] == {"precision": pytest.approx(2 / 3), "recall": 1.0, "f1": pytest.approx(0.8), "support": 2}
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]


def test_evaluate_runs_the_model(tiny_classifier, digit_batch):
    x, y = digit_batch
    report = tfptm.evaluate(tiny_classifier, x, y, class_names=["zero", "one", "two"])
    predicted = tiny_classifier.predict(x, verbose=0).argmax(-1)
    assert report["accuracy"] == pytest.approx(float(np.mean(predicted == y)))
    assert np.array(report["confusion_matrix"]).sum() == len(y)
    assert set(report["per_class"]) == {"zero", "one", "two"}


def _tiny(task, units):
    backbone = tfptm.backbones.get("vgg_cnn", input_shape=(8, 8, 1), filters=(4,))
    return tfptm.build_model(backbone, tfptm.Head(task, num_classes=units))


def test_multilabel_heads_get_multilabel_metrics():
    model = _tiny("multilabel", 3)
    x = np.random.default_rng(0).random((12, 8, 8, 1)).astype("float32")
    y = np.random.default_rng(1).integers(0, 2, (12, 3))
    report = tfptm.evaluate(model, x, y, class_names=["cat", "dog", "sun"])
    predicted = model.predict(x, verbose=0) >= 0.5
    assert report["task"] == "multilabel" and set(report["per_label"]) == {"cat", "dog", "sun"}
    assert report["subset_accuracy"] == pytest.approx(float(np.mean((predicted == y).all(axis=1))))
    assert report["hamming_loss"] == pytest.approx(float(np.mean(predicted != y)))
    assert "confusion_matrix" not in report and "accuracy" not in report


def test_regression_heads_get_regression_metrics():
    model = _tiny("regression", 2)
    x = np.random.default_rng(0).random((10, 8, 8, 1)).astype("float32")
    y = np.random.default_rng(1).normal(size=(10, 2))
    report = tfptm.evaluate(model, x, y)
    predicted = model.predict(x, verbose=0)
    assert report["task"] == "regression" and set(report["per_output"]) == {"0", "1"}
    assert report["mae"] == pytest.approx(float(np.mean(np.abs(predicted - y))), rel=1e-5)
    assert report["rmse"] == pytest.approx(float(np.sqrt(np.mean((predicted - y) ** 2))), rel=1e-5)
    assert sum(report["residual_histogram"]["counts"]) == y.size


def test_multilabel_labels_of_the_wrong_shape_are_one_error():
    with pytest.raises(tfptm.errors.TfptmError, match="expected a 0/1 matrix"):
        tfptm.evaluation.multilabel_metrics([0, 1, 2], [[0.1, 0.9]] * 3)


@pytest.mark.parametrize("task,units", [("multilabel", 3), ("regression", 2), ("regression", 1)])
def test_multilabel_and_regression_models_export_with_parity(task, units, tmp_path):
    model = _tiny(task, units)
    x = np.random.default_rng(0).random((16, 8, 8, 1)).astype("float32")
    summary = tfptm.export.export_checked(model, tmp_path, "m", quantizations=("float32",), check_data=x)
    assert summary["parity"]["saved_model"]["ok"] and summary["parity"]["tflite_float32"]["ok"]
    assert summary["parity"]["tflite_float32"]["top1_agreement"] == 1.0
