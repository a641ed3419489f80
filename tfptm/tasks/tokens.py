"""Token classification: a tag per word (named entities, parts of speech, parameter names in docstrings...).

The model is a text backbone on KerasHub's inputs with a `TokenHead`: a
dense softmax over the tags on every sub-token, output `tag_probabilities`
`(batch, steps, tags)`. Words are aligned to sub-tokens by
`tfptm.data.tagging` (the first piece carries the word's tag; the others are
`IGNORE`, skipped by the loss and the token accuracy). Scores are
entity-level precision, recall and F1 by `seqeval` (`token_metrics`), per
entity type too.

Serving (`serving_archive`, used by `tfptm.export.export_checked`): the
SavedModel's `serving_default` takes token ids and returns
`tag_probabilities` and `tag_ids` per sub-token; `raw_text` takes strings,
splits and tokenizes them in the graph (`tfptm.data.words.WordPieces`), and
returns per word `words`, `tags`, `tag_ids`, `scores` (the tag's
probability), character `word_starts` and `word_ends`, and the entities as
`entity_texts`, `entity_types`, `entity_starts`, `entity_ends` (character
offsets, end exclusive) and `entity_scores` (the mean of their words'
scores), padded with "" and -1 (0 for scores), with `num_words` and
`num_entities` per text. TFLite
files take token ids.

The whole path (tests/test_tokens.py runs it on MiniLM):

    backbone, preprocessor = tfptm.backbones.presets.load_preset(minilm_dir)
    pieces = tfptm.data.words.word_pieces(preprocessor)
    train = tfptm.data.tagging.read_tagged("train.conll")
    arrays = tfptm.data.tagging.encode_tagged(train.sentences, train.tags, pieces, 128, train.tag_names)
    model = token_classifier(backbone, num_tags=len(train.tag_names))
    model.fit(arrays.x, arrays.labels, epochs=3)
    token_metrics(model, test.sentences, test.tags, train.tag_names, pieces)      # seqeval scores
    export_token_classifier(model, pieces, "export", "tagger", texts, train.tag_names)

Example (a tiny model):
>>> import numpy as np, tfptm
>>> from tfptm.data.words import WordPieces
>>> from tfptm.data.tagging import encode_tagged
>>> pieces = WordPieces(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "john", "lives", "in", "paris"])
>>> backbone = tfptm.backbones.get("transformer_encoder", vocabulary_size=8, num_layers=1, hidden_dim=8,
...                                intermediate_dim=16, max_sequence_length=16)
>>> model = token_classifier(backbone, num_tags=3)
>>> arrays = encode_tagged([["John", "lives", "in", "Paris"]], [["B-PER", "O", "O", "B-LOC"]], pieces, 16, ["O", "B-PER", "B-LOC"])
>>> history = model.fit(arrays.x, arrays.labels, epochs=1, verbose=0)
>>> model.output.shape, predict_tags(model, [["John", "lives"]], ["O", "B-PER", "B-LOC"], pieces)[0][0] in ("O", "B-PER", "B-LOC")
((None, None, 3), True)
"""

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from tfptm.data.tagging import IGNORE, encode_tagged, word_predictions
from tfptm.data.words import word_pieces
from tfptm.errors import TfptmError

TASK = "token_classification"
OUTPUT = "tag_probabilities"  # the output layer's name: how a saved model is known to be a token classifier


@dataclasses.dataclass(frozen=True)
class TokenHead:
    """A per-token classification head: `(batch, steps, dim)` features to `(batch, steps, num_tags)` probabilities.

    Used like `tfptm.Head` by `tfptm.build_model`: `head(features)`, `head.loss()`, `head.metrics()`.

    Example:
    >>> import keras
    >>> TokenHead(num_tags=5)(keras.Input((None, 8))).shape
    (None, None, 5)
    """

    num_tags: int
    dropout: float = 0.1
    task: str = TASK

    def __post_init__(self):
        if not isinstance(self.num_tags, int) or self.num_tags < 2:
            raise TfptmError(f"TokenHead: num_tags is {self.num_tags!r}; expected at least 2 (O and one tag)")
        if not 0.0 <= self.dropout < 1.0:
            raise TfptmError(f"TokenHead: dropout is {self.dropout}; expected 0 <= dropout < 1")

    def __call__(self, features, padding_mask=None):
        if len(features.shape) != 3:
            raise TfptmError(f"TokenHead: features of shape {features.shape}; expected per-token features "
                             "(batch, steps, dim) from a text backbone")
        x = keras.layers.Dropout(self.dropout, name="head_dropout")(features) if self.dropout else features
        x = keras.layers.Dense(self.num_tags, name="head_logits", dtype="float32")(x)
        return keras.layers.Activation("softmax", name=OUTPUT, dtype="float32")(x)

    def loss(self):
        """Cross-entropy over the tags, skipping `IGNORE` labels (continuation pieces, special tokens, padding)."""
        return keras.losses.SparseCategoricalCrossentropy(ignore_class=IGNORE)

    def metrics(self):
        return [TokenAccuracy(name="accuracy")]


