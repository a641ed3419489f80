"""A recipe's data section loaded: one `LoadedData` (train, validation and test pipelines) for every source.

Arrays (`digits`, `arrays`) are sampled and split in memory; image folders,
TFDS data sets and text tables come from the `tfptm.data` loaders as
tf.data pipelines. Without a separate test set, `test_fraction` of the
examples is held out (stratified), and `validation_fraction` more when asked.
Text is tokenized by the backbone's tokenizer (a KerasHub preset's
preprocessor) or, for tfptm's local text backbones, by a vocabulary learnt
from the training split; each batch is padded only to its longest text.

Example:
>>> from tfptm.recipes.schema import Data
>>> loaded = load_data(Data(source="digits", classes=(3, 8), shots=5))
>>> loaded.num_train, loaded.class_names, loaded.summary()["num_skipped"]
(10, ['3', '8'], 0)
"""

import dataclasses
import math

import numpy as np
import tensorflow as tf

import tfptm
from tfptm.data.loaded import skip_summary
from tfptm.errors import TfptmError, one_line

DEFAULT_MAX_LENGTH = 128
TABLE_SOURCES = ("csv", "jsonl")  # sources whose labels may be lists (multilabel) or numbers (regression)
PARITY_EXAMPLES = 1024  # pipeline examples an export's parity check (and int8 calibration) runs on; arrays: all


@dataclasses.dataclass
class LoadedData:
    """A data section loaded: batched `train`, optional `validation` and a fixed-order `test` pipeline.

    `x_train`... `y_test` hold the arrays for in-memory sources (else `None`);
    `tokenizer` is what turned text into token ids (else `None`); `skipped`
    lists the inputs the loaders left out (see `summary`). Made by `load_data`.

    Example:
    >>> import numpy as np
    >>> batches = tfptm.data.from_arrays(np.zeros((4, 2)), np.array([0, 1, 0, 1]), batch_size=2, shuffle=False)
    >>> data = LoadedData(batches, None, batches, ["a", "b"], num_train=4, num_validation=0, num_test=4)
    >>> data.test_arrays()[0].shape, data.summary()["num_test"]
    ((4, 2), 4)
    """

    train: tf.data.Dataset
    validation: tf.data.Dataset | None
    test: tf.data.Dataset
    class_names: list
    num_train: int
    num_validation: int
    num_test: int
    source: str = ""
    skipped: list = dataclasses.field(default_factory=list)
    tokenizer: object = None
    x_train: object = None
    y_train: np.ndarray | None = None
    x_test: object = None
    y_test: np.ndarray | None = None
    test_texts: tuple | None = None  # text pairs: (texts_a, texts_b) of the test split, for raw-text signature checks

    def summary(self):
        """A JSON-ready dict for summary.json: examples per split, class names and skipped inputs."""
        return {"source": self.source, "num_train": self.num_train, "num_validation": self.num_validation,
                "num_test": self.num_test, "class_names": list(self.class_names), **skip_summary(self.skipped)}

    def test_arrays(self, limit=PARITY_EXAMPLES):
        """The test examples as arrays `(x, y)` (a dict `x` for dict inputs), for export checks:
        all of them for array sources, else the first `limit` of the test pipeline."""
        if self.x_test is not None:
            return self.x_test, self.y_test
        return dataset_arrays(self.test, limit)

    def train_arrays(self, limit=PARITY_EXAMPLES):
        """Training examples as arrays, as `test_arrays`, for int8 calibration (`representative_data: train`)."""
        if self.x_train is not None:
            return self.x_train, self.y_train
        return dataset_arrays(self.train, limit)


def dataset_arrays(dataset, limit=PARITY_EXAMPLES):
    """The first `limit` examples of a batched `(x, y)` dataset as arrays.

    Batches padded to different lengths (text) are padded with zeros to the
    longest; a padding mask, where there is one, marks the padding as such.

    Example:
    >>> import tensorflow as tf
    >>> ds = tf.data.Dataset.from_tensor_slices(([[1, 2], [3, 0]], [0, 1])).batch(1)
    >>> x, y = dataset_arrays(ds)
    >>> x.tolist(), y.tolist()
    ([[1, 2], [3, 0]], [0, 1])
    """
    xs, ys, count = [], [], 0
    for x, y in dataset:
        xs.append(tf.nest.map_structure(lambda t: t.numpy(), x))
        ys.append(y.numpy())
        count += len(ys[-1])
        if count >= limit:
            break
    if isinstance(xs[0], dict):
        x = {key: _concat_padded([batch[key] for batch in xs]) for key in xs[0]}
    else:
        x = _concat_padded(xs)
    return _head(x, limit), np.concatenate(ys)[:limit]


