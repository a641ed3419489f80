"""Words with character offsets, and their WordPiece pieces: what token-level tasks label and serve (floor 1).

Token classification labels words and extractive question answering returns
spans of a text, so both need, for every sub-token the model sees, the word
it belongs to and where that word sits in the raw string. KerasHub's BERT
tokenizer returns ids only. This module splits text into words the way
BERT's basic tokenizer does (whitespace, then every punctuation character
and CJK character on its own), keeps each word's character offsets in the
original string, and cuts each word into the checkpoint's WordPiece pieces
(lower-cased and stripped of accents when the vocabulary is uncased):

- `split_words(text)`: the Python rule, `[(word, start, end), ...]`, used to
  write word-level data (`tfptm.datasets.docstring_tokens`) and to map
  predictions back to text.
- `WordPieces`: a Keras layer doing the same inside the graph (TensorFlow Text
  ops), so a SavedModel can take raw strings and return character offsets.
  It is built from a KerasHub tokenizer or preprocessor (`word_pieces`), and
  it tokenizes the training data too, so training and serving cut words alike.

Example:
>>> split_words("x_max(axis=0) is café.")
[('x', 0, 1), ('_', 1, 2), ('max', 2, 5), ('(', 5, 6), ('axis', 6, 10), ('=', 10, 11), ('0', 11, 12), (')', 12, 13), ('is', 14, 16), ('café', 17, 21), ('.', 21, 22)]
"""

import unicodedata

import keras
import numpy as np
import tensorflow as tf

from tfptm.errors import TfptmError

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]")


def _is_punctuation(char):
    # BERT's rule: ASCII symbols count as punctuation (e.g. "_", "$", "^"), and every Unicode P* character.
    code = ord(char)
    if 33 <= code <= 47 or 58 <= code <= 64 or 91 <= code <= 96 or 123 <= code <= 126:
        return True
    return unicodedata.category(char).startswith("P")


def _is_cjk(char):
    code = ord(char)
    return code >= 0x3400 and any(low <= code <= high for low, high in (
        (0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F), (0x2B740, 0x2B81F),
        (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F)))


def _kind(char):
    if _is_punctuation(char) or _is_cjk(char):
        return "alone"
    if char.isspace() or unicodedata.category(char) in ("Cc", "Cf"):
        return "space"
    return "word"


_ASCII = {chr(code): _kind(chr(code)) for code in range(128)}  # the common case, looked up once


def split_words(text):
    """`text` as `[(word, start, end), ...]`: BERT's basic split, with character offsets into `text`.

    Whitespace separates words; each punctuation character (BERT's rule:
    ASCII symbols such as `_` and `=`, and Unicode punctuation) and each CJK
    character is a word of its own. `text[start:end] == word` always.

    Example:
    >>> [word for word, _, _ in split_words("fit(x, y=None)")]
    ['fit', '(', 'x', ',', 'y', '=', 'None', ')']
    """
    if not isinstance(text, str):
        raise TfptmError(f"split_words: got {type(text).__name__}; expected a str")
    words, start = [], None
    for i, char in enumerate(text):
        kind = _ASCII.get(char) or _kind(char)  # "word", "space" (a delimiter) or "alone" (a word of its own)
        if kind != "word":
            if start is not None:
                words.append((text[start:i], start, i))
                start = None
            if kind == "alone":
                words.append((char, i, i + 1))
        elif start is None:
            start = i
    if start is not None:
        words.append((text[start:], start, len(text)))
    return words


def byte_to_char_offsets(text, byte_offsets):
    """Byte offsets into `text`'s UTF-8 encoding as character offsets (what `WordPieces` returns are bytes).

    Example:
    >>> byte_to_char_offsets("café au lait", [0, 6, 9])
    [0, 5, 8]
    """
    encoded = text.encode("utf-8")
    return [len(encoded[:int(b)].decode("utf-8", errors="ignore")) for b in byte_offsets]


