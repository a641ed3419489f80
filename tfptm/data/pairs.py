"""Text pairs: `(text_a, text_b, label)` from CSV, TSV or JSON Lines, tokenized as BERT does and batched by length.

A pair becomes `[CLS] a [SEP] b [SEP]` with `segment_ids` 0 on `[CLS] a [SEP]`
and 1 on `b [SEP]`, by the KerasHub preprocessor of the checkpoint (its own
pair layout: KerasHub's `TextClassifierPreprocessor` on a tuple of two
strings). When the pair is longer than `max_length`, KerasHub's
`MultiSegmentPacker(truncate="round_robin")` cuts it fairly: the room is
handed out one token at a time to each side in turn, so a short side keeps
all its tokens and the longer side loses the rest.

Files are read by `tfptm.data.tables` (the same errors and skips as
`read_text_table`); an empty text on either side is skipped and counted.

Example:
>>> import keras_hub
>>> vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b", "c"]
>>> tokenizer = keras_hub.models.BertTokenizer(vocabulary=vocabulary)
>>> ds = pair_batches(["a b c"], ["c"], tokenizer=tokenizer, max_length=8, shuffle=False)
>>> batch = next(iter(ds))
>>> batch["token_ids"].numpy().tolist(), batch["segment_ids"].numpy().tolist()
([[2, 5, 6, 7, 3, 7, 3]], [[0, 0, 0, 0, 0, 1, 1]])
"""

import dataclasses
import os

import numpy as np

from tfptm.data.arrays import check_arrays, split_indices
from tfptm.data.loaded import Loaded, skip_or_raise, skip_summary
from tfptm.data.sequences import check_texts
from tfptm.data.tables import FORMATS, _label_ids, _read_utf8, _rows
from tfptm.errors import TfptmError

TEXT_COLUMNS = ("text_a", "text_b")
PAIR_OUTPUTS = ("padding_mask", "segment_ids", "token_ids")


@dataclasses.dataclass
class PairTable:
    """Text pairs with class ids: `labels[i]` is the id of `(texts_a[i], texts_b[i])`, naming `class_names[labels[i]]`.

    `skipped` lists the rows left out (`Skip("file:line", reason)`).

    Example:
    >>> table = PairTable(["q1", "q2", "q3", "q4"], ["a1", "a2", "a3", "a4"], np.array([0, 1, 0, 1]), ["no", "yes"], [], "p.csv")
    >>> train, validation = table.split(0.5, seed=0)
    >>> len(train.texts_a), sorted(validation.labels.tolist())
    (2, [0, 1])
    """

    texts_a: list
    texts_b: list
    labels: np.ndarray
    class_names: list
    skipped: list
    path: str

    def __len__(self):
        return len(self.texts_a)

    def summary(self):
        """A JSON-ready dict: pairs kept, class names and skipped rows."""
        return {"path": self.path, "num_examples": len(self.texts_a), "class_names": list(self.class_names),
                **skip_summary(self.skipped)}

    def split(self, validation_fraction=0.2, seed=0):
        """A stratified `(train, validation)` pair of `PairTable`s, the same for the same seed."""
        train, validation = split_indices(self.labels, validation_fraction, seed, where=f"split of {self.path!r}")
        return tuple(self.subset(index) for index in (train, validation))

    def subset(self, index):
        """The rows at `index` (positions), as a `PairTable`."""
        return PairTable([self.texts_a[i] for i in index], [self.texts_b[i] for i in index], self.labels[index],
                         self.class_names, self.skipped, self.path)


