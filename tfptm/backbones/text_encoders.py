"""Text backbones built locally, sized by their arguments: RNN encoders and KerasHub Transformers.

All take integer token ids with 0 as padding (as `tfptm.data.text.tokenizer_layer`
writes them) and return per-token features `(batch, steps, dim)`, for
`Head(pooling="avg" | "max" | "first")`. The RNN encoders take one tensor
`token_ids`; the Transformers take KerasHub's input dict (`token_ids`,
`padding_mask` and, for the encoder, `segment_ids`). Recurrent layers are named
`block{i}_...` and KerasHub's are `transformer_layer_{i}`, so
`tfptm.backbones.blocks` finds them for partial fine-tuning.
"""

import keras

from tfptm.backbones.presets import features_model
from tfptm.backbones.registry import BACKBONE_NAME, register
from tfptm.errors import TfptmError

_RNN_LAYERS = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU}


def _check_sizes(where, **sizes):
    for name, value in sizes.items():
        values = value if isinstance(value, (tuple, list)) else (value,)
        if not values or not all(isinstance(v, int) and v > 0 for v in values):
            raise TfptmError(f"{where}: {name} must be positive integers; got {value!r}")


def _rnn_encoder(kind, vocabulary_size, sequence_length, embedding_dim, units, dropout, bidirectional):
    where = f"{'bi' if bidirectional else ''}{kind}_encoder"
    units = tuple(units) if isinstance(units, (tuple, list)) else (units,)
    _check_sizes(where, vocabulary_size=vocabulary_size, embedding_dim=embedding_dim, units=units)
    inputs = keras.Input(shape=(sequence_length,), dtype="int32", name="token_ids")
    x = keras.layers.Embedding(vocabulary_size, embedding_dim, mask_zero=True, name="embedding")(inputs)
    for i, width in enumerate(units, start=1):
        layer = _RNN_LAYERS[kind](width, return_sequences=True, dropout=dropout, name=f"block{i}_{kind}")
        if bidirectional:
            layer = keras.layers.Bidirectional(layer, name=f"block{i}_bi{kind}")
        x = layer(x)
    return keras.Model(inputs, x, name=BACKBONE_NAME)


@register("lstm_encoder", source="local", summary="Embedding (0 = padding) then stacked LSTMs returning the sequence")
def lstm_encoder(vocabulary_size=10_000, sequence_length=None, embedding_dim=64, units=(64,), dropout=0.0):
    """An LSTM text encoder: token ids `(batch, steps)` to features `(batch, steps, units[-1])`.

    Token id 0 is padding: the embedding masks it, so the LSTMs and
    `Head(pooling="avg")` skip it.

    Example:
    >>> import numpy as np
    >>> backbone = lstm_encoder(vocabulary_size=50, embedding_dim=8, units=(8, 4))
    >>> backbone(np.array([[5, 7, 0, 0]])).shape
    TensorShape([1, 4, 4])
    """
    return _rnn_encoder("lstm", vocabulary_size, sequence_length, embedding_dim, units, dropout, False)


@register("gru_encoder", source="local", summary="Embedding (0 = padding) then stacked GRUs returning the sequence")
def gru_encoder(vocabulary_size=10_000, sequence_length=None, embedding_dim=64, units=(64,), dropout=0.0):
    """A GRU text encoder: token ids `(batch, steps)` to features `(batch, steps, units[-1])`.

    Example:
    >>> import numpy as np
    >>> gru_encoder(vocabulary_size=50, embedding_dim=8, units=6)(np.array([[5, 7, 0]])).shape
    TensorShape([1, 3, 6])
    """
    return _rnn_encoder("gru", vocabulary_size, sequence_length, embedding_dim, units, dropout, False)


@register("bilstm_encoder", source="local", summary="Embedding (0 = padding) then stacked bidirectional LSTMs")
def bilstm_encoder(vocabulary_size=10_000, sequence_length=None, embedding_dim=64, units=(64,), dropout=0.0):
    """A bidirectional LSTM encoder: features `(batch, steps, 2 * units[-1])` (both directions concatenated).

    Example:
    >>> import numpy as np
    >>> bilstm_encoder(vocabulary_size=50, embedding_dim=8, units=4)(np.array([[5, 7, 0]])).shape
    TensorShape([1, 3, 8])
    """
    return _rnn_encoder("lstm", vocabulary_size, sequence_length, embedding_dim, units, dropout, True)


