"""`tfptm evaluate`: a saved model or run evaluated on a recipe's test split (same seed, same split).

Example:
>>> import tempfile, os, tfptm
>>> from tfptm.recipes.validate import validate
>>> run = tempfile.mkdtemp()
>>> backbone = tfptm.backbones.get("vgg_cnn", input_shape=(8, 8, 1), filters=(4,))
>>> tfptm.build_model(backbone, tfptm.Head("multiclass", num_classes=2)).save(os.path.join(run, "model.keras"))
>>> recipe = validate({"backbone": {"name": "vgg_cnn"}, "data": {"classes": [0, 1], "shots": 4}})
>>> evaluate_saved(run, recipe, progress=lambda line: None)["metrics"]["model"]["num_examples"]
352
"""

from pathlib import Path

from tfptm.evaluation.report import write_report
from tfptm.files import staged_directory, write_text_atomic
from tfptm.jobs.data import load_recipe_data
from tfptm.jobs.model import check_examples_fit, recipe_tokenizer, sample_shape, test_metrics
from tfptm.progress import Progress
from tfptm.recipes.validate import dump_recipe
from tfptm.rundir import RECIPE_FILE, load_model, write_summary


def data_for_model(recipe, model, run_dir=None):
    """The recipe's data (same seed, same split) in the form `model` takes; text is tokenized as in training:
    by the preset's or artifact's tokenizer, loaded again; by the one in `run_dir/pretrained` after
    language-model pre-training; else by the same vocabulary learnt again from the same training split."""
    data = load_recipe_data(recipe, model, recipe_tokenizer(recipe, run_dir))
    check_examples_fit(model, sample_shape(data))
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
    metrics = {"model": test_metrics(model, data)}
    if run_dir is None:
        return {"metrics": metrics, "artifacts": {"model": str(Path(model_path).resolve())}, "parity": {}}
    with staged_directory(run_dir, "run directory") as staging:
        write_text_atomic(staging / RECIPE_FILE, dump_recipe(recipe, origin=str(model_path)))
        summary = write_summary(staging, metrics, {"model": model_path}, {}, recipe=recipe.name)
        write_report(staging, summary, model=model, title=f"evaluation of {model_path}")
    return summary