@keras.saving.register_keras_serializable(package="tfptm")
class WordPieces(keras.layers.Layer):
    """Raw strings `(batch,)` to words and their WordPiece ids, with each word's byte offsets, in the graph.

    `call(texts)` returns a dict of ragged tensors: `piece_ids`
    `(batch, words, pieces)` (int32), `word_starts` and `word_ends`
    `(batch, words)` (int64 byte offsets into each UTF-8 string; see
    `byte_to_char_offsets`). Words are split as `split_words` splits them;
    each word is then case-folded and stripped of accents when `lowercase`,
    and cut into the longest vocabulary pieces (`##` marks a continuation; a
    word that cannot be cut is `[UNK]`). `pieces_of_words(words)` does the
    second half for words already split (word-level data such as CoNLL files),
    keeping the parts a word holding punctuation splits into.

    Args:
        vocabulary: the WordPiece vocabulary, a list of strings (index = id).
        lowercase: whether the vocabulary is uncased (case-fold and strip accents first).
        special_tokens: the names of the padding, unknown, class and separator tokens, in that order.

    Example:
    >>> vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "fit", "(", ")", "x", "##s"]
    >>> pieces = WordPieces(vocabulary)
    >>> out = pieces(tf.constant(["Fit(xs)"]))
    >>> out["piece_ids"].to_list(), out["word_starts"].to_list(), out["word_ends"].to_list()
    ([[[4], [5], [7, 8], [6]]], [[0, 3, 4, 6]], [[3, 4, 6, 7]])
    """

    def __init__(self, vocabulary, lowercase=True, special_tokens=SPECIAL_TOKENS, max_chars_per_word=100, **kwargs):
        kwargs["trainable"] = False
        super().__init__(**kwargs)
        self.vocabulary = [str(token) for token in vocabulary]
        self.lowercase = bool(lowercase)
        self.special_tokens = tuple(special_tokens)
        self.max_chars_per_word = int(max_chars_per_word)
        missing = [token for token in self.special_tokens if token not in self.vocabulary]
        if missing:
            raise TfptmError(f"WordPieces: the vocabulary has no {missing}; expected a BERT-style WordPiece vocabulary "
                             f"with {list(self.special_tokens)}")
        self.pad_id, self.unknown_id, self.cls_id, self.sep_id = (self.vocabulary.index(t) for t in self.special_tokens)
        self._table = None
        self.built = True  # no weights: the vocabulary lives in a lookup table

    def _wordpiece(self):
        if self._table is None:
            import tensorflow_text as tf_text

            with tf.init_scope():  # the table lives outside any function being traced (an export), usable eagerly after
                keys = tf.constant(self.vocabulary)
                initializer = tf.lookup.KeyValueTensorInitializer(keys, tf.range(len(self.vocabulary), dtype=tf.int64))
                self._table = tf.lookup.StaticHashTable(initializer, default_value=-1)
            self._tokenizer = tf_text.WordpieceTokenizer(
                self._table, token_out_type=tf.int64, unknown_token=self.special_tokens[1],
                max_bytes_per_word=4 * self.max_chars_per_word)
        return self._tokenizer

    def normalize(self, words):
        """Words as the vocabulary spells them: case-folded, NFD, accents removed (uncased); as they are (cased)."""
        if not self.lowercase:
            return words
        import tensorflow_text as tf_text

        words = tf_text.normalize_utf8(tf_text.case_fold_utf8(words), "NFD")
        return tf.strings.regex_replace(words, r"\p{Mn}", "")

    def pieces_of_words(self, words):
        """Piece ids `(words, parts, pieces)` (ragged, int32) of a `(words,)` string tensor of words already split.

        A given word holding punctuation (a CoNLL word such as `max_iter` or
        `U.S.`) has several parts, split as `split_words` splits running text
        (`max`, `_`, `iter`): the words a SavedModel's `raw_text` sees.
        """
        parts, _, _ = _SPLITTER.split_with_offsets(tf.reshape(tf.convert_to_tensor(words, dtype=tf.string), [-1]))
        return tf.cast(self._wordpiece().tokenize(self.normalize(parts)), tf.int32)

    def call(self, texts):
        texts = tf.reshape(tf.convert_to_tensor(texts, dtype=tf.string), [-1])
        # Split on the original string (no normalisation), so offsets point into what the caller sent.
        words, starts, ends = _SPLITTER.split_with_offsets(texts)
        pieces = self._wordpiece().tokenize(self.normalize(words))  # (batch, words, pieces)
        return {"piece_ids": tf.cast(pieces, tf.int32), "word_starts": starts, "word_ends": ends}

    def get_config(self):
        return {**super().get_config(), "vocabulary": self.vocabulary, "lowercase": self.lowercase,
                "special_tokens": list(self.special_tokens), "max_chars_per_word": self.max_chars_per_word}


