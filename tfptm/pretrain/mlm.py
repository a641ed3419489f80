"""Masked language modelling (BERT's objective) for local Transformer encoders.

Each epoch masks the corpus afresh (dynamic masking, in the tf.data
pipeline): 15% of the tokens of every window are selected (padding never is),
and of those 80% become `[MASK]`, 10% a random token and 10% stay as they
were (`keras_hub.layers.MaskedLMMaskGenerator`). The model is the backbone
plus `keras_hub.layers.MaskedLMHead`, whose output layer is tied to the
backbone's token embedding; it predicts only the selected positions, and the
loss is the mean cross-entropy over those positions alone.
"""

import math

import keras
import tensorflow as tf

from tfptm.errors import TfptmError
from tfptm.pretrain.common import (
    Pretrained,
    backbone_inputs,
    corpus_batches,
    feed,
    final_metrics,
    prepare_corpus,
    token_embedding,
    train_all_weights,
)

MASK = "[MASK]"


def mask_generator(vocabulary, sequence_length, mask_rate=0.15):
    """KerasHub's `MaskedLMMaskGenerator` for a wordpiece `vocabulary`: 80% `[MASK]`, 10% random, 10% unchanged.

    `ceil(mask_rate * tokens)` of each window's tokens are selected; padding
    (id 0) never is. Outputs are padded to `ceil(mask_rate * sequence_length)`
    predictions, with `mask_weights` 0 on the padding.

    Example:
    >>> generator = mask_generator(["[PAD]", "[UNK]", "[MASK]", "a", "b"], sequence_length=8, mask_rate=0.25)
    >>> out = generator(tf.constant([[3, 4, 3, 4, 0, 0, 0, 0]]))
    >>> out["mask_positions"].shape, out["mask_weights"].numpy().tolist()
    (TensorShape([1, 2]), [[1.0, 0.0]])
    """
    import keras_hub

    vocabulary = list(vocabulary)
    if MASK not in vocabulary:
        raise TfptmError(f"mask_generator: the vocabulary has no {MASK!r} token; learn it with tfptm.data.text.learn_vocabulary")
    if not 0.0 < mask_rate < 1.0:
        raise TfptmError(f"mask_generator: mask_rate is {mask_rate}; expected 0 < mask_rate < 1 (BERT uses 0.15)")
    return keras_hub.layers.MaskedLMMaskGenerator(
        vocabulary_size=len(vocabulary),
        mask_selection_rate=mask_rate,
        mask_token_id=vocabulary.index(MASK),
        mask_selection_length=math.ceil(mask_rate * sequence_length),
        unselectable_token_ids=[0],
        mask_token_rate=0.8,
        random_token_rate=0.1,
        # Eager calls would otherwise take KerasHub's pure-Python path, which selects each token with
        # probability mask_rate and cuts the excess; the TensorFlow path (always used in tf.data) selects
        # exactly ceil(mask_rate * tokens). One behaviour everywhere.
        _allow_python_workflow=False,
    )


def masked_batches(windows, generator, backbone):
    """Maps batches of token-id windows to `(inputs, mask_ids, mask_weights)`, masking afresh every epoch.

    `inputs` is the backbone's dict with the masked `token_ids` (the padding
    mask comes from the unmasked ids) plus `mask_positions`.

    Pass `windows` reshuffled every epoch (as `masked_lm` does): once a global
    seed is set (`keras.utils.set_random_seed`), TensorFlow restarts the
    masking's random stream with every pass over the data, so it is the new
    order that gives each window new masks; unshuffled data would repeat them.
    """

    def mask(ids):
        masked = generator(ids)
        inputs = feed(backbone, ids)
        inputs["token_ids"] = tf.cast(masked["token_ids"], inputs["token_ids"].dtype)
        inputs["mask_positions"] = tf.cast(masked["mask_positions"], "int32")
        return inputs, masked["mask_ids"], masked["mask_weights"]

    if not isinstance(backbone.input, dict):
        raise TfptmError("masked_lm: the backbone must take KerasHub's input dict (token_ids, padding_mask...)")
    return windows.map(mask, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def masked_lm_model(backbone, vocabulary_size, sequence_length, max_predictions, learning_rate=5e-4):
    """The backbone with a `MaskedLMHead` tied to its token embedding, compiled for masked-token cross-entropy.

    Inputs: the backbone's dict plus `mask_positions` `(batch, max_predictions)`;
    output: logits `(batch, max_predictions, vocabulary_size)`. Train with
    `sample_weight` = the generator's `mask_weights`, so padded predictions
    do not count; the loss averages over the weighted (masked) positions.

    Example:
    >>> import tfptm
    >>> backbone = tfptm.backbones.get("transformer_encoder", vocabulary_size=30, num_layers=1, hidden_dim=8, intermediate_dim=16)
    >>> masked_lm_model(backbone, 30, sequence_length=16, max_predictions=3).output.shape
    (None, 3, 30)
    """
    import keras_hub

    inputs = backbone_inputs(backbone, sequence_length)
    positions = keras.Input(shape=(max_predictions,), dtype="int32", name="mask_positions")
    embedding = token_embedding(backbone)
    if embedding is not None and embedding.input_dim < vocabulary_size:
        raise TfptmError(
            f"masked_lm: the backbone embeds {embedding.input_dim} tokens but the vocabulary has {vocabulary_size}; "
            "expected a backbone built for this vocabulary"
        )
    head = keras_hub.layers.MaskedLMHead(
        vocabulary_size=None if embedding is not None else vocabulary_size,
        token_embedding=embedding,
        intermediate_activation="gelu",
        name="mlm_head",
        dtype="float32",
    )
    logits = head(backbone(inputs), mask_positions=positions)
    model = keras.Model({**inputs, "mask_positions": positions}, logits, name="masked_lm")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="mean_with_sample_weight"),
        weighted_metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    return model


