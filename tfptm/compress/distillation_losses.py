"""tfptm's distillation losses, as `keras.distillation.DistillationLoss` classes (floor 3).

* `HeadDistillation`: the teacher's head outputs, for every tfptm head kind,
  compared through the logits (the `head_logits` layer before the softmax or
  sigmoid), softened by a temperature:
  multiclass and token classifiers `T^2 * KL(softmax(t / T) || softmax(s / T))`;
  binary and multilabel `T^2 * KL` between the Bernoulli distributions
  `sigmoid(t / T)` and `sigmoid(s / T)`, averaged over the labels;
  regression the squared difference of the predictions, averaged over the
  outputs (no temperature).
* `EmbeddingDistillation`: an embedding student's vectors against the
  teacher's, by `"cosine"` (1 - cosine similarity) or `"mse"`.
* `Hint`: `keras.distillation.FeatureDistillation` between a teacher layer and
  a student layer through a learnt projection to the teacher's width (FitNets).

Each takes per-example weights (`sample_weight`, padding of token heads, 0
for padding) and returns its replica's share of the global-batch mean, so a
`tfptm.Distiller` gives the same loss on one device and under
`tf.distribute`. Plain Keras losses (`keras.distillation.LogitsDistillation`)
work in a `tfptm.Distiller` too, without weights.

Example:
>>> import numpy as np
>>> loss = HeadDistillation(temperature=2.0, kind="binary")
>>> float(loss.compute_loss(np.array([[1.0]]), np.array([[1.0]])))
0.0
"""

import keras
import tensorflow as tf
from keras import ops

from tfptm.errors import TfptmError

KINDS = ("multiclass", "binary", "multilabel", "regression")
EMBEDDING_LOSSES = ("cosine", "mse")


def head_kind(model):
    """The head kind of a tfptm model, read from its output layer's activation: `"multiclass"` (softmax; token
    classifiers too), `"binary"` (a sigmoid of one unit), `"multilabel"` (sigmoid), `"regression"` (linear), or
    `"embedding"` (a `tfptm.tasks.embeddings` embedder).

    Example:
    >>> import tfptm
    >>> backbone = tfptm.backbones.get("vgg_cnn", input_shape=(8, 8, 1), filters=(4,))
    >>> head_kind(tfptm.build_model(backbone, tfptm.Head("multilabel", num_classes=3)))
    'multilabel'
    """
    from tfptm.tasks.embeddings import is_embedder

    if is_embedder(model):
        return "embedding"
    activation = getattr(getattr(model.layers[-1], "activation", None), "__name__", "linear")
    if activation == "softmax":
        return "multiclass"
    if activation == "sigmoid":
        return "binary" if model.outputs[0].shape[-1] == 1 else "multilabel"
    return "regression"


