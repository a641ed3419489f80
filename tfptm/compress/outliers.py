"""Outlier channels in int8: SmoothQuant scales for a matmul's inputs, a second range for its largest outputs.

Both are used by `tfptm.compress.qat` on the 2-D form of each projection
(`x @ kernel + bias`); both are exact in float and only change what int8
rounding loses. Their statistics come from the float model during
`QuantizationAware.calibrate`.
"""

import keras
import numpy as np
from keras import ops


class Smoothing:
    """SmoothQuant's per-input-channel scales `s` for one matmul: `(x / s) @ (s * W)`, the same product in float.

    A few input channels with large values (a Transformer's LayerNorm outputs
    have them) make one int8 range per tensor coarse for all the others;
    dividing each channel by `s_j = max|x_j|^alpha / max|W_j|^(1 - alpha)`
    evens the channels out and moves the difference into the kernel, which
    is quantized per output channel (Xiao et al. 2023). `observing`, it
    records `max|x_j|` of the float model; `fit` then sets the scales.

    Example:
    >>> import numpy as np
    >>> x, w = np.array([[1.0, 100.0], [-1.0, 50.0]], "float32"), np.ones((2, 3), "float32")
    >>> smoothing = Smoothing("demo", 2, alpha=0.5)
    >>> smoothing.observing = True; _ = smoothing(x, w); smoothing.observing = False
    >>> smoothing.fit(w)
    >>> xs, ws = (np.asarray(t) for t in smoothing(x, w))
    >>> bool(np.allclose(xs @ ws, x @ w)), np.abs(xs).max(0).round(1).tolist()
    (True, [1.0, 10.0])
    """

    def __init__(self, name, depth, alpha):
        self.alpha = alpha
        self.scales = keras.Variable(np.ones(depth, "float32"), trainable=False, name=f"{name}_smoothing")
        self.channel_max = keras.Variable(np.zeros(depth, "float32"), trainable=False, name=f"{name}_channel_max")
        self.observing = False

    def __call__(self, x, kernel):
        if self.observing:
            self.channel_max.assign(ops.maximum(self.channel_max, ops.max(ops.abs(ops.cast(x, "float32")), axis=0)))
        return x / ops.cast(self.scales, x.dtype), kernel * ops.expand_dims(ops.cast(self.scales, kernel.dtype), 1)

    def fit(self, kernel2d):
        weight_max = np.maximum(np.abs(np.asarray(kernel2d)).max(axis=1), 1e-5)
        channel_max = np.maximum(self.channel_max.numpy(), 1e-5)
        self.scales.assign(np.clip(channel_max**self.alpha / weight_max ** (1 - self.alpha), 1e-2, 1e2).astype("float32"))


class OutlierSplit:
    """One matmul computed as two: the `count` output channels with the largest values get their own int8 range.

    A Transformer's residual stream has a few channels far larger than the
    rest (up to ~200 in MiniLM, the others within +-5), and the feed-forward
    output projection writes them: with one range for all its outputs, every
    other channel loses most of its 8 bits. Split, each part is an int8
    FULLY_CONNECTED with its own range (the kernel's columns regrouped at
    export), the two are joined in float and put back in order. `observing`,
    it records each output channel's `max|y|`; `fit` picks the outliers.
    """

    def __init__(self, name, units, count, outliers):
        self.count = count
        index = lambda suffix, values: keras.Variable(values.astype("int32"), trainable=False,  # noqa: E731
                                                      name=f"{name}_{suffix}", dtype="int32")
        self.order = index("order", np.arange(units))  # inlier columns first, the `count` outliers last
        # where output channel j is in each part's output padded with one zero column (the zero where it is not)
        self.places = (index("inlier_places", self._places(np.arange(units))[0]),
                       index("outlier_places", self._places(np.arange(units))[1]))
        self.channel_max = keras.Variable(np.zeros(units, "float32"), trainable=False, name=f"{name}_output_max")
        self.outliers = outliers  # the outlier channels' quantizer: `outliers(y, update)`
        self.observing = False
        self.update = False

    def _places(self, order):
        units, inliers = len(order), len(order) - self.count
        places = np.full((2, units), [[inliers], [self.count]])
        places[0, order[:inliers]] = np.arange(inliers)
        places[1, order[inliers:]] = np.arange(self.count)
        return places

    def __call__(self, x, kernel, bias, quantize, quantize_outputs):
        if self.observing:
            y = ops.matmul(x, kernel) + (0 if bias is None else bias)
            self.channel_max.assign(ops.maximum(self.channel_max, ops.max(ops.abs(ops.cast(y, "float32")), axis=0)))
            return y
        # Each part back to full width and the two added: a concatenation would make TFLite give both one range
        y = 0
        for columns, places, quantize_part in ((self.order[: -self.count], self.places[0], quantize_outputs),
                                               (self.order[-self.count :], self.places[1],
                                                lambda t: self.outliers(t, self.update))):
            part = ops.matmul(x, quantize(ops.take(kernel, columns, axis=1)))
            part = quantize_part(part if bias is None else ops.add(part, ops.take(bias, columns)))
            y = y + ops.take(ops.pad(part, ((0, 0), (0, 1))), places, axis=-1)
        return y

    def fit(self):
        order = np.argsort(self.channel_max.numpy(), kind="stable")  # the largest last
        self.order.assign(order.astype("int32"))
        for variable, places in zip(self.places, self._places(order)):
            variable.assign(places.astype("int32"))