def read_pair_table(path, text_columns=TEXT_COLUMNS, label_column="label", class_names=None, num_classes=None,
                    format=None, strict=False):
    """Reads text pairs and labels from a CSV, TSV or JSON Lines file with two text columns.

    Args:
        path: the file; its extension (`.csv`, `.tsv`, `.jsonl`) picks the format unless `format` is given.
        text_columns: the two column (CSV header) or key (JSON) names, first and second text.
        label_column, class_names, num_classes, format: as in `tfptm.data.read_text_table`.
        strict: make an empty text (either side) an error instead of a counted skip.

    Example:
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "pairs.csv")
    >>> _ = open(path, "w").write('text_a,text_b,label\\n"Opens a file.","Returns a handle.",yes\\n'
    ...                           '"Sorts a list.","Plots a line.",no\\n"Empty?","",no\\n')
    >>> table = read_pair_table(path)
    >>> table.texts_b, table.labels.tolist(), table.class_names, table.summary()["num_skipped"]
    (['Returns a handle.', 'Plots a line.'], [1, 0], ['no', 'yes'], 1)
    """
    path = os.fspath(path)
    columns = list(text_columns) if not isinstance(text_columns, str) else [text_columns]
    if len(columns) != 2 or not all(isinstance(c, str) and c for c in columns) or columns[0] == columns[1]:
        raise TfptmError(f"read_pair_table: text_columns is {text_columns!r}; expected two different column names")
    if label_column in columns:
        raise TfptmError(f"read_pair_table: label_column {label_column!r} is also a text column; expected another column")
    fmt = format or FORMATS.get(os.path.splitext(path)[1].lower())
    if fmt not in ("csv", "tsv", "jsonl"):
        raise TfptmError(f"read_pair_table: cannot tell the format of {path!r}; expected a .csv, .tsv or .jsonl "
                         "file, or format='csv' | 'tsv' | 'jsonl'")
    texts_a, texts_b, raw_labels, skipped = [], [], [], []
    for line, first, second, label in _rows(_read_utf8(path), path, fmt, [*columns, label_column]):
        where = f"{path}:{line}"
        for column, text in zip(columns, (first, second)):
            if not isinstance(text, str):
                raise TfptmError(f"{where}: {column!r} is {text!r}; expected a string")
        if isinstance(label, bool) or not isinstance(label, (str, int)) or str(label).strip() == "":
            raise TfptmError(f"{where}: {label_column!r} is {label!r}; expected a non-empty label (a string or integer)")
        empty = [column for column, text in zip(columns, (first, second)) if not text.strip()]
        if empty:
            skip_or_raise(skipped, where, f"empty {' and '.join(empty)}", strict, what="text")
            continue
        texts_a.append(first)
        texts_b.append(second)
        raw_labels.append((where, str(label).strip()))
    if not texts_a:
        raise TfptmError(f"read_pair_table: {path!r} has no rows with both texts ({len(skipped)} with an empty text); "
                         "expected labelled text pairs")
    class_names, labels = _label_ids(raw_labels, class_names, num_classes, path)
    return PairTable(texts_a, texts_b, labels, class_names, skipped, path)


def pair_preprocessor(tokenizer, sequence_length):
    """A KerasHub `TextClassifierPreprocessor` that packs `(texts_a, texts_b)` into `sequence_length` tokens.

    `tokenizer` is a preset's preprocessor (from `load_preset`; copied with
    the new length, the original is left as it is), a KerasHub tokenizer with
    start/end tokens (`BertTokenizer`...), or a wordpiece
    `tfptm.data.text.TextTokenizer` (a pre-trained artifact's, made into a
    `BertTokenizer` on its vocabulary). Truncation is `"round_robin"`.

    Example:
    >>> import keras_hub, tensorflow as tf
    >>> tokenizer = keras_hub.models.BertTokenizer(vocabulary=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b"])
    >>> packed = pair_preprocessor(tokenizer, 6)(x=(tf.constant(["a a a a"]), tf.constant(["b b"])))
    >>> packed["token_ids"].numpy().tolist()
    [[2, 5, 5, 3, 6, 3]]
    """
    import keras_hub

    from tfptm.data.text import TextTokenizer

    if not isinstance(sequence_length, int) or isinstance(sequence_length, bool) or sequence_length < 4:
        raise TfptmError(f"pair tokenizer: max_length must be an integer >= 4 ([CLS] a [SEP] b [SEP]); got {sequence_length!r}")
    if isinstance(tokenizer, keras_hub.models.TextClassifierPreprocessor):
        # The same tokenizer (its config alone would not carry the vocabulary), packed to the new length.
        return type(tokenizer)(tokenizer=tokenizer.tokenizer, sequence_length=sequence_length, truncate="round_robin")
    if isinstance(tokenizer, TextTokenizer):
        if tokenizer.kind != "wordpiece":
            raise TfptmError("pair tokenizer: a 'words' tokenizer has no [CLS]/[SEP]; expected a wordpiece vocabulary")
        missing = [t for t in ("[CLS]", "[SEP]", "[PAD]", "[MASK]") if t not in tokenizer.vocabulary]
        if missing:
            raise TfptmError(f"pair tokenizer: the vocabulary has no {missing}; expected BERT's special tokens")
        tokenizer = keras_hub.models.BertTokenizer(vocabulary=tokenizer.vocabulary, lowercase=tokenizer.lowercase)
    if not isinstance(tokenizer, keras_hub.tokenizers.Tokenizer):
        raise TfptmError(f"pair tokenizer: {type(tokenizer).__name__} is not a tokenizer; expected a KerasHub "
                         "preprocessor or tokenizer, or a wordpiece tfptm.data.text.tokenizer_layer")
    if any(getattr(tokenizer, name, None) is None for name in ("start_token_id", "end_token_id", "pad_token_id")):
        raise TfptmError(f"pair tokenizer: {type(tokenizer).__name__} has no start, end or padding token; "
                         "expected a tokenizer of a BERT-style checkpoint")
    cls = keras_hub.models.BertTextClassifierPreprocessor if isinstance(tokenizer, keras_hub.models.BertTokenizer) \
        else keras_hub.models.TextClassifierPreprocessor
    return cls(tokenizer=tokenizer, sequence_length=sequence_length, truncate="round_robin")


