"""Text vocabularies and an in-graph tokenizer for the local text backbones.

The vocabulary is learnt from training text (`learn_vocabulary`) and lives
inside the model as a `TextTokenizer` layer (`tokenizer_layer`), in its saved
config: a `.keras` file or a SavedModel export tokenizes raw strings exactly
as training did. Token id 0 is always padding.

Recipe: build on token ids, train, then put the tokenizer in front:

>>> import numpy as np, tensorflow as tf, tfptm
>>> texts = tf.constant(["a great film", "a dull film", "great acting", "dull acting"])
>>> vocab = learn_vocabulary(texts, vocabulary_size=50, kind="words")
>>> tokenizer = tokenizer_layer(vocab, sequence_length=4)
>>> backbone = tfptm.backbones.get("lstm_encoder", vocabulary_size=len(vocab), embedding_dim=8, units=8)
>>> model = tfptm.build_model(backbone, tfptm.Head("binary", pooling="avg"))
>>> _ = model.fit(tokenizer(texts), np.array([1, 0, 1, 0]), epochs=1, verbose=0)
>>> with_tokenizer(model, tokenizer).predict(tf.constant(["a great film"]), verbose=0).shape
(1, 1)
"""

import keras
import numpy as np
import tensorflow as tf

from tfptm.errors import TfptmError

KINDS = ("wordpiece", "words")
OUTPUTS = ("token_ids", "padding_mask", "segment_ids")
PAD, UNK = "[PAD]", "[UNK]"


