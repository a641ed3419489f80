"""Causal language modelling (GPT's objective) for local Transformer decoders, with perplexity.

The model reads tokens `0..n-2` of each window and predicts tokens `1..n-1`:
targets are the inputs shifted left by one, weighted 0 where the target is
padding. Its output layer is the backbone's token embedding used in reverse
(`keras_hub.layers.ReversibleEmbedding`), so it adds only what a bias-free
tied layer adds: nothing. Perplexity is `exp` of the mean next-token
cross-entropy over every real target token of held-out text.
"""

import math

import keras
import numpy as np
import tensorflow as tf

from tfptm.errors import TfptmError
from tfptm.pretrain.common import (
    Pretrained,
    backbone_inputs,
    corpus_batches,
    documents_of,
    feed,
    final_metrics,
    prepare_corpus,
    token_embedding,
    train_all_weights,
    windows_dataset,
)


def next_token_batches(windows, backbone):
    """Maps batches of token-id windows `(batch, n)` to `(inputs, targets, weights)` for next-token prediction.

    `inputs` feed tokens `[:, :-1]` to the backbone, `targets` are tokens
    `[:, 1:]`, and `weights` are 1 where the target is a real token.

    Example:
    >>> import tfptm
    >>> backbone = tfptm.backbones.get("transformer_decoder", vocabulary_size=20, num_layers=1, hidden_dim=8, intermediate_dim=16)
    >>> batch = tf.data.Dataset.from_tensors(tf.constant([[5, 6, 7, 0]]))
    >>> inputs, targets, weights = next(iter(next_token_batches(batch, backbone)))
    >>> inputs["token_ids"].numpy().tolist(), targets.numpy().tolist(), weights.numpy().tolist()
    ([[5, 6, 7]], [[6, 7, 0]], [[1.0, 1.0, 0.0]])
    """

    def shift(ids):
        return feed(backbone, ids[:, :-1]), ids[:, 1:], tf.cast(tf.not_equal(ids[:, 1:], 0), "float32")

    return windows.map(shift, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def causal_lm_model(backbone, vocabulary_size, sequence_length, learning_rate=5e-4):
    """The backbone with a tied output layer, compiled for next-token cross-entropy: logits `(batch, n - 1, vocab)`.

    A backbone without a `ReversibleEmbedding` (e.g. an LSTM) gets a Dense output layer instead.

    Example:
    >>> import tfptm
    >>> backbone = tfptm.backbones.get("transformer_decoder", vocabulary_size=30, num_layers=1, hidden_dim=8, intermediate_dim=16)
    >>> model = causal_lm_model(backbone, 30, sequence_length=16)
    >>> model.output.shape, model.count_params() == backbone.count_params()
    ((None, 15, 30), True)
    """
    inputs = backbone_inputs(backbone, sequence_length - 1)
    features = backbone(inputs)
    embedding = token_embedding(backbone)
    if embedding is not None:
        if embedding.input_dim < vocabulary_size:
            raise TfptmError(
                f"causal_lm: the backbone embeds {embedding.input_dim} tokens but the vocabulary has {vocabulary_size}; "
                "expected a backbone built for this vocabulary"
            )
        logits = embedding(features, reverse=True)
    else:
        logits = keras.layers.Dense(vocabulary_size, name="lm_logits")(features)
    logits = keras.layers.Activation("linear", dtype="float32", name="logits")(logits)
    model = keras.Model(inputs, logits, name="causal_lm")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="mean_with_sample_weight"),
        weighted_metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    return model


def perplexity(pretrained, texts, batch_size=32):
    """`exp(mean cross-entropy)` of predicting every next token of `texts` with a `causal_lm` result.

    The mean is over target tokens (not batches), so it is exact whatever
    the batching. A model that knows nothing scores about the vocabulary size.

    Example:
    >>> corpus = ["a b c d a b c d"] * 30
    >>> result = causal_lm(corpus, vocabulary_size=20, sequence_length=8, epochs=6, batch_size=4,
    ...                    validation_fraction=0.0, num_layers=1, hidden_dim=16, intermediate_dim=32, learning_rate=1e-2)
    >>> perplexity(result, ["a b c d a b"]) < 2.0
    True
    """
    if not isinstance(pretrained, Pretrained) or pretrained.objective != "causal_lm":
        raise TfptmError("perplexity: expected the result of tfptm.pretrain.causal_lm")
    documents = documents_of(texts, "perplexity")
    windows = windows_dataset(documents, pretrained.tokenizer, batch_size, seed=None, shuffle=False)
    total, count = 0.0, 0.0
    for inputs, targets, weights in next_token_batches(windows, pretrained.backbone):
        logits = pretrained.model(inputs, training=False)
        losses = keras.losses.sparse_categorical_crossentropy(targets, logits, from_logits=True)
        total += float(np.sum(np.asarray(losses) * weights.numpy()))
        count += float(np.sum(weights.numpy()))
    return math.exp(total / count)


def causal_lm(
    corpus,
    backbone=None,
    vocabulary=None,
    vocabulary_size=8000,
    sequence_length=128,
    epochs=10,
    batch_size=32,
    learning_rate=5e-4,
    warmup_fraction=0.1,
    validation_fraction=0.1,
    lowercase=True,
    seed=0,
    verbose=0,
    callbacks=None,
    **backbone_kwargs,
):
    """Pre-trains a Transformer decoder by next-token prediction on a plain-text corpus.

    Arguments are those of `masked_lm`; `backbone=None` builds
    `transformer_decoder`. The result's `metrics` hold
    `validation_perplexity` on the held-out documents (or
    `train_perplexity` on the training documents when none are held out).

    Example:
    >>> corpus = ["the cat sat on the mat", "the dog sat on the rug"] * 20
    >>> result = causal_lm(corpus, vocabulary_size=40, sequence_length=8, epochs=1,
    ...                    num_layers=1, hidden_dim=16, intermediate_dim=32)
    >>> result.objective, sorted(result.metrics)[-1]
    ('causal_lm', 'validation_perplexity')
    """
    train_documents, validation_documents, tokenizer, backbone = prepare_corpus(
        corpus, backbone, vocabulary, vocabulary_size, sequence_length, validation_fraction, lowercase, seed,
        "transformer_decoder", backbone_kwargs, "causal_lm",
    )
    model = causal_lm_model(backbone, len(tokenizer.vocabulary), sequence_length, learning_rate)
    train_data, validation_data = corpus_batches(
        train_documents, validation_documents, tokenizer, batch_size, seed, lambda w: next_token_batches(w, backbone)
    )
    history = train_all_weights(model, train_data, epochs, learning_rate, warmup_fraction, validation_data, verbose, callbacks)
    if isinstance(backbone.input, dict):
        tokenizer.outputs = sorted(backbone.input)
    result = Pretrained("causal_lm", backbone, tokenizer, model, history, final_metrics(history))
    if validation_documents:
        result.metrics["validation_perplexity"] = perplexity(result, validation_documents, batch_size)
    else:
        result.metrics["train_perplexity"] = perplexity(result, train_documents, batch_size)
    return result
