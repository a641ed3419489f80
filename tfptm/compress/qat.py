"""Quantization-aware training (QAT) for Keras 3 models, converted by TFLite into int8 kernels.

`quantization_aware(model)` makes every `Dense`, `EinsumDense` and convolution
in `model` (KerasHub Transformer layers and the attention projections inside
`MultiHeadAttention` included) compute as its int8 TFLite kernel will:

- the layer's input and its pre-activation output are fake-quantized to 8
  bits (asymmetric, per tensor) with ranges learned during training as
  exponential moving averages of each batch's min and max, as TFMOT's
  `MovingAverageQuantizer` does;
- the kernel is fake-quantized per output channel, symmetric, narrow range
  (the int8 weights TFLite gives these layers), from its current values;
- embedding tables are fake-quantized per tensor (weights only: a lookup
  has no arithmetic), so TFLite stores and gathers them in int8;
- gradients pass straight through the rounding (`keras.quantizers.fake_quant_with_min_max_vars`,
  which lowers to `tf.quantization.fake_quant_with_min_max_vars`, the op the TFLite converter folds).

Two measures keep a Transformer's int8 predictions those of its float model
(MiniLM: 92% top-1 agreement without them, 99.6% with; `bench/qat_minilm.py`):
SmoothQuant scales on every projection's input channels (`Smoothing`, set by
`calibrate`), and the feed-forward output projection, which writes the
residual stream's outlier channels, kept float (`KEEP_FLOAT`) or split so that
its largest channels get their own range (`split_outputs`, `OutlierSplit`).

`tfptm.export.tflite(model, path, "int8")` on such a model converts with the
learned ranges and no representative data: fully connected, attention
projection and convolution kernels run in int8 (activations included),
while LayerNorm, softmax, GELU, the attention score products and residual
adds stay float. That split is measured, not assumed: on this project's CPU
the int8 kernels for LayerNorm, softmax and batch matmul are 4-14x slower
than float ones (`bench/int8_ops.py`), while int8 fully connected layers are
3x faster.

The change lives on the layer instances (their `call`), not in the saved
model: a `.keras` file saved from a QAT model holds its float weights, and
`QuantizationAware.ranges()` gives the learned ranges. Export int8 in the
same process, or call `quantization_aware` again and `calibrate`.

Example:
>>> import numpy as np, tfptm
>>> backbone = tfptm.backbones.get("vgg_cnn", input_shape=(8, 8, 1), filters=(8,))
>>> model = tfptm.build_model(backbone, tfptm.Head("multiclass", num_classes=2))
>>> qat = quantization_aware(model)
>>> len(qat.layers), is_quantization_aware(model)
(3, True)
>>> _ = qat.calibrate(np.random.default_rng(0).random((8, 8, 8, 1), dtype="float32"))
>>> sorted(qat.ranges()[qat.layers[0].path])
['inputs', 'outputs']
>>> qat.remove(); is_quantization_aware(model)
False
"""

import contextlib
import types
import weakref

import keras
import numpy as np
from keras import ops
from keras.quantizers import fake_quant_with_min_max_vars
from keras.src.layers.convolutional.base_conv import BaseConv

from tfptm.compress.outliers import OutlierSplit, Smoothing
from tfptm.errors import TfptmError

QUANTIZED_LAYERS = (keras.layers.Dense, keras.layers.EinsumDense, BaseConv)
MOMENTUM = 0.99
# Measured on MiniLM (bench/qat_minilm.py). SmoothQuant's alpha for every matmul's input channels.
SMOOTHING = 0.8
# A Transformer's feed-forward output projection reads the wide GELU output and writes the residual stream,
# whose few outlier channels (up to ~200 in MiniLM, the rest within +-5) make one int8 range per tensor far
# too coarse: by default it stays float (accuracy first). `split_outputs` quantizes it instead, its
# OUTLIER_CHANNELS largest output channels with their own range: faster, a little less exact.
KEEP_FLOAT = ("feedforward_output_dense",)
OUTLIER_CHANNELS = 8
_ACTIVE = weakref.WeakKeyDictionary()  # model -> its QuantizationAware


