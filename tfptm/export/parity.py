"""Checks that exported artifacts compute what the Keras model computes."""

import numpy as np
import tensorflow as tf

from tfptm.data.arrays import check_arrays
from tfptm.errors import TfptmError
from tfptm.evaluation.metrics import predict_classes, task_of
from tfptm.export.litert import run_tflite
from tfptm.export.signatures import EMBEDDINGS, MIN_COSINE, check_inputs, task as serving_task
from tfptm.tasks import token_task

SAVED_MODEL_TOLERANCE = 1e-5
TFLITE_MIN_AGREEMENT = 0.99


def check_saved_model(path, model, x, tolerance=SAVED_MODEL_TOLERANCE, batch_size=256):
    """Reloads a SavedModel with `tf.saved_model.load`, calls `serving_default` on `x`
    (an array, or a dict of arrays by input name) and compares it with `model.predict(x)`.

    What is compared follows the head's task (`tfptm.evaluation.task_of`):
    probabilities and class ids (multiclass, binary), probabilities and the
    0/1 `labels_present` at 0.5 (multilabel), or the `values` (regression).
    Returns a JSON-ready dict; `ok` is true when every output is within
    `tolerance` and every class id (or label set) agrees.
    """
    x = checked_inputs(model, x, "check_saved_model")
    signature = tf.saved_model.load(str(path)).signatures["serving_default"]
    if token_task(model) is not None:  # per-token outputs: the task module compares them
        module = token_task(model)
        return module.compare_outputs(saved_model_outputs(signature, x, module.OUTPUT, batch_size),
                                      model.predict(x, batch_size=batch_size, verbose=0), x, "saved_model", tolerance,
                                      TFLITE_MIN_AGREEMENT)
    if serving_task(model) == EMBEDDINGS:  # vectors, compared by cosine
        got = saved_model_outputs(signature, x, EMBEDDINGS, batch_size)
        return compare_vectors(got, model.predict(x, batch_size=batch_size, verbose=0), MIN_COSINE["saved_model"])
    specs = signature.structured_input_signature[1]
    named = x if isinstance(x, dict) else {next(iter(specs)): x}
    count = len(next(iter(named.values())))
    served = [
        signature(**{k: tf.constant(named[k][i : i + batch_size], s.dtype) for k, s in specs.items()})
        for i in range(0, count, batch_size)
    ]
    task = task_of(model)
    expected = model.predict(x, batch_size=batch_size, verbose=0)
    joined = {key: np.concatenate([s[key].numpy() for s in served]) for key in served[0]}
    if task == "regression":
        outputs, agreement = joined["values"], {"task": task}
    elif task == "multilabel":
        present = np.array_equal(joined["labels_present"], (expected >= 0.5).astype(int))
        outputs, agreement = joined["probabilities"], {"labels_present_agree": bool(present), "task": task}
    else:
        ids = np.array_equal(joined["class_ids"], predict_classes(expected))
        outputs, agreement = joined["probabilities"], {"class_ids_agree": bool(ids)}
    max_diff = float(np.max(np.abs(outputs - expected)))
    agree = all(v for k, v in agreement.items() if k != "task")
    return {
        "max_abs_diff": max_diff,
        "tolerance": tolerance,
        **agreement,
        "num_examples": int(count),
        "ok": max_diff <= tolerance and agree,
    }


