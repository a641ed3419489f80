"""`export_run`: every export of one saved `.keras` model, checked, with a summary (what `tfptm export` runs)."""

import json
from pathlib import Path

import keras
import numpy as np

from tfptm.errors import TfptmError, one_line
from tfptm.export.describe import describe_saved_model
from tfptm.export.litert import QUANTIZATIONS, check_tflite_args, write_tflite
from tfptm.export.parity import check_saved_model, check_tflite, checked_inputs
from tfptm.export.serving import check_model_name, next_version, stale_debris, write_saved_model
from tfptm.export.signatures import check_head, class_names_or_default
from tfptm.files import directory_size, staged_group, write_json_atomic

FORMATS = ("saved_model", "tflite")
MODEL_FILE = "model.keras"
REPRESENTATIVE_FILE = "representative.npy"


def export_run(
    source, export_dir="export", model_name=None, formats=FORMATS, quantizations=("dynamic",), class_names=None,
    representative_data=None, image_scale=None, version=None, int8_io=False,
):
    """Exports a saved `.keras` classifier (a file, or a run directory holding `model.keras`) and checks it.

    Writes a SavedModel version under `<export_dir>/<model_name>/` and one
    `<model_name>.<quantization>.tflite` per quantization, then checks each
    against the Keras model on `representative_data` (when there is any) and
    writes `<export_dir>/<model_name>.export.json` with paths, sizes,
    signatures and parity. Facts not given come from the run directory's
    `summary.json` (`class_names`, `image_scale`, `model_name` or
    `config.model_name`) and
    `representative.npy` (training inputs for int8 calibration and checks).

    Example:
    >>> import os, tempfile, numpy as np, tfptm
    >>> backbone = tfptm.backbones.get("vgg_cnn", input_shape=(8, 8, 1), filters=(8,))
    >>> run = tempfile.mkdtemp()
    >>> tfptm.build_model(backbone, tfptm.Head("multiclass", num_classes=2)).save(os.path.join(run, "model.keras"))
    >>> np.save(os.path.join(run, "representative.npy"), np.random.rand(16, 8, 8, 1).astype("float32"))
    >>> summary = export_run(run, os.path.join(run, "export"), quantizations=["float32", "int8"])
    >>> sorted(summary["parity"]), summary["parity"]["saved_model"]["ok"], summary["parity"]["tflite_float32"]["ok"]
    (['saved_model', 'tflite_float32', 'tflite_int8'], True, True)
    """
    model_path, run_facts = _locate(Path(source))
    unknown = [f for f in formats if f not in FORMATS] + [q for q in quantizations if q not in QUANTIZATIONS]
    if unknown or not formats:
        raise TfptmError(f"export: unknown {unknown or 'empty formats'}; formats: {FORMATS}, quantizations: {QUANTIZATIONS}")
    model = _load(model_path)
    check_head(model, where=str(model_path))
    model_name = model_name or run_facts.get("model_name") or run_facts.get("config", {}).get("model_name") or model_path.stem
    class_names = class_names or run_facts.get("class_names")
    image_scale = image_scale if image_scale is not None else run_facts.get("image_scale", 1.0)
    data, where = _representative(representative_data, model_path.parent / REPRESENTATIVE_FILE)
    if data is not None:
        data = checked_inputs(model, data, where)
    if "tflite" in formats and "int8" in quantizations and data is None:
        raise TfptmError(
            f"int8 export needs representative data: pass representative_data or put {REPRESENTATIVE_FILE} "
            f"(a few hundred training inputs) beside {str(model_path)!r}"
        )
    record = {"source": str(model_path)}
    if data is None:
        record["parity_skipped"] = f"no representative data (pass representative_data or add {REPRESENTATIVE_FILE})"
    summary = export_checked(
        model, export_dir, model_name, saved_model_export="saved_model" in formats,
        quantizations=quantizations if "tflite" in formats else (), class_names=class_names, image_scale=image_scale,
        version=version, representative_data=data, check_data=data, int8_io=int8_io,
        metadata={"image_scale": image_scale, "source": str(model_path)}, record=record,
    )
    return {**record, **summary}


