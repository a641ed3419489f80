"""`export_run`: every export of one saved `.keras` model, checked, with a summary (what `tfptm export` runs)."""

import json
from pathlib import Path

import keras
import numpy as np

from tfptm.errors import TfptmError, one_line
from tfptm.export.describe import describe_saved_model
from tfptm.export.litert import QUANTIZATIONS, tflite
from tfptm.export.parity import check_saved_model, check_tflite
from tfptm.export.serving import saved_model
from tfptm.files import directory_size, write_json_atomic

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
    model_name = model_name or run_facts.get("model_name") or run_facts.get("config", {}).get("model_name") or model_path.stem
    class_names = class_names or run_facts.get("class_names")
    image_scale = image_scale if image_scale is not None else run_facts.get("image_scale", 1.0)
    data = _representative(representative_data, model_path.parent / REPRESENTATIVE_FILE)
    if "tflite" in formats and "int8" in quantizations and data is None:
        raise TfptmError(
            f"int8 export needs representative data: pass representative_data or put {REPRESENTATIVE_FILE} "
            f"(a few hundred training inputs) beside {str(model_path)!r}"
        )
    export_dir = Path(export_dir)
    artifacts, parity, sizes, extra = {}, {}, {}, {}
    if "saved_model" in formats:
        path = saved_model(model, export_dir, model_name, version, class_names, image_scale=image_scale)
        artifacts["saved_model"], sizes["saved_model"] = str(path), directory_size(path)
        extra["signatures"] = describe_saved_model(path)["signatures"]
        if data is not None:
            parity["saved_model"] = check_saved_model(path, model, data)
    if "tflite" in formats:
        metadata = {"image_scale": image_scale, "source": str(model_path)}
        for quantization in quantizations:
            result = tflite(
                model, export_dir / f"{model_name}.{quantization}.tflite", quantization, representative_data=data,
                int8_io=int8_io, class_names=class_names, metadata=metadata,
            )
            key = f"tflite_{quantization}"
            artifacts[key], sizes[key] = str(result.path), directory_size(result.path)
            extra.setdefault("select_tf_ops", {})[quantization] = result.select_tf_ops
            if data is not None:
                parity[key] = check_tflite(result.path, model, data)
    if data is None:
        extra["parity_skipped"] = f"no representative data (pass representative_data or add {REPRESENTATIVE_FILE})"
    summary = {"source": str(model_path), "artifacts": artifacts, "sizes": sizes, "parity": parity, **extra}
    write_json_atomic(export_dir / f"{model_name}.export.json", summary)
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
    if data is None and default_path.is_file():
        data = default_path
    if isinstance(data, (str, Path)):
        try:
            data = np.load(data, allow_pickle=False)
        except (OSError, ValueError) as error:
            raise TfptmError(f"Representative data {str(data)!r} cannot be read as a .npy array: {error}") from None
    return data
