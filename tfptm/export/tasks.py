"""Exports of the text task kinds (`tfptm.tasks`): each calls `export_checked`, the one exporter, then checks the
raw-string signature its task adds against the Keras model on the same raw inputs.

- `export_pairs`: a pair classifier (`raw_text_pairs(text_a, text_b)`), `check_pair_signature`.
- `export_embedder`: a sentence embedder (`embed(text)`, the vocabulary beside the TFLite files).
- `export_question_answerer`: a question answerer (`answer(question, context)`, windows of long contexts in the
  graph), `tfptm.tasks.spans.check_answer_signature`.

Token classifiers need nothing more than `export_checked` with a `tfptm.tasks.tokens.WordTokenizer` (their
`raw_text` is checked by `tfptm.tasks.tokens.check_raw_text`).
"""

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from tfptm.data.pairs import pair_arrays
from tfptm.errors import TfptmError, one_line
from tfptm.evaluation.metrics import predict_classes
from tfptm.export.exporter import export_checked
from tfptm.export.parity import compare_vectors
from tfptm.export.serving import RAW_TEXT_PAIRS
from tfptm.export.signatures import MIN_COSINE
from tfptm.files import write_json_atomic
from tfptm.tasks.embeddings import OUTPUT, check_texts_arg, describe, embed, sequence_length, serving_tokenizer, \
    special_ids, tokenized_inputs, vocabulary_of
from tfptm.data.squad import encode_windows
from tfptm.tasks.pairs import PairTokenizer, pair_tokenizer
from tfptm.tasks.spans import check_answer_signature, is_question_answerer, span_tokenizer


def export_pairs(model, tokenizer, export_dir, model_name, texts_a, texts_b, labels=None, max_length=128,
                 quantizations=("dynamic",), class_names=None, version=None, int8_io=False, record=None):
    """Exports a pair classifier (SavedModel with `raw_text_pairs`, TFLite on token ids) and checks every artifact.

    Calls `tfptm.export.export_checked` (SavedModel `serving_default` on
    token ids and each `.tflite` checked against the Keras model on the
    tokenized pairs, int8 calibrated on them), then also checks the
    two-string signature: `raw_text_pairs(text_a, text_b)` against the Keras
    model on the same pairs tokenized outside the graph, reported as
    `parity["saved_model_raw_text_pairs"]`. TFLite takes token ids: tokenize
    on the device, or with `tfptm.data.pairs.pair_arrays`.

    Args:
        model: from `pair_classifier` (trained).
        tokenizer: what the model was trained with (see `pair_tokenizer`).
        texts_a, texts_b, labels: pairs to check with (and calibrate int8 with); labels optional.
        max_length: the serving tokenizer's length (pairs are padded to it).
        export_dir, model_name, quantizations, class_names, version, int8_io, record: as in `export_checked`
            (`record` is written before the raw-text check, so it holds the token-id parity only).

    Returns `export_checked`'s summary with the extra parity entry.

    Example (see the module docstring for a whole run):
    >>> export_pairs(None, None, "export", "pairs", ["a"], ["b"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    tfptm.errors.TfptmError: export_pairs: model is NoneType; expected a pair classifier ...
    """
    if not isinstance(model, keras.Model):
        raise TfptmError(f"export_pairs: model is {type(model).__name__}; expected a pair classifier from pair_classifier")

    serving_tokenizer = pair_tokenizer(tokenizer, max_length)
    x = pair_arrays(texts_a, texts_b, serving_tokenizer.preprocessor, max_length)
    x = {k: v for k, v in x.items() if k in model.input}
    summary = export_checked(
        model, export_dir, model_name, quantizations=quantizations, class_names=class_names,
        tokenizer=serving_tokenizer, version=version, representative_data=x if "int8" in quantizations else None,
        check_data=(x, np.asarray(labels)) if labels is not None else x, int8_io=int8_io, record=record,
    )
    summary["parity"]["saved_model_raw_text_pairs"] = check_pair_signature(
        summary["artifacts"]["saved_model"], model, serving_tokenizer, texts_a, texts_b)
    return summary


