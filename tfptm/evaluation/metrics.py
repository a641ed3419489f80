"""Metrics per task (classification, multilabel, regression) from scikit-learn, each in one JSON-ready dict."""

import numpy as np

from tfptm.data.arrays import check_arrays
from tfptm.errors import TfptmError


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


def multilabel_metrics(y_true, probabilities, class_names=None, threshold=0.5):
    """Multilabel scores: per-label precision/recall/F1, micro and macro F1, subset accuracy, Hamming loss.

    `y_true` is a 0/1 matrix `(examples, labels)`; a label is predicted
    present when its probability reaches `threshold`.

    Example:
    >>> m = multilabel_metrics([[1, 0], [1, 1]], [[0.9, 0.2], [0.8, 0.3]], class_names=["cat", "dog"])
    >>> m["task"], m["subset_accuracy"], m["per_label"]["dog"]["recall"], round(m["f1_micro"], 3)
    ('multilabel', 0.5, 0.0, 0.8)
    """
    from sklearn import metrics

    y_true = np.asarray(y_true).astype(int)
    predicted = (np.asarray(probabilities) >= threshold).astype(int)
    if y_true.ndim != 2 or y_true.shape != predicted.shape or not np.isin(y_true, (0, 1)).all():
        raise TfptmError(f"multilabel_metrics: labels of shape {y_true.shape} for outputs of shape {predicted.shape}; "
                         "expected a 0/1 matrix (examples, labels) of the same shape")
    names = list(class_names) if class_names else [str(i) for i in range(y_true.shape[1])]
    precision, recall, f1, support = metrics.precision_recall_fscore_support(y_true, predicted, zero_division=0)
    return {
        "task": "multilabel",
        "threshold": float(threshold),
        "subset_accuracy": float(metrics.accuracy_score(y_true, predicted)),
        "hamming_loss": float(metrics.hamming_loss(y_true, predicted)),
        "f1_micro": float(metrics.f1_score(y_true, predicted, average="micro", zero_division=0)),
        "f1_macro": float(np.mean(f1)),
        "precision_macro": float(np.mean(precision)),
        "recall_macro": float(np.mean(recall)),
        "num_examples": int(len(y_true)),
        "per_label": {
            name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(n)}
            for name, p, r, f, n in zip(names, precision, recall, f1, support)
        },
    }


def regression_metrics(y_true, predictions, output_names=None, bins=20):
    """Regression scores: MAE, RMSE and R² (over all outputs, and per output when there are several),
    with a histogram of the residuals (prediction - truth) for the report.

    Example:
    >>> m = regression_metrics([1.0, 2.0, 3.0], [1.5, 2.0, 2.5])
    >>> m["task"], round(m["mae"], 3), round(m["rmse"], 3), round(m["r2"], 3)
    ('regression', 0.333, 0.408, 0.75)
    """
    from sklearn import metrics

    y_true = np.asarray(y_true, dtype="float64")
    predictions = np.asarray(predictions, dtype="float64").reshape(len(predictions), -1)
    y_true = y_true.reshape(len(y_true), -1)
    if y_true.shape != predictions.shape:
        raise TfptmError(f"regression_metrics: targets of shape {y_true.shape} for predictions of shape "
                         f"{predictions.shape}; expected one target per output")
    residuals = (predictions - y_true).reshape(-1)
    counts, edges = np.histogram(residuals, bins=bins)
    result = {
        "task": "regression",
        "mae": float(metrics.mean_absolute_error(y_true, predictions)),
        "rmse": float(np.sqrt(metrics.mean_squared_error(y_true, predictions))),
        "r2": float(metrics.r2_score(y_true, predictions)) if len(y_true) > 1 else float("nan"),
        "num_examples": int(len(y_true)),
        "residual_histogram": {"edges": edges.tolist(), "counts": counts.tolist()},
    }
    if y_true.shape[1] > 1:
        names = list(output_names) if output_names else [str(i) for i in range(y_true.shape[1])]
        result["per_output"] = {
            name: {"mae": float(metrics.mean_absolute_error(t, p)), "rmse": float(np.sqrt(metrics.mean_squared_error(t, p))),
                   "r2": float(metrics.r2_score(t, p))}
            for name, t, p in zip(names, y_true.T, predictions.T)
        }
    return result


def task_of(model):
    """The task a model's head solves, from its output: `"multiclass"` (softmax), `"binary"` (one sigmoid unit),
    `"multilabel"` (several sigmoid units) or `"regression"` (linear, as `tfptm.Head` names it `predictions`).

    Example:
    >>> import tfptm
    >>> backbone = tfptm.backbones.get("vgg_cnn", input_shape=(8, 8, 1), filters=(4,))
    >>> [task_of(tfptm.build_model(backbone, tfptm.Head(t, num_classes=3))) for t in ("multilabel", "regression")]
    ['multilabel', 'regression']
    """
    layer, units = model.layers[-1], model.outputs[0].shape[-1]
    activation = getattr(getattr(layer, "activation", None), "__name__", "")
    if activation == "sigmoid":
        return "binary" if units == 1 else "multilabel"
    if activation == "linear" or layer.name == "predictions":
        return "regression"
    return "multiclass" if units and units > 1 else "binary"


def task_metrics(task, y_true, outputs, class_names=None, threshold=0.5):
    """The metrics of `task` from labels and model outputs: the one dispatch `evaluate` and the recipe runner share."""
    if task == "multilabel":
        return multilabel_metrics(y_true, outputs, class_names, threshold)
    if task == "regression":
        return regression_metrics(y_true, outputs, class_names)
    return classification_metrics(np.asarray(y_true).reshape(-1), predict_classes(outputs, threshold), class_names)


def evaluate(model, x, y, class_names=None, batch_size=256, task=None, threshold=0.5):
    """Evaluates a model on arrays: runs `model.predict`, then the metrics of its task.

    `task` (default: read from the model's head, `task_of`) picks them:
    multiclass and binary get `classification_metrics`, multilabel (labels a
    0/1 matrix) `multilabel_metrics` at `threshold`, regression
    `regression_metrics`. `x` may be a list or NumPy array of strings for a
    model on raw text; padded token arrays run shortest first, each batch
    cut to its longest text (`tfptm.data.sequences.predict_by_length`).

    Example:
    >>> import numpy as np, tfptm
    >>> backbone = tfptm.backbones.get("vgg_cnn", input_shape=(8, 8, 1), filters=(8,))
    >>> model = tfptm.build_model(backbone, tfptm.Head("multiclass", num_classes=2))
    >>> report = tfptm.evaluate(model, np.zeros((4, 8, 8, 1)), np.array([0, 1, 0, 1]))
    >>> sorted(report)[:3]
    ['accuracy', 'confusion_matrix', 'f1_macro']
    """
    from tfptm.data.sequences import predict_by_length  # TensorFlow: imported when a model is evaluated

    x, y = check_arrays(x, y, where="evaluate")
    outputs = predict_by_length(model, x, batch_size=batch_size)  # padded token arrays: each batch cut to its longest
    return task_metrics(task or task_of(model), y, outputs, class_names, threshold)