def masked_lm(
    corpus,
    backbone=None,
    vocabulary=None,
    vocabulary_size=8000,
    sequence_length=128,
    mask_rate=0.15,
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
    """Pre-trains a Transformer encoder by masked language modelling on a plain-text corpus.

    Args:
        corpus: a text file (one document per line), a folder of `.txt`
            files, a `tfptm.data.corpus.Corpus`, or a list of strings.
        backbone: an encoder taking KerasHub's input dict; `None` builds
            `transformer_encoder` sized by `backbone_kwargs` (`num_layers`,
            `hidden_dim`...) for the learnt vocabulary.
        vocabulary: the wordpiece vocabulary to use (required with
            `backbone`); `None` learns one of at most `vocabulary_size`
            tokens from the training documents.
        sequence_length: tokens per window; longer documents give several windows.
        mask_rate: the fraction of tokens selected for prediction.
        learning_rate, warmup_fraction: AdamW's peak rate, reached after a
            linear warmup over `warmup_fraction` of all steps and followed by
            a linear decay to 0 (BERT's schedule); `warmup_fraction=None`
            trains at a constant rate with Adam.
        validation_fraction: documents held out to report `validation_loss`
            and `validation_accuracy` (of masked-token prediction).
        seed: the document split and the shuffling order (set
            `keras.utils.set_random_seed` too for reproducible weights and masks).
        callbacks: Keras callbacks for the training run. With
            `tfptm.training.BackupAndRestore(directory)` a killed run, called
            again with the same arguments, resumes from its last backup instead
            of starting over (the vocabulary is learnt again, the same way).

    Returns:
        A `Pretrained` result; save it with `save_pretrained`.

    Example:
    >>> import tfptm
    >>> corpus = ["the cat sat on the mat", "the dog sat on the rug"] * 20
    >>> result = masked_lm(corpus, vocabulary_size=40, sequence_length=8, epochs=1,
    ...                    num_layers=1, hidden_dim=16, intermediate_dim=32)
    >>> result.objective, result.tokenizer(tf.constant(["the cat sat"]))["token_ids"].shape
    ('masked_lm', TensorShape([1, 8]))
    """
    train_documents, validation_documents, tokenizer, backbone = prepare_corpus(
        corpus, backbone, vocabulary, vocabulary_size, sequence_length, validation_fraction, lowercase, seed,
        "transformer_encoder", backbone_kwargs, "masked_lm",
    )
    generator = mask_generator(tokenizer.vocabulary, sequence_length, mask_rate)
    model = masked_lm_model(backbone, len(tokenizer.vocabulary), sequence_length, generator.mask_selection_length, learning_rate)
    train_data, validation_data = corpus_batches(
        train_documents, validation_documents, tokenizer, batch_size, seed, lambda w: masked_batches(w, generator, backbone)
    )
    history = train_all_weights(model, train_data, epochs, learning_rate, warmup_fraction, validation_data, verbose, callbacks)
    tokenizer.outputs = sorted(backbone.input)
    return Pretrained("masked_lm", backbone, tokenizer, model, history, final_metrics(history))

