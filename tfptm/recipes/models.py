"""Model helpers the recipe runner's sections share: the head, input checks, test-set metrics, backbone arguments.

Example:
>>> from tfptm.recipes.schema import Head
>>> make_head(Head(task="multiclass"), num_classes=3).num_classes
3
"""

import numpy as np

import tfptm
from tfptm.evaluation.metrics import task_metrics, task_of


def make_head(head, num_classes):
    """A `tfptm.Head` from the head section; `num_classes` (from the data) fills a missing one."""
    classes = None if head.task == "binary" else head.num_classes or num_classes
    return tfptm.Head(head.task, num_classes=classes, pooling=head.pooling, dropout=head.dropout,
                      hidden_units=head.hidden_units, label_smoothing=head.label_smoothing)


def sample_shape(data):
    """One example's shape in `data`'s training pipeline, or `None` (dict inputs, variable lengths).

    Example:
    >>> from tfptm.recipes.loaders import load_data
    >>> from tfptm.recipes.schema import Data
    >>> sample_shape(load_data(Data(classes=(0, 1), shots=2)))
    (8, 8, 1)
    """
    spec = data.train.element_spec[0]
    if isinstance(spec, dict) or None in spec.shape[1:]:
        return None
    return tuple(spec.shape[1:])


def check_input_shape(model, sample_shape):
    """Raises a `TfptmError` when a one-input model cannot take examples of `sample_shape` (`None`: no check)."""
    if sample_shape is None or isinstance(model.input, dict) or len(model.inputs) != 1:
        return
    tfptm.data.check_input_shape(model, sample_shape, where=f"{model.name}: the data's examples")


def evaluate(model, data):
    """Test-set metrics of `model` for its head's task: `tfptm.evaluate` on test arrays, else over the test pipeline."""
    if data.x_test is not None:
        return tfptm.evaluate(model, data.x_test, data.y_test, data.class_names)
    outputs, labels = [], []
    for x, y in data.test:
        outputs.append(np.asarray(model.predict_on_batch(x)))
        labels.append(y.numpy())
    return task_metrics(task_of(model), np.concatenate(labels), np.concatenate(outputs), data.class_names)


def backbone_args(recipe):
    """`backbone.args` as keyword arguments: YAML lists become the tuples builders expect.

    Example:
    >>> from tfptm.recipes.validate import validate
    >>> backbone_args(validate({"backbone": {"name": "vgg_cnn", "args": {"filters": [4, 8]}}}))
    {'filters': (4, 8)}
    """
    return {k: tuple(v) if isinstance(v, list) else v for k, v in recipe.backbone.args.items()}
