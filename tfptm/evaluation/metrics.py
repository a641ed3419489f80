"""Classification metrics from scikit-learn, in one JSON-ready dict."""

import numpy as np

from tfptm.data.arrays import check_arrays


def classification_metrics(y_true, y_pred, class_names=None):
    """Accuracy, macro precision/recall/F1, per-class scores and the confusion matrix.

    Example:
    >>> m = classification_metrics([0, 1, 1, 2], [0, 1, 2, 2], class_names=["a", "b", "c"])
    >>> m["accuracy"], m["confusion_matrix"]
    (0.75, [[1, 0, 0], [0, 1, 1], [0, 0, 1]])
    """
    from sklearn import metrics

    y_true, y_pred = np.asarray(y_true).astype(int), np.asarray(y_pred).astype(int)
    num_classes = len(class_names) if class_names else int(max(y_true.max(), y_pred.max())) + 1
    names = list(class_names) if class_names else [str(i) for i in range(num_classes)]
    labels = list(range(num_classes))
    precision, recall, f1, support = metrics.precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    return {
        "accuracy": float(metrics.accuracy_score(y_true, y_pred)),
        "precision_macro": float(np.mean(precision)),
        "recall_macro": float(np.mean(recall)),
        "f1_macro": float(np.mean(f1)),
        "num_examples": int(len(y_true)),
        "per_class": {
            name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for name, p, r, f, s in zip(names, precision, recall, f1, support)
        },
        "confusion_matrix": metrics.confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }


def predict_classes(probabilities, threshold=0.5):
    """Class ids from a classifier's output: argmax, or a threshold for one sigmoid unit."""
    probabilities = np.asarray(probabilities)
    if probabilities.ndim == 2 and probabilities.shape[-1] > 1:
        return probabilities.argmax(axis=-1)
    return (probabilities.reshape(-1) >= threshold).astype(int)


def evaluate(model, x, y, class_names=None, batch_size=256):
    """Evaluates a classifier on arrays: runs `model.predict`, then `classification_metrics`.

    Example:
    >>> import numpy as np, tfptm
    >>> backbone = tfptm.backbones.get("vgg_cnn", input_shape=(8, 8, 1), filters=(8,))
    >>> model = tfptm.build_model(backbone, tfptm.Head("multiclass", num_classes=2))
    >>> report = tfptm.evaluate(model, np.zeros((4, 8, 8, 1)), np.array([0, 1, 0, 1]))
    >>> sorted(report)[:3]
    ['accuracy', 'confusion_matrix', 'f1_macro']
    """
    x, y = check_arrays(x, y, where="evaluate")
    probabilities = model.predict(x, batch_size=batch_size, verbose=0)
    return classification_metrics(y, predict_classes(probabilities), class_names)
