"""An int8-friendly masked softmax for attention layers, swapped in while a model is traced for TFLite.

Keras masks attention by replacing masked logits with -1e9 (`Softmax`) or
-2.4e38 (`ops.dot_product_attention`) before the softmax. In float that is
exact; under full-integer quantization it is ruinous: the select that inserts
the constant shares one int8 scale with the attention logits, so calibration
gives them a range of [-1e9, max] (a scale near 4e6 per step) and every real
logit falls into the same bin. Attention then becomes uniform over the valid
tokens, which cost all-MiniLM-L6-v2 24 accuracy points on padded inputs.

Here masked logits are set to their row's smallest logit minus
`MASK_MARGIN` instead, so the int8 range grows by `MASK_MARGIN` rather than by
1e9. A masked position then weighs at most exp(-MASK_MARGIN) of the row's
largest (float) and rounds to exactly 0 in the int8 softmax output, whose step
is 1/256; masked probabilities are zeroed afterwards, as Keras does.
"""

import contextlib
import types

import keras
from keras import ops

MASK_MARGIN = 16.0  # exp(-16) ~ 1e-7: masked weight is negligible even in float, at a cost of 16 logit units of range


def bounded_attention(quantize_probabilities=None):
    """`MultiHeadAttention._compute_attention` with the masked-softmax fill described in the module docstring.

    `quantize_probabilities`, if given, is applied to the attention
    probabilities before they weight the values (quantization-aware training
    simulates there the int8 softmax output that TFLite feeds its int8 matmul).
    """

    def compute_attention(self, query, key, value, attention_mask=None, training=None, return_attention_scores=False,
                          use_causal_mask=False):
        if use_causal_mask:  # Keras routes a causal-only mask here as a flag rather than a tensor
            causal = self._compute_causal_mask(query, value)
            attention_mask = causal if attention_mask is None else ops.logical_and(ops.cast(attention_mask, "bool"), causal)
        query = ops.multiply(query, ops.cast(self._inverse_sqrt_key_dim, query.dtype))
        scores = ops.einsum(self._dot_product_equation, key, query)
        mask = None
        if attention_mask is not None:
            mask = ops.cast(attention_mask, "bool")
            for _ in range(len(scores.shape) - len(mask.shape)):  # [B, T, S] -> [B, 1, T, S], as Keras expands it
                mask = ops.expand_dims(mask, axis=-len(self._attention_axes) * 2 - 1)
            floor = ops.min(scores, axis=self._softmax.axis, keepdims=True) - MASK_MARGIN
            scores = ops.where(mask, scores, floor)
        probabilities = self._softmax(scores)
        if mask is not None:
            probabilities = ops.where(mask, probabilities, 0.0)
        if quantize_probabilities is not None:
            probabilities = quantize_probabilities(probabilities)
        dropped = self._dropout_layer(probabilities, training=training)
        return ops.einsum(self._combine_equation, dropped, value), probabilities

    return compute_attention


def attention_layers(model):
    """Every `keras.layers.MultiHeadAttention` inside `model` (KerasHub encoders use it), nested models included.

    Example:
    >>> import tfptm
    >>> backbone = tfptm.backbones.get("transformer_encoder", vocabulary_size=30, num_layers=2, hidden_dim=8,
    ...                                intermediate_dim=16, max_sequence_length=8)
    >>> len(attention_layers(backbone))
    2
    """
    return [layer for layer in model._flatten_layers(include_self=False) if isinstance(layer, keras.layers.MultiHeadAttention)]


@contextlib.contextmanager
def int8_friendly_attention(model):
    """Within the block, `model`'s attention layers mask with a bounded fill (see the module docstring).

    Only tracing inside the block sees the change; the layers are restored on
    exit, so the Keras model itself is untouched. Yields how many layers were
    changed. Layers that override `_compute_attention` themselves are left alone.

    Example:
    >>> import numpy as np, tfptm
    >>> backbone = tfptm.backbones.get("transformer_encoder", vocabulary_size=30, num_layers=1, hidden_dim=8,
    ...                                intermediate_dim=16, max_sequence_length=8)
    >>> ids = np.array([[2, 7, 9, 0, 0]])
    >>> x = {"token_ids": ids, "padding_mask": ids > 0, "segment_ids": 0 * ids}
    >>> with int8_friendly_attention(backbone) as count:
    ...     rewritten = backbone(x)
    >>> count, bool(np.allclose(rewritten, backbone(x), atol=1e-5))
    (1, True)
    """
    layers = [
        layer for layer in attention_layers(model)
        if type(layer)._compute_attention is keras.layers.MultiHeadAttention._compute_attention
        and "_compute_attention" not in layer.__dict__  # already replaced (quantization-aware training does)
    ]
    compute_attention = bounded_attention()
    for layer in layers:
        object.__setattr__(layer, "_compute_attention", types.MethodType(compute_attention, layer))
    try:
        yield len(layers)
    finally:
        for layer in layers:
            object.__delattr__(layer, "_compute_attention")