def check_pair_signature(path, model, tokenizer, texts_a, texts_b, tolerance=1e-5, batch_size=64):
    """Calls a SavedModel's `raw_text_pairs` on raw pairs and compares it with `model` on the same pairs.

    The Keras side tokenizes outside the graph (`tfptm.data.pairs.pair_arrays`,
    each pair padded only to the longest of the lot), so this checks the
    in-graph tokenizer too. Returns a JSON-ready dict; `ok` when every
    probability is within `tolerance` and every class id agrees.

    Example:
    >>> check_pair_signature("/no/such/model", None, None, ["a"], ["b"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    tfptm.errors.TfptmError: SavedModel '/no/such/model' cannot be loaded: ...
    """
    try:
        signatures = tf.saved_model.load(str(path)).signatures
    except Exception as error:  # TF raises OSError, NotFoundError, ValueError... for unloadable models
        raise TfptmError(f"SavedModel {str(path)!r} cannot be loaded: {one_line(error)}") from None
    if RAW_TEXT_PAIRS not in signatures:
        raise TfptmError(f"SavedModel {str(path)!r} has no {RAW_TEXT_PAIRS!r} signature (it has {sorted(signatures)}); "
                         "expected one exported with a PairTokenizer")
    texts_a, texts_b = [str(t) for t in texts_a], [str(t) for t in texts_b]
    served = [signatures[RAW_TEXT_PAIRS](text_a=tf.constant(texts_a[i:i + batch_size]),
                                         text_b=tf.constant(texts_b[i:i + batch_size]))
              for i in range(0, len(texts_a), batch_size)]
    if not isinstance(tokenizer, PairTokenizer):
        raise TfptmError(f"check_pair_signature: tokenizer is {type(tokenizer).__name__}; expected the PairTokenizer exported")
    x = pair_arrays(texts_a, texts_b, tokenizer.preprocessor, tokenizer.sequence_length)
    expected = model.predict({k: v for k, v in x.items() if k in model.input}, verbose=0)
    key = "values" if "values" in served[0] else "probabilities"
    outputs = np.concatenate([s[key].numpy() for s in served])
    max_diff = float(np.max(np.abs(outputs - expected)))
    report = {"max_abs_diff": max_diff, "tolerance": tolerance, "num_examples": len(texts_a)}
    if "class_ids" in served[0]:
        ids = np.concatenate([s["class_ids"].numpy() for s in served])
        report["class_ids_agree"] = bool(np.array_equal(ids, predict_classes(expected)))
    report["ok"] = max_diff <= tolerance and report.get("class_ids_agree", True)
    return report


def export_embedder(model, export_dir, model_name, tokenizer=None, quantizations=("float32",), check_texts=None,
                    version=None, max_length=None, saved_model_export=True):  # fmt: skip
    """Exports an embedder for TF Serving and for phones, checks every artifact against it; returns a summary.

    Calls `tfptm.export.export_checked`, the one exporter (staged: all files
    appear together or none), which writes:

    - `<export_dir>/<model_name>/<version>/`: a SavedModel with signatures
      `embed` (a 1-D string tensor `text` -> `embeddings`, the tokenizer
      running in the graph; only with a `tokenizer`), and `serving_default` /
      `token_ids` (the model's token inputs -> `embeddings`).
    - `<export_dir>/<model_name>.<quantization>.tflite` per quantization, on
      token ids (`padding_mask`, `segment_ids`, `token_ids`; any length), with
      `<model_name>.<quantization>.json` metadata (task `embeddings`,
      dimension, pooling, normalisation, inputs, special token ids, max length).
    - `<export_dir>/<model_name>.vocab.txt`: the tokenizer's vocabulary, one
      token per line (line number = token id), for tokenizing on the device.
    - `<export_dir>/<model_name>.export.json`: this summary.

    With `check_texts` (a list of strings, e.g. a few hundred held-out
    texts), each artifact is compared with the Keras model on their token ids
    (`parity["saved_model"]`, `parity["tflite_<quantization>"]`), and the
    SavedModel's `embed` signature on the raw strings with `embed(model, ...)`
    (`parity["saved_model_embed"]`): each reports the least and mean cosine
    similarity and the largest absolute difference, `ok` when the least cosine
    reaches `tfptm.export.signatures.MIN_COSINE[kind]`. They also calibrate
    `"int8"`, which needs them.

    Example:
    >>> import tempfile, tfptm
    >>> from tfptm.data.text import tokenizer_layer
    >>> backbone = tfptm.backbones.get("token_embeddings", vocabulary_size=8, embedding_dim=4)
    >>> tokenizer = tokenizer_layer(["", "[UNK]", "red", "green", "apple", "pear"], 8, kind="words")
    >>> from tfptm.tasks.embeddings import build_embedder
    >>> summary = export_embedder(build_embedder(backbone), tempfile.mkdtemp(), "tiny", tokenizer, quantizations=())
    >>> sorted(summary["signatures"]), sorted(summary["artifacts"])
    (['embed', 'serving_default', 'token_ids'], ['saved_model', 'vocabulary'])
    """
    settings = describe(model)
    quantizations = list(quantizations)
    length = max_length or sequence_length(tokenizer)
    served = serving_tokenizer(tokenizer, model) if tokenizer is not None else None
    texts = None if check_texts is None else check_texts_arg(check_texts)
    if texts is not None and tokenizer is None:
        raise TfptmError("export_embedder: check_texts need the tokenizer; pass tokenizer=")
    tokens = tokenized_inputs(model, texts, tokenizer, length) if texts is not None else None
    vocabulary = vocabulary_of(tokenizer) if tokenizer is not None else None
    files = {"vocabulary": (f"{model_name}.vocab.txt", "\n".join(vocabulary) + "\n")} if vocabulary is not None else {}
    metadata = {**settings, "max_length": length, **(special_ids(tokenizer) if tokenizer is not None else {}),
                "vocabulary": files["vocabulary"][0] if files else None}
    summary = export_checked(
        model, export_dir, model_name, saved_model_export=saved_model_export, quantizations=quantizations,
        tokenizer=served, version=version, representative_data=tokens if "int8" in quantizations else None,
        check_data=tokens, metadata=metadata, record={"task": OUTPUT, **settings, "max_length": length}, files=files)
    summary = {"task": OUTPUT, **settings, "max_length": length, **summary}
    if texts is not None and served is not None and "saved_model" in summary["artifacts"]:
        got = _saved_model_vectors(summary["artifacts"]["saved_model"], texts)
        summary["parity"]["saved_model_embed"] = compare_vectors(got, embed(model, texts, tokenizer, max_length=length),
                                                                 MIN_COSINE["saved_model"])
        write_json_atomic(Path(export_dir) / f"{model_name}.export.json", summary)  # with the raw-string check
    return summary