def check_tflite(path, model, x, y=None, min_agreement=TFLITE_MIN_AGREEMENT, num_threads=None, quantization="float32"):
    """Runs a `.tflite` file with LiteRT on `x` and compares it with `model.predict(x)`.

    Reports top-1 agreement, the largest probability difference and, when
    labels `y` are given, the accuracy of both and its delta. `ok` is true when
    top-1 agreement reaches `min_agreement`. Agreement follows the head's task
    (`tfptm.evaluation.task_of`): the same class (multiclass, binary), the same
    set of labels at 0.5 (multilabel), or values within 1% of Keras's
    (regression; accuracies are then not reported).
    """
    x = checked_inputs(model, x, "check_tflite")
    if serving_task(model) == EMBEDDINGS:  # vectors, compared by cosine (the least allowed depends on `quantization`)
        return compare_vectors(run_tflite(path, x, num_threads=num_threads), model.predict(x, verbose=0),
                               MIN_COSINE[quantization])
    if token_task(model) is not None:  # per-token outputs: the task module compares them
        return token_task(model).compare_outputs(run_tflite(path, x, num_threads=num_threads), model.predict(x, verbose=0),
                                                 x, quantization, SAVED_MODEL_TOLERANCE, min_agreement)
    task = task_of(model)
    if y is not None:
        y = np.asarray(y)
        if len(y) != len(next(iter(x.values())) if isinstance(x, dict) else x):
            raise TfptmError(f"check_tflite: {len(y)} labels for a different number of inputs")
        if task in ("multiclass", "binary"):  # class ids; a multilabel or regression label is a row per example
            y = y.reshape(-1)
    lite = run_tflite(path, x, num_threads=num_threads)
    expected = model.predict(x, verbose=0)
    lite_ids, keras_ids = _decisions(task, lite, expected), _decisions(task, expected, expected)
    agreement = float(np.mean([np.array_equal(a, b) for a, b in zip(lite_ids, keras_ids)]))
    report = {
        "top1_agreement": agreement,
        "max_prob_diff": float(np.max(np.abs(lite - expected))),
        "min_agreement": min_agreement,
        "num_examples": int(len(lite)),
        "ok": agreement >= min_agreement,
    }
    if y is not None and task in ("multiclass", "binary"):
        report["keras_accuracy"] = float(np.mean(keras_ids == y))
        report["tflite_accuracy"] = float(np.mean(lite_ids == y))
        report["accuracy_delta"] = report["tflite_accuracy"] - report["keras_accuracy"]
    return report


def saved_model_outputs(signature, x, key, batch_size=256):
    """`signature`'s output `key` on inputs `x` (an array or a dict by input name), called in batches."""
    specs = signature.structured_input_signature[1]
    named = x if isinstance(x, dict) else {next(iter(specs)): x}
    count = len(next(iter(named.values())))
    return np.concatenate([signature(**{k: tf.constant(named[k][i: i + batch_size], s.dtype) for k, s in specs.items()})[key].numpy()
                           for i in range(0, count, batch_size)])


def compare_vectors(got, expected, min_cosine):
    """Parity of two `(n, dim)` arrays of embeddings, row by row: cosine similarity and absolute difference.

    Example:
    >>> compare_vectors(np.array([[1.0, 0.0]]), np.array([[1.0, 0.0]]), 0.999)["ok"]
    True
    """
    got, expected = np.asarray(got, "float64"), np.asarray(expected, "float64")
    if got.shape != expected.shape:
        raise TfptmError(f"Embeddings of shape {got.shape} to compare with {expected.shape}; expected the same")
    norms = np.maximum(np.linalg.norm(got, axis=1) * np.linalg.norm(expected, axis=1), 1e-12)
    cosine = np.sum(got * expected, axis=1) / norms
    return {"min_cosine": float(cosine.min()), "mean_cosine": float(cosine.mean()),
            "max_abs_diff": float(np.max(np.abs(got - expected))), "min_cosine_required": min_cosine,
            "num_examples": int(len(got)), "ok": bool(cosine.min() >= min_cosine)}


def _decisions(task, outputs, reference):
    """Per example, what must agree: a class id, a 0/1 label vector, or values rounded to 1% of the Keras scale."""
    if task == "multilabel":
        return (np.asarray(outputs) >= 0.5).astype(int)
    if task == "regression":
        scale = 0.01 * (1.0 + np.abs(np.asarray(reference)))
        return np.abs(np.asarray(outputs) - np.asarray(reference)) <= scale  # all True where they agree
    return predict_classes(outputs)


def checked_inputs(model, x, where):
    """`x` as arrays the model takes: one checked array, or a dict of them (a multi-input model) of one length.

    Lists and NumPy arrays of strings become what Keras takes
    (`tfptm.data.arrays.check_arrays`); the example shape and kind are
    checked against the model's inputs (`signatures.check_inputs`).
    """
    if not isinstance(x, dict):
        x = check_arrays(x, where=where)[0]
    else:
        x = {k: check_arrays(v, where=f"{where}: input {k!r}")[0] for k, v in x.items()}
        if len({len(v) for v in x.values()}) != 1:
            raise TfptmError(f"{where}: inputs {sorted(x)} have different lengths; expected one row per example in each")
    check_inputs(model, x, where)
    return x
