"""`tfptm.Distiller`: Keras's `keras.distillation.Distiller` with what tfptm models need (floor 3).

Same arguments and order as Keras (`teacher`, `student`, `distillation_losses`,
`distillation_loss_weights`, `student_loss_weight`); the loss, per global batch:

    student_loss_weight * student_loss + (1 - student_loss_weight) * sum_i(weight_i * distillation_loss_i)

What it adds to Keras's:

* logits read from tfptm's probability heads (`head_logits`), and a default
  distillation loss for the student's head kind (`HeadDistillation`:
  multiclass, binary, multilabel, regression and token classifiers;
  `EmbeddingDistillation` for embedders);
* the student loss is the head's own, from logits, over labelled examples:
  label -1 (`MISSING_LABEL`; NaN for regression) marks an unlabelled example,
  which adds to the distillation terms only, and `fit(x)` alone is unlabelled;
* cached teacher outputs: `(x, {"labels": ..., "teacher_logits": ...})` from
  `cache_teacher_outputs` never runs the teacher (valid only when the inputs
  are the same every epoch);
* `Hint` losses through a learnt projection;
* losses averaged over the global batch, so one device and `tf.distribute`
  agree; sample weights and token padding weigh every term.

`tfptm.Distiller(student, teacher, alpha=..., temperature=..., hint=...)`, the
old signature, still works for one release with a `DeprecationWarning`: a call
with `alpha`, `temperature` or `hint` is read in the old order.
"""

import warnings

import keras
from keras import ops

from tfptm.compress.distillation_losses import (EmbeddingDistillation, HeadDistillation, Hint, global_sum, head_kind,
                                                missing_labels, num_replicas, per_token, student_loss)
from tfptm.compress.views import model_view
from tfptm.errors import TfptmError

MISSING_LABEL = -1
TARGET_KEYS = ("labels", "teacher_logits", "teacher_probabilities", "teacher_features")
DEFAULT_STUDENT_LOSS_WEIGHT = 0.1
DEFAULT_TEMPERATURE = 4.0


