"""Extractive question answering: the answer to a question is a span of its context (SQuAD).

The model is a text backbone on KerasHub's inputs with a `SpanHead`: a dense
layer of two units on every token, output `span_logits` `(batch, steps, 2)`
(start and end logits, float32). Padding positions are set to `MASK_LOGIT`
(-1e4: finite, so TFLite computes the same numbers). `[CLS]`, the question
and the `[SEP]`s keep their logits: `[CLS]` is the label of windows that do
not hold the answer (`tfptm.data.squad`), so the loss needs it; decoding
(`best_span`) only ever picks context tokens. The loss (`SpanLoss`) is the
mean of the start and end cross-entropies over the positions.

Long contexts are cut into overlapping windows (`tfptm.data.squad.
encode_windows`; `doc_stride` is BERT's: the step between window starts).
An example's answer is the best span over all its windows: start <= end,
both on context tokens, at most `max_answer_length` pieces, the highest
start + end logit (`score`, a sum of logits, not a probability). The span's
first and last tokens map to their words, the words to character offsets,
and the answer is `context[answer_start:answer_end]`: whole words, as the
context spells them. Scores are SQuAD v1.1's exact match and F1, in percent
(`squad_metrics`).

Serving (`serving_archive`, used by `tfptm.export.export_checked`): the
SavedModel's `serving_default` and `token_ids` take token ids and return
`span_logits`, `start_logits` and `end_logits`; `answer` takes `question`
and `context` string tensors `(batch,)`, and cuts, packs and windows them in
the graph exactly as training did (`SpanTokenizer`: every window of every
example in one model call), then picks each example's best span with segment
ops; it returns `answer_text`, `answer_start`, `answer_end` (character
offsets into the context, end exclusive) and `score`. An example with no
possible span (an empty context) gets `""`, -1, -1 and `NO_ANSWER_SCORE`.
TFLite files take token ids and return the span logits.

The whole path (tests/test_spans.py runs it on MiniLM):

    backbone, preprocessor = tfptm.backbones.presets.load_preset(minilm_dir, sequence_length=256)
    tokenizer = span_tokenizer(preprocessor, max_length=256, doc_stride=128)
    train = tfptm.data.squad.read_squad("train.json")
    windows = tfptm.data.squad.encode_windows(train.questions, train.contexts, train.answers, tokenizer.pieces,
                                               max_length=256, doc_stride=128)
    model = question_answerer(backbone)
    model.fit(windows.x, windows.labels, epochs=2)
    squad_metrics(predict_answers(model, test.questions, test.contexts, tokenizer), test.answers)
    export_question_answerer(model, tokenizer, "export", "qa", test.questions, test.contexts)

Example (decoding made-up logits of one window `[CLS] who ran ? [SEP] ann ran . [SEP]`, then scoring):
>>> from tfptm.data.squad import encode_windows
>>> from tfptm.data.words import WordPieces
>>> pieces = WordPieces(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "who", "ran", "?", "ann", "."])
>>> windows = encode_windows(["Who ran?"], ["Ann ran."], None, pieces, max_length=16)
>>> start_logits = np.array([[9.0, 0, 0, 0, 0, 5.0, 1.0, 0, 0]])  # [CLS] is never an answer
>>> end_logits = np.array([[9.0, 0, 0, 0, 0, 4.0, 1.0, 0, 0]])
>>> first, last, score = best_span(start_logits, end_logits, windows.word_ids >= 0)
>>> start, end = windows.word_offsets[0][windows.word_ids[0, first[0]], 0], windows.word_offsets[0][windows.word_ids[0, last[0]], 1]
>>> "Ann ran."[start:end], float(score[0]), squad_metrics(["Ann"], [["ann", "Ann ran"]])["exact_match"]
('Ann', 9.0, 100.0)
"""

import collections
import dataclasses
import re
import string

import keras
import numpy as np
import tensorflow as tf

from tfptm.data.squad import check_window_sizes, encode_windows
from tfptm.data.words import word_pieces
from tfptm.errors import TfptmError

TASK = "question_answering"
OUTPUT = "span_logits"  # the output layer's name: how a saved model is known to be a question answerer
MASK_LOGIT = -1e4  # the start and end logits of padding positions (finite: TFLite matches it)
NO_ANSWER_SCORE = -1e9  # the score of an example with no possible span (no context token)
DEFAULTS = {"max_length": 256, "doc_stride": 128, "max_question_length": 64, "max_answer_length": 30}


@keras.saving.register_keras_serializable(package="tfptm")
class SpanLogits(keras.layers.Layer):
    """`(batch, steps, 2)` start and end logits with padding positions (`padding_mask` false) set to `MASK_LOGIT`.

    Example:
    >>> SpanLogits()(np.ones((1, 3, 2), "float32"), np.array([[1, 1, 0]])).numpy()[0, :, 0].tolist()
    [1.0, 1.0, -10000.0]
    """

    def __init__(self, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)

    def call(self, logits, padding_mask=None):
        logits = keras.ops.cast(logits, "float32")
        if padding_mask is None:
            return logits
        real = keras.ops.expand_dims(keras.ops.cast(padding_mask, "bool"), -1)
        return keras.ops.where(real, logits, MASK_LOGIT)

    def compute_output_shape(self, logits_shape, padding_mask_shape=None):
        return logits_shape


