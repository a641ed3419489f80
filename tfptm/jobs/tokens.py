"""A token classification recipe's data (`head.task: token_classification`, `data.source: conll` or `jsonl`):
tagged sentences read and checked before the backbone loads, packed by the checkpoint's WordPiece vocabulary,
scored with seqeval, and the raw-string signature checked after export.

Example:
>>> import os, tempfile
>>> from tfptm.recipes.schema import Data
>>> path = os.path.join(tempfile.mkdtemp(), "tags.conll")
>>> _ = open(path, "w").write("".join(f"w{i} B-X\\nv O\\n\\n" for i in range(10)))
>>> train, test = read_tagged_splits(Data(source="conll", path=path), seed=0)
>>> len(train), len(test), train.tag_names
(8, 2, ['O', 'B-X', 'I-X'])
"""

import numpy as np

from tfptm.data.pipeline import trimmed_batches
from tfptm.data.tagging import encode_tagged, read_tagged
from tfptm.errors import TfptmError
from tfptm.jobs.loaded_data import PARITY_EXAMPLES, LoadedData
from tfptm.recipes.schema import DEFAULT_MAX_LENGTH


def read_tagged_splits(data, seed):
    """The training and test `TagTable`s of a data section: `data.test_path` read with the training tags, else
    `test_fraction` of the sentences held out. Cheap: read before the backbone loads."""
    options = dict(format="conll" if data.source == "conll" else "jsonl", tokens_key=data.tokens_key,
                   tags_key=data.tags_key, strict=data.strict)
    train = read_tagged(data.path, **options)
    if len(train.tag_names) < 2:  # O alone
        raise TfptmError(f"data.path {data.path!r}: every word is tagged O; expected at least one entity tag")
    if data.test_path:
        test = read_tagged(data.test_path, scheme=train.scheme, tag_names=train.tag_names, **options)
        return train, test
    return train.split(data.test_fraction, seed)


def tagged_data(data, seed, tokenizer=None, splits=None, **_):
    """Tagged sentences as `LoadedData`: pipelines of packed pieces with first-piece labels
    (`tfptm.data.tagging.encode_tagged`), batches cut to their longest sentence; `tokenizer` becomes the
    `tfptm.tasks.tokens.WordTokenizer` an export builds into the SavedModel (`raw_text`), and `test_table` the
    test sentences `test_metrics` scores."""
    from tfptm.tasks.tokens import word_tokenizer

    if tokenizer is None:
        raise TfptmError("head.task token_classification: words are cut into a checkpoint's WordPiece pieces; "
                         "expected backbone.name a BERT-style KerasHub or Hugging Face preset (or a pre-trained "
                         "artifact directory with its tokenizer)")
    train, test = splits or read_tagged_splits(data, seed)
    served = word_tokenizer(tokenizer, data.max_length or DEFAULT_MAX_LENGTH)
    validation = None
    if data.validation_fraction:
        train, validation = train.split(data.validation_fraction, seed)

    def batches(table, shuffle):
        arrays = encode_tagged(table.sentences, table.tags, served.pieces, served.sequence_length, table.tag_names)
        return trimmed_batches(arrays.x, arrays.labels, data.batch_size, shuffle=shuffle, seed=seed)

    return LoadedData(
        train=batches(train, True), validation=batches(validation, False) if validation else None,
        test=batches(test, False), class_names=list(train.tag_names), num_train=len(train),
        num_validation=len(validation) if validation else 0, num_test=len(test),
        skipped=list(train.skipped) + list(test.skipped), tokenizer=served,
        test_texts=([" ".join(words) for words in test.sentences[:PARITY_EXAMPLES]],), test_table=test,
    )


def tagged_test_metrics(model, data):
    """seqeval's entity-level scores of `model` on the test sentences (`tfptm.tasks.tokens.token_metrics`)."""
    from tfptm.tasks.tokens import token_metrics

    table, tokenizer = data.test_table, data.tokenizer
    return token_metrics(model, table.sentences, table.tags, data.class_names, tokenizer.pieces,
                         tokenizer.sequence_length, table.scheme)


def check_raw_tags(summary, model, tokenizer, tag_names, texts, limit=256):
    """Adds `parity["saved_model_raw_text"]`: the SavedModel's `raw_text` against `model` on the same strings
    (`tfptm.tasks.tokens.check_raw_text`); nothing to check (no SavedModel, no texts) leaves the summary as it is."""
    from tfptm.tasks.tokens import check_raw_text

    if "saved_model" not in summary["artifacts"] or not len(texts):
        return summary
    summary["parity"]["saved_model_raw_text"] = check_raw_text(
        summary["artifacts"]["saved_model"], model, tokenizer, tag_names, list(np.asarray(texts))[:limit])
    return summary
