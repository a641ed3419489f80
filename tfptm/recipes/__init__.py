"""Recipes: the YAML side of a job (floor 5). Schema, checks, validation and the bundled recipes; no TensorFlow.

A recipe is one YAML file that says what a job does (data, backbone, head,
fine-tuning, export). `tfptm.jobs` runs it (`tfptm.jobs.run_recipe`).

Example:
>>> from tfptm.recipes import load_recipe, bundled_path
>>> load_recipe(bundled_path("image_transfer")).finetune.strategy
'two_stage'
"""

from tfptm.recipes.bundled import bundled_names, bundled_path, describe
from tfptm.recipes.validate import dump_recipe, load_recipe, parse_recipe, validate

#: runners that lived here before `tfptm.jobs`; kept for one release
_MOVED = {
    "run_recipe": "tfptm.jobs.train",
    "run_pretrain": "tfptm.jobs.train",
    "load_data": "tfptm.jobs.data",
    "evaluate_saved": "tfptm.jobs.evaluate",
    "load_model": "tfptm.rundir",
}

__all__ = ["bundled_names", "bundled_path", "describe", "dump_recipe", "load_recipe", "parse_recipe", "validate"]


def __getattr__(name):
    if name in _MOVED:
        from tfptm._moved import moved_attribute

        return moved_attribute(f"tfptm.recipes.{name}", _MOVED[name], name)
    raise AttributeError(f"module 'tfptm.recipes' has no attribute {name!r}")