@dataclasses.dataclass(frozen=True)
class SpanHead:
    """A start/end head: `(batch, steps, dim)` features to `(batch, steps, 2)` logits, padding masked.

    Used like `tfptm.Head` by `tfptm.build_model`: `head(features, padding_mask)`, `head.loss()`, `head.metrics()`.

    Example:
    >>> import keras
    >>> SpanHead()(keras.Input((None, 8)), keras.Input((None,), dtype="int32")).shape
    (None, None, 2)
    """

    dropout: float = 0.1
    task: str = TASK

    def __post_init__(self):
        if not 0.0 <= self.dropout < 1.0:
            raise TfptmError(f"SpanHead: dropout is {self.dropout}; expected 0 <= dropout < 1")

    def __call__(self, features, padding_mask=None):
        if len(features.shape) != 3:
            raise TfptmError(f"SpanHead: features of shape {features.shape}; expected per-token features "
                             "(batch, steps, dim) from a text backbone")
        x = keras.layers.Dropout(self.dropout, name="head_dropout")(features) if self.dropout else features
        x = keras.layers.Dense(2, name="span_dense", dtype="float32")(x)
        layer = SpanLogits(name=OUTPUT)
        return layer(x) if padding_mask is None else layer(x, padding_mask)

    def loss(self):
        """`SpanLoss`: labels `(batch, 2)` start and end positions."""
        return SpanLoss()

    def metrics(self):
        return [SpanAccuracy(name="span_accuracy")]


