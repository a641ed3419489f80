"""Knowledge distillation: a `Distiller` that trains a student from a frozen teacher with `model.fit` (floor 3).

The loss, per global batch (Hinton et al. 2015; FitNets for the hint term):

    alpha * CE(y, student) + (1 - alpha) * T^2 * KL(softmax(teacher / T) || softmax(student / T))
        + hint.weight * MSE(projection(student features), teacher features)

`teacher` and `student` are logits. tfptm models output probabilities, so
both are read from the models' `head_logits` layer (the Dense before the
softmax) through sub-models that share the weights. `log(probabilities)`
would be valid logits in exact arithmetic (a softmax is unchanged by a
constant shift, and `log softmax(z) = z - logsumexp(z)`), but not in float32:
a confident model's small probabilities underflow to 0 (log gives -inf and
the loss NaN) or keep few significant digits, and those small probabilities
are the "dark knowledge" that the temperature exists to bring out.

What `fit` takes, per batch (`y` may be missing, or a dict of cached outputs):

* `(x, labels)`: the teacher runs on `x`; label `MISSING_LABEL` (-1) marks an
  unlabelled example, which adds to the distillation term only.
* `x` alone: unlabelled data, distillation term only.
* `(x, {"labels": ..., "teacher_logits": ...})` from `cache_teacher_outputs`:
  the teacher is not run at all ("labels" is optional). Valid only when the
  inputs are the same every epoch (no random augmentation): the cached
  outputs belong to the exact inputs they were computed from.
"""

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from tfptm.data.arrays import check_arrays
from tfptm.data.pipeline import finish
from tfptm.data.sequences import predict_by_length
from tfptm.errors import TfptmError

LOGITS_LAYER = "head_logits"
MISSING_LABEL = -1
TARGET_KEYS = ("labels", "teacher_logits", "teacher_probabilities", "teacher_features")


@dataclasses.dataclass(frozen=True)
class Hint:
    """An intermediate (hint) loss between a teacher layer and a student layer, through a learnt projection.

    The student's features pass through a Dense layer on their last axis (a
    1x1 convolution for feature maps) to the teacher's width; the loss is the
    mean squared difference, times `weight`. Layers are named at the top level
    of each model: in a `tfptm.build_model` model `"backbone"` is the
    backbone's output. The two outputs must agree in every axis but the last.

    Example:
    >>> Hint("backbone", "backbone", weight=0.5).weight
    0.5
    """

    teacher_layer: str = "backbone"
    student_layer: str = "backbone"
    weight: float = 1.0

    def __post_init__(self):
        if self.weight < 0:
            raise TfptmError(f"Hint: weight is {self.weight}; expected >= 0")