def _concat_padded(arrays):
    if arrays[0].ndim >= 2 and len({a.shape[1:] for a in arrays}) > 1:
        longest = max(a.shape[1] for a in arrays)
        arrays = [np.pad(a, [(0, 0), (0, longest - a.shape[1])] + [(0, 0)] * (a.ndim - 2)) for a in arrays]
    return np.concatenate(arrays)


def _head(x, limit):
    return {k: v[:limit] for k, v in x.items()} if isinstance(x, dict) else x[:limit]


# --- in-memory sources -------------------------------------------------------------------------------


def _digits(data):
    images, labels = tfptm.datasets.load_digits()
    return (images, labels), None, [str(c) for c in (data.classes or range(10))]


def _arrays(data):
    train = _read_npz(data.path, "data.path")
    test = _read_npz(data.test_path, "data.test_path") if data.test_path else None
    return train, test, None


def _read_npz(path, key):
    try:
        with np.load(path, allow_pickle=False) as arrays:
            if "x" not in arrays or "y" not in arrays:
                raise TfptmError(f"{key}: {path!r} holds {sorted(arrays.files)}; expected arrays named x and y")
            return arrays["x"], arrays["y"]
    except (OSError, ValueError) as error:
        raise TfptmError(f"{key}: cannot read {path!r} as a .npz file with x and y: {one_line(error)}") from None


ARRAY_SOURCES = {"digits": _digits, "arrays": _arrays}


def _load_arrays(data, seed):
    (x, y), test, class_names = ARRAY_SOURCES[data.source](data)
    if data.classes:
        x, y = tfptm.data.select_classes(x, y, data.classes)
        test = tfptm.data.select_classes(*test, data.classes) if test else None
        class_names = class_names or [str(c) for c in data.classes]
    x, y = tfptm.data.check_arrays(x, y, where=f"data ({data.source})")
    if data.shots:
        (x, y), rest = tfptm.data.sample_per_class(x, y, data.shots, seed=seed)
        test = test or rest
    elif test is None:
        (x, y), test = _split(x, y, data.test_fraction, seed, "data.test_fraction")
    validation = None
    if data.validation_fraction:
        (x, y), validation = _split(x, y, data.validation_fraction, seed, "data.validation_fraction")
    class_names = class_names or [str(c) for c in range(int(max(y.max(), test[1].max())) + 1)]
    batches = lambda a, b, shuffle: tfptm.data.from_arrays(a, b, batch_size=data.batch_size, shuffle=shuffle, seed=seed)
    return LoadedData(
        train=batches(x, y, True), validation=batches(*validation, False) if validation else None,
        test=batches(*test, False), class_names=class_names, num_train=len(y),
        num_validation=len(validation[1]) if validation else 0, num_test=len(test[1]),
        x_train=x, y_train=y, x_test=test[0], y_test=test[1],
    )


def _split(x, y, fraction, seed, key):
    try:
        return tfptm.data.train_test_split(x, y, fraction, seed=seed)
    except ValueError as error:  # scikit-learn: too few examples of a class to stratify
        raise TfptmError(f"{key}: cannot split {len(x)} examples by class: {one_line(error)}") from None


# --- pipeline sources ---------------------------------------------------------------------------------


def _held_out(data):
    """The share held out of the training source: validation, plus test when there is no test set."""
    separate_test = data.test_path if data.source != "tfds" else data.test_split
    return data.validation_fraction + (0.0 if separate_test else data.test_fraction)


def _carve(heldout, count, validation_share, batch_size):
    """Splits a fixed-order held-out pipeline into `(validation, test, num_validation, num_test)`.

    Every example goes to validation or test in turn, at the ratio asked; the
    loaders keep held-out examples in class order, so both get every class.
    """
    if not validation_share:
        return None, heldout, 0, count
    numbered = heldout.unbatch().enumerate()

    def is_validation(i, example):
        i = tf.cast(i, tf.float64)
        return tf.math.floor((i + 1) * validation_share) > tf.math.floor(i * validation_share)

    def is_test(i, example):
        return tf.logical_not(is_validation(i, example))

    def drop_number(i, example):
        return example

    def part(keep, size):
        picked = numbered.filter(keep).map(drop_number).apply(tf.data.experimental.assert_cardinality(size))
        return picked.batch(batch_size).prefetch(tf.data.AUTOTUNE)

    num_validation = math.floor(count * validation_share)
    num_test = count - num_validation
    return part(is_validation, num_validation), part(is_test, num_test), num_validation, num_test