@keras.saving.register_keras_serializable(package="tfptm")
class Distiller(keras.distillation.Distiller):
    """Trains `student` to match a frozen `teacher` (and the labels), with `model.fit`.

    Args:
        teacher: the trained model to copy; made `trainable=False` and always
            run in inference mode (dropout off, BatchNorm statistics fixed).
        student: the model to train, with the teacher's head kind and classes.
        distillation_losses: a `keras.distillation.DistillationLoss` or a list
            (`HeadDistillation`, `EmbeddingDistillation`, `Hint`, or Keras's
            `LogitsDistillation` / `FeatureDistillation`, which run unweighted).
            Default: `HeadDistillation(temperature=4.0)`, or
            `EmbeddingDistillation("cosine")` for an embedding student.
        distillation_loss_weights: one weight per distillation loss (default 1).
        student_loss_weight: weight of the student's own loss on the labels,
            in [0, 1]; default 0.1 (Keras's is 0.5), as tuned in
            `bench/distill.py`. 1 is plain training of the student.

    Build it inside `strategy.scope()` to train distributed. `fit`, `evaluate`
    and callbacks report `loss`, `student_loss`, `distillation_loss` (one
    `<name>_loss` per term when there are several, e.g. `hint_loss`) and the
    student's metrics. `predict` returns the student's outputs; export
    `distiller.student`, which still outputs probabilities.

    Example:
    >>> import numpy as np, tfptm
    >>> def model(width):
    ...     backbone = tfptm.backbones.get("vgg_cnn", input_shape=(8, 8, 1), filters=(width,))
    ...     return tfptm.build_model(backbone, tfptm.Head("multiclass", num_classes=3))
    >>> distiller = Distiller(teacher=model(16), student=model(4), student_loss_weight=0.1,
    ...                       distillation_losses=HeadDistillation(temperature=4.0))
    >>> distiller.compile(keras.optimizers.Adam(1e-3))
    >>> x, y = np.random.rand(16, 8, 8, 1).astype("float32"), np.arange(16) % 3
    >>> history = distiller.fit(x, y, batch_size=8, epochs=1, verbose=0)
    >>> sorted(history.history)
    ['accuracy', 'distillation_loss', 'loss', 'student_loss']
    >>> distiller.student.predict(x, verbose=0).shape
    (16, 3)
    """

    def __init__(self, teacher, student, distillation_losses=None, distillation_loss_weights=None,
                 student_loss_weight=DEFAULT_STUDENT_LOSS_WEIGHT, name="distiller", *, alpha=None, temperature=None,
                 hint=None, **kwargs):  # fmt: skip
        if (alpha, temperature, hint) != (None, None, None):
            teacher, student = student, teacher  # the old order: Distiller(student, teacher, alpha, temperature, hint)
            warnings.warn(
                "Distiller(student, teacher, alpha=, temperature=, hint=) is deprecated and goes in the next release; "
                "use Distiller(teacher, student, distillation_losses=[HeadDistillation(temperature), hint], "
                "student_loss_weight=alpha), the argument order of keras.distillation.Distiller",
                DeprecationWarning, stacklevel=2,
            )
            if distillation_losses is not None:
                raise TfptmError("Distiller: pass either distillation_losses or the old alpha/temperature/hint")
            if isinstance(hint, dict):
                hint = Hint(hint.get("teacher_layer", "backbone"), hint.get("student_layer", "backbone"),
                            hint.get("weight", 1.0))
            temperature = DEFAULT_TEMPERATURE if temperature is None else temperature
            if not isinstance(temperature, (int, float)) or not temperature > 0:
                raise TfptmError(f"Distiller: temperature is {temperature}; expected > 0")
            distillation_losses = [HeadDistillation(temperature)] + ([hint] if hint is not None else [])
            student_loss_weight = DEFAULT_STUDENT_LOSS_WEIGHT if alpha is None else alpha
        for role, model in (("teacher", teacher), ("student", student)):
            if not isinstance(model, keras.Model):
                raise TfptmError(f"Distiller: the {role} must be a keras.Model; got {type(model).__name__}")
        if student is teacher:
            raise TfptmError("Distiller: student and teacher are the same model; expected two models")
        if not isinstance(student_loss_weight, (int, float)) or not 0.0 <= student_loss_weight <= 1.0:
            raise TfptmError(f"Distiller: student_loss_weight (alpha) is {student_loss_weight}; expected 0 <= it <= 1")
        self.kind = head_kind(student)
        if distillation_losses is None:
            distillation_losses = EmbeddingDistillation() if self.kind == "embedding" else HeadDistillation()
        losses = list(distillation_losses) if isinstance(distillation_losses, (list, tuple)) else [distillation_losses]
        losses = [_mended(loss) for loss in losses]
        for loss in losses:
            if not isinstance(loss, keras.distillation.DistillationLoss):
                raise TfptmError(
                    f"Distiller: {loss!r} is not a keras.distillation.DistillationLoss; expected HeadDistillation, "
                    "EmbeddingDistillation, Hint or a Keras distillation loss"
                )
        super().__init__(teacher, student, losses, distillation_loss_weights, float(student_loss_weight), name, **kwargs)

    # Keras's checks compare the models' input and output shapes; tfptm students may read other inputs (their own
    # tokenizer, with cached teacher outputs) and the losses check what they compare, with tfptm's messages.
    def _validate_models(self, teacher, student):
        pass

    def _create_multi_feature_extractors(self):
        """Builds the views (outputs, logits, named layers) of both models and the hints' projections."""
        def names(attribute):
            return list(dict.fromkeys(getattr(loss, attribute) for loss in self.distillation_losses
                                      if getattr(loss, attribute, None)))  # fmt: skip

        self.teacher_view = model_view(self.teacher, names("teacher_layer_name"), "teacher")
        self.student_view = model_view(self.student, names("student_layer_name"), "student")
        t_logits, s_logits = self.teacher_view.output["logits"], self.student_view.output["logits"]
        if self.kind != "embedding" and t_logits.shape[-1] != s_logits.shape[-1]:
            raise TfptmError(
                f"Distiller: the student has {s_logits.shape[-1]} classes and the teacher {t_logits.shape[-1]}; "
                "expected the same classes"
            )
        self.projections = []
        for loss in self.distillation_losses:
            projection = None
            if isinstance(loss, Hint):
                s_feat = self.student_view.output[f"layer:{loss.student_layer_name}"]
                t_feat = self.teacher_view.output[f"layer:{loss.teacher_layer_name}"]
                if tuple(s_feat.shape[1:-1]) != tuple(t_feat.shape[1:-1]):
                    raise TfptmError(
                        f"Distiller: hint features differ in shape: student {loss.student_layer_name!r} "
                        f"{s_feat.shape}, teacher {loss.teacher_layer_name!r} {t_feat.shape}; expected equal shapes "
                        "but for the last axis"
                    )
                projection = keras.layers.Dense(t_feat.shape[-1], name=f"hint_projection_{len(self.projections)}",
                                                dtype="float32")  # fmt: skip
                projection.build(s_feat.shape)
            self.projections.append(projection)
        self._teacher_feature_extractor = self._student_feature_extractor = None
        self.term_trackers = []
        if len(self.distillation_losses) > 1:
            self.term_trackers = [keras.metrics.Mean(name=_term_name(loss)) for loss in self.distillation_losses]
        self.student_metrics = []

    @property
    def projection(self):
        """The first hint's projection (None without a hint)."""
        return next((p for p in self.projections if p is not None), None)

    def compile(self, optimizer="adam", loss=None, metrics=None, **kwargs):
        """Compiles with an optimizer and the student's metrics (default: the head's accuracy or MAE).

        `loss` is the student loss: None (default) is the head's own from its
        logits (cross-entropy, or squared error for regression); a Keras loss
        is applied to the student's outputs. Unlabelled examples (-1, NaN)
        are skipped by both.
        """
        self._student_loss = None if loss is None else _per_example(loss)
        with self.distribute_strategy.scope():
            self.student_metrics = [_metric(m, self.kind) for m in (_default_metrics(self.kind) if metrics is None
                                                                     else metrics)]  # fmt: skip
        keras.Model.compile(self, optimizer=optimizer, **kwargs)

    @property
    def metrics(self):
        own = [self._loss_tracker] if self.compiled and self._loss_tracker is not None else []
        return own + [self.student_loss_tracker, self.distillation_loss_tracker] + self.term_trackers + list(
            self.student_metrics)

    def call(self, inputs, training=False):
        outputs = self.student_view(inputs, training=training)
        return {k: ops.cast(v, "float32") for k, v in outputs.items()}

    def predict_step(self, data):
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        return self(x, training=False)["outputs"]

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if y_pred is None:
            y_pred = self(x, training=training)
        labels, teacher = self._teacher_targets(x, y)
        weights, count = sample_weight, None
        if sample_weight is not None:
            weights = ops.reshape(ops.cast(sample_weight, "float32"), (-1,))
        example_weights = weights
        if len(y_pred["logits"].shape) == 3:  # per-token heads: each real token is an example
            labels, teacher, y_pred, weights = per_token(x, labels, teacher, y_pred, sample_weight)
            count = global_sum(ops.sum(weights))
        parts = {"student_loss": ops.zeros(())}
        if labels is not None and self.kind != "embedding":
            parts["student_loss"] = self._student_term(labels, y_pred, weights)
        terms = [self._term(loss, projection, teacher, y_pred, weights, example_weights, count)
                 for loss, projection in zip(self.distillation_losses, self.projections)]
        parts["distillation_loss"] = sum(w * t for w, t in zip(self.distillation_loss_weights, terms))
        total = self.student_loss_weight * parts["student_loss"] + (1.0 - self.student_loss_weight) * parts[
            "distillation_loss"]
        if self.student.losses:  # regularization, scaled per replica as Keras does
            total = total + ops.sum(self.student.losses) / num_replicas()
        batch = ops.shape(y_pred["logits"])[0]
        replicas = num_replicas()
        self.student_loss_tracker.update_state(parts["student_loss"] * replicas, sample_weight=batch)
        self.distillation_loss_tracker.update_state(parts["distillation_loss"] * replicas, sample_weight=batch)
        for tracker, term in zip(self.term_trackers, terms):
            tracker.update_state(term * replicas, sample_weight=batch)
        return total

    def _student_term(self, labels, y_pred, weights):
        if weights is None:
            weights = ops.ones_like(y_pred["logits"][:, 0])
        if self._student_loss is None:
            kind = "multiclass" if y_pred.get("per_token") else self.kind
            return student_loss(kind, labels, y_pred["logits"], weights)
        kind = "multiclass" if self.kind == "multiclass" or y_pred.get("per_token") else self.kind
        labels, known = missing_labels(labels, kind)
        if len(known.shape) > 1:  # every entry of an example must be known
            known = ops.min(known, axis=-1)
        known = known * weights
        per_example = self._student_loss(labels, y_pred["outputs"])
        return ops.sum(per_example * known) / ops.maximum(global_sum(ops.sum(known)), 1.0)

    def _term(self, loss, projection, teacher, y_pred, weights, example_weights, count):
        """One distillation term: this replica's share of its global-batch mean."""
        if isinstance(loss, Hint):
            student = projection(y_pred[f"layer:{loss.student_layer_name}"])
            return loss.compute_loss(teacher[f"layer:{loss.teacher_layer_name}"], student,
                                     sample_weight=example_weights)  # fmt: skip
        if isinstance(loss, (HeadDistillation, EmbeddingDistillation)):
            if isinstance(loss, HeadDistillation) and loss.kind is None:
                loss = HeadDistillation(loss.temperature, "multiclass" if y_pred.get("per_token") else self.kind)
            return loss.compute_loss(teacher["logits"], y_pred["logits"], sample_weight=weights, count=count)
        # a Keras loss: a mean over this replica's examples, unweighted
        named = getattr(loss, "teacher_layer_name", None)
        if named:
            pair = teacher[f"layer:{named}"], y_pred[f"layer:{loss.student_layer_name}"]
        else:
            pair = teacher["logits"], y_pred["logits"]
        return loss.compute_loss(*pair) / num_replicas()

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        labels, _ = split_targets(y)
        if labels is None or self.kind == "embedding":
            return self.get_metrics_result()
        if len(y_pred["logits"].shape) == 3:  # per-token heads: tokens are the examples
            labels, _, y_pred, sample_weight = per_token(x, labels, None, y_pred, sample_weight)
        kind = "multiclass" if y_pred.get("per_token") else self.kind
        if kind != "multiclass":
            labels = ops.reshape(ops.cast(labels, "float32"), ops.shape(y_pred["outputs"]))
        else:
            labels = ops.reshape(ops.cast(labels, "int32"), (-1,))
        labels, known = missing_labels(labels, kind)
        if sample_weight is not None:
            weight = ops.cast(sample_weight, "float32")
            known = known * (ops.reshape(weight, (-1, 1)) if len(known.shape) == 2 else ops.reshape(weight, (-1,)))
        if kind == "regression":  # errors are averaged per example: it counts when all its targets are known
            known = ops.min(known, axis=-1)
        for metric in self.student_metrics:
            metric.update_state(labels, y_pred["outputs"], sample_weight=known)
        return self.get_metrics_result()

    def _teacher_targets(self, x, y):
        """The labels, and the teacher's outputs: cached in `y`, else from running the teacher on `x`."""
        labels, cached = split_targets(y)
        if "teacher_probabilities" in cached:
            p = ops.clip(ops.cast(cached.pop("teacher_probabilities"), "float32"), 1e-30, 1.0)
            # multiclass: log p (logits up to a shift); sigmoid heads: log(p / (1 - p)); regression: the predictions
            logits = {"multiclass": ops.log(p), "regression": p}.get(self.kind, ops.log(p) - ops.log1p(-p))
            cached["teacher_logits"] = logits
        if "teacher_logits" not in cached:
            teacher = dict(self.teacher_view(x, training=False))
        else:
            teacher = {"logits": cached["teacher_logits"]}
            layers = [loss.teacher_layer_name for loss in self.distillation_losses
                      if getattr(loss, "teacher_layer_name", None)]  # fmt: skip
            if layers and "teacher_features" not in cached:
                raise TfptmError(
                    "Distiller: the data holds cached teacher_logits but no teacher_features for the hint; "
                    "cache them with cache_teacher_outputs(..., hint_layer=...)"
                )
            if len(set(layers)) > 1:
                raise TfptmError(f"Distiller: cached teacher outputs hold one layer's features; the losses read "
                                 f"{sorted(set(layers))}; expected one hint layer, or the teacher run on every batch")
            if layers:
                teacher[f"layer:{layers[0]}"] = cached["teacher_features"]
        teacher = {k: ops.stop_gradient(ops.cast(v, "float32")) for k, v in teacher.items() if v is not None}
        return labels, teacher

    def get_config(self):
        config = super().get_config()
        config["distillation_losses"] = [keras.saving.serialize_keras_object(loss) for loss in self.distillation_losses]
        return config


