"""`export_checked`: the one exporter core. `tfptm train`, `tfptm export RUN`, the quickstarts and the benchmarks call it."""

from pathlib import Path

from tfptm.export.describe import describe_saved_model
from tfptm.export.litert import QUANTIZATIONS, check_tflite_args, write_tflite
from tfptm.export.parity import check_saved_model, check_tflite, checked_inputs
from tfptm.export.serving import check_model_name, next_version, stale_debris, write_saved_model
from tfptm.export.signatures import EMBEDDINGS, check_head, class_names_or_default, task
from tfptm.files import directory_size, staged_group, write_json_atomic, write_text_atomic

FORMATS = ("saved_model", "tflite")


def export_checked(
    model, export_dir, model_name, saved_model_export=True, quantizations=("dynamic",), class_names=None,
    image_scale=1.0, tokenizer=None, version=None, representative_data=None, check_data=None, int8_io=False,
    metadata=None, record=None, files=None,
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
    `files` (kind -> `(file name, text)`) are written beside the artifacts,
    in the same staging, and listed in `artifacts` (e.g. a vocabulary).

    A sentence embedder (`tfptm.tasks.embeddings`; output `embeddings`) is
    exported the same way: its SavedModel returns `embeddings` (`embed` on
    raw strings with a `tokenizer`), its TFLite files have no labels, and
    parity compares vectors by cosine (`signatures.MIN_COSINE`).

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
        check_tflite_args(export_dir / f"{model_name}.{quantization}.tflite", quantization, representative_data, model)
    class_names = None if task(model) == EMBEDDINGS else class_names_or_default(model, class_names)
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
                parity[key] = check_tflite(result.path, model, x, y, quantization=quantization)
        for kind, (name, text) in (files or {}).items():
            write_text_atomic(stage / name, text)
            artifacts[kind] = str(export_dir / name)
        summary = {"artifacts": artifacts, "sizes": sizes, "parity": parity, **extra}
        if record is not None:
            write_json_atomic(stage / f"{model_name}.export.json", {**record, **summary})
    return summary
