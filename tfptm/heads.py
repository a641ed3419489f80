"""Task heads: pooling, optional hidden layer, and an output whose activation, loss
and metrics follow from the task (floor 2).

Every head outputs what a server should return, not logits: probabilities for
`multiclass`, `binary` and `multilabel`, values for `regression`. The losses
are set up for that (`from_logits=False`), and exported models return the
same tensor. The output layer computes in float32 even under mixed precision.
"""

import dataclasses

import keras

from tfptm.errors import TfptmError

TASKS = ("multiclass", "binary", "multilabel", "regression")
POOLINGS = ("avg", "max", "flatten", "first")


@dataclasses.dataclass(frozen=True)
class Head:
    """A task head, applied to backbone features with `head(features)`.

    Args:
        task: one of `"multiclass"`, `"binary"`, `"multilabel"`, `"regression"`.
        num_classes: classes (multiclass, multilabel) or output values (regression,
            default 1); binary always has one output.
        pooling: how feature maps or sequences become one vector: `"avg"`,
            `"max"`, `"flatten"` or `"first"` (the first token, e.g. BERT's [CLS]).
            Vector features are used as they are.
        dropout: dropout rate before the output layer (and the hidden layer).
        hidden_units: width of an optional hidden ReLU layer.
        label_smoothing: for classification losses, the share of each target
            spread evenly over the classes (0 for none).

    Example:
    >>> import keras
    >>> head = Head("multiclass", num_classes=3, dropout=0.1)
    >>> head(keras.Input((4, 4, 8))).shape
    (None, 3)
    """

    task: str = "multiclass"
    num_classes: int | None = None
    pooling: str = "avg"
    dropout: float = 0.0
    hidden_units: int | None = None
    label_smoothing: float = 0.0

    def __post_init__(self):
        if self.task not in TASKS:
            raise TfptmError(f"Head: unknown task {self.task!r}; expected one of {', '.join(TASKS)}")
        if self.pooling not in POOLINGS:
            raise TfptmError(f"Head: unknown pooling {self.pooling!r}; expected one of {', '.join(POOLINGS)}")
        if self.task in ("multiclass", "multilabel") and (self.num_classes is None or self.num_classes < 2):
            raise TfptmError(f"Head: task {self.task!r} needs num_classes >= 2; got {self.num_classes}")
        if not 0.0 <= self.dropout < 1.0:
            raise TfptmError(f"Head: dropout is {self.dropout}; expected 0 <= dropout < 1")
        if not 0.0 <= self.label_smoothing < 1.0 or (self.label_smoothing and self.task == "regression"):
            raise TfptmError(
                f"Head: label_smoothing is {self.label_smoothing} for task {self.task!r}; "
                "expected 0 <= label_smoothing < 1, and 0 for regression"
            )

    @property
    def units(self):
        if self.task == "binary":
            return 1
        return self.num_classes or 1

    @property
    def activation(self):
        return {"multiclass": "softmax", "binary": "sigmoid", "multilabel": "sigmoid", "regression": "linear"}[self.task]

    @property
    def output_name(self):
        return "predictions" if self.task == "regression" else "probabilities"

    def __call__(self, features, padding_mask=None):
        """Applies the head; `padding_mask` (batch, steps), if given, keeps padding out of `"avg"` pooling."""
        x = pool(features, self.pooling, padding_mask=padding_mask)
        if self.hidden_units:
            if self.dropout:
                x = keras.layers.Dropout(self.dropout, name="head_hidden_dropout")(x)
            x = keras.layers.Dense(self.hidden_units, activation="relu", name="head_hidden")(x)
        if self.dropout:
            x = keras.layers.Dropout(self.dropout, name="head_dropout")(x)
        x = keras.layers.Dense(self.units, name="head_logits", dtype="float32")(x)
        return keras.layers.Activation(self.activation, name=self.output_name, dtype="float32")(x)

    def loss(self):
        """The loss that matches this head's output activation (with its label smoothing).

        Example:
        >>> import numpy as np
        >>> labels, probabilities = np.array([0]), np.array([[0.8, 0.1, 0.1]])
        >>> [round(float(Head("multiclass", num_classes=3, label_smoothing=s).loss()(labels, probabilities)), 4) for s in (0, 0.3)]
        [0.2231, 0.639]
        """
        if self.task == "multiclass" and self.label_smoothing:
            return SparseCategoricalCrossentropy(label_smoothing=self.label_smoothing)
        if self.task == "multiclass":
            return keras.losses.SparseCategoricalCrossentropy()
        if self.task in ("binary", "multilabel"):
            return keras.losses.BinaryCrossentropy(label_smoothing=self.label_smoothing)
        return keras.losses.MeanSquaredError()

    def metrics(self):
        """The metrics `model.fit` reports for this task."""
        if self.task == "multiclass":
            return [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
        if self.task == "binary":
            return [keras.metrics.BinaryAccuracy(name="accuracy"), keras.metrics.AUC(name="auc")]
        if self.task == "multilabel":
            return [keras.metrics.BinaryAccuracy(name="accuracy"), keras.metrics.AUC(name="auc", multi_label=True)]
        return [keras.metrics.MeanAbsoluteError(name="mae")]


@keras.saving.register_keras_serializable(package="tfptm")
class SparseCategoricalCrossentropy(keras.losses.Loss):
    """Cross-entropy of probabilities against integer labels, with label smoothing
    (which Keras's `SparseCategoricalCrossentropy` lacks): the labels become
    one-hot rows smoothed as `keras.losses.CategoricalCrossentropy` does.

    Example:
    >>> import numpy as np
    >>> loss = SparseCategoricalCrossentropy(label_smoothing=0.0)
    >>> round(float(loss(np.array([1]), np.array([[0.5, 0.5]]))), 4)
    0.6931
    """

    def __init__(self, label_smoothing=0.0, name="sparse_categorical_crossentropy", reduction="sum_over_batch_size", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.label_smoothing = label_smoothing

    def call(self, y_true, y_pred):
        y_pred = keras.ops.convert_to_tensor(y_pred)
        labels = keras.ops.reshape(keras.ops.cast(y_true, "int32"), keras.ops.shape(y_pred)[:-1])
        one_hot = keras.ops.one_hot(labels, keras.ops.shape(y_pred)[-1], dtype=y_pred.dtype)
        return keras.losses.categorical_crossentropy(one_hot, y_pred, label_smoothing=self.label_smoothing)

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


def pool(features, pooling, prefix="head", padding_mask=None):
    """Pools rank-3 or rank-4 features into one vector per example; rank-2 passes through.

    `prefix` names the created layers and opens error messages, so the head
    and feature extraction share this one implementation. With a
    `padding_mask` (batch, steps; nonzero on real tokens), `"avg"` pooling of
    sequences averages the real tokens only, so a text's features do not
    depend on how far its batch was padded.
    """
    rank = len(features.shape)
    if rank == 2:
        return features
    if pooling == "flatten":
        return keras.layers.Flatten(name=f"{prefix}_flatten")(features)
    if rank == 3 and pooling == "first":
        return features[:, 0, :]
    if pooling == "first":
        raise TfptmError(f"{prefix}: pooling 'first' needs sequence features (batch, steps, dim); got shape {features.shape}")
    layers = {
        (3, "avg"): keras.layers.GlobalAveragePooling1D,
        (3, "max"): keras.layers.GlobalMaxPooling1D,
        (4, "avg"): keras.layers.GlobalAveragePooling2D,
        (4, "max"): keras.layers.GlobalMaxPooling2D,
    }
    if (rank, pooling) not in layers:
        raise TfptmError(f"{prefix}: cannot pool features of shape {features.shape}; expected rank 2, 3 or 4")
    layer = layers[(rank, pooling)](name=f"{prefix}_{pooling}_pool")
    if rank == 3 and pooling == "avg" and padding_mask is not None:
        return layer(features, mask=padding_mask)
    return layer(features)
