"""TFLite conversion (float32, float16, dynamic-range, int8) and a LiteRT runner."""

import contextlib
import dataclasses
import json
import tempfile
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from tfptm.compress.qat import quantization_aware_of
from tfptm.errors import TfptmError
from tfptm.export.attention import int8_friendly_attention
from tfptm.export.recurrent import recurrent_layers, unrolled_recurrence
from tfptm.export.signatures import EMBEDDINGS, class_names_or_default, input_specs, task
from tfptm.files import staged_group, write_bytes_atomic, write_json_atomic, write_text_atomic

QUANTIZATIONS = ("float32", "float16", "dynamic", "int8")
REPRESENTATIVE_SAMPLES = 300


@dataclasses.dataclass(frozen=True)
class TFLiteExport:
    """Where a conversion wrote its files, and how it was converted."""

    path: Path
    labels_path: Path | None  # None for a regression head: it has values, not labels
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
            For `"int8"`, attention layers are traced with a bounded masked
            softmax (`tfptm.export.attention`): Keras's -1e9 mask fill would
            otherwise set the int8 range of the attention logits. The metadata
            then records `int8_attention_layers_rewritten` and `float_ops`
            (see `float_ops`: which ops, if any, still compute in float).
            A quantization-aware model (`tfptm.compress.quantization_aware`)
            converts to int8 with its learned ranges instead, without
            `representative_data`: int8 matmuls, convolutions and embedding
            tables, float LayerNorm and softmax; its metadata records
            `quantization_aware`. Its other quantizations trace the plain float model.
        metadata: extra JSON-ready facts (input normalization) stored in
            `<name>.json` with the labels and conversion settings.

    The output and metadata follow the head's task (`tfptm.evaluation.task_of`,
    recorded as `task`): classifiers output `probabilities` with their
    labels in `<name>.labels.txt` and the metadata's `labels`; a multilabel
    head's labels are the ones whose probability is >= the metadata's
    `threshold` (0.5), not an argmax; a regression head outputs `values`,
    named in the metadata's `value_names`, with no labels file.

    Conversion tries TFLite builtin ops first and adds Select TF ops only if
    the model needs them; `TFLiteExport.select_tf_ops` says which happened.
    Recurrent layers (LSTM, GRU) are traced unrolled when the sequence length
    is fixed (`tfptm.export.recurrent`), so they convert to builtin ops; the
    metadata records `recurrent_layers_unrolled`. With a variable length they
    need Select TF ops, which the LiteRT runtime cannot run.
    The three files are written in a hidden staging directory and renamed
    into place together (`tfptm.files.staged_group`), so a `.tflite` never
    appears beside the labels or metadata of another conversion.

    Example:
    >>> import tempfile, os, tfptm
    >>> backbone = tfptm.backbones.get("vgg_cnn", input_shape=(8, 8, 1), filters=(8,))
    >>> model = tfptm.build_model(backbone, tfptm.Head("multiclass", num_classes=2))
    >>> result = tfptm.export.tflite(model, os.path.join(tempfile.mkdtemp(), "m.tflite"))
    >>> result.path.name, result.labels_path.name, result.select_tf_ops
    ('m.tflite', 'm.labels.txt', False)
    """
    path = Path(path)
    check_tflite_args(path, quantization, representative_data, model)
    class_names = class_names_or_default(model, class_names)
    debris = tuple(f".{path.stem}.{suffix}.partial-*" for suffix in ("tflite", "labels.txt", "json"))
    with staged_group(path.parent, path.stem, "TFLite export", debris=debris) as stage:
        staged = write_tflite(model, stage / path.name, quantization, representative_data, int8_io, class_names, metadata)
    return dataclasses.replace(staged, path=path, labels_path=_beside(path, staged.labels_path),
                               metadata_path=_beside(path, staged.metadata_path))


def _beside(path, staged):
    return None if staged is None else path.parent / staged.name


def check_tflite_args(path, quantization, representative_data, model=None):
    """Refuses a bad TFLite path, quantization or missing int8 calibration data before anything is written.

    A quantization-aware `model` (`tfptm.compress.quantization_aware`) needs
    no representative data for int8: its learned ranges must be there instead.
    """
    if Path(path).suffix != ".tflite":
        raise TfptmError(f"TFLite path {str(path)!r} must end in .tflite")
    if quantization not in QUANTIZATIONS:
        raise TfptmError(f"Unknown quantization {quantization!r}; expected one of {', '.join(QUANTIZATIONS)}")
    learned = quantization_aware_of(model) if model is not None else None
    if quantization == "int8" and learned is not None:
        learned.check_ranges()
    elif quantization == "int8" and representative_data is None:
        raise TfptmError("int8 quantization needs representative_data: a few hundred training inputs")


def write_tflite(model, path, quantization, representative_data=None, int8_io=False, class_names=None, metadata=None):
    """Converts `model` and writes `path` with its labels and metadata beside it, with no staging: callers stage."""
    path = Path(path)
    check_tflite_args(path, quantization, representative_data, model)
    head = task(model)
    class_names = None if head == EMBEDDINGS else class_names_or_default(model, class_names)
    flatbuffer, select_tf_ops, rewritten, unrolled = _convert(model, quantization, representative_data, int8_io)
    if unrolled:
        metadata = {"recurrent_layers_unrolled": unrolled, **(metadata or {})}
    if quantization == "int8":
        learned = {"quantization_aware": True} if quantization_aware_of(model) is not None else {}
        metadata = {**learned, "int8_attention_layers_rewritten": rewritten, "float_ops": float_ops(flatbuffer),
                    **(metadata or {})}
    if head == EMBEDDINGS:  # vectors: no labels
        labels_path, described = None, {"task": head, "output": EMBEDDINGS}
    elif head == "regression":
        labels_path, described = None, {"task": head, "output": "values", "value_names": class_names}
    else:
        labels_path = write_text_atomic(path.with_suffix(".labels.txt"), "\n".join(class_names) + "\n")
        described = {"labels": class_names, "task": head, "output": "probabilities"}
        if head == "multilabel":
            described["threshold"] = 0.5
    metadata_path = write_json_atomic(
        path.with_suffix(".json"),
        {
            **described,
            "quantization": quantization,
            "int8_io": bool(int8_io and quantization == "int8"),
            "select_tf_ops": select_tf_ops,
            "inputs": _input_names(model),
            **(metadata or {}),
        },
    )
    write_bytes_atomic(path, flatbuffer)
    return TFLiteExport(path, labels_path, metadata_path, quantization, select_tf_ops)


def _input_names(model):
    spec = input_specs(model)
    return sorted(spec) if isinstance(spec, dict) else [spec.name]


def _convert(model, quantization, representative_data, int8_io, output=None):
    """`(flatbuffer, select_tf_ops, attention layers rewritten, recurrent layers unrolled)`; `output` names the
    signature's output (default by the head's task: `probabilities` or `values`)."""
    spec = input_specs(model)
    learned = quantization_aware_of(model)
    if learned is not None:  # learned ranges for int8; a plain float trace for every other quantization
        if quantization == "int8" and int8_io:
            raise TfptmError("int8_io is not available for a quantization-aware model: LayerNorm and softmax stay float")
        quantization = "learned" if quantization == "int8" else quantization
        rewrite = learned.int8_export() if quantization == "learned" else learned.float_calls()
    else:
        rewrite = int8_friendly_attention(model) if quantization == "int8" else contextlib.nullcontext(0)
    fixed_length = all(dim is not None for s in keras.tree.flatten(spec) for dim in s.shape[1:])
    unroll = unrolled_recurrence(model) if fixed_length and recurrent_layers(model) else contextlib.nullcontext(0)
    with tempfile.TemporaryDirectory() as saved, rewrite as rewritten, unroll as unrolled:
        archive = keras.export.ExportArchive()
        archive.track(model)
        output = output or {"regression": "values", EMBEDDINGS: EMBEDDINGS}.get(task(model), "probabilities")
        archive.add_endpoint(
            "serving_default",
            lambda inputs: {output: model(inputs, training=False)},
            input_signature=[spec],
        )
        archive.write_out(saved, verbose=False)
        try:
            flatbuffer = _converter(saved, spec, quantization, representative_data, int8_io, select_tf_ops=False).convert()
            return flatbuffer, False, rewritten, unrolled
        except Exception:  # the converter reports unsupported ops as a generic ConverterError
            flatbuffer = _converter(saved, spec, quantization, representative_data, int8_io, select_tf_ops=True).convert()
            return flatbuffer, True, rewritten, unrolled


def _converter(saved_model_dir, spec, quantization, representative_data, int8_io, select_tf_ops):
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir)
    ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8 if quantization == "int8" else tf.lite.OpsSet.TFLITE_BUILTINS]
    if select_tf_ops:
        ops.append(tf.lite.OpsSet.SELECT_TF_OPS)
    converter.target_spec.supported_ops = ops
    if quantization != "float32":  # "learned": fake-quantization ranges from training become int8 kernels
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantization == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if quantization == "int8":
        def representative_dataset():
            if isinstance(representative_data, dict):  # a multi-input model: one dict of named inputs per sample
                count = min(len(v) for v in representative_data.values())
                for i in range(min(count, REPRESENTATIVE_SAMPLES)):
                    yield {k: np.asarray(representative_data[k][i : i + 1], s.dtype.as_numpy_dtype) for k, s in spec.items()}
            else:
                for sample in np.asarray(representative_data, dtype="float32")[:REPRESENTATIVE_SAMPLES]:
                    yield [sample[np.newaxis]]

        converter.representative_dataset = representative_dataset
        if int8_io:
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
    return converter


def float_ops(flatbuffer):
    """Counts, by TFLite op name, of the ops in a converted model that compute in float32.

    `{}` for a model whose every op is integer apart from its float input and
    output conversions (QUANTIZE / DEQUANTIZE); `None` if LiteRT cannot load it
    (a model with Select TF ops). `tflite(..., "int8")` stores this in its
    metadata as `float_ops`, so a user can see what a "full integer" model
    still does in float.

    Example:
    >>> import tempfile, os, numpy as np, tfptm
    >>> backbone = tfptm.backbones.get("vgg_cnn", input_shape=(8, 8, 1), filters=(8,))
    >>> model = tfptm.build_model(backbone, tfptm.Head("multiclass", num_classes=2))
    >>> x = np.random.default_rng(0).random((16, 8, 8, 1), dtype="float32")
    >>> path = os.path.join(tempfile.mkdtemp(), "m.tflite")
    >>> float_ops(open(tfptm.export.tflite(model, path, "int8", x).path, "rb").read())
    {}
    """
    from ai_edge_litert.interpreter import Interpreter

    try:
        interpreter = Interpreter(model_content=flatbuffer)
    except (ValueError, RuntimeError):
        return None
    dtypes = {t["index"]: t["dtype"] for t in interpreter.get_tensor_details()}
    counts = {}
    for op in interpreter._get_ops_details():  # the one LiteRT call that lists ops; no public equivalent
        if op["op_name"] != "DEQUANTIZE" and any(dtypes.get(i) == np.float32 for i in op["outputs"]):
            counts[op["op_name"]] = counts.get(op["op_name"], 0) + 1
    return dict(sorted(counts.items()))


def read_metadata(path):
    """Reads back the metadata written beside a `.tflite` file: labels, quantization, inputs, task...

    Example:
    >>> import tempfile, os, tfptm
    >>> backbone = tfptm.backbones.get("vgg_cnn", input_shape=(8, 8, 1), filters=(8,))
    >>> model = tfptm.build_model(backbone, tfptm.Head("multiclass", num_classes=2))
    >>> path = os.path.join(tempfile.mkdtemp(), "m.tflite")
    >>> _ = tfptm.export.tflite(model, path, "float32", metadata={"task": "multiclass"})
    >>> read_metadata(path)["labels"], read_metadata(path)["task"]
    (['0', '1'], 'multiclass')
    """
    meta = Path(path).with_suffix(".json")
    try:
        return json.loads(meta.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TfptmError(f"No metadata beside {str(path)!r}: expected {meta.name} (written by tfptm.export.tflite)") from None
    except (OSError, ValueError) as error:
        raise TfptmError(f"Metadata {str(meta)!r} cannot be read as JSON: {error}") from None


def run_tflite(path, x, batch_size=64, num_threads=None):
    """Runs a `.tflite` classifier on `x` with the LiteRT interpreter; returns float outputs.

    `x` is one array, or a dict of arrays named as the model's inputs (e.g.
    `token_ids`, `padding_mask`, `segment_ids`). Integer inputs and outputs of
    a fully quantized model are quantized and dequantized with the scales
    stored in the file, so callers always deal in floats.
    """
    runner = signature_runner(path, num_threads)
    (output_name, output_detail), = runner.get_output_details().items()
    feed = prepare_inputs(runner, x, path)
    count = len(next(iter(feed.values())))
    outputs = []
    for start in range(0, count, batch_size):
        batch = {name: value[start : start + batch_size] for name, value in feed.items()}
        outputs.append(_dequantize(runner(**batch)[output_name], output_detail))
    return np.concatenate(outputs)


def signature_runner(path, num_threads=None):
    """The LiteRT signature runner of a `.tflite` file, or a `TfptmError` if it cannot be read."""
    from ai_edge_litert.interpreter import Interpreter

    try:
        return Interpreter(model_path=str(path), num_threads=num_threads).get_signature_runner()
    except (ValueError, RuntimeError) as error:
        raise TfptmError(f"{str(path)!r} cannot be loaded by LiteRT: {' '.join(str(error).split())[:200]}") from None


def prepare_inputs(runner, x, path="the model"):
    """`x` (an array, or a dict by input name) as the signature runner's inputs: named, cast, quantized."""
    details = runner.get_input_details()
    if not isinstance(x, dict):
        if len(details) != 1:
            raise TfptmError(f"{str(path)!r} takes inputs {sorted(details)}; pass a dict of arrays by those names")
        x = {next(iter(details)): x}
    missing = sorted(set(details) - set(x))
    if missing:
        raise TfptmError(f"{str(path)!r} takes inputs {sorted(details)}; missing {missing}")
    return {name: _quantize(np.asarray(x[name]), details[name]) for name in details}


def _quantize(x, detail):
    if not detail["quantization"][0]:  # not a quantized tensor (float, or integer token ids): only the dtype
        return x.astype(detail["dtype"])
    scale, zero_point = detail["quantization"]
    info = np.iinfo(detail["dtype"])
    return np.clip(np.round(x / scale + zero_point), info.min, info.max).astype(detail["dtype"])


def _dequantize(y, detail):
    if not detail["quantization"][0]:
        return y.astype("float32")
    scale, zero_point = detail["quantization"]
    return (y.astype("float32") - zero_point) * scale