class _Range:
    """The moving min/max of one tensor, as non-trainable variables in the model's strategy scope."""

    def __init__(self, name, momentum):
        self.momentum = momentum
        self.min = keras.Variable(0.0, trainable=False, name=f"{name}_min", aggregation="mean")
        self.max = keras.Variable(0.0, trainable=False, name=f"{name}_max", aggregation="mean")
        self.seen = keras.Variable(0.0, trainable=False, name=f"{name}_seen", aggregation="mean")

    def __call__(self, x, update):
        if update:
            x32 = ops.cast(ops.stop_gradient(x), "float32")
            low, high = ops.minimum(ops.min(x32), 0.0), ops.maximum(ops.max(x32), 0.0)  # zero must be exact
            first = ops.equal(self.seen, 0.0)
            self.min.assign(ops.where(first, low, self.momentum * self.min + (1 - self.momentum) * low))
            self.max.assign(ops.where(first, high, self.momentum * self.max + (1 - self.momentum) * high))
            self.seen.assign(1.0)
        return fake_quant_with_min_max_vars(x, self.min, ops.maximum(self.max, self.min + 1e-6))

    def value(self):
        return [float(self.min.numpy()), float(self.max.numpy())] if float(self.seen.numpy()) else None


def _quantized_kernel(kernel):
    """`kernel` fake-quantized as TFLite stores int8 weights: per tensor, symmetric, narrow range (embedding tables)."""
    bound = ops.stop_gradient(ops.maximum(ops.max(ops.abs(kernel)), 1e-8))
    return fake_quant_with_min_max_vars(kernel, -bound, bound, narrow_range=True)


def _quantized_probabilities(probabilities):
    """Attention probabilities on TFLite's int8 softmax output grid: steps of 1/256 from 0."""
    return fake_quant_with_min_max_vars(probabilities, 0.0, 255.0 / 256.0)


def _per_channel_kernel(kernel):
    """`kernel` fake-quantized per output channel (its last axis), symmetric, narrow range.

    The grid is the one the TFLite converter gives FULLY_CONNECTED and CONV_2D
    weights (scale `max|w_c| / 127` per output channel), so the export traces
    the kernel plain and lets the converter quantize it: a fake-quantized
    kernel would have to be transposed for FULLY_CONNECTED after its
    quantization, which the converter refuses for per-channel scales.
    """
    axes = tuple(range(len(kernel.shape) - 1))
    bound = ops.stop_gradient(ops.maximum(ops.max(ops.abs(kernel), axis=axes), 1e-8))
    return fake_quant_with_min_max_vars(kernel, -bound, bound, narrow_range=True, axis=-1)


def matmul_form(equation):
    """How many trailing input axes an `EinsumDense` equation contracts, if it is a plain matmul, else None.

    A plain matmul contracts the input's trailing axes with the kernel's
    leading ones and keeps the rest in order (KerasHub's attention projections
    `abc,cde->abde` and `abcd,cde->abe` are). Written as one 2-D matmul, its
    fake-quantized kernel folds into a TFLite int8 FULLY_CONNECTED; as an
    einsum the converter reshapes and transposes it after the fake
    quantization, and the kernel stays float.

    Example:
    >>> matmul_form("abc,cde->abde"), matmul_form("abcd,cde->abe"), matmul_form("abc,dc->abd")
    (1, 2, None)
    """
    inputs, output = equation.replace(" ", "").split("->")
    x, kernel = inputs.split(",")
    contracted = "".join(c for c in x if c in kernel and c not in output)
    if not contracted or "." in equation:
        return None
    free_x, free_kernel = x[: len(x) - len(contracted)], kernel[len(contracted) :]
    if x != free_x + contracted or kernel != contracted + free_kernel or output != free_x + free_kernel:
        return None
    return len(contracted)


def _flat_product(layer, x, quantize, quantize_inputs, quantize_outputs, contracted, smoothing=None, split=None):
    """`x` times the kernel as one 2-D matmul, bias and output quantization on the 2-D result, then reshaped.

    The TFLite converter fuses a bias add and a fake quantization into
    FULLY_CONNECTED only when they follow the matmul directly; a Keras matmul
    of a 3-D input goes through `tensordot`, whose reshape (dynamic when the
    batch size and length both are) would separate them and leave it float.
    With `smoothing` (a `Smoothing`), the input's channels are divided by its
    scales before their quantization and the kernel's rows multiplied by them;
    with `split` (an `OutlierSplit`), the outlier output channels get their own range.
    """
    kernel = layer.kernel
    depth = int(np.prod(kernel.shape[:contracted]))
    lead = tuple(ops.shape(x)[: len(x.shape) - contracted])  # unknown sizes (batch, length) as tensors
    x, kernel2d = ops.reshape(x, (-1, depth)), ops.reshape(kernel, (depth, -1))
    if smoothing is not None:
        x, kernel2d = smoothing(x, kernel2d)
    bias = getattr(layer, "bias", None)
    flat_bias = bias is None or tuple(bias.shape) == tuple(kernel.shape[contracted:])
    if split is not None and flat_bias:
        y = split(quantize_inputs(x), kernel2d, None if bias is None else ops.reshape(bias, (-1,)), quantize,
                  quantize_outputs)
        return ops.reshape(y, (*lead, *kernel.shape[contracted:]))
    y = ops.matmul(quantize_inputs(x), quantize(kernel2d))
    if flat_bias:
        y = quantize_outputs(y if bias is None else ops.add(y, ops.reshape(bias, (-1,))))
        return ops.reshape(y, (*lead, *kernel.shape[contracted:]))
    return quantize_outputs(ops.add(ops.reshape(y, (*lead, *kernel.shape[contracted:])), bias))  # bias on some axes only