class _Splitter:
    """`split_words` in the graph: regex splits with offsets (TensorFlow Text), kept as one pattern pair."""

    # Delimiters: whitespace and control characters; kept delimiters: punctuation (BERT's ASCII symbols and \p{P})
    # and CJK ideographs, each one word.
    _ascii_symbols = r"!-/:-@\[-`{-~"
    _cjk = r"\x{4E00}-\x{9FFF}\x{3400}-\x{4DBF}\x{20000}-\x{2A6DF}\x{2A700}-\x{2B73F}\x{2B740}-\x{2B81F}" \
           r"\x{2B820}-\x{2CEAF}\x{F900}-\x{FAFF}\x{2F800}-\x{2FA1F}"
    keep = rf"[{_ascii_symbols}\p{{P}}{_cjk}]"
    delimiters = rf"\s|\p{{Z}}|[\p{{Cc}}\p{{Cf}}]|{keep}"

    def split_with_offsets(self, texts):
        import tensorflow_text as tf_text

        return tf_text.regex_split_with_offsets(texts, self.delimiters, self.keep)


_SPLITTER = _Splitter()


def word_pieces(tokenizer):
    """A `WordPieces` layer with `tokenizer`'s vocabulary and casing: a KerasHub BERT-style tokenizer or
    preprocessor (e.g. from `tfptm.backbones.presets.load_preset`), or a `WordPieces` (returned as it is).

    Example:
    >>> import keras_hub
    >>> tokenizer = keras_hub.models.BertTokenizer(vocabulary=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a"])
    >>> word_pieces(tokenizer).cls_id
    2
    """
    if isinstance(tokenizer, WordPieces):
        return tokenizer
    inner = getattr(tokenizer, "tokenizer", tokenizer)
    get_vocabulary = getattr(inner, "get_vocabulary", None)
    if get_vocabulary is None or not hasattr(inner, "lowercase"):
        raise TfptmError(f"word_pieces: {type(tokenizer).__name__} is not a WordPiece tokenizer; expected a KerasHub "
                         "BERT-style tokenizer or preprocessor (a preset with a vocab.txt)")
    special = (getattr(inner, "pad_token", "[PAD]"), "[UNK]", getattr(inner, "cls_token", "[CLS]"),
               getattr(inner, "sep_token", "[SEP]"))
    return WordPieces(get_vocabulary(), lowercase=inner.lowercase, special_tokens=special, name="word_pieces")


def words_to_pieces(pieces_layer, sentences):
    """The parts and piece ids of each word of each sentence (lists of words), computed by `pieces_layer` in one
    batch: per sentence, per word, a list of parts, each a list of piece ids (`WordPieces.pieces_of_words`).

    Example:
    >>> layer = WordPieces(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "fit", "x", "##s", "(", ")"])
    >>> words_to_pieces(layer, [["fit", "xs"], ["fit(x)"]])
    [[[[4]], [[5, 6]]], [[[4], [7], [5], [8]]]]
    """
    flat = [word for words in sentences for word in words]
    if not flat:
        return [[] for _ in sentences]
    ragged = pieces_layer.pieces_of_words(tf.constant(flat))  # (words, parts, pieces)
    # NumPy splits, not RaggedTensor.to_list() (about 1 ms per word): the flat ids cut at the row splits.
    ids = ragged.flat_values.numpy().tolist()
    part_splits, word_splits = (s.numpy().tolist() for s in ragged.nested_row_splits[::-1])
    parts = [ids[a:b] for a, b in zip(part_splits[:-1], part_splits[1:])]
    pieces = [parts[a:b] for a, b in zip(word_splits[:-1], word_splits[1:])]
    out, i = [], 0
    for words in sentences:
        out.append(pieces[i:i + len(words)])
        i += len(words)
    return out


def longest(lists):
    """The length of the longest list in `lists` (0 when there are none)."""
    return max((len(item) for item in lists), default=0)


def pad_rows(rows, width, value=0, dtype="int32"):
    """`rows` (lists) as one `(len(rows), width)` array, each padded with `value` (or cut) to `width`.

    Example:
    >>> pad_rows([[1, 2], [3]], 3).tolist()
    [[1, 2, 0], [3, 0, 0]]
    """
    out = np.full((len(rows), width), value, dtype=dtype)
    for i, row in enumerate(rows):
        row = list(row)[:width]
        out[i, :len(row)] = row
    return out