@keras.saving.register_keras_serializable(package="tfptm")
class TokenAccuracy(keras.metrics.Mean):
    """The share of labelled tokens (label != `IGNORE`) whose most probable tag is the label.

    Example:
    >>> import numpy as np
    >>> metric = TokenAccuracy()
    >>> metric.update_state(np.array([[1, -1, 0]]), np.array([[[0.2, 0.8], [0.9, 0.1], [0.3, 0.7]]]))
    >>> float(metric.result())
    0.5
    """

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = keras.ops.cast(keras.ops.convert_to_tensor(y_true), "int32")
        y_true = keras.ops.reshape(y_true, keras.ops.shape(y_pred)[:-1])
        labelled = keras.ops.cast(keras.ops.not_equal(y_true, IGNORE), "float32")
        correct = keras.ops.cast(keras.ops.equal(keras.ops.argmax(y_pred, axis=-1), y_true), "float32")
        if sample_weight is not None:
            labelled = labelled * keras.ops.cast(sample_weight, "float32")
        super().update_state(correct, sample_weight=labelled)


def token_classifier(backbone, num_tags, dropout=0.1, optimizer="adam", learning_rate=5e-5, name="token_classifier"):
    """A token classifier: `backbone` (per-token features) with a `TokenHead`, compiled; every `tfptm.training`
    strategy applies (LoRA included), as for `tfptm.build_model` models.

    Example:
    >>> import tfptm
    >>> backbone = tfptm.backbones.get("transformer_encoder", vocabulary_size=20, num_layers=1, hidden_dim=8, intermediate_dim=16)
    >>> token_classifier(backbone, num_tags=4).output.shape
    (None, None, 4)
    """
    from tfptm.build import build_model

    return build_model(backbone, TokenHead(num_tags, dropout), optimizer=optimizer, learning_rate=learning_rate, name=name)


def is_token_classifier(model):
    """True when `model`'s output layer is a `TokenHead`'s."""
    return model.layers[-1].name == OUTPUT


def predict_tags(model, sentences, tag_names, pieces, max_length=128, batch_size=32):
    """The predicted tag of every word of `sentences` (lists of words): a list of lists of tag names.

    Each word gets its first piece's most probable tag; words cut off by
    `max_length`, or without a piece, get `"O"`.
    """
    arrays = encode_tagged(sentences, None, word_pieces(pieces), max_length)
    return _tags_of(model, sentences, tag_names, arrays, batch_size)


def _tags_of(model, sentences, tag_names, arrays, batch_size=32):
    """`predict_tags` on sentences already packed (`encode_tagged`'s `arrays`)."""
    ids = np.argmax(model.predict(arrays.x, batch_size=batch_size, verbose=0), axis=-1)
    out = []
    for row, words, word_ids in zip(ids, sentences, arrays.word_ids):
        predicted = word_predictions(row, word_ids, len(words))
        out.append([tag_names[p] if p is not None else "O" for p in predicted])
    return out