def tokenize_pairs(texts_a, texts_b, tokenizer, max_length=128, batch_size=256):
    """Every pair packed, trimmed to its real tokens: `(token_ids, segment_ids, starts, lengths, pad_id)`, flat.

    `token_ids[starts[i]: starts[i] + lengths[i]]` is pair `i`, as
    `tfptm.data.sequences.token_batches` takes it. Tokenizing once up front
    gives the pair lengths that length-aware batching sorts by.

    Example:
    >>> import keras_hub
    >>> tokenizer = keras_hub.models.BertTokenizer(vocabulary=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b"])
    >>> ids, segments, starts, lengths, pad = tokenize_pairs(["a", "a b"], ["b", "b"], tokenizer, max_length=8)
    >>> ids.tolist(), segments.tolist(), lengths.tolist()
    ([2, 5, 3, 6, 3, 2, 5, 6, 3, 6, 3], [0, 0, 0, 1, 1, 0, 0, 0, 0, 1, 1], [5, 6])
    """
    import tensorflow as tf

    texts_a, texts_b = check_texts(texts_a, "text pairs: texts_a"), check_texts(texts_b, "text pairs: texts_b")
    if len(texts_a) != len(texts_b):
        raise TfptmError(f"text pairs: {len(texts_a)} first texts but {len(texts_b)} second texts; expected one of each per pair")
    preprocessor = pair_preprocessor(tokenizer, max_length)
    ds = tf.data.Dataset.from_tensor_slices((texts_a, texts_b)).batch(batch_size)
    ds = ds.map(lambda a, b: preprocessor(x=(a, b)), num_parallel_calls=tf.data.AUTOTUNE)
    ids, segments, lengths = [], [], []
    for packed in ds.as_numpy_iterator():
        row_lengths = packed["padding_mask"].sum(axis=1)
        for row_ids, row_segments, length in zip(packed["token_ids"], packed["segment_ids"], row_lengths):
            ids.append(row_ids[:length])
            segments.append(row_segments[:length])
        lengths.extend(row_lengths.tolist())
    lengths = np.array(lengths, dtype="int64")
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype("int64")
    pad_id = int(preprocessor.tokenizer.pad_token_id)
    return np.concatenate(ids).astype("int32"), np.concatenate(segments).astype("int32"), starts, lengths, pad_id


def pair_batches(texts_a, texts_b, labels=None, tokenizer=None, max_length=128, batch_size=32, bucket_boundaries="auto",
                 shuffle=True, seed=None, cache=True, sort_by_length=False, outputs=PAIR_OUTPUTS):  # fmt: skip
    """Tokenizes text pairs (`[CLS] a [SEP] b [SEP]`) and batches them, each batch padded to its longest pair.

    Length-aware as `tfptm.data.text_batches` (the same code batches both):
    training batches hold pairs of similar total length; evaluation batches
    keep the order unless `sort_by_length`. Batches are KerasHub's dict
    (`token_ids`, `padding_mask`, `segment_ids`), with labels if given.

    Args:
        texts_a, texts_b: the first and second texts, one of each per pair.
        labels: one label per pair, or `None`.
        tokenizer: a preset's preprocessor, a KerasHub tokenizer or a wordpiece
            `TextTokenizer` (see `pair_preprocessor`).
        max_length: the most tokens per pair, special tokens included; longer
            pairs are cut fairly between the two texts (round robin).
        outputs: the input names of the backbone (`backbone.input` works).
        batch_size, bucket_boundaries, shuffle, seed, cache, sort_by_length: as in `text_batches`.

    Example:
    >>> import keras_hub
    >>> tokenizer = keras_hub.models.BertTokenizer(vocabulary=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b"])
    >>> ds = pair_batches(["a", "a a a"], ["b", "b"], [0, 1], tokenizer=tokenizer, batch_size=2, shuffle=False)
    >>> x, y = next(iter(ds))
    >>> x["token_ids"].shape, x["padding_mask"].numpy().sum(axis=1).tolist(), y.numpy().tolist()
    (TensorShape([2, 7]), [5, 7], [0, 1])
    """
    from tfptm.data.sequences import _output_names, token_batches

    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise TfptmError(f"pair_batches: batch_size must be a positive integer; got {batch_size!r}")
    names = _output_names(outputs)
    if names is None or "token_ids" not in names:
        raise TfptmError(f"pair_batches: outputs is {outputs!r}; expected the backbone's input names "
                         "(token_ids, padding_mask, segment_ids)")
    ids, segments, starts, lengths, pad_id = tokenize_pairs(texts_a, texts_b, tokenizer, max_length)
    _, labels = check_arrays(np.zeros(len(lengths)), labels, where="pair_batches")
    return token_batches(ids, starts, lengths, labels, pad_id, names, segments=segments, max_length=max_length,
                         batch_size=batch_size, bucket_boundaries=bucket_boundaries, shuffle=shuffle, seed=seed,
                         cache=cache, sort_by_length=sort_by_length)


