"""The run directory: every file name in it, the one `summary.json` writer, the one loader of a run or `.keras` file.

A run directory (what `tfptm train`, `pretrain`, `evaluate` and the quickstarts write) holds:

    summary.json          metrics, artifacts, parity, sizes, data, training (`write_summary`)
    recipe.yaml           the resolved recipe: running it again repeats the run
    model.keras           the final model, without optimizer state
    history.json/.csv     per-epoch metrics; logs/ (TensorBoard)
    report.md             the report, with its PNGs (`tfptm.evaluation.report`)
    representative.npy    training inputs for `tfptm export` (`.npz` for a model with named inputs)
    pretrained/           the pre-trained backbone artifact, after pre-training
    export/               SavedModel versions and TFLite files (`tfptm.export.export_checked`)

While a run trains, what must outlive a killed process lives in its work
directory, `.NAME.backup/` beside it (`work_dir_for`).

Example:
>>> import tempfile
>>> run = tempfile.mkdtemp()
>>> summary = write_summary(run, {"model": {"accuracy": 0.5}}, {}, {})
>>> read_summary(run)["metrics"]
{'model': {'accuracy': 0.5}}
"""

import io
import json
from pathlib import Path

from tfptm.errors import TfptmError, one_line
from tfptm.files import write_bytes_atomic, write_json_atomic

SUMMARY_FILE = "summary.json"
RECIPE_FILE = "recipe.yaml"
MODEL_FILE = "model.keras"
HISTORY_FILE = "history.json"
HISTORY_CSV = "history.csv"
LOGS_DIR = "logs"
REPORT_FILE = "report.md"
CURVES_FILE = "curves.png"
CONFUSION_FILE = "confusion_matrix.png"
PER_LABEL_FILE = "per_label_f1.png"
RESIDUALS_FILE = "residuals.png"
REPRESENTATIVE_FILE = "representative.npy"  # one-input models; named inputs: representative.npz
REPRESENTATIVE_DICT_FILE = "representative.npz"
PRETRAINED_DIR = "pretrained"  # the backbone artifact after pre-training: use RUN_DIR/pretrained as backbone.name
EXPORT_DIR = "export"
CARRIED = (HISTORY_CSV, LOGS_DIR)  # moved from the work directory into the run directory when a run completes
BACKUP_DIR = "backup"  # fine-tuning's backup, in the work directory
PRETRAIN_BACKUP_DIR = "pretrain"  # pre-training's backup, in the work directory
REPRESENTATIVE_EXAMPLES = 256  # inputs kept for `tfptm export`: int8 calibration and parity checks
SUMMARY_KEYS = ("metrics", "artifacts", "parity")  # always present; the other keys are optional


def work_dir_for(run_dir):
    """The work directory of run directory `run_dir`: `.NAME.backup` beside it.

    Example:
    >>> work_dir_for("runs/digits").name
    '.digits.backup'
    """
    run_dir = Path(run_dir)
    return run_dir.parent / f".{run_dir.name}.backup"


def final_path(path, staging, run_dir):
    """Where `path`, written under a run's `staging` directory, will be once the run is renamed into `run_dir`
    (paths outside the staging directory, such as an `export.dir` elsewhere, stay as they are).

    Example:
    >>> final_path("/tmp/.run.partial-1/model.keras", "/tmp/.run.partial-1", "/tmp/run").as_posix()
    '/tmp/run/model.keras'
    """
    path = Path(path)
    try:
        return Path(run_dir).resolve() / path.relative_to(staging)
    except ValueError:
        return path


def write_summary(run_dir, metrics, artifacts, parity, **extra):
    """Writes `{"metrics", "artifacts", "parity", **extra}` to `run_dir/summary.json`: the one writer of that file.

    `metrics` maps a model name to its metrics, `artifacts` an artifact kind to
    its path (paths are written absolute), `parity` an artifact kind to its
    check. Optional keys in `extra`: `sizes` (bytes per artifact), `data`
    (examples per split, skipped inputs), `class_names`, `training` (seconds,
    epochs, examples/s), `image_scale`, `recipe`, `model_name` and whatever a
    job adds about itself (the quickstarts' `config`, `task`, `seconds`).
    """
    summary = {
        "metrics": metrics,
        "artifacts": {kind: str(Path(path).resolve()) for kind, path in artifacts.items()},
        "parity": parity,
        **extra,
    }
    write_json_atomic(Path(run_dir) / SUMMARY_FILE, summary)
    return summary


def read_summary(run_dir):
    """The run directory's `summary.json` as a dict (`{}` when there is none); unreadable JSON is a `TfptmError`."""
    path = Path(run_dir) / SUMMARY_FILE
    if not path.is_file():
        return {}
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise TfptmError(f"{str(path)!r} is not valid JSON ({one_line(error)}); expected the summary tfptm wrote") from None
    if not isinstance(summary, dict):
        raise TfptmError(f"{str(path)!r} holds a {type(summary).__name__}; expected the summary object tfptm wrote")
    return summary