def _mended(loss):
    """Keras 3.15's `LogitsDistillation(loss="kl_divergence")` (its default) resolves the name to the function
    `keras.losses.kl_divergence`, which its KL branch (`isinstance(loss, keras.losses.KLDivergence)`) does not
    recognise: it then compares the scaled logits as if they were probabilities. The same loss with a
    `KLDivergence()` instance is what the name means."""
    if isinstance(loss, keras.distillation.LogitsDistillation) and loss.loss is keras.losses.kl_divergence:
        warnings.warn("LogitsDistillation(loss='kl_divergence') compares logits as probabilities in Keras 3.15; "
                      "tfptm.Distiller uses loss=keras.losses.KLDivergence(), as meant", stacklevel=3)
        return keras.distillation.LogitsDistillation(loss.temperature, loss=keras.losses.KLDivergence())
    return loss


def _term_name(loss):
    if isinstance(loss, Hint):
        return "hint_loss"
    name = type(loss).__name__
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_") + "_loss"


def _default_metrics(kind):
    return [] if kind == "embedding" else ["mae" if kind == "regression" else "accuracy"]


def _metric(metric, kind):
    if metric == "accuracy":
        if kind in ("binary", "multilabel"):
            return keras.metrics.BinaryAccuracy(name="accuracy")
        return keras.metrics.SparseCategoricalAccuracy(name="accuracy")
    if metric == "mae":
        return keras.metrics.MeanAbsoluteError(name="mae")
    if not isinstance(metric, keras.metrics.Metric):
        raise TfptmError(
            f"Distiller.compile: metric {metric!r} is not a keras.metrics.Metric; expected 'accuracy', 'mae' or "
            "Metric objects, updated with the labels and the student's outputs"
        )
    return metric


def _per_example(loss):
    """A Keras loss that returns one value per example."""
    loss = keras.losses.get(loss)
    if isinstance(loss, keras.losses.Loss):
        config = {**loss.get_config(), "reduction": None}
        loss = type(loss).from_config(config)
    return loss


def split_targets(y):
    """`(labels or None, {cached teacher outputs})` from what a batch holds beside `x`."""
    if isinstance(y, dict):
        unknown = sorted(set(y) - set(TARGET_KEYS))
        if unknown:
            raise TfptmError(f"Distiller: unknown keys {unknown} in the targets; expected some of {', '.join(TARGET_KEYS)}")
        return y.get("labels"), {k: v for k, v in y.items() if k != "labels"}
    return y, {}
