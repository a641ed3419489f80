"""Old import paths of names and modules that moved, kept working (with a `DeprecationWarning`) for one release.

The recipe runner moved from `tfptm.recipes` (now the YAML side only) to
`tfptm.jobs`, the run directory's files to `tfptm.rundir`, the demo data sets
from `tfptm.data` to `tfptm.datasets`. `import tfptm` installs a finder that
maps each old module path in `MODULES` to a stand-in forwarding to the new module.

Example:
>>> import warnings, tfptm
>>> with warnings.catch_warnings(record=True) as caught:
...     warnings.simplefilter("always")
...     from tfptm.recipes.summary import parity_ok
>>> parity_ok.__module__, caught[0].category.__name__
('tfptm.rundir', 'DeprecationWarning')
"""

import importlib
import importlib.abc
import importlib.util
import sys
import types
import warnings

#: old module path -> new module path
MODULES = {
    "tfptm.recipes.run": "tfptm.jobs.train",
    "tfptm.recipes.loaders": "tfptm.jobs.data",
    "tfptm.recipes.models": "tfptm.jobs.model",
    "tfptm.recipes.training": "tfptm.jobs.fit",
    "tfptm.recipes.pretraining": "tfptm.jobs.pretrain",
    "tfptm.recipes.saved": "tfptm.jobs.evaluate",
    "tfptm.recipes.quickstart": "tfptm.jobs.quickstart_digits",
    "tfptm.recipes.quickstart_text": "tfptm.jobs.quickstart_text",
    "tfptm.recipes.bench": "tfptm.jobs.bench",
    "tfptm.recipes.summary": "tfptm.rundir",
    "tfptm.export.run": "tfptm.export.exporter",
    "tfptm.export.report": "tfptm.export.benchmark",
    "tfptm.data.digits": "tfptm.datasets.digits",
    "tfptm.data.reviews": "tfptm.datasets.reviews",
    "tfptm.backbones.text": "tfptm.backbones.text_encoders",
    "tfptm.distill": "tfptm.compress",
}

#: (old module path, old name) -> (new module, new name), for names that moved to another module or were renamed
NAMES = {
    ("tfptm.recipes.models", "check_input_shape"): ("tfptm.jobs.model", "check_examples_fit"),
    ("tfptm.recipes.models", "evaluate"): ("tfptm.jobs.model", "test_metrics"),
    ("tfptm.recipes.training", "train"): ("tfptm.jobs.fit", "fit_recipe"),
    ("tfptm.recipes.training", "CARRIED"): ("tfptm.rundir", "CARRIED"),
    ("tfptm.recipes.pretraining", "optimizer"): ("tfptm.jobs.fit", "recipe_optimizer"),
    ("tfptm.recipes.pretraining", "distill"): ("tfptm.jobs.distill", "distill"),
    ("tfptm.recipes.pretraining", "DISTILLERS"): ("tfptm.jobs.distill", "DISTILLERS"),
    ("tfptm.recipes.pretraining", "distillation_section"): ("tfptm.jobs.distill", "distillation_section"),
    ("tfptm.recipes.pretraining", "PRETRAIN_BACKUP"): ("tfptm.rundir", "PRETRAIN_BACKUP_DIR"),
    ("tfptm.recipes.run", "train"): ("tfptm.jobs.fit", "fit_recipe"),
    ("tfptm.recipes.run", "evaluate"): ("tfptm.jobs.model", "test_metrics"),
    ("tfptm.recipes.run", "check_input_shape"): ("tfptm.jobs.model", "check_examples_fit"),
    ("tfptm.recipes.run", "DISTILLERS"): ("tfptm.jobs.distill", "DISTILLERS"),
    ("tfptm.recipes.saved", "evaluate"): ("tfptm.jobs.model", "test_metrics"),
    ("tfptm.recipes.saved", "check_input_shape"): ("tfptm.jobs.model", "check_examples_fit"),
    ("tfptm.recipes.validate", "RECIPE_FILE"): ("tfptm.rundir", "RECIPE_FILE"),
    ("tfptm.export.run", "export_run"): ("tfptm.jobs.export", "export_run"),
    ("tfptm.export.run", "MODEL_FILE"): ("tfptm.rundir", "MODEL_FILE"),
    ("tfptm.export.run", "REPRESENTATIVE_FILE"): ("tfptm.rundir", "REPRESENTATIVE_FILE"),
    ("tfptm.pretrain.common", "train"): ("tfptm.pretrain.common", "train_all_weights"),
    # exports of task kinds live with the exporter, so that tfptm.tasks (floor 2) imports nothing of tfptm.export
    ("tfptm.tasks.pairs", "export_pairs"): ("tfptm.export.tasks", "export_pairs"),
    ("tfptm.tasks.pairs", "check_pair_signature"): ("tfptm.export.tasks", "check_pair_signature"),
    ("tfptm.tasks.embeddings", "export_embedder"): ("tfptm.export.tasks", "export_embedder"),
    ("tfptm.tasks", "export_pairs"): ("tfptm.export.tasks", "export_pairs"),
    ("tfptm.tasks", "check_pair_signature"): ("tfptm.export.tasks", "check_pair_signature"),
    ("tfptm.tasks", "export_embedder"): ("tfptm.export.tasks", "export_embedder"),
    ("tfptm.tasks.spans", "export_question_answerer"): ("tfptm.export.tasks", "export_question_answerer"),
}


def warn_moved(old, new):
    warnings.warn(f"{old} moved to {new}; the old path works until the next release", DeprecationWarning, stacklevel=3)


def moved_attribute(old, module, name):
    """`module.name`, with a `DeprecationWarning` that `old` moved there."""
    warn_moved(old, f"{module}.{name}")
    return getattr(importlib.import_module(module), name)


class _Forward(types.ModuleType):
    def __init__(self, name, target):
        super().__init__(name)
        self.__dict__["_target"] = target

    def __getattr__(self, name):
        if (self.__name__, name) in NAMES:
            return moved_attribute(f"{self.__name__}.{name}", *NAMES[self.__name__, name])
        return getattr(importlib.import_module(self.__dict__["_target"]), name)

    def __dir__(self):
        return dir(importlib.import_module(self.__dict__["_target"]))


class _MovedFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path=None, target=None):
        return importlib.util.spec_from_loader(fullname, self) if fullname in MODULES else None

    def create_module(self, spec):
        warn_moved(spec.name, MODULES[spec.name])
        return _Forward(spec.name, MODULES[spec.name])

    def exec_module(self, module):
        pass


def module_getattr(module, name):
    """For a module that stays but lost names: `__getattr__ = lambda name: module_getattr(__name__, name)`."""
    if (module, name) in NAMES:
        return moved_attribute(f"{module}.{name}", *NAMES[module, name])
    raise AttributeError(f"module {module!r} has no attribute {name!r}")


def install():
    if not any(isinstance(finder, _MovedFinder) for finder in sys.meta_path):
        sys.meta_path.append(_MovedFinder())