def _image_folder(data, seed, **_):
    common = dict(image_size=tuple(data.image_size), seed=seed, batch_size=data.batch_size, strict=data.strict)
    loaded = tfptm.data.image_folder(data.path, validation_fraction=_held_out(data) or None,
                                     augment=data.augment or None, **common)
    if data.test_path:
        test = tfptm.data.image_folder(data.test_path, validation_fraction=None, shuffle=False, **common)
        _same_classes(loaded.class_names, test.class_names, "data.test_path")
        return _pipelines(data, loaded, test.train, test.num_train, test.skipped)
    return _pipelines(data, loaded)


def _tfds(data, seed, **_):
    data_dir = data.path or "~/tensorflow_datasets"
    held = _held_out(data)
    split, heldout = data.split, None
    if held:
        if "[" in data.split:
            raise TfptmError(
                f"data.split {data.split!r}: expected a plain split name (such as 'train') when test or validation "
                "examples are split off it; or give data.test_split and validation_fraction 0"
            )
        cut = round(100 * (1 - held))
        split, heldout = f"{data.split}[:{cut}%]", f"{data.split}[{cut}%:]"
    common = dict(image_size=tuple(data.image_size) if data.image_size else None, batch_size=data.batch_size, seed=seed)
    loaded = tfptm.data.tfds_dataset(data.name, data_dir, split, heldout, augment=data.augment or None, **common)
    if loaded.train.element_spec[0].dtype == tf.string:
        raise TfptmError(f"data.name {data.name!r}: a text data set; this runner reads text from csv or jsonl files "
                         "(write the TFDS examples to a CSV with text and label columns)")
    if data.test_split:
        test = tfptm.data.tfds_dataset(data.name, data_dir, data.test_split, shuffle=False, **common)
        return _pipelines(data, loaded, test.train, test.num_train)
    return _pipelines(data, loaded)


def _pipelines(data, loaded, test=None, num_test=0, test_skipped=()):
    """`LoadedData` from a loader's `Loaded` (train + held out) and an optional separate test pipeline."""
    if test is None:
        share = data.validation_fraction / (data.validation_fraction + data.test_fraction)
        validation, test, num_validation, num_test = _carve(loaded.validation, loaded.num_validation, share,
                                                            data.batch_size)
    else:
        validation, num_validation = loaded.validation, loaded.num_validation
    return LoadedData(train=loaded.train, validation=validation, test=test, class_names=list(loaded.class_names),
                      num_train=loaded.num_train, num_validation=num_validation, num_test=num_test,
                      skipped=list(loaded.skipped) + list(test_skipped))


def _same_classes(train_names, test_names, key):
    if list(train_names) != list(test_names):
        raise TfptmError(f"{key}: the test set has classes {list(test_names)}; expected the training classes "
                         f"{list(train_names)}")


def read_text_splits(data, seed, task="multiclass"):
    """The training and test `TextTable`s of a csv/jsonl data section (test split off when there is no test file).

    `task` (the head's) says what the labels are (`tfptm.data.read_text_table`).
    Cheap (no tokenizer, no model), so a recipe's data is read and checked before its backbone loads.
    """
    if data.text_pair_column is not None:
        return read_pair_splits(data, seed)
    columns = dict(text_column=data.text_column, label_column=data.label_column, strict=data.strict, task=task)
    table = tfptm.data.read_text_table(data.path, **columns)
    if data.test_path:
        return table, tfptm.data.read_text_table(data.test_path, class_names=table.class_names, **columns)
    if task != "regression":
        check_classes(table.class_names, f"data.path {data.path!r}")
    train, test = table.split(data.test_fraction, seed)
    return train, dataclasses.replace(test, skipped=[])


