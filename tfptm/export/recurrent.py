"""Recurrent layers that TFLite can run without TensorFlow's own ops.

Keras runs an LSTM or GRU as a `tf.while_loop` over a `TensorList`; the
TFLite converter cannot lower those lists to built-in ops and falls back to
Select TF ops ("Flex"), which the LiteRT runtime (`ai-edge-litert`) and most
phone builds do not link: the file converts but cannot run. With a known
sequence length the same layers can be unrolled into one step per time step,
which converts to built-in ops only. The weights and the maths are the same;
only the traced graph differs.

One upstream bug is worked around: Keras's unrolled loop zeroes the outputs
at masked steps with the mask in the original time order even when the layer
runs backwards (`go_backwards`, the backward half of `Bidirectional`), so it
zeroes the wrong steps. While unrolled, backward layers keep the previous
output at masked steps instead (`zero_output_for_mask=False`); for sequences
padded at the end, as tfptm's tokenizers pad, the masked steps come first in
backward order, where the previous output is the zero initial one, so the
outputs equal the loop's exactly.
"""

import contextlib

import keras


def recurrent_layers(model):
    """Every `keras.layers.RNN` in `model`, nested models and `Bidirectional` wrappers included."""
    return [layer for layer in model._flatten_layers(include_self=False) if isinstance(layer, keras.layers.RNN)]


@contextlib.contextmanager
def unrolled_recurrence(model):
    """Within the block, `model`'s recurrent layers run unrolled (one traced step per time step).

    Only tracing inside the block sees the change; every layer gets its own
    setting back on exit. Yields how many layers were changed. Unrolling
    needs a sequence length known when tracing (for example
    `sequence_length=` of `tfptm.backbones.get("bilstm_encoder", ...)`).

    Example:
    >>> import numpy as np, tfptm
    >>> backbone = tfptm.backbones.get("bilstm_encoder", vocabulary_size=30, sequence_length=5, embedding_dim=4, units=3)
    >>> ids = np.array([[2, 7, 9, 0, 0]])
    >>> with unrolled_recurrence(backbone) as count:
    ...     unrolled = backbone(ids)
    >>> count, bool(np.allclose(unrolled, backbone(ids), atol=1e-6))
    (2, True)
    """
    layers = [(layer, layer.zero_output_for_mask) for layer in recurrent_layers(model) if not layer.unroll]
    for layer, _ in layers:
        layer.unroll = True
        if layer.go_backwards:
            layer.zero_output_for_mask = False
    try:
        yield len(layers)
    finally:
        for layer, zero_output_for_mask in layers:
            layer.unroll, layer.zero_output_for_mask = False, zero_output_for_mask
