"""Working from a finished run or a saved model: load it and evaluate it (export and predict: `tfptm.export`).

Example:
>>> import tempfile, os, tfptm
>>> path = os.path.join(tempfile.mkdtemp(), "model.keras")
>>> backbone = tfptm.backbones.get("vgg_cnn", input_shape=(8, 8, 1), filters=(4,))
>>> tfptm.build_model(backbone, tfptm.Head("multiclass", num_classes=2)).save(path)
>>> load_model(path).output.shape
(None, 2)
"""

from pathlib import Path

import keras

import tfptm.backbones  # noqa: F401  (registers the custom layers saved models may hold)
import tfptm.training  # noqa: F401  (registers the optimizers and schedules compiled models hold)
from tfptm.errors import TfptmError, one_line
from tfptm.evaluation.report import write_report
from tfptm.files import staged_directory, write_text_atomic
from tfptm.progress import Progress
from tfptm.recipes.run import LANGUAGE_MODELS, MODEL_FILE, PRETRAINED_DIR, backbone_and_tokenizer, check_input_shape, \
    evaluate, load_recipe_data, sample_shape, uses_preset_tokenizer
from tfptm.recipes.summary import write_summary
from tfptm.recipes.validate import RECIPE_FILE, dump_recipe


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


def data_for_model(recipe, model, run_dir=None):
    """The recipe's data (same seed, same split) in the form `model` takes; text is tokenized as in training:
    by the preset's or artifact's tokenizer, loaded again; by the one in `run_dir/pretrained` after
    language-model pre-training; else by the same vocabulary learnt again from the same training split."""
    tokenizer = None
    if uses_preset_tokenizer(recipe):
        tokenizer = backbone_and_tokenizer(recipe)[1]
    elif recipe.pretrain and recipe.pretrain.objective in LANGUAGE_MODELS:
        from tfptm.backbones.saved import load_artifact

        artifact = Path(run_dir or ".") / PRETRAINED_DIR
        if not artifact.is_dir():
            raise TfptmError(f"{str(artifact)!r}: missing; the recipe's text was tokenized with the vocabulary learnt "
                             "in pre-training, expected it saved there by tfptm train")
        tokenizer = load_artifact(str(artifact))[1]
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
    data = data_for_model(recipe, model, Path(model_path) if Path(model_path).is_dir() else Path(model_path).parent)
    progress(f"evaluating on {data.num_test} test examples")
    metrics = {"model": evaluate(model, data)}
    if run_dir is None:
        return {"metrics": metrics, "artifacts": {"model": str(Path(model_path).resolve())}, "parity": {}}
    with staged_directory(run_dir, "run directory") as staging:
        write_text_atomic(staging / RECIPE_FILE, dump_recipe(recipe, origin=str(model_path)))
        summary = write_summary(staging, metrics, {"model": model_path}, {}, recipe=recipe.name)
        write_report(staging, summary, model=model, title=f"evaluation of {model_path}")
    return summary