def read_pair_splits(data, seed):
    """The training and test `PairTable`s of a text-pair data section (`text_column`, `text_pair_column`, labels).

    As `read_text_splits` (which calls it when `data.text_pair_column` is set): cheap, read before the backbone loads.

    Example:
    >>> import os, tempfile
    >>> from tfptm.recipes.schema import Data
    >>> path = os.path.join(tempfile.mkdtemp(), "pairs.csv")
    >>> _ = open(path, "w").write("q,a,label\\n" + "".join(f"q{i},a{i},{i % 2}\\n" for i in range(10)))
    >>> train, test = read_pair_splits(Data(source="csv", path=path, text_column="q", text_pair_column="a"), seed=0)
    >>> len(train), len(test), test.class_names
    (8, 2, ['0', '1'])
    """
    from tfptm.data.pairs import read_pair_table

    columns = dict(text_columns=(data.text_column, data.text_pair_column), label_column=data.label_column,
                   strict=data.strict)
    table = read_pair_table(data.path, **columns)
    if data.test_path:
        return table, read_pair_table(data.test_path, class_names=table.class_names, **columns)
    check_classes(table.class_names, f"data.path {data.path!r}")
    train, test = table.split(data.test_fraction, seed)
    return train, dataclasses.replace(test, skipped=[])


def read_contrastive_splits(data, seed):
    """The training and held-out `ContrastiveTable`s of an embedding recipe's data section.

    `text_column` is the anchor, `text_pair_column` its positive,
    `negative_column` (optional) a hard negative; without `test_path`,
    `test_fraction` of the rows is held out.

    Example:
    >>> import os, tempfile
    >>> from tfptm.recipes.schema import Data
    >>> path = os.path.join(tempfile.mkdtemp(), "pairs.csv")
    >>> _ = open(path, "w").write("q,d\\n" + "".join(f"q{i},d{i}\\n" for i in range(10)))
    >>> train, test = read_contrastive_splits(Data(source="csv", path=path, text_column="q", text_pair_column="d"), seed=0)
    >>> len(train), len(test)
    (8, 2)
    """
    from tfptm.data.contrastive import read_contrastive_table

    columns = dict(anchor_column=data.text_column, positive_column=data.text_pair_column,
                   negative_column=data.negative_column, strict=data.strict)
    table = read_contrastive_table(data.path, **columns)
    if data.test_path:
        return table, read_contrastive_table(data.test_path, **columns)
    return table.split(data.test_fraction, seed)


def _pairs(data, seed, tokenizer=None, outputs="token_ids", splits=None, **_):
    """Text pairs as `LoadedData`: `[CLS] a [SEP] b [SEP]` by the checkpoint's tokenizer, batched by pair length;
    `tokenizer` becomes the `PairTokenizer` an export builds into the SavedModel (`raw_text_pairs`)."""
    from tfptm.data.pairs import pair_batches, pair_dataset
    from tfptm.tasks.pairs import pair_tokenizer

    if tokenizer is None:
        raise TfptmError("data.text_pair_column: text pairs are packed as [CLS] a [SEP] b [SEP] by a BERT-style "
                         "checkpoint's tokenizer; expected backbone.name a KerasHub or Hugging Face preset (or a "
                         "pre-trained artifact directory)")
    train, test = splits or read_pair_splits(data, seed)
    max_length = data.max_length or DEFAULT_MAX_LENGTH
    served = pair_tokenizer(tokenizer, max_length)
    batching = dict(tokenizer=served.preprocessor, max_length=max_length, batch_size=data.batch_size, outputs=outputs)
    loaded = pair_dataset(train, validation_fraction=data.validation_fraction, seed=seed,
                          bucket_boundaries="auto" if data.length_buckets else None, **batching)
    test_batches = pair_batches(test.texts_a, test.texts_b, test.labels, shuffle=False, **batching)
    return LoadedData(train=loaded.train, validation=loaded.validation, test=test_batches,
                      class_names=list(train.class_names), num_train=loaded.num_train,
                      num_validation=loaded.num_validation, num_test=len(test), skipped=list(train.skipped) + list(test.skipped),
                      tokenizer=served, test_texts=(test.texts_a[:PARITY_EXAMPLES], test.texts_b[:PARITY_EXAMPLES]))


