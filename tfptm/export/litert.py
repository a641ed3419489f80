"""TFLite conversion (float32, float16, dynamic-range, int8) and a LiteRT runner."""

import dataclasses
import json
import tempfile
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from tfptm.errors import TfptmError
from tfptm.export.signatures import class_names_or_default, input_spec
from tfptm.files import write_bytes_atomic, write_json_atomic, write_text_atomic

QUANTIZATIONS = ("float32", "float16", "dynamic", "int8")


@dataclasses.dataclass(frozen=True)
class TFLiteExport:
    """Where a conversion wrote its files, and how it was converted."""

    path: Path
    labels_path: Path
    metadata_path: Path
    quantization: str
    select_tf_ops: bool


def tflite(model, path, quantization="dynamic", representative_data=None, int8_io=False, class_names=None, metadata=None):
    """Converts a Keras model to a `.tflite` file, with a labels file and metadata beside it.

    Args:
        quantization: `"float32"`, `"float16"` (weights stored as float16),
            `"dynamic"` (int8 weights, float activations) or `"int8"` (full
            integer; needs `representative_data`, an array of inputs drawn from
            the training data).
        int8_io: with `"int8"`, make the input and output tensors int8 too
            (what integer-only accelerators need); otherwise they stay float32.
        metadata: extra JSON-ready facts (input normalization, task) stored in
            `<name>.json` with the labels and conversion settings.

    Conversion tries TFLite builtin ops first and adds Select TF ops only if
    the model needs them; `TFLiteExport.select_tf_ops` says which happened.
    Every file is written through a temporary file and a rename.

    Example:
    >>> import tempfile, os, tfptm
    >>> backbone = tfptm.backbones.get("vgg_cnn", input_shape=(8, 8, 1), filters=(8,))
    >>> model = tfptm.build_model(backbone, tfptm.Head("multiclass", num_classes=2))
    >>> result = tfptm.export.tflite(model, os.path.join(tempfile.mkdtemp(), "m.tflite"))
    >>> result.path.name, result.labels_path.name, result.select_tf_ops
    ('m.tflite', 'm.labels.txt', False)
    """
    path = Path(path)
    if path.suffix != ".tflite":
        raise TfptmError(f"TFLite path {str(path)!r} must end in .tflite")
    if quantization not in QUANTIZATIONS:
        raise TfptmError(f"Unknown quantization {quantization!r}; expected one of {', '.join(QUANTIZATIONS)}")
    if quantization == "int8" and representative_data is None:
        raise TfptmError("int8 quantization needs representative_data: a few hundred training inputs")
    class_names = class_names_or_default(model, class_names)
    flatbuffer, select_tf_ops = _convert(model, quantization, representative_data, int8_io)
    labels_path = write_text_atomic(path.with_suffix(".labels.txt"), "\n".join(class_names) + "\n")
    metadata_path = write_json_atomic(
        path.with_suffix(".json"),
        {
            "labels": class_names,
            "quantization": quantization,
            "int8_io": bool(int8_io and quantization == "int8"),
            "select_tf_ops": select_tf_ops,
            "input": input_spec(model).name,
            **(metadata or {}),
        },
    )
    write_bytes_atomic(path, flatbuffer)
    return TFLiteExport(path, labels_path, metadata_path, quantization, select_tf_ops)


def _convert(model, quantization, representative_data, int8_io):
    spec = input_spec(model)
    with tempfile.TemporaryDirectory() as saved:
        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.add_endpoint(
            "serving_default",
            lambda inputs: {"probabilities": model(inputs, training=False)},
            input_signature=[spec],
        )
        archive.write_out(saved, verbose=False)
        try:
            return _converter(saved, quantization, representative_data, int8_io, select_tf_ops=False).convert(), False
        except Exception:  # the converter reports unsupported ops as a generic ConverterError
            return _converter(saved, quantization, representative_data, int8_io, select_tf_ops=True).convert(), True


def _converter(saved_model_dir, quantization, representative_data, int8_io, select_tf_ops):
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir)
    ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8 if quantization == "int8" else tf.lite.OpsSet.TFLITE_BUILTINS]
    if select_tf_ops:
        ops.append(tf.lite.OpsSet.SELECT_TF_OPS)
    converter.target_spec.supported_ops = ops
    if quantization != "float32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantization == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if quantization == "int8":
        samples = np.asarray(representative_data, dtype="float32")

        def representative_dataset():
            for sample in samples[:300]:
                yield [sample[np.newaxis]]

        converter.representative_dataset = representative_dataset
        if int8_io:
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
    return converter


def read_metadata(path):
    """Reads back the metadata written beside a `.tflite` file."""
    return json.loads(Path(path).with_suffix(".json").read_text(encoding="utf-8"))


def run_tflite(path, x, batch_size=64, num_threads=None):
    """Runs a `.tflite` classifier on `x` with the LiteRT interpreter; returns float outputs.

    Integer inputs and outputs are quantized and dequantized with the scales
    stored in the file, so callers always deal in floats.
    """
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=num_threads)
    runner = interpreter.get_signature_runner()
    (input_name, input_detail), = runner.get_input_details().items()
    (output_name, output_detail), = runner.get_output_details().items()
    outputs = []
    x = np.asarray(x, dtype="float32")
    for start in range(0, len(x), batch_size):
        batch = _quantize(x[start : start + batch_size], input_detail)
        outputs.append(_dequantize(runner(**{input_name: batch})[output_name], output_detail))
    return np.concatenate(outputs)


def _quantize(x, detail):
    if detail["dtype"] == np.float32:
        return x
    scale, zero_point = detail["quantization"]
    info = np.iinfo(detail["dtype"])
    return np.clip(np.round(x / scale + zero_point), info.min, info.max).astype(detail["dtype"])


def _dequantize(y, detail):
    if detail["dtype"] == np.float32:
        return y
    scale, zero_point = detail["quantization"]
    return (y.astype("float32") - zero_point) * scale
