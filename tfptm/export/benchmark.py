"""The TFLite report: every quantization of one model, measured against the Keras model."""

import os
import statistics
import time
from pathlib import Path

import numpy as np

from tfptm.errors import TfptmError
from tfptm.evaluation.metrics import predict_classes
from tfptm.export.litert import QUANTIZATIONS, prepare_inputs, run_tflite, signature_runner, tflite
from tfptm.files import directory_size, write_json_atomic


def tflite_report(
    model, x_eval, y_eval, representative_data=None, out_dir="export", name="model", variants=QUANTIZATIONS,
    threads=2, repeats=5, batch_size=32, class_names=None, metadata=None, report_path=None,
):
    """Converts `model` to each TFLite variant and measures it against the Keras model on `(x_eval, y_eval)`.

    Per variant: `path`, `size_bytes`, `size_ratio` (to float32, or to the
    Keras weights if float32 is not asked), `select_tf_ops` (whether the
    converter needed TensorFlow ops), `top1_agreement` with Keras, `accuracy`
    and `accuracy_delta` (TFLite minus Keras, in points of 1.0), `max_output_diff`,
    and `latency_ms_per_example`: the median over `repeats` timed runs of
    one `batch_size` batch, on `threads` LiteRT threads, divided by the batch.
    The report also times Keras (`model.predict_on_batch`, same batch) and is
    written atomically to `report_path` (default `<out_dir>/<name>.tflite_report.json`).

    `x_eval` (and `representative_data`, needed for `"int8"`) are arrays, or
    dicts of arrays for a multi-input model.

    Example:
    >>> import tempfile, numpy as np, tfptm
    >>> backbone = tfptm.backbones.get("vgg_cnn", input_shape=(8, 8, 1), filters=(8,))
    >>> model = tfptm.build_model(backbone, tfptm.Head("multiclass", num_classes=2))
    >>> x, y = np.random.rand(8, 8, 8, 1).astype("float32"), np.array([0, 1] * 4)
    >>> report = tflite_report(model, x, y, out_dir=tempfile.mkdtemp(), variants=["float32"], repeats=1)
    >>> report["variants"]["float32"]["top1_agreement"]
    1.0
    """
    unknown = [v for v in variants if v not in QUANTIZATIONS]
    if unknown or not variants:
        raise TfptmError(f"tflite_report: unknown variants {unknown or variants}; expected some of {', '.join(QUANTIZATIONS)}")
    y_eval = np.asarray(y_eval).reshape(-1)
    if _count(x_eval) != len(y_eval):
        raise TfptmError(f"tflite_report: {_count(x_eval)} evaluation inputs but {len(y_eval)} labels")
    out_dir = Path(out_dir)
    expected = model.predict(x_eval, batch_size=256, verbose=0)
    keras_ids = predict_classes(expected)
    keras_accuracy = float(np.mean(keras_ids == y_eval))
    batch = _slice(x_eval, batch_size)
    keras_seconds = median_seconds(lambda: model.predict_on_batch(batch), repeats)
    report = {
        "threads": threads,
        "batch_size": _count(batch),
        "repeats": repeats,
        "num_eval_examples": int(len(y_eval)),
        "cpu_count": os.cpu_count(),
        "keras": {
            "accuracy": keras_accuracy,
            "weights_bytes": int(sum(np.prod(w.shape) * np.dtype(w.dtype).itemsize for w in model.weights)),
            "latency_ms_per_example": 1000 * keras_seconds / _count(batch),
        },
        "variants": {},
    }
    for variant in variants:
        result = tflite(
            model, out_dir / f"{name}.{variant}.tflite", variant, representative_data=representative_data,
            class_names=class_names, metadata=metadata,
        )
        lite = run_tflite(result.path, x_eval, batch_size=256, num_threads=threads)
        lite_ids = predict_classes(lite)
        runner = signature_runner(result.path, num_threads=threads)
        feed = prepare_inputs(runner, batch, result.path)
        seconds = median_seconds(lambda: runner(**feed), repeats)
        accuracy = float(np.mean(lite_ids == y_eval))
        report["variants"][variant] = {
            "path": str(result.path),
            "size_bytes": directory_size(result.path),
            "select_tf_ops": result.select_tf_ops,
            "top1_agreement": float(np.mean(lite_ids == keras_ids)),
            "accuracy": accuracy,
            "accuracy_delta": accuracy - keras_accuracy,
            "max_output_diff": float(np.max(np.abs(lite - expected))),
            "latency_ms_per_example": 1000 * seconds / _count(batch),
        }
    reference = report["variants"].get("float32", {}).get("size_bytes") or report["keras"]["weights_bytes"]
    for entry in report["variants"].values():
        entry["size_ratio"] = entry["size_bytes"] / reference
    write_json_atomic(report_path or out_dir / f"{name}.tflite_report.json", report)
    return report


def _count(x):
    return len(next(iter(x.values()))) if isinstance(x, dict) else len(x)


def _slice(x, n):
    return {k: np.asarray(v)[:n] for k, v in x.items()} if isinstance(x, dict) else np.asarray(x)[:n]


def median_seconds(function, repeats, warmup=1):
    """Median wall time of `function()` over `repeats` calls, after `warmup` untimed calls.

    The untimed calls absorb one-off costs: LiteRT allocates tensors and Keras traces on the first call.

    Example:
    >>> median_seconds(lambda: None, repeats=3) < 0.1
    True
    """
    for _ in range(warmup):
        function()
    times = []
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
