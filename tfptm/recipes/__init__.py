"""Whole jobs built from the floors below: recipes, the quickstart, summaries (floor 5).

`load_recipe` and friends need no TensorFlow; `run_recipe` and the other
runners load it on first use.

Example:
>>> from tfptm.recipes import load_recipe, bundled_path
>>> load_recipe(bundled_path("image_transfer")).finetune.strategy
'two_stage'
"""

import importlib

from tfptm.recipes.bundled import bundled_names, bundled_path, describe
from tfptm.recipes.validate import dump_recipe, load_recipe, parse_recipe, validate

_RUNNERS = {
    "run_recipe": "tfptm.recipes.run",
    "run_pretrain": "tfptm.recipes.run",
    "load_data": "tfptm.recipes.run",
    "evaluate_saved": "tfptm.recipes.saved",
    "load_model": "tfptm.recipes.saved",
}

__all__ = ["bundled_names", "bundled_path", "describe", "dump_recipe", "load_recipe", "parse_recipe", "validate", *_RUNNERS]


def __getattr__(name):
    if name in _RUNNERS:
        return getattr(importlib.import_module(_RUNNERS[name]), name)
    raise AttributeError(f"module 'tfptm.recipes' has no attribute {name!r}")
