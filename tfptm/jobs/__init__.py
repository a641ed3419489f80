"""What each CLI verb does, as calls of the floors below (floor 5): a Python user calls the same functions.

| verb | function |
|---|---|
| `tfptm train`, `tfptm distill` | `run_recipe(recipe, run_dir)` |
| `tfptm pretrain` | `run_pretrain(recipe, run_dir)` |
| `tfptm evaluate` | `evaluate_saved(model_path, recipe, run_dir)` |
| `tfptm export` | `export_run(run_dir_or_keras_file, export_dir)` |
| `tfptm quickstart` | `run_text_quickstart(run_dir)`, `run_quickstart(run_dir)` (digits) |
| `tfptm bench` | `run_benchmark(name)` |

Recipes are read and validated by `tfptm.recipes`; the run directory's files
are `tfptm.rundir`'s. TensorFlow loads with the first job used.

Example:
>>> import tempfile, os
>>> from tfptm.jobs import run_recipe
>>> from tfptm.recipes import load_recipe, bundled_path
>>> recipe = load_recipe(bundled_path("image_transfer"), sets=[
...     "pretrain.epochs=1", "finetune.head_epochs=1", "finetune.epochs=1", "export.tflite=[]", "export.saved_model=false"])
>>> summary = run_recipe(recipe, os.path.join(tempfile.mkdtemp(), "run"), progress=lambda message: None)
>>> sorted(summary["metrics"])
['model', 'pretrain']
"""

import importlib

_JOBS = {
    "run_recipe": "tfptm.jobs.train",
    "run_pretrain": "tfptm.jobs.train",
    "evaluate_saved": "tfptm.jobs.evaluate",
    "export_run": "tfptm.jobs.export",
    "run_text_quickstart": "tfptm.jobs.quickstart_text",
    "run_quickstart": "tfptm.jobs.quickstart_digits",
    "run_benchmark": "tfptm.jobs.bench",
    "load_recipe_data": "tfptm.jobs.data",
}

__all__ = sorted(_JOBS)


def __getattr__(name):
    if name in _JOBS:
        return getattr(importlib.import_module(_JOBS[name]), name)
    raise AttributeError(f"module 'tfptm.jobs' has no attribute {name!r}")
