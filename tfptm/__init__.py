"""tfptm: pre-trained models for Keras 3 and TensorFlow, from backbone to TF Serving and TFLite.

The public API, imported lazily so that `import tfptm` (and the CLI's
`--help`) stays fast; TensorFlow loads on first use of a name below.

Example:
>>> import numpy as np, tfptm
>>> backbone = tfptm.backbones.get("vgg_cnn", input_shape=(8, 8, 1), filters=(8, 16))
>>> model = tfptm.build_model(backbone, tfptm.Head("multiclass", num_classes=3))
>>> model.predict(np.zeros((2, 8, 8, 1)), verbose=0).shape
(2, 3)
"""

import importlib

from tfptm import _moved

__version__ = "0.1.0"
_moved.install()  # old import paths of moved modules keep working for one release (see tfptm/_moved.py)

_PUBLIC = {
    # name: (module, attribute or None for the module itself)
    "TfptmError": ("tfptm.errors", "TfptmError"),
    "data": ("tfptm.data", None),
    "datasets": ("tfptm.datasets", None),
    "backbones": ("tfptm.backbones", None),
    "Head": ("tfptm.heads", "Head"),
    "build_model": ("tfptm.build", "build_model"),
    "backbone_of": ("tfptm.build", "backbone_of"),
    "get_backbone": ("tfptm.build", "get_backbone"),  # old name of backbone_of, kept for one release
    "load_model": ("tfptm.rundir", "load_model"),
    "save_model": ("tfptm.build", "save_model"),
    "training": ("tfptm.training", None),
    "finetune": ("tfptm.training", "finetune"),
    "evaluate": ("tfptm.evaluation", "evaluate"),
    "evaluation": ("tfptm.evaluation", None),
    "export": ("tfptm.export", None),
    "recipes": ("tfptm.recipes", None),
    "jobs": ("tfptm.jobs", None),
    "rundir": ("tfptm.rundir", None),
    "tasks": ("tfptm.tasks", None),
    "pretrain": ("tfptm.pretrain", None),
    "Distiller": ("tfptm.compress", "Distiller"),
    "compress": ("tfptm.compress", None),
    "distill": ("tfptm.distill", None),  # old path of tfptm.compress, kept for one release
    "write_report": ("tfptm.evaluation.report", "write_report"),
}

__all__ = sorted(_PUBLIC) + ["__version__"]


def __getattr__(name):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'tfptm' has no attribute {name!r}")
    module_name, attribute = _PUBLIC[name]
    module = importlib.import_module(module_name)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value
    return value


def __dir__():
    return __all__