def _saved_model_vectors(path, texts, batch_size=64):
    """The `embed` signature of the SavedModel at `path` on raw `texts`."""
    signature = tf.saved_model.load(str(path)).signatures["embed"]
    return np.concatenate([signature(text=tf.constant(list(texts[i: i + batch_size]), tf.string))[OUTPUT].numpy()
                           for i in range(0, len(texts), batch_size)])


def export_question_answerer(model, tokenizer, export_dir, model_name, questions, contexts, quantizations=("dynamic",),
                             max_length=None, doc_stride=None, max_question_length=None, max_answer_length=None,
                             version=None, int8_io=False, record=None):
    """Exports a question answerer (SavedModel with `answer`, TFLite on token ids) and checks every artifact.

    Calls `tfptm.export.export_checked` with the windows of `(questions,
    contexts)` as check data (and int8 calibration data): the SavedModel's
    `serving_default` and each `.tflite` file against the Keras model's span
    logits (`compare_outputs`); then checks the string signature `answer`
    against `answer_texts` on the Keras model (`check_answer_signature`),
    reported as `parity["saved_model_answer"]`.

    Args:
        model: from `question_answerer` (trained).
        tokenizer: a `SpanTokenizer`, or what `span_tokenizer` takes; the sizes override its own.
        questions, contexts: examples to check with (and calibrate int8 with).
        export_dir, model_name, quantizations, version, int8_io, record: as in `export_checked` (`record` is
            written before the `answer` check, so it holds the token-id parity only).

    Returns `export_checked`'s summary with the extra parity entry.

    Example (see tests/test_spans.py for a whole run):
    >>> export_question_answerer(None, None, "export", "qa", ["Who?"], ["Ann."])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    tfptm.errors.TfptmError: export_question_answerer: model is NoneType; expected a question answerer ...
    """
    if not isinstance(model, keras.Model) or not is_question_answerer(model):
        raise TfptmError(f"export_question_answerer: model is {type(model).__name__}; expected a question answerer "
                         "from question_answerer")
    serving = span_tokenizer(tokenizer, max_length, doc_stride, max_question_length, max_answer_length)
    sizes = serving.sizes()
    windows = encode_windows(questions, contexts, None, serving.pieces, sizes["max_length"], sizes["doc_stride"],
                             sizes["max_question_length"])
    x = {k: v for k, v in windows.x.items() if k in model.input}
    summary = export_checked(
        model, export_dir, model_name, quantizations=quantizations, class_names=["start", "end"], tokenizer=serving,
        version=version, representative_data=x if "int8" in quantizations else None, check_data=x, int8_io=int8_io,
        record=record,
    )
    summary["parity"]["saved_model_answer"] = check_answer_signature(
        summary["artifacts"]["saved_model"], model, serving, questions, contexts)
    return summary
