"""A question answering recipe's data (`head.task: question_answering`, `data.source: squad`): SQuAD-style
questions read and checked before the backbone loads, cut into windows of the checkpoint's word pieces
(`data.max_length`, `data.doc_stride`), scored with SQuAD's exact match and F1, and the `answer` signature
checked after export.

Example:
>>> import json, os, tempfile
>>> from tfptm.recipes.schema import Data
>>> path = os.path.join(tempfile.mkdtemp(), "qa.json")
>>> paragraphs = [{"context": f"Ann ran {i}.", "qas": [{"id": str(i), "question": "Who ran?",
...                "answers": [{"text": "Ann", "answer_start": 0}]}]} for i in range(10)]
>>> _ = open(path, "w").write(json.dumps({"data": [{"title": "t", "paragraphs": paragraphs}]}))
>>> train, test = read_qa_splits(Data(source="squad", path=path), seed=0)
>>> len(train), len(test), set(train.contexts) & set(test.contexts)
(8, 2, set())
"""

from tfptm.data.pipeline import trimmed_batches
from tfptm.data.squad import encode_windows, read_squad
from tfptm.errors import TfptmError
from tfptm.jobs.loaded_data import PARITY_EXAMPLES, LoadedData

CLASS_NAMES = ["start", "end"]  # what a question answerer's two outputs per token are (its labels file)


def read_qa_splits(data, seed):
    """The training and test `QATable`s of a data section: `data.test_path` read as it is, else about
    `test_fraction` of the contexts held out with all their questions. Cheap: read before the backbone loads."""
    train = read_squad(data.path, strict=data.strict)
    if data.test_path:
        return train, read_squad(data.test_path, strict=data.strict)
    return train.split(data.test_fraction, seed)


def serving_sizes(data, head):
    """The window sizes of a recipe: `data.max_length` (default `tfptm.tasks.spans.DEFAULTS`'), `data.doc_stride`,
    and `head.max_answer_length`."""
    from tfptm.tasks.spans import DEFAULTS

    return {"max_length": data.max_length or DEFAULTS["max_length"], "doc_stride": data.doc_stride,
            "max_answer_length": head.max_answer_length}


def qa_data(data, seed, tokenizer=None, splits=None, head=None, **_):
    """Questions as `LoadedData`: windows of `[CLS] question [SEP] context [SEP]` labelled with the answer's first
    and last piece (`tfptm.data.squad.encode_windows`), batches cut to their longest window; `tokenizer` becomes the
    `tfptm.tasks.spans.SpanTokenizer` an export builds into the SavedModel (`answer`), and `test_table` the test
    questions `test_metrics` scores."""
    from tfptm.tasks.spans import span_tokenizer

    if tokenizer is None:
        raise TfptmError("head.task question_answering: questions and contexts are cut into a checkpoint's WordPiece "
                         "pieces; expected backbone.name a BERT-style KerasHub or Hugging Face preset (or a pre-trained "
                         "artifact directory with its tokenizer)")
    train, test = splits or read_qa_splits(data, seed)
    served = span_tokenizer(tokenizer, **serving_sizes(data, head))
    validation = None
    if data.validation_fraction:
        train, validation = train.split(data.validation_fraction, seed)
    sizes = served.sizes()

    def batches(table, shuffle):
        windows = encode_windows(table.questions, table.contexts, table.answers, served.pieces, sizes["max_length"],
                                 sizes["doc_stride"], sizes["max_question_length"])
        return trimmed_batches(windows.x, windows.labels, data.batch_size, shuffle=shuffle, seed=seed,
                               trim_labels=False), len(windows)

    (train_ds, num_windows) = batches(train, True)
    return LoadedData(
        train=train_ds, validation=batches(validation, False)[0] if validation else None,
        test=batches(test, False)[0], class_names=list(CLASS_NAMES), num_train=num_windows,
        num_validation=len(validation) if validation else 0, num_test=len(test),
        skipped=list(train.skipped) + list(test.skipped), tokenizer=served,
        test_texts=(test.questions[:PARITY_EXAMPLES], test.contexts[:PARITY_EXAMPLES]), test_table=test,
    )


def qa_test_metrics(model, data):
    """SQuAD's exact match and F1 (percent) of `model`'s answers to the test questions
    (`tfptm.tasks.spans.answer_metrics`)."""
    from tfptm.tasks.spans import answer_metrics

    return answer_metrics(model, data.test_table, data.tokenizer)


def check_raw_answers(summary, model, tokenizer, questions, contexts, limit=256):
    """Adds `parity["saved_model_answer"]`: the SavedModel's `answer` against `model` on the same questions
    (`tfptm.tasks.spans.check_answer_signature`); nothing to check leaves the summary as it is."""
    from tfptm.tasks.spans import check_answer_signature

    if "saved_model" not in summary["artifacts"] or not len(questions):
        return summary
    summary["parity"]["saved_model_answer"] = check_answer_signature(
        summary["artifacts"]["saved_model"], model, tokenizer, list(questions)[:limit], list(contexts)[:limit])
    return summary
