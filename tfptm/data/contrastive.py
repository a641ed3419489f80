"""Batches of text pairs (and triplets) for contrastive training of sentence embeddings.

Each example is an anchor text, its positive (a text that should embed
near it) and optionally one hard negative (a text that should not). A
batch is a dict `{"anchor": inputs, "positive": inputs[, "negative": inputs]}`
where each `inputs` is what the text backbone takes (by default KerasHub's
`token_ids`, `padding_mask`, `segment_ids`), padded to the longest text of
that column in that batch. `tfptm.tasks.embeddings.ContrastiveModel` trains on
these with `model.fit`: every other positive (and negative) in the batch is
a negative for an anchor, so batches are shuffled every epoch.
"""

import numpy as np
import tensorflow as tf

from tfptm.data.pipeline import finish
from tfptm.data.sequences import token_ids_function, tokenize_all
from tfptm.data.text import OUTPUTS
from tfptm.errors import TfptmError

COLUMNS = ("anchor", "positive", "negative")


def contrastive_batches(anchors, positives, negatives=None, tokenizer=None, max_length=128, batch_size=32,
                        outputs=OUTPUTS, shuffle=True, seed=None, cache=True):  # fmt: skip
    """Tokenizes `(anchor, positive[, negative])` texts and batches them for contrastive training.

    Args:
        anchors, positives: lists of strings, one positive per anchor.
        negatives: `None`, or one hard negative per anchor.
        tokenizer: a `tfptm.data.text.TextTokenizer`, a KerasHub tokenizer or
            preprocessor (its `[CLS]`/`[SEP]` are added), as in `tfptm.data.text_batches`.
        max_length: the most tokens per text, special tokens included; longer texts are cut.
        batch_size: pairs per batch: each anchor is scored against
            `batch_size` positives (plus as many negatives), so larger batches
            give the loss more negatives.
        outputs: the inputs the backbone takes (`backbone.input`, a dict, works).
        shuffle, seed, cache: as in `tfptm.data.from_arrays` (the pairs are
            reshuffled every epoch, so each anchor meets other negatives).

    Example:
    >>> from tfptm.data.text import tokenizer_layer
    >>> tokenizer = tokenizer_layer(["", "[UNK]", "a", "b", "c"], 4)
    >>> ds = contrastive_batches(["a", "b c"], ["a b", "c"], tokenizer=tokenizer, batch_size=2, shuffle=False,
    ...                          outputs=["token_ids", "padding_mask"])
    >>> batch = next(iter(ds))
    >>> sorted(batch), batch["anchor"]["token_ids"].numpy().tolist(), batch["positive"]["padding_mask"].numpy().tolist()
    (['anchor', 'positive'], [[2, 0], [3, 4]], [[True, True], [True, False]])
    """
    if not isinstance(max_length, int) or isinstance(max_length, bool) or max_length < 1:
        raise TfptmError(f"contrastive_batches: max_length must be a positive integer; got {max_length!r}")
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise TfptmError(f"contrastive_batches: batch_size must be a positive integer; got {batch_size!r}")
    names = sorted(outputs) if isinstance(outputs, dict) else ([outputs] if isinstance(outputs, str) else list(outputs))
    if "token_ids" not in names or not set(names) <= set(OUTPUTS):
        raise TfptmError(f"contrastive_batches: outputs {names}; expected token_ids and optionally padding_mask, segment_ids")
    columns = {"anchor": anchors, "positive": positives}
    if negatives is not None:
        columns["negative"] = negatives
    columns = {name: check_texts(texts, f"contrastive_batches: {name}s") for name, texts in columns.items()}
    sizes = {name: len(texts) for name, texts in columns.items()}
    if len(set(sizes.values())) != 1:
        raise TfptmError(f"contrastive_batches: {sizes}; expected one positive (and negative) per anchor")
    tokenize, pad_id = token_ids_function(tokenizer, max_length)
    tokens, spans = {}, {}
    for name, texts in columns.items():
        flat, starts, lengths = tokenize_all(texts, tokenize)
        tokens[name] = tf.constant(flat)
        spans[name] = (starts, lengths)

    def gather(example):
        return {name: tokens[name][start: start + length] for name, (start, length) in example.items()}

    def inputs(ids):
        mask = tf.not_equal(ids, pad_id)
        lengths = tf.reduce_sum(tf.cast(mask, tf.int32), axis=1)  # padding is only at the end
        every = {"token_ids": ids, "padding_mask": tf.sequence_mask(lengths, tf.shape(ids)[1]),
                 "segment_ids": tf.zeros_like(ids)}
        return {key: every[key] for key in names}

    def batch(ds):
        ds = ds.map(gather, num_parallel_calls=tf.data.AUTOTUNE)
        ds = ds.padded_batch(batch_size, padding_values={name: tf.constant(pad_id, tf.int32) for name in columns})
        return ds.map(lambda x: {name: inputs(ids) for name, ids in x.items()})

    ds = tf.data.Dataset.from_tensor_slices(spans)
    return finish(ds, len(columns["anchor"]), batch_size, shuffle=shuffle, seed=seed, cache=cache, batch=batch)


def check_texts(texts, where):
    """`texts` (a list or 1-D array of strings) as a NumPy object array, or one `TfptmError` naming `where`.

    Example:
    >>> check_texts(["a", "b"], "texts").tolist()
    ['a', 'b']
    """
    if isinstance(texts, (str, bytes)):
        raise TfptmError(f"{where}: got one string; expected a list of strings")
    try:
        texts = list(np.asarray(texts, dtype=object).reshape(-1)) if not isinstance(texts, list) else texts
    except (TypeError, ValueError):
        raise TfptmError(f"{where}: got {type(texts).__name__}; expected a list of strings") from None
    if not texts:
        raise TfptmError(f"{where}: empty; expected at least one string")
    bad = next((i for i, t in enumerate(texts) if not isinstance(t, str)), None)
    if bad is not None:
        raise TfptmError(f"{where}: item {bad} is {type(texts[bad]).__name__}; expected strings")
    return np.array(texts, dtype=object)
