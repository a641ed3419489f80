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

import math

import numpy as np
import tensorflow as tf

import tfptm
from tfptm.errors import TfptmError, one_line
from tfptm.jobs.spans import qa_data
from tfptm.jobs.tokens import tagged_data
from tfptm.jobs.loaded_data import PARITY_EXAMPLES, LoadedData, check_classes, dataset_arrays  # noqa: F401
from tfptm.recipes.schema import QUESTION_ANSWERING, TOKEN_CLASSIFICATION  # noqa: F401
from tfptm.jobs.text_data import DEFAULT_MAX_LENGTH, TABLE_SOURCES, learnt_tokenizer, pairs_data, read_contrastive_splits, \
    read_documents, read_pair_splits, read_text_splits, text_data  # noqa: F401  (the loaders of csv/jsonl sections)



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


#: data.source -> loader(data section, seed, tokenizer=, outputs=, vocabulary_size=) -> LoadedData.
LOADERS = {
    "digits": lambda data, seed, **_: _load_arrays(data, seed),
    "arrays": lambda data, seed, **_: _load_arrays(data, seed),
    "image_folder": _image_folder,
    "tfds": _tfds,
    "csv": text_data,
    "jsonl": text_data,
    "conll": tagged_data,
    "squad": qa_data,
}


def load_data(data, seed=0, tokenizer=None, outputs="token_ids", vocabulary_size=None, splits=None, task="multiclass",
              head=None):
    """Loads a recipe's data section as a `LoadedData`.

    Array sources keep `classes` (relabelled 0..n-1) and sample `shots` per
    class (the rest is the test set). Text sources need `tokenizer` (a KerasHub
    preprocessor or tokenizer, or a `tfptm.data.text` tokenizer layer) or
    `vocabulary_size` to learn one; `outputs` names the backbone's inputs
    (`backbone.input`, a dict, for KerasHub backbones); `splits` are the
    tables `read_text_splits` already read; `task` (the head's) says what a
    text table's labels are: class names, lists of labels (`multilabel`) or
    numbers (`regression`). Other sources hold class labels. `head` (the recipe's head section) gives question
    answering its `max_answer_length`.

    Example:
    >>> from tfptm.recipes.schema import Data
    >>> loaded = load_data(Data(source="digits", classes=(3, 8), shots=5, validation_fraction=0.2))
    >>> loaded.num_train, loaded.num_validation, loaded.num_test, loaded.class_names
    (8, 2, 347, ['3', '8'])
    """
    if data.source not in LOADERS:
        raise TfptmError(f"data.source {data.source!r} is not supported by this runner yet; expected one of {', '.join(LOADERS)}")
    extra = {"splits": splits} if splits is not None else {}
    if task in ("multilabel", "regression"):
        if data.source not in TABLE_SOURCES:
            raise TfptmError(f"head.task {task!r} reads its labels from a csv or jsonl table (lists of labels, or "
                             f"numbers); data.source {data.source!r} holds class labels, expected csv or jsonl")
        extra["task"] = task
    loader = pairs_data if data.text_pair_column is not None else LOADERS[data.source]
    if task == TOKEN_CLASSIFICATION:  # conll, or jsonl lines of tokens and tags
        loader = tagged_data
    if task == QUESTION_ANSWERING:
        from tfptm.recipes.schema import Head

        loader, extra["head"] = qa_data, head or Head(task=QUESTION_ANSWERING)
    loaded = loader(data, seed, tokenizer=tokenizer, outputs=outputs, vocabulary_size=vocabulary_size, **extra)
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
                     vocabulary_size=recipe.backbone.args.get("vocabulary_size"), splits=splits, task=recipe.head.task,
                     head=recipe.head)


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
    if recipe.head.task == TOKEN_CLASSIFICATION:  # the tags come from the data; TokenHead has one output per tag
        if recipe.head.num_classes not in (None, len(class_names)):
            raise TfptmError(f"head.num_classes is {recipe.head.num_classes} but {where} has {len(class_names)} tags "
                             f"({', '.join(class_names[:20])}); expected {len(class_names)}, or leave it out")
        return
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