@keras.saving.register_keras_serializable(package="tfptm")
class Distiller(keras.Model):
    """Trains `student` to match a frozen `teacher` (and the labels), with `model.fit`.

    Args:
        student: the model to train; from `tfptm.build_model` (its `head_logits`
            layer gives the logits) or any classifier whose output is logits.
        teacher: the trained model to copy, same classes; made `trainable=False`
            and always run in inference mode (dropout off, BatchNorm moving
            statistics used and never updated).
        alpha: weight of the cross-entropy with the labels; `1 - alpha` weighs
            the distillation term. `alpha=1` is plain training of the student.
        temperature: softens both distributions; the distillation term is
            multiplied by `temperature**2` so its gradients keep their scale.
        hint: an optional `Hint` (intermediate feature loss).

    Build it inside `strategy.scope()` to train distributed. The loss is
    averaged over the global batch (labelled examples for the cross-entropy).
    `fit`, `evaluate` and callbacks work as usual and report `loss`,
    `student_loss`, `distillation_loss` (and `hint_loss`) and the student's
    metrics. Calling the distiller returns a dict of the student's `logits`,
    `probabilities` (and projected `features`); `predict` returns the
    probabilities. Export `distiller.student`, which still outputs probabilities.

    Example:
    >>> import numpy as np, tfptm
    >>> def model(width):
    ...     backbone = tfptm.backbones.get("vgg_cnn", input_shape=(8, 8, 1), filters=(width,))
    ...     return tfptm.build_model(backbone, tfptm.Head("multiclass", num_classes=3))
    >>> distiller = Distiller(model(4), teacher=model(16), alpha=0.1, temperature=4.0)
    >>> distiller.compile(keras.optimizers.Adam(1e-3))
    >>> x, y = np.random.rand(16, 8, 8, 1).astype("float32"), np.arange(16) % 3
    >>> history = distiller.fit(x, y, batch_size=8, epochs=1, verbose=0)
    >>> sorted(history.history)
    ['accuracy', 'distillation_loss', 'loss', 'student_loss']
    >>> distiller.student.predict(x, verbose=0).shape
    (16, 3)
    """

    def __init__(self, student, teacher, alpha=0.1, temperature=4.0, hint=None, **kwargs):
        super().__init__(**kwargs)
        for role, model in (("student", student), ("teacher", teacher)):
            if not isinstance(model, keras.Model):
                raise TfptmError(f"Distiller: {role} must be a keras.Model; got {type(model).__name__}")
        if student is teacher:
            raise TfptmError("Distiller: student and teacher are the same model; expected two models")
        if not 0.0 <= alpha <= 1.0:
            raise TfptmError(f"Distiller: alpha is {alpha}; expected 0 <= alpha <= 1")
        if not temperature > 0:
            raise TfptmError(f"Distiller: temperature is {temperature}; expected > 0")
        if isinstance(hint, dict):
            hint = Hint(**hint)
        if hint is not None and not isinstance(hint, Hint):
            raise TfptmError(f"Distiller: hint must be a tfptm.distill.Hint or None; got {type(hint).__name__}")
        self.student, self.teacher = student, teacher
        self.alpha, self.temperature, self.hint = float(alpha), float(temperature), hint
        teacher.trainable = False
        self.student_view = _view(student, hint and hint.student_layer, "student")
        self.teacher_view = _view(teacher, hint and hint.teacher_layer, "teacher")
        s_logits, t_logits = self.student_view.output["logits"], self.teacher_view.output["logits"]
        if s_logits.shape[-1] != t_logits.shape[-1]:
            raise TfptmError(
                f"Distiller: the student has {s_logits.shape[-1]} classes and the teacher {t_logits.shape[-1]}; "
                "expected the same classes"
            )
        self.projection = None
        if hint is not None:
            s_feat, t_feat = self.student_view.output["features"], self.teacher_view.output["features"]
            if tuple(s_feat.shape[1:-1]) != tuple(t_feat.shape[1:-1]):
                raise TfptmError(
                    f"Distiller: hint features differ in shape: student {hint.student_layer!r} {s_feat.shape}, "
                    f"teacher {hint.teacher_layer!r} {t_feat.shape}; expected equal shapes but for the last axis"
                )
            self.projection = keras.layers.Dense(t_feat.shape[-1], name="hint_projection", dtype="float32")
            self.projection.build(s_feat.shape)
        self.part_trackers = {
            name: keras.metrics.Mean(name=name)
            for name in ("student_loss", "distillation_loss") + (("hint_loss",) if hint else ())
        }
        self.student_metrics = []

    def compile(self, optimizer="adam", metrics=None, **kwargs):
        """Compiles with an optimizer and the student's metrics (default: `accuracy`).

        The loss is the Distiller's own; call inside the strategy scope when
        distributing, as for any Keras model.
        """
        if kwargs.get("loss") is not None:
            raise TfptmError("Distiller.compile: the loss is set by the Distiller (alpha, temperature, hint); pass no loss")
        kwargs.pop("loss", None)
        with self.distribute_strategy.scope():
            self.student_metrics = [_metric(m) for m in (["accuracy"] if metrics is None else metrics)]
        super().compile(optimizer=optimizer, **kwargs)

    @property
    def metrics(self):
        own = [self._loss_tracker] if self.compiled and self._loss_tracker is not None else []
        return own + list(self.part_trackers.values()) + list(self.student_metrics)

    def call(self, inputs, training=False):
        outputs = self.student_view(inputs, training=training)
        logits = keras.ops.cast(outputs["logits"], "float32")
        result = {"logits": logits, "probabilities": keras.ops.softmax(logits)}
        if self.projection is not None:
            result["features"] = self.projection(keras.ops.cast(outputs["features"], "float32"))
        return result

    def predict_step(self, data):
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        return self(x, training=False)["probabilities"]

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        labels, teacher = self._teacher_targets(x, y)
        if len(y_pred["logits"].shape) == 3:  # per-token heads: each real token is an example
            labels, teacher, y_pred, sample_weight = per_token(x, labels, teacher, y_pred, sample_weight)
        parts = self.loss_parts(labels, teacher, y_pred, sample_weight)
        total = parts["distillation_loss"] * (1.0 - self.alpha) + parts["student_loss"] * self.alpha
        if "hint_loss" in parts:
            total = total + parts["hint_loss"] * self.hint.weight
        if self.student.losses:  # regularization, scaled per replica as Keras does
            total = total + keras.ops.sum(self.student.losses) / _num_replicas()
        batch = keras.ops.shape(y_pred["logits"])[0]
        for name, value in parts.items():
            self.part_trackers[name].update_state(value * _num_replicas(), sample_weight=batch)
        return total

    def loss_parts(self, labels, teacher, y_pred, sample_weight=None):
        """The unweighted loss terms for one replica's batch, each a share of the global-batch mean.

        `teacher` holds `"logits"` (and `"features"` with a hint); `labels`
        may be None or contain `MISSING_LABEL`. Summed over replicas, each
        term is the mean over the global batch (over its labelled examples
        for `student_loss`); the distillation term includes the `T^2` factor.
        """
        student_logits = y_pred["logits"]
        weights = keras.ops.ones_like(student_logits[:, 0])
        examples = _global_sum(keras.ops.cast(keras.ops.shape(student_logits)[0], "float32"))
        if sample_weight is not None:
            weights = keras.ops.reshape(keras.ops.cast(sample_weight, "float32"), (-1,))
        if y_pred.get("per_token"):  # rows are tokens, padding weighted 0: average over the real tokens
            examples = keras.ops.maximum(_global_sum(keras.ops.sum(weights)), 1.0)
        temperature = self.temperature
        t_log = keras.ops.log_softmax(keras.ops.cast(teacher["logits"], "float32") / temperature, axis=-1)
        s_log = keras.ops.log_softmax(student_logits / temperature, axis=-1)
        kl = keras.ops.sum(keras.ops.exp(t_log) * (t_log - s_log), axis=-1)
        parts = {"distillation_loss": temperature**2 * keras.ops.sum(kl * weights) / examples}
        if labels is None:
            parts["student_loss"] = keras.ops.zeros(())
        else:
            labels = keras.ops.reshape(keras.ops.cast(labels, "int32"), (-1,))
            known = keras.ops.cast(labels != MISSING_LABEL, "float32")
            ce = keras.losses.sparse_categorical_crossentropy(
                keras.ops.where(labels == MISSING_LABEL, 0, labels), student_logits, from_logits=True
            )
            labelled = keras.ops.maximum(_global_sum(keras.ops.sum(known)), 1.0)
            parts["student_loss"] = keras.ops.sum(ce * known * weights) / labelled
        if self.projection is not None:
            diff = y_pred["features"] - keras.ops.cast(teacher["features"], "float32")
            per_example = keras.ops.mean(keras.ops.reshape(keras.ops.square(diff), (keras.ops.shape(diff)[0], -1)), axis=-1)
            parts["hint_loss"] = keras.ops.sum(per_example * weights) / examples
        return parts

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        labels, _ = _split_targets(y)
        if labels is not None and len(y_pred["logits"].shape) == 3:  # per-token heads: tokens are the examples
            labels, _, y_pred, sample_weight = per_token(x, labels, None, y_pred, sample_weight)
        if labels is not None:
            labels = keras.ops.reshape(keras.ops.cast(labels, "int32"), (-1,))
            weights = keras.ops.cast(labels != MISSING_LABEL, "float32")
            if sample_weight is not None:
                weights = weights * keras.ops.reshape(keras.ops.cast(sample_weight, "float32"), (-1,))
            labels = keras.ops.where(labels == MISSING_LABEL, 0, labels)
            for metric in self.student_metrics:
                metric.update_state(labels, y_pred["probabilities"], sample_weight=weights)
        return self.get_metrics_result()

    def _teacher_targets(self, x, y):
        """The labels, and the teacher's outputs: cached in `y`, else from running the teacher on `x`."""
        labels, cached = _split_targets(y)
        if "teacher_probabilities" in cached:
            cached["teacher_logits"] = keras.ops.log(keras.ops.maximum(cached.pop("teacher_probabilities"), 1e-30))
        if "teacher_logits" in cached:
            if self.hint is not None and "teacher_features" not in cached:
                raise TfptmError(
                    "Distiller: the data holds cached teacher_logits but no teacher_features for the hint; "
                    "cache them with cache_teacher_outputs(..., hint_layer=...)"
                )
            teacher = {"logits": cached["teacher_logits"], "features": cached.get("teacher_features")}
        else:
            teacher = dict(self.teacher_view(x, training=False))
        teacher = {k: keras.ops.stop_gradient(v) for k, v in teacher.items() if v is not None}
        return labels, teacher

    def get_config(self):
        return {
            "name": self.name,
            "student": keras.saving.serialize_keras_object(self.student),
            "teacher": keras.saving.serialize_keras_object(self.teacher),
            "alpha": self.alpha,
            "temperature": self.temperature,
            "hint": dataclasses.asdict(self.hint) if self.hint else None,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for role in ("student", "teacher"):
            config[role] = keras.saving.deserialize_keras_object(config[role])
        return cls(**config)


def _metric(metric):
    if metric == "accuracy":
        return keras.metrics.SparseCategoricalAccuracy(name="accuracy")
    if not isinstance(metric, keras.metrics.Metric):
        raise TfptmError(
            f"Distiller.compile: metric {metric!r} is not a keras.metrics.Metric; expected 'accuracy' or Metric "
            "objects, updated with the labels and the student's probabilities"
        )
    return metric


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
    outputs = predict_by_length(_view(teacher, hint_layer, "teacher"), x, batch_size=batch_size)
    result = {"teacher_logits": np.asarray(outputs["logits"], dtype="float32")}
    if hint_layer:
        result["teacher_features"] = np.asarray(outputs["features"], dtype="float32")
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


def _split_targets(y):
    """`(labels or None, {cached teacher outputs})` from what a batch holds beside `x`."""
    if isinstance(y, dict):
        unknown = sorted(set(y) - set(TARGET_KEYS))
        if unknown:
            raise TfptmError(f"Distiller: unknown keys {unknown} in the targets; expected some of {', '.join(TARGET_KEYS)}")
        return y.get("labels"), {k: v for k, v in y.items() if k != "labels"}
    return y, {}


def per_token(x, labels, teacher, y_pred, sample_weight=None):
    """Per-token outputs `(batch, steps, classes)` flattened so that each token is one example of the loss:
    `(labels, teacher, y_pred, sample_weight)` with rows `batch * steps`, weighted by `x["padding_mask"]` (padding
    adds nothing; with `sample_weight` per example, each token carries its example's). Labels `-1` (`MISSING_LABEL`,
    also `tfptm.data.tagging.IGNORE`: continuation pieces, `[CLS]`, `[SEP]`) add to the distillation term only.

    Example:
    >>> import numpy as np
    >>> logits = np.zeros((2, 3, 4), "float32")
    >>> x = {"padding_mask": np.array([[1, 1, 0], [1, 0, 0]])}
    >>> labels, _, y_pred, weights = per_token(x, np.array([[1, -1, -1], [2, -1, -1]]), None, {"logits": logits})
    >>> tuple(labels.shape), tuple(y_pred["logits"].shape), np.asarray(weights).tolist(), y_pred["per_token"]
    ((6,), (6, 4), [1.0, 1.0, 0.0, 1.0, 0.0, 0.0], True)
    """
    if not isinstance(x, dict) or "padding_mask" not in x:
        raise TfptmError("Distiller: per-token outputs need the inputs' padding_mask; expected KerasHub's text inputs")
    mask = keras.ops.cast(x["padding_mask"], "float32")
    if sample_weight is not None:
        mask = mask * keras.ops.reshape(keras.ops.cast(sample_weight, "float32"), (-1, 1))

    def flat(tensor):
        return keras.ops.reshape(tensor, (-1, keras.ops.shape(tensor)[-1]))

    y_pred = {**{k: flat(v) for k, v in y_pred.items() if k in ("logits", "probabilities")}, "per_token": True}
    if teacher is not None:
        teacher = {k: flat(v) if k == "logits" else v for k, v in teacher.items()}
    labels = None if labels is None else keras.ops.reshape(labels, (-1,))
    return labels, teacher, y_pred, keras.ops.reshape(mask, (-1,))


def _view(model, feature_layer, role):
    """A model sharing `model`'s weights that outputs `logits` (and a layer's `features`)."""
    outputs = {"logits": _logits(model, role)}
    if feature_layer:
        outputs["features"] = _layer_output(model, feature_layer, role)
    return keras.Model(model.input, outputs, name=f"{role}_view")


def _logits(model, role):
    names = [layer.name for layer in model.layers]
    if LOGITS_LAYER in names:
        logits = _layer_output(model, LOGITS_LAYER, role)
    else:
        if len(model.outputs) != 1:
            raise TfptmError(f"Distiller: the {role} {model.name!r} has {len(model.outputs)} outputs; expected one")
        activation = getattr(getattr(model.layers[-1], "activation", None), "__name__", "")
        if activation in ("softmax", "sigmoid"):
            raise TfptmError(
                f"Distiller: the {role} {model.name!r} ends in a {activation} and has no {LOGITS_LAYER!r} layer; "
                "expected a tfptm.build_model model or a model that outputs logits"
            )
        logits = model.outputs[0]
    if len(logits.shape) not in (2, 3) or logits.shape[-1] < 2:
        raise TfptmError(
            f"Distiller: the {role}'s logits have shape {logits.shape}; expected (batch, classes) with "
            "at least 2 classes (a multiclass model), or (batch, steps, tags) (a token classifier)"
        )
    return logits


def _layer_output(model, name, role):
    try:
        layer = model.get_layer(name)
    except ValueError:
        raise TfptmError(
            f"Distiller: the {role} {model.name!r} has no top-level layer {name!r}; "
            f"expected one of {', '.join(layer.name for layer in model.layers)}"
        ) from None
    # A nested model's `.output` is its own inner graph's tensor; the node of
    # its call inside `model` holds the tensor that `model`'s graph uses.
    nodes = layer._inbound_nodes
    if len(nodes) != 1:
        raise TfptmError(f"Distiller: layer {name!r} of the {role} is called {len(nodes)} times; expected once")
    outputs = nodes[0].output_tensors
    if len(outputs) != 1:
        raise TfptmError(f"Distiller: layer {name!r} of the {role} has {len(outputs)} outputs; expected one")
    return outputs[0]


def _num_replicas():
    return tf.distribute.get_strategy().num_replicas_in_sync


def _global_sum(value):
    """Sums `value` over the replicas of a distributed step (itself on one device)."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return value
    return context.all_reduce(tf.distribute.ReduceOp.SUM, keras.ops.stop_gradient(value))