def _contracted(layer):
    """How many trailing input axes the layer's kernel contracts when it is a plain matmul (Dense: 1), else None."""
    if isinstance(layer, keras.layers.Dense):
        return 1
    if isinstance(layer, keras.layers.EinsumDense):
        return matmul_form(layer.equation)
    return None


def _matmul_shape(layer):
    """`(depth, units)` of the layer's kernel as one 2-D matmul, or None (convolutions, non-matmul einsums)."""
    contracted = _contracted(layer)
    if contracted is None:
        return None
    depth = int(np.prod(layer.kernel.shape[:contracted]))
    return depth, int(np.prod(layer.kernel.shape)) // depth


def _product(layer, x, quantize, quantize_inputs, quantize_outputs, smoothing=None, split=None):
    """The layer's own linear map of `x` by its kernel (through `quantize`) plus its bias, through `quantize_outputs`."""
    contracted = _contracted(layer)
    if contracted is not None:
        return _flat_product(layer, x, quantize, quantize_inputs, quantize_outputs, contracted, smoothing, split)
    if isinstance(layer, keras.layers.EinsumDense):
        y = ops.einsum(layer.equation, quantize_inputs(x), quantize(layer.kernel))  # not a matmul: may stay float
    else:
        y = layer.convolution_op(quantize_inputs(x), quantize(layer.kernel))
    bias = getattr(layer, "bias", None)
    if bias is not None and isinstance(layer, BaseConv):
        shape = (1,) * (layer.rank + 1) + (layer.filters,) if layer.data_format == "channels_last" else \
            (1, layer.filters) + (1,) * layer.rank
        bias = ops.reshape(bias, shape)
    return quantize_outputs(y if bias is None else ops.add(y, bias))


