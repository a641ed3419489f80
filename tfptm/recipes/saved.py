"""Working from a finished run or a saved model: load it, evaluate it, export it, predict with it.

Example:
>>> import tempfile, os, tfptm
>>> path = os.path.join(tempfile.mkdtemp(), "model.keras")
>>> backbone = tfptm.backbones.get("vgg_cnn", input_shape=(8, 8, 1), filters=(4,))
>>> tfptm.build_model(backbone, tfptm.Head("multiclass", num_classes=2)).save(path)
>>> load_model(path).output.shape
(None, 2)
"""

import json
from pathlib import Path

import keras
import numpy as np

import tfptm
import tfptm.backbones  # noqa: F401  (registers the custom layers saved models may hold)
import tfptm.training  # noqa: F401  (registers the optimizers and schedules compiled models hold)
from tfptm.errors import TfptmError, one_line
from tfptm.evaluation.report import write_report
from tfptm.files import staged_directory, write_text_atomic
from tfptm.progress import Progress
from tfptm.recipes.run import MODEL_FILE, backbone_and_tokenizer, check_input_shape, evaluate, export, load_recipe_data, \
    sample_shape, uses_preset_tokenizer
from tfptm.recipes.summary import write_summary
from tfptm.recipes.validate import RECIPE_FILE, dump_recipe, load_recipe


def load_model(path):
    """Loads a `.keras` model (safe mode, compiled as saved), or a run directory's `model.keras`."""
    path = Path(path)
    path = path / MODEL_FILE if path.is_dir() else path
    if path.suffix != ".keras" or not path.is_file():
        raise TfptmError(f"{str(path)!r}: expected a .keras model file or a run directory holding {MODEL_FILE}")
    try:
        return keras.saving.load_model(path, safe_mode=True)
    except Exception as error:  # Keras raises many types for files it cannot read
        raise TfptmError(f"{str(path)!r}: cannot load the model: {one_line(error)}") from None


def recipe_of_run(run_dir, sets=()):
    """The resolved recipe saved in a run directory, with `--set` overrides."""
    return load_recipe(Path(run_dir) / RECIPE_FILE, sets)


def data_for_model(recipe, model):
    """The recipe's data (same seed, same split) in the form `model` takes; text is tokenized as in training
    (the preset's tokenizer, loaded again, or the same vocabulary learnt again from the same training split)."""
    tokenizer = backbone_and_tokenizer(recipe)[1] if uses_preset_tokenizer(recipe) else None
    data = load_recipe_data(recipe, model, tokenizer)
    check_input_shape(model, sample_shape(data))
    return data


def evaluate_saved(model_path, recipe, run_dir=None, progress=None):
    """Evaluates a saved model on the test split of `recipe`'s data section (same seed, same split).

    With `run_dir`, also writes summary.json and report.md there (staged).
    """
    progress = progress or Progress()
    progress(f"loading {model_path}")
    model = load_model(model_path)
    progress(f"loading data ({recipe.data.source})")
    data = data_for_model(recipe, model)
    progress(f"evaluating on {data.num_test} test examples")
    metrics = {"model": evaluate(model, data)}
    if run_dir is None:
        return {"metrics": metrics, "artifacts": {"model": str(Path(model_path).resolve())}, "parity": {}}
    with staged_directory(run_dir, "run directory") as staging:
        write_text_atomic(staging / RECIPE_FILE, dump_recipe(recipe, origin=str(model_path)))
        summary = write_summary(staging, metrics, {"model": model_path}, {}, recipe=recipe.name)
        write_report(staging, summary, model=model, title=f"evaluation of {model_path}")
    return summary


def export_run(run_dir, sets=(), export_dir=None, progress=None):
    """Exports the `model.keras` of a finished run as its recipe's export section says (after `--set`).

    Artifacts go to `export_dir` (default: `export.dir`, else `RUN_DIR-export/`) and are checked for parity.
    """
    progress = progress or Progress()
    recipe = recipe_of_run(run_dir, sets)
    if not (recipe.export.saved_model or recipe.export.tflite):
        raise TfptmError("export: the recipe exports nothing; expected e.g. --set export.saved_model=true or export.tflite=[dynamic]")
    model = load_model(run_dir)
    data = data_for_model(recipe, model)
    base = Path(export_dir or recipe.export.dir or f"{str(run_dir).rstrip('/')}-export")
    progress(f"exporting to {base}")
    artifacts, parity, sizes = export(recipe, model, data, base)
    return {"artifacts": {k: str(Path(v).resolve()) for k, v in artifacts.items()}, "parity": parity, "sizes": sizes}


def predict_file(model_path, inputs_path, batch_size=256):
    """Predicts classes for the inputs in a `.npy` (or `.npz` with `x`) file with a `.keras` model,
    a run directory's `model.keras`, or a `.tflite` file; returns one dict per example.

    Class names come from the `.tflite` metadata, or from the run's `summary.json`.
    """
    from tfptm.evaluation.metrics import predict_classes

    x = _read_inputs(inputs_path)
    path = Path(model_path)
    if path.suffix == ".tflite":
        try:
            probabilities = tfptm.export.run_tflite(path, x)
            names = tfptm.export.read_metadata(path).get("labels")
        except Exception as error:  # LiteRT raises ValueError/RuntimeError for files and inputs it cannot use
            raise TfptmError(f"{str(path)!r}: cannot run the TFLite model on {str(inputs_path)!r}: {one_line(error)}") from None
    else:
        model = load_model(path)
        try:
            probabilities = model.predict(x, batch_size=batch_size, verbose=0)
        except (ValueError, TypeError) as error:
            raise TfptmError(f"{str(inputs_path)!r}: inputs do not fit the model: {one_line(error)}") from None
        names = _class_names_of_run(path if path.is_dir() else path.parent)
    probabilities = np.asarray(probabilities)
    rows = []
    for ids, p in zip(predict_classes(probabilities), probabilities):
        i = int(ids)
        confidence = float(p[i]) if p.shape[-1] > 1 else float(p[0] if i else 1 - p[0])
        rows.append({"class_id": i, "class_name": names[i] if names and i < len(names) else str(i), "probability": confidence})
    return rows


def _read_inputs(path):
    try:
        loaded = np.load(path, allow_pickle=False)
        x = loaded["x"] if isinstance(loaded, np.lib.npyio.NpzFile) else loaded
    except (OSError, ValueError, KeyError) as error:
        raise TfptmError(f"{str(path)!r}: expected a .npy array or a .npz file with x: {one_line(error)}") from None
    return tfptm.data.check_arrays(x, where=str(path))[0]


def _class_names_of_run(run_dir):
    try:
        metrics = json.loads((Path(run_dir) / "summary.json").read_text(encoding="utf-8"))["metrics"]
        return list((metrics.get("model") or metrics.get("finetuned"))["per_class"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
