"""Teacher outputs computed once: the targets a `tfptm.Distiller` reads instead of running its teacher (floor 3).

Example:
>>> import numpy as np, tfptm
>>> backbone = tfptm.backbones.get("vgg_cnn", input_shape=(8, 8, 1), filters=(8,))
>>> teacher = tfptm.build_model(backbone, tfptm.Head("binary"))
>>> teacher_outputs(teacher, np.zeros((5, 8, 8, 1), "float32"))["teacher_logits"].shape
(5, 1)
"""

import keras
import numpy as np
import tensorflow as tf

from tfptm.compress.views import model_view
from tfptm.data.arrays import check_arrays
from tfptm.data.pipeline import finish
from tfptm.data.sequences import predict_by_length
from tfptm.errors import TfptmError


def teacher_outputs(teacher, x, hint_layer=None, batch_size=256):
    """Runs `teacher` once over `x` (batched, inference mode) and returns its outputs as NumPy arrays.

    Token arrays padded at the end are run length-aware
    (`tfptm.data.sequences.predict_by_length`), in the order given.

    Returns `{"teacher_logits": ...}`, plus `"teacher_features"` (the output
    of the top-level layer `hint_layer`) when asked: the targets dict a
    `Distiller` reads instead of running the teacher.

    Example:
    >>> import numpy as np, tfptm
    >>> backbone = tfptm.backbones.get("vgg_cnn", input_shape=(8, 8, 1), filters=(8,))
    >>> teacher = tfptm.build_model(backbone, tfptm.Head("multiclass", num_classes=3))
    >>> teacher_outputs(teacher, np.zeros((5, 8, 8, 1), "float32"))["teacher_logits"].shape
    (5, 3)
    """
    # Padded token arrays run shortest first, each batch cut to its longest text: same outputs, less padding.
    outputs = predict_by_length(model_view(teacher, [hint_layer] if hint_layer else [], "teacher"), x, batch_size=batch_size)
    result = {"teacher_logits": np.asarray(outputs["logits"], dtype="float32")}
    if hint_layer:
        result["teacher_features"] = np.asarray(outputs[f"layer:{hint_layer}"], dtype="float32")
    return result


def cache_teacher_outputs(teacher, x, y=None, hint_layer=None, batch_size=32, shuffle=True, seed=None, predict_batch_size=256,
                          student_inputs=None):  # fmt: skip
    """Runs the teacher once and returns a training dataset that carries its outputs.

    `x` (with `y`, where -1 marks a missing label) are arrays, or `x` is a
    batched `tf.data.Dataset` of `(x, y)` or `x` that is read once. The
    result yields `(x, {"labels": y, "teacher_logits": ...})` batches
    (no `"labels"` without `y`), shuffled every epoch with the cached outputs
    kept beside their examples; a `Distiller` trained on it never runs the
    teacher. Only valid for deterministic inputs: random augmentation would
    change `x` but not the cached outputs.

    When the student reads other inputs than the teacher (its own tokenizer,
    a smaller image size), pass them as `student_inputs`, one per example of
    `x` in the same order: the teacher runs on `x`, and the batches carry
    `student_inputs` in its place.

    Example:
    >>> import numpy as np, tfptm
    >>> backbone = tfptm.backbones.get("vgg_cnn", input_shape=(8, 8, 1), filters=(8,))
    >>> teacher = tfptm.build_model(backbone, tfptm.Head("multiclass", num_classes=3))
    >>> data = cache_teacher_outputs(teacher, np.zeros((6, 8, 8, 1), "float32"), np.arange(6) % 3, batch_size=4, seed=0)
    >>> x, targets = next(iter(data))
    >>> sorted(targets), tuple(targets["teacher_logits"].shape)
    (['labels', 'teacher_logits'], (4, 3))
    """
    if isinstance(x, tf.data.Dataset):
        if y is not None:
            raise TfptmError("cache_teacher_outputs: x is a tf.data.Dataset, so labels come from it; pass y=None")
        x, y = _read_dataset(x)
    else:
        x, y = check_arrays(x, y, where="cache_teacher_outputs")
    targets = teacher_outputs(teacher, x, hint_layer=hint_layer, batch_size=predict_batch_size)
    if y is not None:
        targets["labels"] = np.asarray(y)
    count = len(targets["teacher_logits"])
    if student_inputs is not None:
        x = check_arrays(student_inputs, None, where="cache_teacher_outputs(student_inputs=...)")[0]
        sizes = {len(leaf) for leaf in keras.tree.flatten(x)}
        if sizes != {count}:
            raise TfptmError(
                f"cache_teacher_outputs: student_inputs has {sorted(sizes)} examples and x has {count}; "
                "expected one student input per teacher input"
            )
    ds = tf.data.Dataset.from_tensor_slices((x, targets))
    return finish(ds, count, batch_size=batch_size, shuffle=shuffle, seed=seed, cache=True)


def _read_dataset(ds):
    xs, ys = [], []
    for batch in ds.as_numpy_iterator():
        x, y, _ = keras.utils.unpack_x_y_sample_weight(batch if isinstance(batch, tuple) else (batch,))
        xs.append(x)
        ys.append(y)
    if not xs:
        raise TfptmError("cache_teacher_outputs: the dataset is empty; expected batches of (x, y) or x")
    x = keras.tree.map_structure(lambda *parts: np.concatenate(parts), *xs)
    labelled = [y is not None for y in ys]
    if any(labelled) and not all(labelled):
        raise TfptmError("cache_teacher_outputs: some batches have labels and some not; mark missing labels with -1")
    return x, (np.concatenate(ys) if all(labelled) else None)
