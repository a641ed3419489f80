"""A recipe's csv/jsonl data sections: single texts, text pairs and contrastive rows, read and checked before the
backbone loads (`read_*_splits`), then tokenized and batched by length (`text_data`, `pairs_data`).

Text is tokenized by the backbone's tokenizer (a KerasHub preset's preprocessor) or, for tfptm's local text
backbones, by a vocabulary learnt from the training split; each batch is padded only to its longest text.
"""

import dataclasses

import tfptm
from tfptm.errors import TfptmError
from tfptm.jobs.loaded_data import PARITY_EXAMPLES, LoadedData, check_classes
from tfptm.recipes.schema import DEFAULT_MAX_LENGTH, QUESTION_ANSWERING, TABLE_SOURCES, TOKEN_CLASSIFICATION  # noqa: F401  (for tfptm.jobs.data)



def read_text_splits(data, seed, task="multiclass"):
    """The training and test `TextTable`s of a csv/jsonl data section (test split off when there is no test file).

    `task` (the head's) says what the labels are (`tfptm.data.read_text_table`).
    Cheap (no tokenizer, no model), so a recipe's data is read and checked before its backbone loads.
    """
    if data.text_pair_column is not None:
        return read_pair_splits(data, seed)
    if task == TOKEN_CLASSIFICATION:
        from tfptm.jobs.tokens import read_tagged_splits

        return read_tagged_splits(data, seed)
    if task == QUESTION_ANSWERING:
        from tfptm.jobs.spans import read_qa_splits

        return read_qa_splits(data, seed)
    columns = dict(text_column=data.text_column, label_column=data.label_column, strict=data.strict, task=task)
    return _train_and_test(lambda path, **kw: tfptm.data.read_text_table(path, **columns, **kw), data, seed,
                           classes=task != "regression")


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
    return _train_and_test(lambda path, **kw: read_pair_table(path, **columns, **kw), data, seed)


def _train_and_test(read, data, seed, classes=True):
    """`(train, test)` tables: `data.test_path` read with the training classes, else `test_fraction` split off
    (stratified; with `classes`, at least two are required first). Skips are counted once, on the training side."""
    table = read(data.path)
    if data.test_path:
        return table, read(data.test_path, class_names=table.class_names)
    if classes:
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


def pairs_data(data, seed, tokenizer=None, outputs="token_ids", splits=None, **_):
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


def text_data(data, seed, tokenizer=None, outputs="token_ids", vocabulary_size=None, splits=None, task="multiclass"):
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