def model_path(source):
    """The `.keras` file `source` names: the file itself, or a run directory's `model.keras`.

    Example:
    >>> model_path("runs/digits/model.keras").name
    'model.keras'
    """
    source = Path(source)
    if source.is_dir():
        path = source / MODEL_FILE
        if not path.is_file():
            raise TfptmError(f"Run directory {str(source)!r} has no {MODEL_FILE}; expected the fine-tuned model saved there")
        return path
    if source.suffix != ".keras":
        raise TfptmError(f"{str(source)!r} is not a .keras file or a run directory with {MODEL_FILE}")
    return source


def load_model(source, compile=True):
    """Loads a `.keras` model (Keras safe mode), or a run directory's `model.keras`: the one loader of tfptm models.

    With `compile=False` the model comes back uncompiled (what export needs);
    otherwise compiled as it was saved.

    Example:
    >>> import tempfile, os, tfptm
    >>> path = os.path.join(tempfile.mkdtemp(), "model.keras")
    >>> backbone = tfptm.backbones.get("vgg_cnn", input_shape=(8, 8, 1), filters=(4,))
    >>> tfptm.build_model(backbone, tfptm.Head("multiclass", num_classes=2)).save(path)
    >>> load_model(path).output.shape
    (None, 2)
    """
    import tfptm.backbones  # noqa: F401  (registers the custom layers saved models may hold)
    import tfptm.data.text  # noqa: F401
    import tfptm.training  # noqa: F401  (registers the optimizers and schedules compiled models hold)
    from tfptm.backbones.saved import read_keras_file

    return read_keras_file(model_path(source), compile=compile, what="Model")


def write_representative(run_dir, x, limit=REPRESENTATIVE_EXAMPLES):
    """Saves up to `limit` model inputs beside the model, for `tfptm export` to calibrate and check with.

    An array goes to `representative.npy`; a dict of arrays (a model with
    named inputs, e.g. a text model's token ids and padding mask) to
    `representative.npz`. Returns the path; `read_representative` reads either.

    Example:
    >>> import tempfile, numpy as np
    >>> write_representative(tempfile.mkdtemp(), np.zeros((300, 8, 8, 1)), limit=16).name
    'representative.npy'
    """
    import numpy as np

    buffer = io.BytesIO()
    if isinstance(x, dict):
        np.savez(buffer, **{key: np.asarray(value)[:limit] for key, value in x.items()})
        path = Path(run_dir) / REPRESENTATIVE_DICT_FILE
    else:
        np.save(buffer, np.asarray(x)[:limit], allow_pickle=False)
        path = Path(run_dir) / REPRESENTATIVE_FILE
    write_bytes_atomic(path, buffer.getvalue())
    return path


def read_representative(path):
    """Model inputs saved by `write_representative` (or by a user): an array from `.npy`, a dict from `.npz`.

    Example:
    >>> import tempfile, numpy as np
    >>> run = tempfile.mkdtemp()
    >>> sorted(read_representative(write_representative(run, {"token_ids": np.ones((4, 3), "int32")})))
    ['token_ids']
    """
    import numpy as np

    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.lib.npyio.NpzFile):
            with loaded:
                return {key: loaded[key] for key in loaded.files}
        return loaded
    except (OSError, ValueError) as error:
        raise TfptmError(f"Representative data {str(path)!r} cannot be read as a .npy array or .npz archive: "
                         f"{one_line(error)}") from None


def representative_path(run_dir):
    """The representative inputs saved in `run_dir` (`.npy` or `.npz`), or `None`."""
    for name in (REPRESENTATIVE_FILE, REPRESENTATIVE_DICT_FILE):
        if (Path(run_dir) / name).is_file():
            return Path(run_dir) / name
    return None


def format_summary(summary):
    """A run's summary as a few lines of text: one row per model, one per artifact.

    Example:
    >>> print(format_summary({"metrics": {"model": {"accuracy": 0.9, "f1_macro": 0.85, "num_examples": 40}},
    ...                       "artifacts": {}, "parity": {}}))
    model            accuracy  F1 (macro)  examples
    model               0.900       0.850        40
    """
    classified = any("accuracy" in m and "f1_macro" in m for m in summary.get("metrics", {}).values())
    rows = ["model            accuracy  F1 (macro)  examples"] if classified else []
    for name, m in summary.get("metrics", {}).items():
        if "accuracy" in m and "f1_macro" in m:
            rows.append(f"{name:<16} {m['accuracy']:>8.3f}  {m['f1_macro']:>10.3f}  {m['num_examples']:>8}")
        else:  # e.g. language-model pre-training: losses and perplexity
            rows.append(f"{name:<16} " + ", ".join(f"{k} {v:.4g}" for k, v in m.items() if isinstance(v, (int, float))))
    sizes, parity = summary.get("sizes", {}), summary.get("parity", {})
    for kind, path in summary.get("artifacts", {}).items():
        check = parity.get(kind)
        verdict = "" if check is None else ("parity OK" if check["ok"] else "parity FAILED")
        size = f"{sizes[kind] / 1024:9.1f} KiB" if kind in sizes else " " * 13
        rows.append(f"{kind:<16} {size}  {verdict:<13} {path}")
    return "\n".join(rows)


def parity_ok(summary):
    """True when every parity check in the summary passed (or there were none).

    Example:
    >>> parity_ok({"parity": {"saved_model": {"ok": True}, "tflite_int8": {"ok": False}}})
    False
    """
    return all(check.get("ok") for check in summary.get("parity", {}).values())