def global_sum(value):
    """Sums `value` over the replicas of a distributed step (itself on one device)."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return value
    return context.all_reduce(tf.distribute.ReduceOp.SUM, ops.stop_gradient(value))


def num_replicas():
    return tf.distribute.get_strategy().num_replicas_in_sync


def weighted_mean(per_example, weights=None, count=None):
    """This replica's share of the global-batch weighted mean of `per_example` (divided by `count` if given, else by
    the global number of examples, or the global sum of weights for per-token rows)."""
    per_example = ops.cast(per_example, "float32")
    if weights is None:
        weights = ops.ones_like(per_example)
    if count is None:
        count = global_sum(ops.cast(ops.shape(per_example)[0], "float32"))
    return ops.sum(per_example * ops.cast(weights, "float32")) / ops.maximum(count, 1.0)


@keras.saving.register_keras_serializable(package="tfptm")
class HeadDistillation(keras.distillation.DistillationLoss):
    """The teacher's head outputs, softened by `temperature`, for a tfptm head of any kind (see the module).

    Args:
        temperature: divides both logits; the KL terms are multiplied by
            `temperature**2` so their gradients keep their scale. Unused for
            regression.
        kind: `"multiclass"`, `"binary"`, `"multilabel"` or `"regression"`;
            `None` reads it from the student when the `Distiller` is built.

    `compute_loss(teacher_logits, student_logits, sample_weight=None, count=None)`
    returns the mean over the examples (rows).

    Example, a multiclass term by hand:
    >>> import numpy as np
    >>> t, s = np.array([[2.0, 0.0]]), np.array([[0.0, 0.0]])
    >>> p = np.exp(t / 2) / np.exp(t / 2).sum()
    >>> by_hand = 4 * (p * np.log(p / 0.5)).sum()
    >>> bool(abs(float(HeadDistillation(2.0, "multiclass").compute_loss(t, s)) - by_hand) < 1e-5)
    True
    """

    def __init__(self, temperature=4.0, kind=None):
        if not isinstance(temperature, (int, float)) or not temperature > 0:
            raise TfptmError(f"HeadDistillation: temperature is {temperature!r}; expected a number > 0")
        if kind is not None and kind not in KINDS:
            raise TfptmError(f"HeadDistillation: kind is {kind!r}; expected one of {', '.join(KINDS)} or None")
        self.temperature, self.kind = float(temperature), kind

    def validate_model_compatibility(self, teacher, student):
        kinds = {role: head_kind(model) for role, model in (("teacher", teacher), ("student", student))}
        if kinds["teacher"] != kinds["student"] or kinds["student"] == "embedding":
            raise TfptmError(
                f"HeadDistillation: the teacher's head is {kinds['teacher']} and the student's {kinds['student']}; "
                "expected the same head kind (for embedders, EmbeddingDistillation)"
            )

    def validate_outputs(self, teacher_outputs, student_outputs):
        if teacher_outputs.shape[-1] != student_outputs.shape[-1]:
            raise TfptmError(
                f"HeadDistillation: the teacher has {teacher_outputs.shape[-1]} outputs and the student "
                f"{student_outputs.shape[-1]}; expected the same classes"
            )

    def compute_loss(self, teacher_outputs, student_outputs, sample_weight=None, count=None, **kwargs):
        t, s = ops.cast(teacher_outputs, "float32"), ops.cast(student_outputs, "float32")
        kind = self.kind or ("binary" if s.shape[-1] == 1 else "multiclass")
        if kind == "regression":
            per_example = ops.mean(ops.square(s - t), axis=-1)
        elif kind == "multiclass":
            t_log = ops.log_softmax(t / self.temperature, axis=-1)
            s_log = ops.log_softmax(s / self.temperature, axis=-1)
            per_example = self.temperature**2 * ops.sum(ops.exp(t_log) * (t_log - s_log), axis=-1)
        else:  # Bernoulli KL per label, from logits: log p = log_sigmoid(z), log (1 - p) = log_sigmoid(-z)
            t, s = t / self.temperature, s / self.temperature
            p = ops.sigmoid(t)
            kl = p * (ops.log_sigmoid(t) - ops.log_sigmoid(s)) + (1 - p) * (ops.log_sigmoid(-t) - ops.log_sigmoid(-s))
            per_example = self.temperature**2 * ops.mean(kl, axis=-1)
        return weighted_mean(per_example, sample_weight, count)

    def get_config(self):
        return {"temperature": self.temperature, "kind": self.kind}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@keras.saving.register_keras_serializable(package="tfptm")
class EmbeddingDistillation(keras.distillation.DistillationLoss):
    """An embedding student's vectors against the teacher's: `"cosine"` (1 - cosine similarity) or `"mse"` (mean
    squared difference per dimension). The two must have the same width (add a Dense layer to a narrower student).

    Example:
    >>> import numpy as np
    >>> float(EmbeddingDistillation("cosine").compute_loss(np.array([[1.0, 0.0]]), np.array([[0.0, 2.0]])))
    1.0
    """

    def __init__(self, loss="cosine"):
        if loss not in EMBEDDING_LOSSES:
            raise TfptmError(f"EmbeddingDistillation: loss is {loss!r}; expected one of {', '.join(EMBEDDING_LOSSES)}")
        self.loss = loss

    def validate_model_compatibility(self, teacher, student):
        for role, model in (("teacher", teacher), ("student", student)):
            if head_kind(model) != "embedding":
                raise TfptmError(
                    f"EmbeddingDistillation: the {role} {model.name!r} is not an embedder; "
                    "expected two tfptm.tasks.embeddings models"
                )
        widths = teacher.outputs[0].shape[-1], student.outputs[0].shape[-1]
        if widths[0] != widths[1]:
            raise TfptmError(
                f"EmbeddingDistillation: the teacher's vectors have {widths[0]} dimensions and the student's "
                f"{widths[1]}; expected the same width (add a Dense layer of {widths[0]} units to the student)"
            )

    def validate_outputs(self, teacher_outputs, student_outputs):
        pass

    def compute_loss(self, teacher_outputs, student_outputs, sample_weight=None, count=None, **kwargs):
        t, s = ops.cast(teacher_outputs, "float32"), ops.cast(student_outputs, "float32")
        if self.loss == "mse":
            per_example = ops.mean(ops.square(s - t), axis=-1)
        else:
            t = t / ops.maximum(ops.norm(t, axis=-1, keepdims=True), 1e-12)
            s = s / ops.maximum(ops.norm(s, axis=-1, keepdims=True), 1e-12)
            per_example = 1.0 - ops.sum(t * s, axis=-1)
        return weighted_mean(per_example, sample_weight, count)

    def get_config(self):
        return {"loss": self.loss}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@keras.saving.register_keras_serializable(package="tfptm")
class Hint(keras.distillation.FeatureDistillation):
    """An intermediate (hint) loss between a teacher layer and a student layer, through a learnt projection (FitNets).

    The `Distiller` passes the student's features through a Dense layer on
    their last axis (a 1x1 convolution for feature maps) to the teacher's
    width; the loss is the mean squared difference, times `weight` (the same
    as a `distillation_loss_weights` entry). Layers are named at the top level
    of each model: in a `tfptm.build_model` model `"backbone"` is the
    backbone's output. The two outputs must agree in every axis but the last.

    Example:
    >>> Hint("backbone", "backbone", weight=0.5).weight
    0.5
    """

    def __init__(self, teacher_layer_name="backbone", student_layer_name="backbone", weight=1.0):
        if not weight >= 0:
            raise TfptmError(f"Hint: weight is {weight}; expected >= 0")
        super().__init__("mse", teacher_layer_name, student_layer_name)
        self.weight = float(weight)

    # the old dataclass's field names, read by code written for tfptm.distill.Hint
    teacher_layer = property(lambda self: self.teacher_layer_name)
    student_layer = property(lambda self: self.student_layer_name)

    def validate_model_compatibility(self, teacher, student):
        pass  # the Distiller's views check the layers, with tfptm's messages

    def validate_outputs(self, teacher_outputs, student_outputs):
        pass

    def compute_loss(self, teacher_outputs, student_outputs, sample_weight=None, count=None, **kwargs):
        diff = ops.cast(student_outputs, "float32") - ops.cast(teacher_outputs, "float32")
        per_example = ops.mean(ops.reshape(ops.square(diff), (ops.shape(diff)[0], -1)), axis=-1)
        return self.weight * weighted_mean(per_example, sample_weight, count)

    def __eq__(self, other):
        return isinstance(other, Hint) and self.get_config() == other.get_config()

    def __hash__(self):
        return hash(tuple(self.get_config().values()))

    def get_config(self):
        return {"teacher_layer_name": self.teacher_layer_name, "student_layer_name": self.student_layer_name,
                "weight": self.weight}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


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
    mask = ops.cast(x["padding_mask"], "float32")
    if sample_weight is not None:
        mask = mask * ops.reshape(ops.cast(sample_weight, "float32"), (-1, 1))

    def flat(tensor):
        return ops.reshape(tensor, (-1, ops.shape(tensor)[-1]))

    y_pred = {**{k: flat(v) for k, v in y_pred.items() if k in ("logits", "outputs")}, "per_token": True}
    if teacher is not None:
        teacher = {k: flat(v) if k == "logits" else v for k, v in teacher.items()}
    labels = None if labels is None else ops.reshape(labels, (-1,))
    return labels, teacher, y_pred, ops.reshape(mask, (-1,))


def missing_labels(labels, kind):
    """`(labels with missing entries replaced by 0, 1.0 where known)`: -1 marks a missing class label, NaN a missing
    regression target.

    Example:
    >>> import numpy as np
    >>> [np.asarray(t).tolist() for t in missing_labels(np.array([2, -1]), "multiclass")]
    [[2, 0], [1.0, 0.0]]
    """
    if kind == "regression":
        labels = ops.cast(labels, "float32")
        known = ops.logical_not(ops.isnan(labels))
    else:
        known = labels >= 0 if kind != "multiclass" else ops.not_equal(ops.cast(labels, "int32"), -1)
    labels = ops.where(known, labels, ops.zeros_like(labels))
    return labels, ops.cast(known, "float32")


def student_loss(kind, labels, logits, weights):
    """The head's own loss of the student from its logits, over the labelled examples (entries, for multilabel and
    regression), weighted by `weights` per example: this replica's share of the global-batch mean."""
    if kind == "multiclass":
        labels = ops.reshape(ops.cast(labels, "int32"), (-1,))
        labels, known = missing_labels(labels, kind)
        per_example = keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
    else:
        labels = ops.reshape(ops.cast(labels, "float32"), (ops.shape(logits)[0], -1))
        labels, known = missing_labels(labels, kind)
        if kind == "regression":
            per_example = ops.square(logits - labels)
        else:
            per_example = ops.maximum(logits, 0) - logits * labels + ops.log1p(ops.exp(-ops.abs(logits)))
        weights = ops.reshape(weights, (-1, 1))
    known = known * weights
    return ops.sum(per_example * known) / ops.maximum(global_sum(ops.sum(known)), 1.0)

