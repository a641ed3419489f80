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

import dataclasses
import os

import numpy as np
import tensorflow as tf

from tfptm.data.loaded import skip_or_raise, skip_summary
from tfptm.data.pipeline import finish
from tfptm.data.tables import FORMATS, _read_utf8, _rows
from tfptm.data.sequences import check_texts, token_ids_function, tokenize_all
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



@dataclasses.dataclass
class ContrastiveTable:
    """Rows of `(anchor, positive[, negative])` texts, no labels; `skipped` lists the rows left out.

    Example:
    >>> table = ContrastiveTable(["q1", "q2", "q3", "q4"], ["d1", "d2", "d3", "d4"], None, [], "t.csv")
    >>> train, test = table.split(0.25, seed=0)
    >>> len(train), len(test), test.negatives
    (3, 1, None)
    """

    anchors: list
    positives: list
    negatives: list | None
    skipped: list
    path: str

    def __len__(self):
        return len(self.anchors)

    def summary(self):
        """A JSON-ready dict: rows kept and skipped."""
        return {"path": self.path, "num_examples": len(self), **skip_summary(self.skipped)}

    def split(self, fraction, seed=0):
        """A random `(rest, held_out)` pair of tables, `fraction` of the rows held out (at least one each)."""
        held = int(round(fraction * len(self)))
        if not 0 < held < len(self):
            raise TfptmError(f"{self.path!r}: {len(self)} rows cannot be split {1 - fraction:g}/{fraction:g}; "
                             "expected enough rows for both parts")
        order = np.random.default_rng(seed).permutation(len(self))
        return self.subset(np.sort(order[held:])), self.subset(np.sort(order[:held]))

    def subset(self, index):
        """The rows at `index` (positions), as a `ContrastiveTable`."""
        pick = lambda texts: None if texts is None else [texts[i] for i in index]
        return ContrastiveTable(pick(self.anchors), pick(self.positives), pick(self.negatives), self.skipped, self.path)


def read_contrastive_table(path, anchor_column="anchor", positive_column="positive", negative_column=None,
                           format=None, strict=False):
    """Reads `(anchor, positive[, negative])` texts from a CSV, TSV or JSON Lines file (no labels).

    A row with an empty text is skipped and counted (an error with `strict`).

    Example:
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "pairs.jsonl")
    >>> _ = open(path, "w").write('{"q": "open a file", "d": "Opens a file."}\\n{"q": "", "d": "Plots."}\\n')
    >>> table = read_contrastive_table(path, "q", "d")
    >>> table.anchors, table.positives, table.summary()["num_skipped"]
    (['open a file'], ['Opens a file.'], 1)
    """
    path = os.fspath(path)
    columns = [c for c in (anchor_column, positive_column, negative_column) if c is not None]
    if len(set(columns)) != len(columns):
        raise TfptmError(f"read_contrastive_table: columns {columns}; expected different column names")
    fmt = format or FORMATS.get(os.path.splitext(path)[1].lower())
    if fmt not in ("csv", "tsv", "jsonl"):
        raise TfptmError(f"read_contrastive_table: cannot tell the format of {path!r}; expected a .csv, .tsv or "
                         ".jsonl file, or format='csv' | 'tsv' | 'jsonl'")
    rows, skipped = [], []
    for line, *texts in _rows(_read_utf8(path), path, fmt, columns):
        where = f"{path}:{line}"
        for column, text in zip(columns, texts):
            if not isinstance(text, str):
                raise TfptmError(f"{where}: {column!r} is {text!r}; expected a string")
        empty = [column for column, text in zip(columns, texts) if not text.strip()]
        if empty:
            skip_or_raise(skipped, where, f"empty {' and '.join(empty)}", strict, what="text")
            continue
        rows.append(texts)
    if not rows:
        raise TfptmError(f"read_contrastive_table: {path!r} has no rows with every text ({len(skipped)} with an empty "
                         f"text); expected rows of {columns}")
    anchors, positives, *negatives = (list(column) for column in zip(*rows))
    return ContrastiveTable(anchors, positives, negatives[0] if negatives else None, skipped, path)