class QuantizationAware:
    """The quantization-aware layers of one model and their learned ranges; made by `quantization_aware`."""

    def __init__(self, model, momentum=MOMENTUM, smoothing=SMOOTHING, keep_float=KEEP_FLOAT, split_outputs=()):
        self.model = model
        self.momentum = momentum
        split_outputs = tuple(split_outputs)
        if smoothing is not None and not 0 <= smoothing <= 1:
            raise TfptmError(f"quantization_aware: smoothing is {smoothing!r}; expected SmoothQuant's alpha in "
                             "[0, 1] (0 or None: no smoothing)")
        self.keep_float = tuple(p for p in keep_float if p not in split_outputs)  # split wins over the default
        self.layers = [layer for layer in model._flatten_layers(include_self=False) if isinstance(layer, QUANTIZED_LAYERS)
                       and not any(pattern in layer.path for pattern in self.keep_float)]
        if not self.layers:
            raise TfptmError(
                f"quantization_aware: model {model.name!r} has no Dense, EinsumDense or convolution layer to quantize"
            )
        self.calibrating = False
        self.observing = False
        self.suspended = False
        self.exporting = False
        self._ranges = {}
        self.embeddings = [layer for layer in model._flatten_layers(include_self=False)
                           if isinstance(layer, keras.layers.Embedding)]
        self._context_args = {id(layer): layer._call_has_context_arg for layer in self.layers}
        with model.distribute_strategy.scope():
            for index, layer in enumerate(self.layers):
                self._ranges[id(layer)] = (_Range(f"qat_{index}_inputs", momentum), _Range(f"qat_{index}_outputs", momentum))
            self._smoothing, self._split = {}, {}
            for index, layer in enumerate(self.layers):
                shape = _matmul_shape(layer)
                if shape is None:
                    continue
                if smoothing:
                    self._smoothing[id(layer)] = Smoothing(f"qat_{index}", shape[0], smoothing)
                if any(pattern in layer.path for pattern in split_outputs) and shape[1] > 2 * OUTLIER_CHANNELS:
                    self._split[id(layer)] = OutlierSplit(f"qat_{index}", shape[1], OUTLIER_CHANNELS,
                                                          _Range(f"qat_{index}_outliers", momentum))
        unmatched = [pattern for pattern in split_outputs
                     if not any(pattern in layer.path for layer in self.layers if id(layer) in self._split)]
        if unmatched:
            raise TfptmError(
                f"quantization_aware: split_outputs {unmatched[0]!r} matches no Dense or matmul EinsumDense layer "
                f"with more than {2 * OUTLIER_CHANNELS} outputs in {model.name!r}; expected part of a layer path "
                f"such as {self.layers[0].path!r}"
            )
        for layer in self.layers:
            object.__setattr__(layer, "call", types.MethodType(self._call_for(layer), layer))
            # Keras passes `training` only to a call that declares it; convolutions' own call does not
            object.__setattr__(layer, "_call_has_context_arg", {**layer._call_has_context_arg, "training": True})
        for layer in self.embeddings:
            object.__setattr__(layer, "call", types.MethodType(self._lookup_for(layer), layer))
        from tfptm.export.attention import attention_layers, bounded_attention  # tfptm.export imports this module

        self.attention = [layer for layer in attention_layers(model) if "_compute_attention" not in layer.__dict__
                          and type(layer)._compute_attention is keras.layers.MultiHeadAttention._compute_attention]
        compute_attention = bounded_attention(_quantized_probabilities)
        for layer in self.attention:
            object.__setattr__(layer, "_compute_attention", types.MethodType(compute_attention, layer))
        _forget_traced_functions(model)

    def _lookup_for(self, layer):
        """An embedding lookup in an int8 table (per tensor, symmetric): TFLite gathers int8 rows, 4x smaller."""
        original = type(layer).call
        handle = self

        def call(self, inputs, *args, **kwargs):
            if handle.suspended or args or kwargs.get("reverse"):  # a tied output projection stays float
                return original(self, inputs, *args, **kwargs)
            table = _quantized_kernel(self.embeddings)
            return ops.cast(ops.take(table, ops.cast(inputs, "int32"), axis=0), self.compute_dtype)

        return call

    def _call_for(self, layer):
        original = type(layer).call
        inputs_range, outputs_range = self._ranges[id(layer)]
        handle = self

        def call(self, inputs, training=None):
            if handle.suspended:
                return original(self, inputs, **({"training": training} if not isinstance(self, BaseConv) else {}))
            smoothing, split = handle._smoothing.get(id(self)), handle._split.get(id(self))
            if handle.observing:  # float; smoothing and split record their statistics (see calibrate)
                same = lambda t: t  # noqa: E731
                y = _product(self, inputs, same, same, same, smoothing, split)
                return self.activation(y) if self.activation is not None else y
            update = bool(training) or handle.calibrating
            if split is not None:
                split.update = update
            kernel = (lambda k: k) if handle.exporting else _per_channel_kernel  # see _per_channel_kernel
            y = _product(self, inputs, kernel, lambda t: inputs_range(t, update), lambda t: outputs_range(t, update),
                         smoothing, split)
            return self.activation(y) if self.activation is not None else y

        return call

    def calibrate(self, x, batch_size=32, steps=8):
        """Sets smoothing scales and activation ranges from up to `steps` batches of `x`, without training.

        `x`: arrays, a dict of arrays, or a `tf.data.Dataset` of batches (its
        labels, if any, ignored). Call it before training (with smoothing, the
        scales come only from here; otherwise the first training batch sets the
        ranges) and to export a model that was not trained since
        `quantization_aware`. Returns `self`.
        """
        import tensorflow as tf

        if isinstance(x, tf.data.Dataset):
            batches = [element[0] if isinstance(element, tuple) else element for element in x.take(steps)]
        else:
            count = len(next(iter(x.values())) if isinstance(x, dict) else x)
            batches = [keras.tree.map_structure(lambda a: np.asarray(a)[start : start + batch_size], x)
                       for start in range(0, min(count, batch_size * steps), batch_size)]
        parts = (*self._smoothing.values(), *self._split.values())
        if parts:  # first the float model's channel maxima: smoothing scales, outliers
            for part in parts:
                part.channel_max.assign(np.zeros(part.channel_max.shape, "float32"))
                part.observing = True
            self.observing = True
            try:
                for batch in batches:
                    self.model(batch, training=False)
            finally:
                self.observing = False
                for part in parts:
                    part.observing = False
            for layer in self.layers:
                if id(layer) in self._smoothing:
                    self._smoothing[id(layer)].fit(layer.kernel.numpy().reshape(_matmul_shape(layer)[0], -1))
                if id(layer) in self._split:
                    self._split[id(layer)].fit()
            for quantizer in (*(q for pair in self._ranges.values() for q in pair),
                              *(split.outliers for split in self._split.values())):
                quantizer.seen.assign(0.0)
        self.calibrating = True
        try:
            for batch in batches:
                self.model(batch, training=False)
        finally:
            self.calibrating = False
        return self

    def ranges(self):
        """`{layer path: {"inputs": [min, max], "outputs": [min, max]}}`; `None` for a range not yet learned."""
        ranges = {}
        for layer in self.layers:
            inputs, outputs = self._ranges[id(layer)]
            ranges[layer.path] = {"inputs": inputs.value(), "outputs": outputs.value()}
            if id(layer) in self._split:
                ranges[layer.path]["outlier_outputs"] = self._split[id(layer)].outliers.value()
        return ranges

    def check_ranges(self):
        """Raises a `TfptmError` naming the layers whose ranges were never learned (no training, no calibration)."""
        missing = [path for path, r in self.ranges().items() if None in r.values()]
        if missing:
            raise TfptmError(
                f"int8 export of a quantization-aware model: {len(missing)} layer(s) have no learned ranges "
                f"(first: {missing[0]!r}); train the model, or call calibrate(x) on a few hundred training inputs"
            )

    @contextlib.contextmanager
    def float_calls(self):
        """Within the block the layers compute in plain float (for float and dynamic-range exports)."""
        before, self.suspended = self.suspended, True
        try:
            yield
        finally:
            self.suspended = before

    @contextlib.contextmanager
    def int8_export(self):
        """Within the block the layers trace for the TFLite converter: kernels plain (it quantizes them per channel).

        Yields how many attention layers mask with the bounded fill (all of
        them already do: `tfptm.export.attention`), as `int8_friendly_attention` does.
        """
        self.check_ranges()
        before, self.exporting = self.exporting, True
        try:
            yield len(self.attention)
        finally:
            self.exporting = before

    def remove(self):
        """Restores the layers' own `call`: the model is a plain float model again (its trained weights kept)."""
        for layer in self.attention:
            if "_compute_attention" in layer.__dict__:
                object.__delattr__(layer, "_compute_attention")
        for layer in self.embeddings:
            if "call" in layer.__dict__:
                object.__delattr__(layer, "call")
        for layer in self.layers:
            if "call" in layer.__dict__:
                object.__delattr__(layer, "call")
            object.__setattr__(layer, "_call_has_context_arg", self._context_args[id(layer)])
        _forget_traced_functions(self.model)
        _ACTIVE.pop(self.model, None)