def export_checked(
    model, export_dir, model_name, saved_model_export=True, quantizations=("dynamic",), class_names=None,
    image_scale=1.0, tokenizer=None, version=None, representative_data=None, check_data=None, int8_io=False,
    metadata=None, record=None,
):  # fmt: skip
    """Exports `model` for TF Serving and for phones, then checks every artifact against it.

    The one export path of tfptm: `tfptm train`, `tfptm export` and the
    quickstart all call it. Writes a SavedModel version under
    `<export_dir>/<model_name>/` (signatures: `serving_default`, plus
    `image_bytes`/`pixels` for images or `raw_text`/`token_ids` with a
    `tokenizer`) and `<export_dir>/<model_name>.<quantization>.tflite` per
    quantization, each with its labels and metadata files beside it.
    `representative_data` calibrates int8; `check_data` (inputs, or
    `(inputs, labels)` to compare accuracies too) checks each artifact.

    Returns a JSON-ready dict: `artifacts` (kind -> path; kinds
    `saved_model`, `tflite_<quantization>` and their `_labels` files),
    `sizes` (bytes), `parity` (kind -> check result), `signatures` and
    `select_tf_ops` (per quantization). With `record` (a dict), that dict
    plus the summary is written as `<export_dir>/<model_name>.export.json`.

    Inputs are checked against the model before anything is written; every
    artifact (and that JSON) is written and checked in one hidden staging
    directory and appears together only when all succeed
    (`tfptm.files.staged_group`), which also removes what killed exports of
    `model_name` left behind.

    Example:
    >>> import tempfile, numpy as np, tfptm
    >>> backbone = tfptm.backbones.get("vgg_cnn", input_shape=(8, 8, 1), filters=(8,))
    >>> model = tfptm.build_model(backbone, tfptm.Head("multiclass", num_classes=2))
    >>> x = np.random.rand(16, 8, 8, 1).astype("float32")
    >>> summary = export_checked(model, tempfile.mkdtemp(), "tiny", check_data=(x, np.arange(16) % 2))
    >>> sorted(summary["parity"]), summary["artifacts"]["tflite_dynamic"].endswith("tiny.dynamic.tflite")
    (['saved_model', 'tflite_dynamic'], True)
    """
    export_dir = Path(export_dir)
    check_model_name(model_name)
    check_head(model)
    x, y = check_data if isinstance(check_data, tuple) else (check_data, None)
    x = checked_inputs(model, x, "check data") if x is not None else None
    if representative_data is not None:
        representative_data = checked_inputs(model, representative_data, "representative data")
    for quantization in quantizations:
        check_tflite_args(export_dir / f"{model_name}.{quantization}.tflite", quantization, representative_data)
    class_names = class_names_or_default(model, class_names)
    artifacts, parity, sizes, extra = {}, {}, {}, {}
    with staged_group(export_dir, model_name, "export", debris=stale_debris(model_name)) as stage:
        if saved_model_export:
            version = next_version(export_dir / model_name, version)
            staged = write_saved_model(model, stage / model_name / str(version), class_names, tokenizer, image_scale)
            artifacts["saved_model"], sizes["saved_model"] = str(export_dir / model_name / str(version)), directory_size(staged)
            extra["signatures"] = describe_saved_model(staged)["signatures"]
            if x is not None:
                parity["saved_model"] = check_saved_model(staged, model, x)
        for quantization in quantizations:
            name = f"{model_name}.{quantization}.tflite"
            result = write_tflite(model, stage / name, quantization, representative_data, int8_io, class_names, metadata)
            key = f"tflite_{quantization}"
            artifacts[key], sizes[key] = str(export_dir / name), directory_size(result.path)
            if result.labels_path is not None:  # a regression head has values, not labels
                artifacts[f"{key}_labels"] = str(export_dir / result.labels_path.name)
            extra.setdefault("select_tf_ops", {})[quantization] = result.select_tf_ops
            if x is not None:
                parity[key] = check_tflite(result.path, model, x, y)
        summary = {"artifacts": artifacts, "sizes": sizes, "parity": parity, **extra}
        if record is not None:
            write_json_atomic(stage / f"{model_name}.export.json", {**record, **summary})
    return summary


def _locate(source):
    if source.is_dir():
        model_path = source / MODEL_FILE
        if not model_path.is_file():
            raise TfptmError(f"Run directory {str(source)!r} has no {MODEL_FILE}; expected the fine-tuned model saved there")
    else:
        model_path = source
        if model_path.suffix != ".keras" or not model_path.is_file():
            raise TfptmError(f"{str(source)!r} is not a .keras file or a run directory with {MODEL_FILE}")
    summary = model_path.parent / "summary.json"
    try:
        facts = json.loads(summary.read_text(encoding="utf-8")) if summary.is_file() else {}
    except ValueError:
        raise TfptmError(f"{str(summary)!r} is not valid JSON") from None
    return model_path, facts


def _load(path):
    import tfptm.backbones  # noqa: F401  registers tfptm's custom layers for deserialization
    import tfptm.data.text  # noqa: F401

    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as error:  # Keras raises ValueError, TypeError, OSError... for unreadable files
        raise TfptmError(f"Model {str(path)!r} cannot be loaded: {one_line(error)}") from None


def _representative(data, default_path):
    """`(inputs or None, how to name them in errors)`."""
    if data is None and default_path.is_file():
        data = default_path
    if not isinstance(data, (str, Path)):
        return data, "representative data"
    try:
        return np.load(data, allow_pickle=False), f"representative data {str(data)!r}"
    except (OSError, ValueError) as error:
        raise TfptmError(f"Representative data {str(data)!r} cannot be read as a .npy array: {one_line(error)}") from None
