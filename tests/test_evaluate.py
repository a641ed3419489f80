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