def _forget_traced_functions(model):
    """Drops the model's traced fit/evaluate/predict functions: they would still run the layers' previous `call`."""
    for name in ("train_function", "test_function", "predict_function"):
        if getattr(model, name, None) is not None:
            setattr(model, name, None)


def quantization_aware(model, momentum=MOMENTUM, smoothing=SMOOTHING, keep_float=KEEP_FLOAT, split_outputs=()):
    """Makes `model` train and predict with int8 fake quantization; returns its `QuantizationAware`.

    Call it after float fine-tuning and before a few epochs of QAT at a low
    learning rate (`tfptm.training.qat`), then export with
    `tfptm.export.tflite(model, path, "int8")`. Calling it on a model that is
    already quantization-aware returns the existing handle.

    Options (defaults measured on MiniLM, `bench/qat_minilm.py`):
    - `smoothing`: SmoothQuant's alpha for the inputs of every Dense and
      attention projection (`Smoothing`); 0 or None for none. Its scales are
      set by `calibrate`, which should come before training.
    - `keep_float`: layers whose path contains one of these strings stay
      float32 in TFLite; by default a Transformer's feed-forward output
      projection (see `KEEP_FLOAT`); `()` quantizes every layer.
    - `split_outputs`: layers whose path contains one of these strings are
      int8 with their largest output channels on a range of their own
      (`OutlierSplit`), e.g. `("feedforward_output_dense",)`: faster than
      keeping them float, slightly further from the float model.
    """
    if model in _ACTIVE:
        return _ACTIVE[model]
    handle = QuantizationAware(model, momentum, smoothing, keep_float, split_outputs)
    _ACTIVE[model] = handle
    return handle


def is_quantization_aware(model):
    """Whether `quantization_aware` is active on `model`."""
    return model in _ACTIVE


def quantization_aware_of(model):
    """`model`'s `QuantizationAware`, or None."""
    return _ACTIVE.get(model)