def tag_scores(true_tags, predicted_tags, scheme="BIO"):
    """Entity-level scores of predicted tag sequences against the true ones, by `seqeval` (CoNLL's definition:
    an entity counts when its type, first and last word all match): micro precision, recall and F1, the
    per-type scores, and the word-level tag accuracy.

    Example (hand-computed: 2 true entities, 2 predicted, 1 matching; P = R = F1 = 0.5):
    >>> scores = tag_scores([["B-PER", "I-PER", "O", "B-LOC"]], [["B-PER", "I-PER", "O", "B-ORG"]])
    >>> scores["precision"], scores["recall"], scores["f1"], scores["per_type"]["PER"]["f1"], scores["word_accuracy"]
    (0.5, 0.5, 0.5, 1.0, 0.75)
    """
    from seqeval.metrics import accuracy_score, classification_report, f1_score, precision_score, recall_score

    if len(true_tags) != len(predicted_tags) or any(len(a) != len(b) for a, b in zip(true_tags, predicted_tags)):
        raise TfptmError("tag_scores: true and predicted tags differ in sentences or words; expected one tag per word")
    true_tags, predicted_tags = [list(t) for t in true_tags], [list(p) for p in predicted_tags]
    report = classification_report(true_tags, predicted_tags, output_dict=True, zero_division=0)
    per_type = {kind: {"precision": float(v["precision"]), "recall": float(v["recall"]), "f1": float(v["f1-score"]),
                       "support": int(v["support"])}
                for kind, v in report.items() if not kind.endswith(" avg")}
    return {
        "task": TASK,
        "precision": float(precision_score(true_tags, predicted_tags, zero_division=0)),
        "recall": float(recall_score(true_tags, predicted_tags, zero_division=0)),
        "f1": float(f1_score(true_tags, predicted_tags, zero_division=0)),
        "word_accuracy": float(accuracy_score(true_tags, predicted_tags)),
        "num_sentences": len(true_tags),
        "num_words": sum(map(len, true_tags)),
        "scheme": scheme,
        "per_type": per_type,
    }


def token_metrics(model, sentences, tags, tag_names, pieces, max_length=128, scheme="BIO"):
    """`tag_scores` of `model`'s predictions on tagged sentences (`predict_tags`), with the words cut off counted."""
    arrays = encode_tagged(sentences, None, word_pieces(pieces), max_length)  # packed once: predicted and counted
    scores = tag_scores(tags, _tags_of(model, sentences, tag_names, arrays), scheme)
    scores["num_truncated_words"] = arrays.num_truncated_words
    return scores


# --- serving ---------------------------------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="tfptm")
class WordTokenizer(keras.layers.Layer):
    """Raw strings to a token classifier's inputs, in the graph, remembering where each word is.

    Wraps a `WordPieces` layer and packs each text as `tfptm.data.tagging.align`
    does (`[CLS]`, the pieces of the words that fit in `sequence_length`,
    `[SEP]`, padding to the longest in the batch). `call(texts)` returns the
    model's inputs; `words(texts)` also the word-level facts the `raw_text`
    signature needs. `text_inputs` names that signature's input.

    Example:
    >>> from tfptm.data.words import WordPieces
    >>> tokenizer = WordTokenizer(WordPieces(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "a", "b", "##c"]), sequence_length=5)
    >>> tokenizer(tf.constant(["a bc a", "b"]))["token_ids"].numpy().tolist()
    [[2, 4, 5, 6, 3], [2, 5, 3, 0, 0]]
    """

    text_inputs = ("text",)

    def __init__(self, pieces, sequence_length=128, **kwargs):
        kwargs["trainable"] = False
        super().__init__(**kwargs)
        if isinstance(pieces, dict):
            pieces = keras.saving.deserialize_keras_object(pieces)
        self.pieces = word_pieces(pieces)
        self.sequence_length = int(sequence_length)
        self.built = True

    def call(self, texts):
        return self.words(texts)["inputs"]

    def words(self, texts):
        """`{"inputs": the model's inputs, "first_piece": (batch, words) the position of each word's first piece
        (-1 when the word was cut off or has no piece), "words", "word_starts", "word_ends"}` (ragged, byte offsets)."""
        texts = tf.reshape(tf.convert_to_tensor(texts, dtype=tf.string), [-1])
        split = self.pieces(texts)
        piece_ids = split["piece_ids"]  # (batch, words, pieces)
        word_length = piece_ids.row_lengths(axis=2)  # (batch, words)
        lengths = word_length.flat_values
        ends = tf.cumsum(lengths)
        before_row = tf.gather(tf.concat([[0], ends], 0), word_length.row_starts())
        end_in_row = ends - tf.repeat(before_row, word_length.row_lengths())
        keep = end_in_row <= self.sequence_length - 2  # the words (and all before them) that fit
        first = tf.where(keep & (lengths > 0), end_in_row - lengths + 1, -1)  # +1: [CLS]
        flat_pieces = piece_ids.merge_dims(1, 2)  # (batch, pieces)
        kept = tf.ragged.boolean_mask(flat_pieces, flat_pieces.with_flat_values(tf.repeat(keep, lengths)))
        batch = tf.shape(texts, out_type=tf.int64)[0]
        cls = tf.fill([batch, 1], self.pieces.cls_id)
        sep = tf.fill([batch, 1], self.pieces.sep_id)
        packed = tf.concat([tf.RaggedTensor.from_tensor(cls), kept, tf.RaggedTensor.from_tensor(sep)], axis=1)
        token_ids = packed.to_tensor(default_value=self.pieces.pad_id)
        padding_mask = tf.ones_like(packed, dtype=tf.bool).to_tensor(default_value=False)
        inputs = {"token_ids": token_ids, "padding_mask": padding_mask, "segment_ids": tf.zeros_like(token_ids)}
        return {"inputs": inputs, "first_piece": word_length.with_flat_values(first),
                "word_starts": split["word_starts"], "word_ends": split["word_ends"]}

    def get_config(self):
        return {**super().get_config(), "pieces": keras.saving.serialize_keras_object(self.pieces),
                "sequence_length": self.sequence_length}


