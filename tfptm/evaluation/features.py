"""Feature extraction: a backbone's pooled features as a NumPy array, for scikit-learn and friends.

Recipe (see tutorials/03_feature_extraction.py):

>>> import tfptm
>>> from sklearn.linear_model import LogisticRegression
>>> images, labels = tfptm.datasets.load_digits()
>>> backbone = tfptm.backbones.get("vgg_cnn", input_shape=(8, 8, 1), filters=(8, 16), input_scale=1 / 16)
>>> features = extract_features(backbone, images[:200], pooling="avg")
>>> features.shape
(200, 16)
>>> classifier = LogisticRegression(max_iter=500).fit(features[:150], labels[:150])
>>> 0.0 <= classifier.score(features[150:], labels[150:200]) <= 1.0
True
"""

import keras
import numpy as np

from tfptm.backbones.registry import BACKBONE_NAME
from tfptm.data.arrays import check_arrays
from tfptm.errors import TfptmError
from tfptm.heads import pool

POOLINGS = ("avg", "max", "first", "flatten", "none")


def extract_features(backbone_or_model, data, pooling="avg", batch_size=256):
    """Runs `data` through a backbone in batches and returns pooled features `(examples, dim)`.

    Args:
        backbone_or_model: a backbone (`tfptm.backbones.get`) or a model from
            `tfptm.build_model`, whose backbone is then used (the head is not).
            Any other `keras.Model` is used as it is.
        data: NumPy arrays (or a dict of them, for dict-input backbones) or a
            batched `tf.data.Dataset` (labels in it are ignored).
        pooling: how per-position features become one vector per example:
            `"avg"` or `"max"` over positions (`"avg"` skips padding where the
            backbone masks it), `"first"` (first token, e.g. [CLS]),
            `"flatten"`, or `"none"` to return them unpooled. Vector features
            are returned as they are.
        batch_size: examples per `predict` batch (NumPy input only; padded
            token arrays run shortest first, each batch cut to its longest text).

    Example:
    >>> import numpy as np, tfptm
    >>> backbone = tfptm.backbones.get("lstm_encoder", vocabulary_size=20, embedding_dim=4, units=3)
    >>> extract_features(backbone, np.array([[4, 5, 0], [6, 0, 0]]), pooling="avg").shape
    (2, 3)
    """
    if not isinstance(backbone_or_model, keras.Model):
        raise TfptmError(f"extract_features: expected a keras.Model; got {type(backbone_or_model).__name__}")
    if pooling not in POOLINGS:
        raise TfptmError(f"extract_features: unknown pooling {pooling!r}; expected one of {', '.join(POOLINGS)}")
    backbone = backbone_or_model
    if any(layer.name == BACKBONE_NAME for layer in backbone.layers):
        backbone = backbone.get_layer(BACKBONE_NAME)
    outputs = backbone.output
    if isinstance(outputs, (list, tuple, dict)):
        raise TfptmError("extract_features: the backbone has several outputs; pick one (e.g. presets output=...)")
    mask = backbone.input.get("padding_mask") if isinstance(backbone.input, dict) else None
    pooled = keras.Model(backbone.input, _pool(outputs, pooling, mask), name="features")
    if not _is_dataset(data):
        data = check_arrays(data, where="extract_features")[0]  # lists and NumPy arrays of strings included
    if _is_dataset(data):
        return np.asarray(pooled.predict(data, verbose=0))
    from tfptm.data.sequences import predict_by_length

    return np.asarray(predict_by_length(pooled, data, batch_size=batch_size))  # padded token arrays: length-aware


def _is_dataset(data):
    import tensorflow as tf

    return isinstance(data, tf.data.Dataset)


def _pool(features, pooling, padding_mask=None):
    if pooling == "none":
        return features
    return pool(features, pooling, prefix="extract_features", padding_mask=padding_mask)