def pair_dataset(table, tokenizer, validation_fraction=0.2, seed=0, max_length=128, batch_size=32,
                 bucket_boundaries="auto", outputs=PAIR_OUTPUTS):
    """A `PairTable` as a `Loaded`: a stratified split, training batches grouped by length, validation shortest first.

    As `tfptm.data.text_dataset` for single texts; the arguments are those of `pair_batches`.

    Example:
    >>> import keras_hub
    >>> tokenizer = keras_hub.models.BertTokenizer(vocabulary=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b"])
    >>> table = PairTable(["a", "b", "a b", "b a"], ["b", "a", "a", "b"], np.array([0, 1, 0, 1]), ["x", "y"], [], "p.csv")
    >>> loaded = pair_dataset(table, tokenizer, validation_fraction=0.5)
    >>> loaded.num_train, loaded.num_validation, loaded.class_names
    (2, 2, ['x', 'y'])
    """
    if not isinstance(table, PairTable):
        raise TfptmError(f"pair_dataset: expected a PairTable (from read_pair_table); got {type(table).__name__}")
    batching = dict(tokenizer=tokenizer, max_length=max_length, batch_size=batch_size,
                    bucket_boundaries=bucket_boundaries, outputs=outputs, seed=seed)
    train, validation = table.split(validation_fraction, seed) if validation_fraction else (table, None)
    return Loaded(
        train=pair_batches(train.texts_a, train.texts_b, train.labels, shuffle=True, **batching),
        validation=pair_batches(validation.texts_a, validation.texts_b, validation.labels, shuffle=False,
                                sort_by_length=True, **batching) if validation else None,
        class_names=list(table.class_names),
        num_train=len(train),
        num_validation=len(validation) if validation else 0,
        skipped=list(table.skipped),
    )


def pair_arrays(texts_a, texts_b, tokenizer, max_length=128):
    """Pairs as padded NumPy arrays `{"token_ids", "padding_mask", "segment_ids"}` `(pairs, longest)`: inputs for
    `model.predict`, export checks and TFLite (which take arrays, not batches).

    Example:
    >>> import keras_hub
    >>> tokenizer = keras_hub.models.BertTokenizer(vocabulary=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b"])
    >>> x = pair_arrays(["a"], ["b b"], tokenizer, max_length=8)
    >>> x["token_ids"].tolist(), x["segment_ids"].tolist(), x["padding_mask"].dtype
    ([[2, 5, 3, 6, 6, 3]], [[0, 0, 0, 1, 1, 1]], dtype('bool'))
    """
    ids, segments, starts, lengths, pad_id = tokenize_pairs(texts_a, texts_b, tokenizer, max_length)
    longest = int(lengths.max())
    out = {"token_ids": np.full((len(lengths), longest), pad_id, "int32"),
           "segment_ids": np.zeros((len(lengths), longest), "int32"),
           "padding_mask": np.zeros((len(lengths), longest), bool)}
    for row, (start, length) in enumerate(zip(starts, lengths)):
        out["token_ids"][row, :length] = ids[start:start + length]
        out["segment_ids"][row, :length] = segments[start:start + length]
        out["padding_mask"][row, :length] = True
    return out