def word_tokenizer(tokenizer, max_length=128):
    """A `WordTokenizer` for `tokenizer` (a KerasHub BERT-style tokenizer or preprocessor, or a `WordPieces`)."""
    if isinstance(tokenizer, WordTokenizer):
        return tokenizer
    return WordTokenizer(word_pieces(tokenizer), sequence_length=max_length, name="word_tokenizer")


def _tag_parts(tag_names):
    """Per tag id: its prefix (O, B, I, E, S) and its type id (-1 for O), and the type names."""
    types = sorted({name[2:] for name in tag_names if name != "O"})
    prefixes = [name[0] if name != "O" else "O" for name in tag_names]
    type_ids = [types.index(name[2:]) if name != "O" else -1 for name in tag_names]
    return prefixes, type_ids, types


def entity_starts(prefix, type_id, previous_prefix, previous_type):
    """Where seqeval's default (non-strict) decoding opens an entity, elementwise on tensors of prefixes (strings)
    and type ids: a non-O tag that is B or S, follows O, E or S, or changes the type."""
    non_o = tf.not_equal(prefix, "O")
    opens = (tf.equal(prefix, "B") | tf.equal(prefix, "S") | tf.equal(previous_prefix, "O")
             | tf.equal(previous_prefix, "E") | tf.equal(previous_prefix, "S") | tf.not_equal(previous_type, type_id))
    return non_o & opens


def decode_entities(tag_ids, tag_names):
    """Entities of ragged word tag ids `(batch, words)`, in the graph, as seqeval decodes them:
    `(rows, first_words, last_words, type_ids, type_names)` with one entry per entity (flat, in order).

    Example:
    >>> names = ["O", "B-LOC", "B-PER", "I-PER"]
    >>> rows, first, last, types, type_names = decode_entities(tf.ragged.constant([[2, 3, 0, 1], [3]]), names)
    >>> rows.numpy().tolist(), first.numpy().tolist(), last.numpy().tolist(), [type_names[t] for t in types.numpy()]
    ([0, 0, 1], [0, 3, 0], [1, 3, 0], ['PER', 'LOC', 'PER'])
    """
    prefixes, type_ids, types = _tag_parts(tag_names)
    flat = tf.cast(tag_ids.flat_values, tf.int32)
    prefix = tf.gather(tf.constant(prefixes), flat)
    kind = tf.gather(tf.constant(type_ids, tf.int32), flat)
    starts_row = tf.cast(tag_ids.row_starts(), tf.int32)
    position = tf.range(tf.shape(flat)[0])
    first_in_row = tf.reduce_any(tf.equal(position[:, None], starts_row[None, :]), axis=1)
    previous_prefix = tf.where(first_in_row, "O", tf.concat([["O"], prefix[:-1]], 0))
    previous_type = tf.where(first_in_row, -1, tf.concat([[-1], kind[:-1]], 0))
    opens = entity_starts(prefix, kind, previous_prefix, previous_type)
    inside = tf.not_equal(prefix, "O")
    entity = tf.cumsum(tf.cast(opens, tf.int32)) - 1
    count = tf.reduce_sum(tf.cast(opens, tf.int32))
    word_in_row = position - tf.gather(starts_row, tf.cast(tag_ids.value_rowids(), tf.int32))
    segment = tf.boolean_mask(entity, inside)
    first = tf.math.unsorted_segment_min(tf.boolean_mask(word_in_row, inside), segment, count)
    last = tf.math.unsorted_segment_max(tf.boolean_mask(word_in_row, inside), segment, count)
    rows = tf.boolean_mask(tf.cast(tag_ids.value_rowids(), tf.int32), opens)
    return rows, first, last, tf.boolean_mask(kind, opens), types