def _text(data, seed, tokenizer=None, outputs="token_ids", vocabulary_size=None, splits=None, task="multiclass"):
    train, test = splits or read_text_splits(data, seed, task)
    max_length = data.max_length or DEFAULT_MAX_LENGTH
    if tokenizer is None:
        tokenizer = learnt_tokenizer(train.texts, vocabulary_size, max_length, outputs)
    batching = dict(max_length=max_length, batch_size=data.batch_size, outputs=outputs)
    loaded = tfptm.data.text_dataset(train, tokenizer, validation_fraction=data.validation_fraction, seed=seed,
                                     bucket_boundaries="auto" if data.length_buckets else None, **batching)
    test_batches = tfptm.data.text_batches(test.texts, test.labels, tokenizer=tokenizer, shuffle=False, sort_by_length=True,
                                           **batching)
    return LoadedData(train=loaded.train, validation=loaded.validation, test=test_batches,
                      class_names=list(train.class_names), num_train=loaded.num_train,
                      num_validation=loaded.num_validation, num_test=len(test.texts),
                      skipped=list(train.skipped) + list(test.skipped), tokenizer=tokenizer)


def check_classes(class_names, where):
    """Raises a `TfptmError` unless the data has at least two classes: one class leaves nothing to learn.

    Example:
    >>> try:
    ...     check_classes(["spam"], "data.path 'mail.csv'")
    ... except TfptmError as error:
    ...     print(error)
    data.path 'mail.csv': every example has the label 'spam' (1 class); expected at least 2 classes
    """
    if len(class_names) < 2:
        found = f"the label {class_names[0]!r} (1 class)" if class_names else "no labels"
        raise TfptmError(f"{where}: every example has {found}; expected at least 2 classes")


def learnt_tokenizer(texts, vocabulary_size, max_length, outputs="token_ids"):
    """A wordpiece tokenizer layer with a vocabulary of at most `vocabulary_size` learnt from `texts`.

    `outputs` names the backbone's inputs (`tfptm.data.text.tokenizer_layer`): the tokenizer an export
    builds into the SavedModel then feeds a dict-input backbone directly.

    Example:
    >>> learnt_tokenizer(["a cat sat", "a dog sat"], 20, 8).sequence_length
    8
    """
    if not vocabulary_size:
        raise TfptmError("backbone.args.vocabulary_size: a local text backbone learns its vocabulary from the "
                         "training texts; expected vocabulary_size (e.g. 8000)")
    vocabulary = tfptm.data.text.learn_vocabulary(texts, int(vocabulary_size))
    return tfptm.data.text.tokenizer_layer(vocabulary, max_length, outputs=outputs)


def read_documents(data):
    """The texts of a pre-training data section, for language-model objectives (labels, if any, unused).

    Source `text` is a corpus (`tfptm.data.corpus.read_corpus`: one document
    per line, or a folder of `.txt` files); `csv` and `jsonl` are tables read
    with `tfptm.data.read_text_table` (so they need their label column too).

    Example:
    >>> import os, tempfile
    >>> from tfptm.recipes.schema import Data
    >>> path = os.path.join(tempfile.mkdtemp(), "corpus.txt")
    >>> _ = open(path, "w").write("the cat sat\\n\\nthe dog ran\\n")
    >>> read_documents(Data(source="text", path=path))
    ['the cat sat', 'the dog ran']
    """
    if data.source == "text":
        return tfptm.data.corpus.read_corpus(data.path).documents
    if data.source not in ("csv", "jsonl"):
        raise TfptmError(f"pretrain.data.source {data.source!r}: language-model pre-training reads text, csv or jsonl "
                         "files in this runner")
    return tfptm.data.read_text_table(data.path, text_column=data.text_column, label_column=data.label_column,
                                      strict=data.strict).texts


#: data.source -> loader(data section, seed, tokenizer=, outputs=, vocabulary_size=) -> LoadedData.
LOADERS = {
    "digits": lambda data, seed, **_: _load_arrays(data, seed),
    "arrays": lambda data, seed, **_: _load_arrays(data, seed),
    "image_folder": _image_folder,
    "tfds": _tfds,
    "csv": _text,
    "jsonl": _text,
}