@register("transformer_encoder", source="local", summary="BERT-like Transformer encoder (KerasHub BertBackbone), random init")
def transformer_encoder(
    vocabulary_size=10_000,
    num_layers=2,
    num_heads=2,
    hidden_dim=64,
    intermediate_dim=128,
    max_sequence_length=128,
    dropout=0.1,
):
    """A BERT-like encoder from `keras_hub.models.BertBackbone`, returning its `sequence_output`.

    Inputs are KerasHub's dict: `token_ids`, `padding_mask` (1 for tokens)
    and `segment_ids` (zeros for one segment); `tokenizer_layer(...,
    outputs=backbone.input)` writes all three from raw strings.

    Example:
    >>> import numpy as np
    >>> backbone = transformer_encoder(vocabulary_size=50, num_layers=1, hidden_dim=8, intermediate_dim=16)
    >>> ids = np.array([[2, 7, 9, 0]])
    >>> backbone({"token_ids": ids, "padding_mask": ids > 0, "segment_ids": 0 * ids}).shape
    TensorShape([1, 4, 8])
    """
    import keras_hub

    _check_sizes("transformer_encoder", vocabulary_size=vocabulary_size, num_layers=num_layers, num_heads=num_heads,
                 hidden_dim=hidden_dim, intermediate_dim=intermediate_dim, max_sequence_length=max_sequence_length)
    bert = keras_hub.models.BertBackbone(
        vocabulary_size=vocabulary_size,
        num_layers=num_layers,
        num_heads=num_heads,
        hidden_dim=hidden_dim,
        intermediate_dim=intermediate_dim,
        dropout=dropout,
        max_sequence_length=max_sequence_length,
    )
    return features_model(bert, label="transformer_encoder")


@register("token_embeddings", source="local",
          summary="Token embeddings alone (fastText-style): with Head(pooling='avg'), a bag of words; tiny students")
def token_embeddings(vocabulary_size=10_000, embedding_dim=64, inputs=("token_ids", "padding_mask", "segment_ids")):
    """Per-token embeddings `(batch, steps, embedding_dim)` and nothing more: a bag of words once averaged.

    With `Head(pooling="avg")` (which skips padding through `padding_mask`)
    this is a fastText-style classifier: millions of parameters in one
    lookup table, microseconds per text, and every op TFLite quantizes to
    int8. It is the small student `tfptm quickstart` distils MiniLM into;
    `inputs` names the dict it takes, by default KerasHub's BERT inputs, so
    teacher and student read the same tokenized batches (`segment_ids` is
    accepted and unused).

    Example:
    >>> import numpy as np
    >>> backbone = token_embeddings(vocabulary_size=50, embedding_dim=4)
    >>> ids = np.array([[2, 7, 9, 0]])
    >>> backbone({"token_ids": ids, "padding_mask": ids > 0, "segment_ids": 0 * ids}).shape
    TensorShape([1, 4, 4])
    """
    _check_sizes("token_embeddings", vocabulary_size=vocabulary_size, embedding_dim=embedding_dim)
    names = list(inputs)
    if "token_ids" not in names or not set(names) <= {"token_ids", "padding_mask", "segment_ids"}:
        raise TfptmError(f"token_embeddings: inputs {names}; expected token_ids and optionally padding_mask, segment_ids")
    tensors = {name: keras.Input((None,), dtype="bool" if name == "padding_mask" else "int32", name=name)
               for name in names}
    features = keras.layers.Embedding(vocabulary_size, embedding_dim, name="token_embedding")(tensors["token_ids"])
    return keras.Model(tensors, features, name=BACKBONE_NAME)


@register("transformer_decoder", source="local", summary="GPT-like causal Transformer decoder (KerasHub GPT2Backbone), random init")
def transformer_decoder(
    vocabulary_size=10_000,
    num_layers=2,
    num_heads=2,
    hidden_dim=64,
    intermediate_dim=128,
    max_sequence_length=128,
    dropout=0.1,
):
    """A GPT-like causal decoder from `keras_hub.models.GPT2Backbone`: features `(batch, steps, hidden_dim)`.

    Inputs are KerasHub's dict: `token_ids` and `padding_mask`. Each token
    sees only the tokens before it, so pool with `"avg"` (or the last token),
    not `"first"`.

    Example:
    >>> import numpy as np
    >>> backbone = transformer_decoder(vocabulary_size=50, num_layers=1, hidden_dim=8, intermediate_dim=16)
    >>> ids = np.array([[2, 7, 9, 0]])
    >>> backbone({"token_ids": ids, "padding_mask": ids > 0}).shape
    TensorShape([1, 4, 8])
    """
    import keras_hub

    _check_sizes("transformer_decoder", vocabulary_size=vocabulary_size, num_layers=num_layers, num_heads=num_heads,
                 hidden_dim=hidden_dim, intermediate_dim=intermediate_dim, max_sequence_length=max_sequence_length)
    gpt = keras_hub.models.GPT2Backbone(
        vocabulary_size=vocabulary_size,
        num_layers=num_layers,
        num_heads=num_heads,
        hidden_dim=hidden_dim,
        intermediate_dim=intermediate_dim,
        dropout=dropout,
        max_sequence_length=max_sequence_length,
    )
    return features_model(gpt, label="transformer_decoder")