@keras.saving.register_keras_serializable(package="tfptm")
class SpanLoss(keras.losses.Loss):
    """The mean of the start and end cross-entropies over the positions: labels `(batch, 2)` (start, end token
    positions), predictions `(batch, steps, 2)` logits.

    Example (start logits peak at the label, end logits flat over 2 positions: (0 + log 2) / 2):
    >>> logits = np.array([[[100.0, 0.0], [0.0, 0.0]]], "float32")
    >>> round(float(SpanLoss()(np.array([[0, 1]]), logits)), 4)
    0.3466
    """

    def __init__(self, name="span_loss", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        y_true = keras.ops.cast(keras.ops.reshape(y_true, (-1, 2)), "int32")
        y_pred = keras.ops.cast(y_pred, "float32")
        start = keras.losses.sparse_categorical_crossentropy(y_true[:, 0], y_pred[:, :, 0], from_logits=True)
        end = keras.losses.sparse_categorical_crossentropy(y_true[:, 1], y_pred[:, :, 1], from_logits=True)
        return (start + end) / 2.0


@keras.saving.register_keras_serializable(package="tfptm")
class SpanAccuracy(keras.metrics.Mean):
    """The share of windows whose most likely start and most likely end are both the labelled ones.

    Example:
    >>> metric = SpanAccuracy()
    >>> logits = np.array([[[5, 0], [0, 5]], [[5, 5], [0, 0]]], "float32")
    >>> metric.update_state(np.array([[0, 1], [0, 1]]), logits)
    >>> float(metric.result())
    0.5
    """

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = keras.ops.cast(keras.ops.reshape(y_true, (-1, 2)), "int32")
        predicted = keras.ops.cast(keras.ops.argmax(y_pred, axis=1), "int32")  # (batch, 2)
        correct = keras.ops.all(keras.ops.equal(predicted, y_true), axis=-1)
        super().update_state(keras.ops.cast(correct, "float32"), sample_weight=sample_weight)


def question_answerer(backbone, dropout=0.1, optimizer="adam", learning_rate=5e-5, name="question_answerer"):
    """An extractive question answerer: `backbone` (per-token features) with a `SpanHead`, compiled; every
    `tfptm.training` strategy applies (LoRA included), as for `tfptm.build_model` models.

    Example:
    >>> import tfptm
    >>> backbone = tfptm.backbones.get("transformer_encoder", vocabulary_size=20, num_layers=1, hidden_dim=8, intermediate_dim=16)
    >>> model = question_answerer(backbone)
    >>> model.output.shape, model.layers[-1].name
    ((None, None, 2), 'span_logits')
    """
    from tfptm.build import build_model

    if not isinstance(backbone, keras.Model) or not isinstance(backbone.input, dict) or not {
            "token_ids", "padding_mask"} <= set(backbone.input):  # fmt: skip
        got = sorted(backbone.input) if isinstance(getattr(backbone, "input", None), dict) else type(backbone).__name__
        raise TfptmError(f"question_answerer: backbone takes {got}; expected a Transformer encoder taking "
                         "token_ids, padding_mask (and segment_ids), e.g. from load_preset or transformer_encoder")
    return build_model(backbone, SpanHead(dropout), optimizer=optimizer, learning_rate=learning_rate, name=name)


def is_question_answerer(model):
    """True when `model`'s output layer is a `SpanHead`'s.

    Example:
    >>> import tfptm
    >>> backbone = tfptm.backbones.get("transformer_encoder", vocabulary_size=20, num_layers=1, hidden_dim=8, intermediate_dim=16)
    >>> is_question_answerer(question_answerer(backbone)), is_question_answerer(tfptm.tasks.pair_classifier(backbone))
    (True, False)
    """
    return model.layers[-1].name == OUTPUT


# --- decoding ----------------------------------------------------------------------------------------------------


def best_span(start_logits, end_logits, context_mask, max_answer_length=30):
    """The best span of each window: `(starts, ends, scores)`, each `(windows,)` (scalars for one window).

    A span `(i, j)` is valid when `i <= j`, `j - i + 1 <= max_answer_length`
    and both `i` and `j` are context tokens (`context_mask`, e.g.
    `word_ids >= 0`); its score is `start_logits[i] + end_logits[j]`. The
    highest wins (the first in `(i, j)` order on a tie). A window with no
    valid span gets `(-1, -1, NO_ANSWER_SCORE)`.

    Example (token 1 has the best start but no end within 2 tokens after it; token 0 is not context):
    >>> start, end, mask = [9.0, 5.0, 1.0, -5.0, -5.0], [0.0, 0.0, 2.0, 0.0, 8.0], [0, 1, 1, 1, 1]
    >>> best_span(start, end, mask, max_answer_length=2)
    (1, 2, 7.0)
    >>> best_span(start, end, mask, max_answer_length=4), best_span(start, end, [1, 0, 0, 0, 0])
    ((1, 4, 13.0), (0, 0, 9.0))
    """
    start_logits, end_logits = np.asarray(start_logits, "float32"), np.asarray(end_logits, "float32")
    single = start_logits.ndim == 1
    start_logits, end_logits = np.atleast_2d(start_logits), np.atleast_2d(end_logits)
    mask = np.atleast_2d(np.asarray(context_mask)).astype(bool)
    if start_logits.shape != end_logits.shape or start_logits.shape != mask.shape:
        raise TfptmError(f"best_span: start logits {start_logits.shape}, end logits {end_logits.shape}, context mask "
                         f"{mask.shape}; expected one shape (windows, steps)")
    if isinstance(max_answer_length, bool) or not isinstance(max_answer_length, (int, np.integer)) or max_answer_length < 1:
        raise TfptmError(f"best_span: max_answer_length is {max_answer_length!r}; expected a positive integer")
    steps = start_logits.shape[1]
    i, j = np.arange(steps)[:, None], np.arange(steps)[None, :]
    band = (j >= i) & (j - i < max_answer_length)
    best, value = np.zeros(len(mask), "int64"), np.zeros(len(mask), "float32")
    for low in range(0, len(mask), 64):  # (windows, steps, steps) scores, 64 windows at a time
        rows = slice(low, low + 64)
        valid = band[None] & mask[rows, :, None] & mask[rows, None, :]
        scores = np.where(valid, start_logits[rows, :, None] + end_logits[rows, None, :], -np.inf)
        scores = scores.reshape(len(valid), -1)
        best[rows] = np.argmax(scores, axis=1)
        value[rows] = scores[np.arange(len(valid)), best[rows]]
    found = np.isfinite(value)
    starts = np.where(found, best // max(steps, 1), -1)
    ends = np.where(found, best % max(steps, 1), -1)
    values = np.where(found, value, NO_ANSWER_SCORE).astype("float32")
    if single:
        return int(starts[0]), int(ends[0]), float(values[0])
    return starts, ends, values


def predict_answers(model, questions, contexts, tokenizer, max_length=None, doc_stride=None, max_question_length=None,
                    max_answer_length=None, batch_size=32):
    """The answer to each question in its context: a list of `{"text", "start", "end", "score"}` (character
    offsets into the context, end exclusive; `"", -1, -1, NO_ANSWER_SCORE` when no span is possible).

    Windows are packed in Python (`tfptm.data.squad.encode_windows`), the model
    runs on them, and the best span over an example's windows wins (`best_span`).
    `tokenizer` is a `SpanTokenizer` (its window sizes are the defaults) or
    what `word_pieces` takes (then `DEFAULTS`); the keyword sizes override them.
    The SavedModel's `answer` signature computes the same in the graph (`answer_texts`).

    Example (a tiny, untrained model: some span of the context, whole words):
    >>> import tfptm
    >>> from tfptm.data.words import WordPieces
    >>> pieces = WordPieces(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "who", "ran", "?", "ann", "bob", "sat", "."])
    >>> backbone = tfptm.backbones.get("transformer_encoder", vocabulary_size=11, num_layers=1, hidden_dim=8,
    ...                                intermediate_dim=16, max_sequence_length=16)
    >>> model = question_answerer(backbone)
    >>> answer = predict_answers(model, ["Who ran?"], ["Ann ran. Bob sat."], pieces, max_length=16, doc_stride=4)[0]
    >>> answer["text"] == "Ann ran. Bob sat."[answer["start"]:answer["end"]], sorted(answer)
    (True, ['end', 'score', 'start', 'text'])
    """
    sizes = _sizes(tokenizer, max_length, doc_stride, max_question_length, max_answer_length)
    questions, contexts = [str(q) for q in questions], [str(c) for c in contexts]
    windows = encode_windows(questions, contexts, None, _pieces(tokenizer), sizes["max_length"], sizes["doc_stride"],
                             sizes["max_question_length"])
    logits = model.predict({k: v for k, v in windows.x.items() if k in model.input}, batch_size=batch_size, verbose=0)
    starts, ends, scores = best_span(logits[..., 0], logits[..., 1], windows.word_ids >= 0, sizes["max_answer_length"])
    answers = []
    for example, context in enumerate(contexts):
        rows = np.flatnonzero(windows.example_index == example)
        row = rows[int(np.argmax(scores[rows]))]
        if starts[row] < 0:
            answers.append({"text": "", "start": -1, "end": -1, "score": float(NO_ANSWER_SCORE)})
            continue
        offsets = windows.word_offsets[example]
        start = int(offsets[windows.word_ids[row, starts[row]], 0])
        end = int(offsets[windows.word_ids[row, ends[row]], 1])
        answers.append({"text": context[start:end], "start": start, "end": end, "score": float(scores[row])})
    return answers


# --- SQuAD v1.1 scores -------------------------------------------------------------------------------------------


def normalize_answer(text):
    """SQuAD v1.1's normalisation (its `evaluate-v1.1.py`): lower-case, remove punctuation, remove the articles
    a, an, the, and collapse whitespace.

    Example:
    >>> normalize_answer("  The Cat's  hat, an Apple!")
    'cats hat apple'
    """
    text = str(text).lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


_PUNCTUATION = frozenset(string.punctuation)


def exact_match(prediction, gold):
    """1.0 when the normalised texts are equal, else 0.0 (SQuAD v1.1).

    Example:
    >>> exact_match("the Cat.", "cat"), exact_match("cat sat", "cat")
    (1.0, 0.0)
    """
    return float(normalize_answer(prediction) == normalize_answer(gold))


def answer_f1(prediction, gold):
    """SQuAD v1.1's F1 over the bags of normalised tokens (0.0 when none is shared, both empty included).

    Example ("the cat sat" vs "cat sat on": 2 shared of 2 and 3 tokens, P = 1, R = 2/3):
    >>> round(answer_f1("the cat sat", "cat sat on"), 4)
    0.8
    """
    predicted, true = normalize_answer(prediction).split(), normalize_answer(gold).split()
    shared = sum((collections.Counter(predicted) & collections.Counter(true)).values())
    if shared == 0:
        return 0.0
    precision, recall = shared / len(predicted), shared / len(true)
    return 2 * precision * recall / (precision + recall)


def squad_metrics(predictions, gold_answer_lists):
    """SQuAD v1.1's scores, in percent: `{"exact_match", "f1", "num_examples"}`, each example scored against its
    best-matching gold answer (the maximum over them), then averaged.

    `predictions` are strings (or `predict_answers`' dicts); each gold list
    holds strings or SQuAD's `{"text", "answer_start"}` dicts.

    Example (EM: 1 of 2; F1: (1.0 + 0.8) / 2):
    >>> squad_metrics(["The cat.", "the cat sat"], [["cat", "a dog"], [{"text": "cat sat on", "answer_start": 0}]])
    {'exact_match': 50.0, 'f1': 90.0, 'num_examples': 2}
    """
    predictions, gold_answer_lists = list(predictions), list(gold_answer_lists)
    if len(predictions) != len(gold_answer_lists):
        raise TfptmError(f"squad_metrics: {len(predictions)} predictions for {len(gold_answer_lists)} gold answer lists; "
                         "expected one per example")
    exact, f1 = 0.0, 0.0
    for k, (prediction, golds) in enumerate(zip(predictions, gold_answer_lists)):
        prediction = prediction["text"] if isinstance(prediction, dict) else prediction
        golds = [g["text"] if isinstance(g, dict) else g for g in ([golds] if isinstance(golds, (str, dict)) else golds)]
        if not golds:
            raise TfptmError(f"squad_metrics: example {k} has no gold answer; expected at least one")
        exact += max(exact_match(prediction, g) for g in golds)
        f1 += max(answer_f1(prediction, g) for g in golds)
    count = len(predictions)
    return {"exact_match": 100.0 * exact / count if count else 0.0, "f1": 100.0 * f1 / count if count else 0.0,
            "num_examples": count}


def answer_metrics(model, table, tokenizer, **sizes):
    """`squad_metrics` of `model`'s answers (`predict_answers`) to the questions of a `tfptm.data.squad.QATable`,
    with the task name.

    Example:
    >>> answer_metrics(None, None, None)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    tfptm.errors.TfptmError: answer_metrics: table is NoneType; expected a tfptm.data.squad.QATable ...
    """
    from tfptm.data.squad import QATable

    if not isinstance(table, QATable):
        raise TfptmError(f"answer_metrics: table is {type(table).__name__}; expected a tfptm.data.squad.QATable "
                         "(read_squad)")
    predicted = predict_answers(model, table.questions, table.contexts, tokenizer, **sizes)
    return {"task": TASK, **squad_metrics(predicted, table.answers)}


# --- serving -----------------------------------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="tfptm")
class SpanTokenizer(keras.layers.Layer):
    """`(questions, contexts)` string tensors `(batch,)` to windows of the model's inputs, in the graph.

    Cuts words and pieces with a `WordPieces` layer and packs each example as
    `tfptm.data.squad.encode_windows` does (`[CLS] question [SEP] window
    [SEP]`, BERT's `doc_stride`), every window of every example in one batch
    padded to the longest window. `call((questions, contexts))` returns the
    model's inputs; `windows(questions, contexts)` also what decoding needs.
    It carries the window sizes, and `max_answer_length`, so the SavedModel's
    `answer` signature answers as `predict_answers` does. Make one with `span_tokenizer`.

    Example:
    >>> from tfptm.data.words import WordPieces
    >>> tokenizer = SpanTokenizer(WordPieces(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "a", "b"]), sequence_length=6,
    ...                           doc_stride=1)
    >>> w = tokenizer.windows(tf.constant(["a", "b"]), tf.constant(["b a", "a"]))
    >>> w["inputs"]["token_ids"].numpy().tolist(), w["example_index"].numpy().tolist()
    ([[2, 4, 3, 5, 4, 3], [2, 5, 3, 4, 3, 0]], [0, 1])
    >>> w["word_ids"].numpy().tolist()
    [[-1, -1, -1, 0, 1, -1], [-1, -1, -1, 0, -1, -1]]
    """

    text_inputs = ("question", "context")

    def __init__(self, pieces, sequence_length=256, doc_stride=128, max_question_length=64, max_answer_length=30,
                 **kwargs):
        kwargs["trainable"] = False
        super().__init__(**kwargs)
        if isinstance(pieces, dict):
            pieces = keras.saving.deserialize_keras_object(pieces)
        self.pieces = word_pieces(pieces)
        self.question_limit = check_window_sizes(sequence_length, doc_stride, max_question_length)
        if isinstance(max_answer_length, bool) or not isinstance(max_answer_length, int) or max_answer_length < 1:
            raise TfptmError(f"max_answer_length is {max_answer_length!r}; expected a positive integer")
        self.sequence_length, self.doc_stride = int(sequence_length), int(doc_stride)
        self.max_question_length, self.max_answer_length = int(max_question_length), int(max_answer_length)
        self.built = True

    def sizes(self):
        """The window sizes and `max_answer_length`, as `predict_answers` takes them (see `span_tokenizer`)."""
        return {"max_length": self.sequence_length, "doc_stride": self.doc_stride,
                "max_question_length": self.max_question_length, "max_answer_length": self.max_answer_length}

    def call(self, texts):
        if not isinstance(texts, (tuple, list)) or len(texts) != 2:
            raise TfptmError("SpanTokenizer: expected two string tensors (questions, contexts)")
        return self.windows(*texts)["inputs"]

    def windows(self, questions, contexts):
        """`{"inputs": the model's inputs (windows, width), "example_index": (windows,) the example of each window,
        "word_ids": (windows, width) the context word of each token (-1 elsewhere), "context_starts": (windows,)
        the first context piece of each window, "word_starts", "word_ends": (batch, words) ragged byte offsets}`."""
        questions = tf.reshape(tf.convert_to_tensor(questions, dtype=tf.string), [-1])
        contexts = tf.reshape(tf.convert_to_tensor(contexts, dtype=tf.string), [-1])
        question = self.pieces(questions)["piece_ids"].merge_dims(1, 2)[:, :self.question_limit]  # (batch, pieces)
        split = self.pieces(contexts)
        piece_ids = split["piece_ids"]  # (batch, words, pieces)
        per_word = piece_ids.row_lengths(axis=2)  # (batch, words)
        context = piece_ids.merge_dims(1, 2)  # (batch, pieces)
        word_of_piece = tf.repeat(tf.ragged.range(per_word.row_lengths()).flat_values, per_word.flat_values)
        count = context.row_lengths()
        capacity = self.sequence_length - 3 - question.row_lengths()
        step = tf.minimum(tf.constant(self.doc_stride, tf.int64), capacity)
        windows = 1 + (tf.maximum(count - capacity, 0) + step - 1) // step  # BERT's loop, in closed form
        example = tf.repeat(tf.range(tf.size(windows, out_type=tf.int64)), windows)
        start = tf.ragged.range(windows).flat_values * tf.gather(step, example)
        length = tf.minimum(tf.gather(capacity, example), tf.gather(count, example) - start)
        first = tf.gather(context.row_starts(), example) + start
        index = tf.ragged.range(first, first + length)  # (windows, pieces): flat context piece positions
        window_pieces = tf.gather(context.flat_values, index)
        window_words = tf.cast(tf.gather(word_of_piece, index), tf.int32)
        window_question = tf.gather(question, example)
        one = tf.RaggedTensor.from_tensor(tf.ones([tf.size(example), 1], tf.int32))
        token_ids = tf.concat([one * self.pieces.cls_id, window_question, one * self.pieces.sep_id, window_pieces,
                               one * self.pieces.sep_id], axis=1)
        segment_ids = tf.concat([one * 0, tf.zeros_like(window_question), one * 0, tf.ones_like(window_pieces), one],
                                axis=1)
        word_ids = tf.concat([-one, -tf.ones_like(window_question), -one, window_words, -one], axis=1)
        inputs = {"token_ids": token_ids.to_tensor(default_value=self.pieces.pad_id),
                  "padding_mask": tf.ones_like(token_ids, dtype=tf.bool).to_tensor(default_value=False),
                  "segment_ids": segment_ids.to_tensor(default_value=0)}
        return {"inputs": inputs, "example_index": tf.cast(example, tf.int32),
                "word_ids": word_ids.to_tensor(default_value=-1), "context_starts": tf.cast(start, tf.int32),
                "word_starts": split["word_starts"], "word_ends": split["word_ends"]}

    def get_config(self):
        return {**super().get_config(), "pieces": keras.saving.serialize_keras_object(self.pieces),
                **{k: v for k, v in self.sizes().items() if k != "max_length"}, "sequence_length": self.sequence_length}


def span_tokenizer(tokenizer, max_length=None, doc_stride=None, max_question_length=None, max_answer_length=None):
    """A `SpanTokenizer` for `tokenizer` (a KerasHub BERT-style tokenizer or preprocessor, a `WordPieces`, or a
    `SpanTokenizer`, whose sizes are the defaults); sizes not given are `DEFAULTS`'.

    Example:
    >>> import keras_hub
    >>> tokenizer = keras_hub.models.BertTokenizer(vocabulary=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a"])
    >>> span_tokenizer(tokenizer, max_length=128).sizes()
    {'max_length': 128, 'doc_stride': 128, 'max_question_length': 64, 'max_answer_length': 30}
    """
    sizes = _sizes(tokenizer, max_length, doc_stride, max_question_length, max_answer_length)
    if isinstance(tokenizer, SpanTokenizer) and sizes == tokenizer.sizes():
        return tokenizer
    return SpanTokenizer(_pieces(tokenizer), sequence_length=sizes["max_length"], doc_stride=sizes["doc_stride"],
                         max_question_length=sizes["max_question_length"], max_answer_length=sizes["max_answer_length"],
                         name="span_tokenizer")


def _pieces(tokenizer):
    return tokenizer.pieces if isinstance(tokenizer, SpanTokenizer) else word_pieces(tokenizer)


def _sizes(tokenizer, max_length, doc_stride, max_question_length, max_answer_length):
    base = tokenizer.sizes() if isinstance(tokenizer, SpanTokenizer) else DEFAULTS
    given = {"max_length": max_length, "doc_stride": doc_stride, "max_question_length": max_question_length,
             "max_answer_length": max_answer_length}
    return {key: base[key] if value is None else value for key, value in given.items()}


def _char_offsets(texts, rows, byte_offsets):
    """Byte offsets into `texts[rows]` as character offsets."""
    strings = tf.gather(texts, rows)
    return tf.strings.length(tf.strings.substr(strings, tf.zeros_like(byte_offsets), byte_offsets), unit="UTF8_CHAR")


def answer_texts(model, tokenizer, questions, contexts, max_answer_length=None):
    """The `answer` signature's computation: the best span of each `(question, context)` pair of string tensors
    `(batch,)`, over all the context's windows, with one model call on every window of the batch. Returns
    `answer_text` (string), `answer_start`, `answer_end` (int64 character offsets into the context, end exclusive)
    and `score` (float32, the start + end logit), each `(batch,)`. Runs eagerly too, so Python callers get the
    SavedModel's answers; `tokenizer` is a `SpanTokenizer` (`span_tokenizer`), whose `max_answer_length` is the default.

    Example (an untrained tiny model: the answer is some span of the context):
    >>> import tfptm
    >>> from tfptm.data.words import WordPieces
    >>> tokenizer = SpanTokenizer(WordPieces(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "a", "b"]), sequence_length=8,
    ...                           doc_stride=2)
    >>> backbone = tfptm.backbones.get("transformer_encoder", vocabulary_size=6, num_layers=1, hidden_dim=8,
    ...                                intermediate_dim=16, max_sequence_length=8)
    >>> out = answer_texts(question_answerer(backbone), tokenizer, tf.constant(["a", "b"]), tf.constant(["b a b", ""]))
    >>> text, start, end = (out[k].numpy()[0] for k in ("answer_text", "answer_start", "answer_end"))
    >>> text.decode() == "b a b"[start:end], out["answer_text"].numpy()[1], int(out["answer_start"][1])
    (True, b'', -1)
    """
    if not isinstance(tokenizer, SpanTokenizer):
        raise TfptmError(f"answer_texts: tokenizer is {type(tokenizer).__name__}; expected a SpanTokenizer "
                         "(span_tokenizer(preprocessor))")
    longest_span = int(max_answer_length or tokenizer.max_answer_length)
    questions = tf.reshape(tf.convert_to_tensor(questions, dtype=tf.string), [-1])
    contexts = tf.reshape(tf.convert_to_tensor(contexts, dtype=tf.string), [-1])
    w = tokenizer.windows(questions, contexts)
    inputs = {name: tf.cast(w["inputs"][name], model.input[name].dtype) for name in model.input}
    logits = tf.cast(model(inputs, training=False), tf.float32)
    word_ids = w["word_ids"]
    steps = tf.shape(word_ids)[1]
    i, j = tf.range(steps)[:, None], tf.range(steps)[None, :]
    band = (j >= i) & (j - i < longest_span)
    context = word_ids >= 0
    valid = band[None] & context[:, :, None] & context[:, None, :]
    scores = tf.where(valid, logits[:, :, 0][:, :, None] + logits[:, :, 1][:, None, :], -np.inf)
    flat = tf.reshape(scores, [tf.shape(scores)[0], -1])
    best = tf.argmax(flat, axis=1, output_type=tf.int32)
    has_span = tf.reduce_any(tf.math.is_finite(flat), axis=1)
    window_score = tf.where(has_span, tf.reduce_max(flat, axis=1), NO_ANSWER_SCORE)  # finite: segment ops compare it
    example = w["example_index"]
    batch = tf.shape(questions)[0]
    example_best = tf.math.unsorted_segment_max(window_score, example, batch)
    windows = tf.shape(example)[0]
    is_best = tf.equal(window_score, tf.gather(example_best, example))
    chosen = tf.math.unsorted_segment_min(tf.where(is_best, tf.range(windows), windows), example, batch)
    chosen = tf.minimum(chosen, windows - 1)
    found = tf.gather(has_span, chosen)
    position = tf.gather(best, chosen)
    start_word = tf.gather_nd(word_ids, tf.stack([chosen, position // steps], axis=1))
    end_word = tf.gather_nd(word_ids, tf.stack([chosen, position % steps], axis=1))
    rows = tf.range(batch)
    word_base = tf.gather(w["word_starts"].row_starts(), rows)
    padded = lambda offsets: tf.concat([offsets.flat_values, [0]], 0)  # noqa: E731  (a context with no word)
    start_byte = tf.gather(padded(w["word_starts"]), word_base + tf.cast(tf.maximum(start_word, 0), tf.int64))
    end_byte = tf.gather(padded(w["word_ends"]), word_base + tf.cast(tf.maximum(end_word, 0), tf.int64))
    start_byte, end_byte = tf.where(found, start_byte, 0), tf.where(found, end_byte, 0)
    return {
        "answer_text": tf.where(found, tf.strings.substr(contexts, start_byte, end_byte - start_byte), ""),
        "answer_start": tf.where(found, tf.cast(_char_offsets(contexts, rows, start_byte), tf.int64), -1),
        "answer_end": tf.where(found, tf.cast(_char_offsets(contexts, rows, end_byte), tf.int64), -1),
        "score": tf.gather(window_score, chosen),
    }


def serving_archive(model, tokenizer, class_names=None, spec=None):
    """A `keras.export.ExportArchive` for a question answerer: `serving_default` and `token_ids` on token ids
    (`spec`: the model's input specs, by default read from `model.input`), returning `span_logits`
    `(batch, steps, 2)`, `start_logits` and `end_logits`, and with a `tokenizer` `answer` on `question` and
    `context` strings (see `answer_texts`). `tfptm.export.export_checked` writes it; `class_names` is unused (the
    two outputs are always start and end).

    Example:
    >>> import tfptm
    >>> from tfptm.data.words import WordPieces
    >>> backbone = tfptm.backbones.get("transformer_encoder", vocabulary_size=6, num_layers=1, hidden_dim=8,
    ...                                intermediate_dim=16, max_sequence_length=8)
    >>> tokenizer = SpanTokenizer(WordPieces(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "a", "b"]), sequence_length=8)
    >>> serving_archive(question_answerer(backbone), tokenizer)._endpoint_names
    ['serving_default', 'token_ids', 'answer']
    """
    archive = keras.export.ExportArchive()
    archive.track(model)
    if spec is None:
        spec = {name: tf.TensorSpec([None, *tensor.shape[1:]], tf.as_dtype(tensor.dtype), name=name)
                for name, tensor in sorted(model.input.items())}

    def logits_of_tokens(inputs):
        logits = model(inputs, training=False)
        return {OUTPUT: logits, "start_logits": logits[:, :, 0], "end_logits": logits[:, :, 1]}

    archive.add_endpoint("serving_default", logits_of_tokens, input_signature=[spec])
    archive.add_endpoint("token_ids", logits_of_tokens, input_signature=[spec])
    if tokenizer is not None:
        tokenizer = span_tokenizer(tokenizer)
        tokenizer.windows(tf.constant([""]), tf.constant([""]))  # builds the vocabulary table outside the trace
        archive.track(tokenizer)
        archive.add_endpoint("answer", lambda question, context: answer_texts(model, tokenizer, question, context),
                             input_signature=[tf.TensorSpec([None], tf.string, name="question"),
                                              tf.TensorSpec([None], tf.string, name="context")])
    return archive


def compare_outputs(got, expected, x, artifact, tolerance, min_agreement):
    """Export parity of a question answerer: `got` (an artifact's `span_logits`) against the Keras model's
    `expected`, on the real tokens of `x` (its `padding_mask`). Per window, the most likely start and end tokens
    must agree; `artifact` "saved_model" needs every one to, and the logits within `tolerance` times the largest
    logit's size (at least 1: float32 rounding grows with the logits, which are not bounded as probabilities are;
    MiniLM's differ by 1.7e-5 at sizes near 10), a TFLite quantization at least `min_agreement` of them for
    starts and ends each (its largest logit difference is reported). `tfptm.export.parity` passes its thresholds
    (`SAVED_MODEL_TOLERANCE`, `TFLITE_MIN_AGREEMENT`). Returns a JSON-ready dict with `ok`.

    Example:
    >>> logits = np.array([[[1.0, 0.0], [2.0, 3.0], [5.0, 9.0]]])
    >>> padded = logits + 0.5 * (np.arange(3) == 2)[None, :, None]  # a padding position differs: not compared
    >>> report = compare_outputs(padded, logits, {"padding_mask": np.array([[1, 1, 0]])}, "float32", 1e-5, 0.99)
    >>> report["start_agreement"], report["end_agreement"], report["max_logit_diff"], report["ok"]
    (1.0, 1.0, 0.0, True)
    """
    got, expected = np.asarray(got, "float32"), np.asarray(expected, "float32")
    if got.shape != expected.shape or got.ndim != 3 or got.shape[-1] != 2:
        raise TfptmError(f"{artifact}: span logits of shape {got.shape}; expected {expected.shape} (windows, steps, 2) "
                         "as Keras")
    real = np.asarray(x["padding_mask"]).astype(bool)
    masked = lambda logits: np.where(real[:, :, None], logits, -np.inf)  # noqa: E731
    top_got, top_expected = np.argmax(masked(got), axis=1), np.argmax(masked(expected), axis=1)  # (windows, 2)
    start, end = (float(np.mean(top_got[:, k] == top_expected[:, k])) if len(got) else 1.0 for k in (0, 1))
    max_diff = float(np.max(np.abs(got - expected)[real])) if real.any() else 0.0
    largest = float(np.max(np.abs(expected)[real])) if real.any() else 0.0
    report = {"start_agreement": start, "end_agreement": end, "max_logit_diff": max_diff, "max_abs_logit": largest,
              "num_windows": int(len(got)), "num_tokens": int(real.sum())}
    if artifact == "saved_model":
        tolerance = tolerance * max(1.0, largest)
        return {**report, "tolerance": tolerance, "ok": start == 1.0 and end == 1.0 and max_diff <= tolerance}
    return {**report, "min_agreement": min_agreement, "ok": start >= min_agreement and end >= min_agreement}


def check_answer_signature(path, model, tokenizer, questions, contexts, tolerance=1e-5):
    """Calls a SavedModel's `answer` on `(questions, contexts)` and compares it with `answer_texts` run on `model`
    eagerly: the same texts and offsets, scores within `tolerance` times the largest score's size (at least 1;
    see `compare_outputs`). Returns a JSON-ready dict with `ok`.

    Example:
    >>> check_answer_signature("/no/such/model", None, None, ["Who?"], ["Ann."])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    tfptm.errors.TfptmError: SavedModel '/no/such/model': no loadable answer signature ...
    """
    import importlib

    from tfptm.errors import one_line

    importlib.import_module("tensorflow_text")  # registers the ops of the in-graph word split and WordPiece

    try:
        signature = tf.saved_model.load(str(path)).signatures["answer"]
    except Exception as error:  # TF raises OSError, NotFoundError, KeyError... for unloadable models
        raise TfptmError(f"SavedModel {str(path)!r}: no loadable answer signature ({one_line(error)}); expected one "
                         "exported with a SpanTokenizer") from None
    questions, contexts = [str(q) for q in questions], [str(c) for c in contexts]
    served = signature(question=tf.constant(questions, tf.string), context=tf.constant(contexts, tf.string))
    expected = answer_texts(model, span_tokenizer(tokenizer), tf.constant(questions, tf.string),
                            tf.constant(contexts, tf.string))
    same = all(np.array_equal(served[key].numpy(), expected[key].numpy())
               for key in ("answer_text", "answer_start", "answer_end"))
    scores = expected["score"].numpy()
    max_diff = float(np.max(np.abs(served["score"].numpy() - scores))) if questions else 0.0
    found = scores[scores != NO_ANSWER_SCORE]
    tolerance = tolerance * max(1.0, float(np.max(np.abs(found))) if len(found) else 0.0)
    return {"same_answers_and_offsets": bool(same), "max_score_diff": max_diff, "tolerance": tolerance,
            "num_examples": len(questions), "ok": bool(same and max_diff <= tolerance)}