def learn_vocabulary(texts, vocabulary_size, kind="wordpiece", lowercase=True):
    """Learns a vocabulary of at most `vocabulary_size` tokens from training `texts`.

    Args:
        texts: a list or array of strings, or a `tf.data.Dataset` of strings.
        vocabulary_size: the largest vocabulary to learn, special tokens included.
        kind: `"wordpiece"` (KerasHub's `compute_word_piece_vocabulary`:
            words and subword pieces, so unseen words still split into known
            pieces; starts `[PAD], [CLS], [SEP], [UNK], [MASK]`) or `"words"`
            (`keras.layers.TextVectorization`: whole words by frequency, after
            lowercasing and stripping punctuation; starts `"", [UNK]`).
        lowercase: lowercase before learning (and, in `tokenizer_layer`, before tokenizing).

    Returns:
        The vocabulary as a list of strings; index 0 is padding.

    Example:
    >>> vocab = learn_vocabulary(["the cat sat", "the dog sat"], vocabulary_size=10, kind="words")
    >>> vocab[:3]
    ['', '[UNK]', 'the']
    """
    if kind not in KINDS:
        raise TfptmError(f"learn_vocabulary: unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
    if not isinstance(vocabulary_size, int) or vocabulary_size < 8:
        raise TfptmError(f"learn_vocabulary: vocabulary_size must be an integer >= 8; got {vocabulary_size!r}")
    data = _string_dataset(texts)
    if kind == "words":
        vectorizer = keras.layers.TextVectorization(
            max_tokens=vocabulary_size, standardize="lower_and_strip_punctuation" if lowercase else "strip_punctuation"
        )
        vectorizer.adapt(data)
        return [str(token) for token in vectorizer.get_vocabulary()]
    import keras_hub

    vocab = keras_hub.tokenizers.compute_word_piece_vocabulary(data, vocabulary_size, lowercase=lowercase)
    return [str(token) for token in vocab]


def _string_dataset(texts):
    if isinstance(texts, tf.data.Dataset):
        return texts.batch(256) if texts.element_spec.shape.rank == 0 else texts
    if isinstance(texts, str):
        raise TfptmError("learn_vocabulary: texts must be a list of strings, not one string")
    texts = np.asarray(texts, dtype=object).reshape(-1)
    if len(texts) == 0 or not all(isinstance(t, (str, bytes)) for t in texts):
        raise TfptmError("learn_vocabulary: texts must be a non-empty list of strings")
    return tf.data.Dataset.from_tensor_slices(texts.astype(str)).batch(256)


@keras.saving.register_keras_serializable(package="tfptm")
class TextTokenizer(keras.layers.Layer):
    """Maps raw strings `(batch,)` to padded token ids `(batch, sequence_length)` in the graph.

    The vocabulary is part of the layer's config, so it saves with the model.
    With `outputs` naming several of `"token_ids"`, `"padding_mask"` and
    `"segment_ids"` it returns a dict, the input KerasHub backbones take.
    Make one with `tokenizer_layer`.
    """

    def __init__(self, vocabulary, sequence_length, kind="wordpiece", lowercase=True, outputs="token_ids", **kwargs):
        kwargs.setdefault("dtype", "int32")
        kwargs["trainable"] = False
        super().__init__(**kwargs)
        self.vocabulary = [str(token) for token in vocabulary]
        self.sequence_length = int(sequence_length)
        self.kind = kind
        self.lowercase = bool(lowercase)
        self.outputs = outputs if isinstance(outputs, str) else list(outputs)
        if kind == "words":
            self._tokenize = keras.layers.TextVectorization(
                vocabulary=self.vocabulary,
                output_sequence_length=self.sequence_length,
                standardize="lower_and_strip_punctuation" if self.lowercase else "strip_punctuation",
                name="words",
            )
        else:
            import keras_hub

            self._tokenize = keras_hub.tokenizers.WordPieceTokenizer(
                vocabulary=self.vocabulary, sequence_length=self.sequence_length, lowercase=self.lowercase,
                name="wordpiece",
            )

    def build(self, input_shape=None):
        self.built = True  # no weights: the vocabulary lives in the tokenizer's lookup tables

    def call(self, strings):
        strings = tf.reshape(tf.convert_to_tensor(strings, dtype=tf.string), [-1])
        ids = tf.cast(self._tokenize(strings), "int32")
        ids = tf.reshape(ids, [-1, self.sequence_length])
        if isinstance(self.outputs, str):
            return ids
        every = {"token_ids": ids, "padding_mask": tf.not_equal(ids, 0), "segment_ids": tf.zeros_like(ids)}
        return {name: every[name] for name in self.outputs}

    def compute_output_spec(self, strings):
        batch = strings.shape[0]
        ids = keras.KerasTensor((batch, self.sequence_length), dtype="int32")
        if isinstance(self.outputs, str):
            return ids
        dtypes = {"token_ids": "int32", "padding_mask": "bool", "segment_ids": "int32"}
        return {name: keras.KerasTensor((batch, self.sequence_length), dtype=dtypes[name]) for name in self.outputs}

    def get_config(self):
        config = super().get_config()
        config.update(
            vocabulary=self.vocabulary, sequence_length=self.sequence_length, kind=self.kind,
            lowercase=self.lowercase, outputs=self.outputs,
        )
        return config


def tokenizer_layer(vocabulary, sequence_length, kind=None, lowercase=True, outputs="token_ids"):
    """A `TextTokenizer` layer: raw strings to token ids padded (with 0) or cut to `sequence_length`.

    Args:
        vocabulary: a list from `learn_vocabulary`.
        sequence_length: tokens per text.
        kind: `"wordpiece"` or `"words"`; `None` infers it from the vocabulary
            (a `"words"` vocabulary starts with `""`).
        lowercase: as in `learn_vocabulary`.
        outputs: `"token_ids"` for one tensor (the RNN encoders), or the names
            of a KerasHub backbone's inputs (`backbone.input`, a dict, works)
            for a dict with `token_ids`, `padding_mask` and `segment_ids`.

    Example:
    >>> vocab = learn_vocabulary(["the cat sat", "the dog sat"], vocabulary_size=10, kind="words")
    >>> import tensorflow as tf
    >>> tokenizer_layer(vocab, sequence_length=5)(tf.constant(["the cat ran"])).numpy().tolist()
    [[2, 5, 1, 0, 0]]
    """
    vocabulary = list(vocabulary)
    if not vocabulary or not all(isinstance(t, str) for t in vocabulary):
        raise TfptmError("tokenizer_layer: vocabulary must be a non-empty list of strings (see learn_vocabulary)")
    if kind is None:
        kind = "words" if vocabulary[0] == "" else "wordpiece"
    if kind not in KINDS:
        raise TfptmError(f"tokenizer_layer: unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
    if kind == "wordpiece" and (vocabulary[0] != PAD or UNK not in vocabulary):
        raise TfptmError(f"tokenizer_layer: a wordpiece vocabulary must start with {PAD!r} and contain {UNK!r}")
    if not isinstance(sequence_length, int) or sequence_length < 1:
        raise TfptmError(f"tokenizer_layer: sequence_length must be a positive integer; got {sequence_length!r}")
    if isinstance(outputs, dict):
        outputs = sorted(outputs)
    names = [outputs] if isinstance(outputs, str) else list(outputs)
    unknown = [n for n in names if n not in OUTPUTS]
    if unknown or not names:
        raise TfptmError(f"tokenizer_layer: unknown outputs {unknown or names}; expected some of {', '.join(OUTPUTS)}")
    return TextTokenizer(vocabulary, sequence_length, kind=kind, lowercase=lowercase, outputs=outputs, name="tokenizer")


def with_tokenizer(model, tokenizer, name=None):
    """A functional model taking raw strings `(batch,)`: `model(tokenizer(text))`.

    `model` is a backbone or a task model (from `tfptm.build_model`) on token
    ids; if it takes a dict of inputs, the tokenizer is set to produce that
    dict. The result saves as `.keras` and exports with the tokenizer and
    its vocabulary inside.

    Example:
    >>> import tensorflow as tf, tfptm
    >>> vocab = learn_vocabulary(["the cat sat", "the dog sat"], vocabulary_size=10, kind="words")
    >>> backbone = tfptm.backbones.get("gru_encoder", vocabulary_size=len(vocab), embedding_dim=4, units=4)
    >>> with_tokenizer(backbone, tokenizer_layer(vocab, 6))(tf.constant(["the cat"])).shape
    TensorShape([1, 6, 4])
    """
    if not isinstance(model, keras.Model) or not isinstance(tokenizer, TextTokenizer):
        raise TfptmError("with_tokenizer: expected a keras.Model and a layer from tfptm.data.text.tokenizer_layer")
    if isinstance(model.input, dict):
        tokenizer.outputs = sorted(model.input)
    text = keras.Input(shape=(), dtype="string", name="text")
    return keras.Model(text, model(tokenizer(text)), name=name or model.name)