def _entity_scores(scores, tag_ids, rows, first, last):
    """Each entity's score: the mean of its words' scores (flat word `scores` of the ragged `tag_ids`)."""
    word_base = tf.gather(tf.cast(tag_ids.row_starts(), tf.int32), rows)
    lengths = last - first + 1
    words = tf.ragged.range(word_base + first, word_base + last + 1)
    return tf.reduce_sum(tf.gather(scores, words), axis=1) / tf.cast(tf.maximum(lengths, 1), scores.dtype)


def _char_offsets(texts, rows, byte_offsets):
    """Byte offsets into `texts[rows]` as character offsets (what the signature returns)."""
    strings = tf.gather(texts, rows)
    return tf.strings.length(tf.strings.substr(strings, tf.zeros_like(byte_offsets), byte_offsets), unit="UTF8_CHAR")


def tag_texts(model, tokenizer, tag_names, texts):
    """The `raw_text` signature's computation: tags and entities of raw strings `texts` `(batch,)` (see the module
    docstring). Runs eagerly too, so Python callers get the same answers as the SavedModel."""
    texts = tf.reshape(tf.convert_to_tensor(texts, dtype=tf.string), [-1])
    words = tokenizer.words(texts)
    probabilities = model(words["inputs"], training=False)
    first = words["first_piece"]
    rows = tf.cast(first.value_rowids(), tf.int32)
    position = tf.maximum(first.flat_values, 0)
    picked = tf.gather_nd(probabilities, tf.stack([rows, tf.cast(position, tf.int32)], axis=1))
    fits = first.flat_values >= 0
    ids = tf.where(fits, tf.argmax(picked, axis=-1, output_type=tf.int32), 0)  # cut off: O (tag_names[0])
    scores = tf.where(fits, tf.reduce_max(picked, axis=-1), 0.0)
    tag_ids = first.with_flat_values(ids)
    names = tf.constant(list(tag_names))
    starts, ends = words["word_starts"], words["word_ends"]
    char_starts = _char_offsets(texts, rows, starts.flat_values)
    char_ends = _char_offsets(texts, rows, ends.flat_values)
    word_text = tf.strings.substr(tf.gather(texts, rows), starts.flat_values, ends.flat_values - starts.flat_values)
    e_rows, e_first, e_last, e_types, types = decode_entities(tag_ids, tag_names)
    word_base = tf.gather(tf.cast(first.row_starts(), tf.int32), e_rows)
    e_start_byte = tf.gather(starts.flat_values, word_base + e_first)
    e_end_byte = tf.gather(ends.flat_values, word_base + e_last)
    e_text = tf.strings.substr(tf.gather(texts, e_rows), e_start_byte, e_end_byte - e_start_byte)
    batch = tf.shape(texts, out_type=tf.int64)[0]

    def per_word(values, default):
        return first.with_flat_values(values).to_tensor(default_value=default)

    def per_entity(values, default):
        ragged = tf.RaggedTensor.from_value_rowids(values, tf.cast(e_rows, tf.int64), nrows=batch)
        return ragged.to_tensor(default_value=default)

    return {
        "words": per_word(word_text, ""), "tags": per_word(tf.gather(names, ids), ""),
        "tag_ids": per_word(ids, -1), "scores": per_word(scores, 0.0),
        "word_starts": per_word(tf.cast(char_starts, tf.int64), -1), "word_ends": per_word(tf.cast(char_ends, tf.int64), -1),
        "num_words": tf.cast(first.row_lengths(), tf.int32),
        "entity_texts": per_entity(e_text, ""), "entity_types": per_entity(tf.gather(tf.constant(types or [""]), e_types), ""),
        "entity_starts": per_entity(tf.cast(_char_offsets(texts, e_rows, e_start_byte), tf.int64), -1),
        "entity_ends": per_entity(tf.cast(_char_offsets(texts, e_rows, e_end_byte), tf.int64), -1),
        "entity_scores": per_entity(_entity_scores(scores, tag_ids, e_rows, e_first, e_last), 0.0),
        "num_entities": tf.math.bincount(e_rows, minlength=tf.cast(batch, tf.int32), maxlength=tf.cast(batch, tf.int32)),
    }