def load_data(data, seed=0, tokenizer=None, outputs="token_ids", vocabulary_size=None, splits=None, task="multiclass"):
    """Loads a recipe's data section as a `LoadedData`.

    Array sources keep `classes` (relabelled 0..n-1) and sample `shots` per
    class (the rest is the test set). Text sources need `tokenizer` (a KerasHub
    preprocessor or tokenizer, or a `tfptm.data.text` tokenizer layer) or
    `vocabulary_size` to learn one; `outputs` names the backbone's inputs
    (`backbone.input`, a dict, for KerasHub backbones); `splits` are the
    tables `read_text_splits` already read; `task` (the head's) says what a
    text table's labels are: class names, lists of labels (`multilabel`) or
    numbers (`regression`). Other sources hold class labels.

    Example:
    >>> from tfptm.recipes.schema import Data
    >>> loaded = load_data(Data(source="digits", classes=(3, 8), shots=5, validation_fraction=0.2))
    >>> loaded.num_train, loaded.num_validation, loaded.num_test, loaded.class_names
    (8, 2, 347, ['3', '8'])
    """
    if data.source not in LOADERS:
        raise TfptmError(f"data.source {data.source!r} is not supported by this runner yet; expected one of {', '.join(LOADERS)}")
    extra = {"splits": splits} if splits is not None else {}
    if task not in ("multiclass", "binary"):
        if data.source not in TABLE_SOURCES:
            raise TfptmError(f"head.task {task!r} reads its labels from a csv or jsonl table (lists of labels, or "
                             f"numbers); data.source {data.source!r} holds class labels, expected csv or jsonl")
        extra["task"] = task
    loader = _pairs if data.text_pair_column is not None else LOADERS[data.source]
    loaded = loader(data, seed, tokenizer=tokenizer, outputs=outputs, vocabulary_size=vocabulary_size,
                                  **extra)
    loaded.source = data.source
    if data.strict and loaded.skipped:  # the loaders raise on the first bad input; this catches any they counted
        first = loaded.skipped[0]
        raise TfptmError(f"{first.where}: {first.reason}; expected no skipped inputs (data.strict is true)")
    return loaded


def load_recipe_data(recipe, backbone=None, tokenizer=None, splits=None):
    """`load_data` for the recipe: text is tokenized by `tokenizer` (or a learnt vocabulary) into `backbone`'s inputs."""
    inputs = backbone.input if backbone is not None else None
    return load_data(recipe.data, recipe.seed, tokenizer=tokenizer,
                     outputs=inputs if isinstance(inputs, dict) else "token_ids",
                     vocabulary_size=recipe.backbone.args.get("vocabulary_size"), splits=splits, task=recipe.head.task)


def check_data_agrees(recipe, class_names):
    """Raises a `TfptmError`, before any training, where the recipe's head disagrees with the data's classes.

    The number of classes comes from the data; a `head.num_classes` that says
    otherwise, a binary head on other than two classes, or data with a single
    class is one error naming both sides.

    Example:
    >>> from tfptm.recipes.validate import validate
    >>> recipe = validate({"backbone": {"name": "x"}, "data": {"source": "csv", "path": "train.csv"},
    ...                    "head": {"num_classes": 2}})
    >>> try:
    ...     check_data_agrees(recipe, ["a", "b", "c"])
    ... except TfptmError as error:
    ...     print(error)
    head.num_classes is 2 but data.path 'train.csv' has 3 classes ('a', 'b', 'c'); expected 3, or leave head.num_classes out (it comes from the data)
    """
    where = data_description(recipe.data)
    if recipe.head.task == "regression":  # one target column: one output
        if recipe.head.num_classes not in (None, 1):
            raise TfptmError(f"head.num_classes is {recipe.head.num_classes} but {where} has one target column "
                             f"({recipe.data.label_column!r}); expected 1, or leave head.num_classes out")
        return
    check_classes(class_names, where)
    count, shown = len(class_names), ", ".join(repr(str(name)) for name in class_names[:20])
    shown += ", ..." if count > 20 else ""
    if recipe.head.task == "multilabel" and recipe.head.num_classes and recipe.head.num_classes != count:
        raise TfptmError(f"head.num_classes is {recipe.head.num_classes} but {where} has {count} labels ({shown}); "
                         f"expected {count}, or leave head.num_classes out (it comes from the data)")
    if recipe.head.task == "binary" and count != 2:
        raise TfptmError(f"head.task is binary but {where} has {count} classes ({shown}); expected 2 classes, "
                         "or head.task multiclass")
    if recipe.head.task == "multiclass" and recipe.head.num_classes and recipe.head.num_classes != count:
        raise TfptmError(f"head.num_classes is {recipe.head.num_classes} but {where} has {count} classes ({shown}); "
                         f"expected {count}, or leave head.num_classes out (it comes from the data)")


def data_description(data):
    """How an error names the data: `data.path 'x.csv'`, `data.name 'mnist'`, or the source."""
    if data.path and data.source != "tfds":
        return f"data.path {data.path!r}"
    return f"data.name {data.name!r}" if data.name else f"data ({data.source})"
