"""Input specs shared by the SavedModel and TFLite exporters."""

import tensorflow as tf

from tfptm.errors import TfptmError


def input_spec(model):
    """The model's single input as a `tf.TensorSpec` with a free batch axis."""
    if len(model.inputs) != 1:
        raise TfptmError(f"Model {model.name!r} has {len(model.inputs)} inputs; this exporter takes models with one")
    tensor = model.inputs[0]
    name = tensor.name.split(":")[0]
    return tf.TensorSpec([None, *tensor.shape[1:]], tf.as_dtype(tensor.dtype), name=name)


def class_names_or_default(model, class_names):
    """`class_names` checked against the model's output width, or "0".."n-1"."""
    units = num_classes(model)
    if class_names is None:
        return [str(i) for i in range(units)]
    class_names = [str(c) for c in class_names]
    if len(class_names) != units:
        raise TfptmError(f"{len(class_names)} class names given for a model with {units} outputs")
    if any(not c or "\n" in c for c in class_names):
        raise TfptmError("class names must be non-empty single-line strings")
    return class_names


def num_classes(model):
    """Classes a classifier predicts: its output width, or 2 for one sigmoid unit."""
    units = model.outputs[0].shape[-1]
    return 2 if units == 1 else units


def class_ids(probabilities):
    """Predicted class ids in the graph: argmax, or probability >= 0.5 for one sigmoid unit."""
    if probabilities.shape[-1] == 1:
        return tf.cast(probabilities[:, 0] >= 0.5, tf.int32)
    return tf.argmax(probabilities, axis=-1, output_type=tf.int32)