def serving_archive(model, tokenizer, tag_names, spec):
    """A `keras.export.ExportArchive` for a token classifier: `serving_default` and `token_ids` on token ids
    (`spec`: the model's input specs), returning `tag_probabilities` and `tag_ids` per sub-token, and with a
    `tokenizer` `raw_text` on strings (tags and entities, see the module docstring).
    `tfptm.export.export_checked` writes it."""
    archive = keras.export.ExportArchive()
    archive.track(model)

    def tags_of_tokens(inputs):
        probabilities = model(inputs, training=False)
        return {OUTPUT: probabilities, "tag_ids": tf.argmax(probabilities, axis=-1, output_type=tf.int32)}

    archive.add_endpoint("serving_default", tags_of_tokens, input_signature=[spec])
    archive.add_endpoint("token_ids", tags_of_tokens, input_signature=[spec])
    if tokenizer is not None:
        tokenizer = word_tokenizer(tokenizer)
        archive.track(tokenizer)
        archive.add_endpoint("raw_text", lambda text: tag_texts(model, tokenizer, tag_names, text),
                             input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    return archive


def compare_outputs(got, expected, x, artifact, tolerance, min_agreement):
    """Export parity of a token classifier: `got` (an artifact's `tag_probabilities`) against the Keras model's
    `expected`, on the real tokens of `x` (its `padding_mask`). `artifact` is "saved_model" (every tag the same,
    probabilities within `tolerance`) or a TFLite quantization (tags agreeing on at least `min_agreement` of the
    tokens); `tfptm.export.parity` passes its thresholds. Returns a JSON-ready dict with `ok`.

    Example:
    >>> p = np.array([[[0.9, 0.1], [0.4, 0.6]]])
    >>> compare_outputs(p, p, {"padding_mask": np.array([[1, 0]])}, "int8", 1e-5, 0.99)["tag_agreement"]
    1.0
    """
    got, expected = np.asarray(got, "float32"), np.asarray(expected, "float32")
    if got.shape != expected.shape:
        raise TfptmError(f"{artifact}: tag probabilities of shape {got.shape}; expected {expected.shape} as Keras")
    real = np.asarray(x["padding_mask"]).astype(bool)
    agreement = float(np.mean(np.argmax(got, -1)[real] == np.argmax(expected, -1)[real]))
    max_diff = float(np.max(np.abs(got - expected)[real])) if real.any() else 0.0
    report = {"tag_agreement": agreement, "max_prob_diff": max_diff, "num_examples": int(len(got)),
              "num_tokens": int(real.sum())}
    if artifact == "saved_model":
        return {**report, "tolerance": tolerance, "ok": agreement == 1.0 and max_diff <= tolerance}
    return {**report, "min_agreement": min_agreement, "ok": agreement >= min_agreement}


def check_raw_text(path, model, tokenizer, tag_names, texts, tolerance=1e-5):
    """Calls a SavedModel's `raw_text` on `texts` and compares it with `tag_texts` run on `model` eagerly: the same
    tags, offsets and entities, scores within `tolerance`. Returns a JSON-ready dict with `ok`."""
    from tfptm.errors import one_line

    try:
        signature = tf.saved_model.load(str(path)).signatures["raw_text"]
    except (KeyError, OSError, ValueError) as error:
        raise TfptmError(f"SavedModel {str(path)!r}: no loadable raw_text signature ({one_line(error)})") from None
    texts = [str(t) for t in texts]
    served = signature(text=tf.constant(texts))
    expected = tag_texts(model, word_tokenizer(tokenizer), tag_names, tf.constant(texts))
    scored = ("scores", "entity_scores")
    same = all(np.array_equal(served[key].numpy(), expected[key].numpy()) for key in expected if key not in scored)
    max_diff = max((float(np.max(np.abs(served[key].numpy() - expected[key].numpy()), initial=0.0)) for key in scored),
                   default=0.0)
    return {"same_tags_and_entities": bool(same), "max_score_diff": max_diff, "tolerance": tolerance,
            "num_examples": len(texts), "ok": bool(same and max_diff <= tolerance)}
