"""Plain-text corpora for language-model pre-training, and cutting them into token windows.

A corpus is either one text file with one document per line, or a folder of
`.txt` files (searched recursively, in sorted order) where each file is one
document. Text must be UTF-8: a file that is not stops with a `TfptmError`
naming the file, line and byte, because silently dropping or mangling text
would change what the model learns without anyone noticing. Blank lines (and
empty files in a folder) are skipped and counted in `Corpus.skipped`; a
corpus with no text at all is an error.

Example:
>>> import os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "corpus.txt")
>>> _ = open(path, "w").write("the cat sat\\n\\nthe dog ran\\n")
>>> corpus = read_corpus(path)
>>> corpus.documents, corpus.skipped
(['the cat sat', 'the dog ran'], 1)
"""

import dataclasses
import os
from pathlib import Path

import numpy as np

from tfptm.errors import TfptmError

SUFFIX = ".txt"


@dataclasses.dataclass(frozen=True)
class Corpus:
    """The documents of a corpus, where they came from, and how many blank lines or files were skipped."""

    documents: list
    source: str
    files: int
    skipped: int

    def __len__(self):
        return len(self.documents)


def read_corpus(path):
    """Reads a corpus: a UTF-8 text file (one document per line) or a folder of `.txt` files (one document each).

    Returns a `Corpus`. Raises `TfptmError` for a missing path, a folder with
    no `.txt` files, text that is not UTF-8 (naming file, line and byte
    offset) or a corpus whose every line is blank.

    Example:
    >>> import os, tempfile
    >>> folder = tempfile.mkdtemp()
    >>> for name, text in [("a.txt", "first\\ndocument"), ("b.txt", "second"), ("c.txt", "")]:
    ...     _ = open(os.path.join(folder, name), "w").write(text)
    >>> corpus = read_corpus(folder)
    >>> corpus.documents, corpus.files, corpus.skipped
    (['first document', 'second'], 3, 1)
    """
    path = Path(os.fspath(path))
    if path.is_dir():
        files = sorted(p for p in path.rglob(f"*{SUFFIX}") if p.is_file())
        if not files:
            raise TfptmError(f"Corpus folder {str(path)!r} has no {SUFFIX} files; expected one document per {SUFFIX} file")
        documents, skipped = [], 0
        for file in files:
            text = " ".join(line for line in _lines(file) if line)
            if text:
                documents.append(text)
            else:
                skipped += 1
    elif path.is_file():
        files = [path]
        lines = _lines(path)
        documents = [line for line in lines if line]
        skipped = len(lines) - len(documents)
    else:
        raise TfptmError(
            f"Corpus {str(path)!r} does not exist; expected a text file with one document per line "
            f"or a folder of {SUFFIX} files"
        )
    if not documents:
        raise TfptmError(f"Corpus {str(path)!r} contains no text (every line is blank); expected at least one document")
    return Corpus(documents, str(path), len(files), skipped)


def _lines(file):
    """The lines of `file` decoded as UTF-8, whitespace-normalized; a bad byte raises naming file and line."""
    try:
        data = file.read_bytes()
    except OSError as error:
        raise TfptmError(f"Cannot read corpus file {str(file)!r}: {error.strerror or error}") from None
    if data.startswith(b"\xef\xbb\xbf"):  # a UTF-8 byte-order mark is not text
        data = data[3:]
    lines = []
    # Line ends are \n, \r\n or \r; not str.splitlines(), which also splits at U+2028 and friends inside a line.
    rows = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
    if rows and rows[-1] == b"":  # the file's final line end does not start another line
        rows.pop()
    for number, raw in enumerate(rows, start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise TfptmError(
                f"Corpus file {str(file)!r} is not UTF-8 at line {number} (byte {error.start} of the line: "
                f"{raw[error.start:error.start + 1]!r}); expected UTF-8 text, e.g. re-encode with iconv -t utf-8"
            ) from None
        lines.append(" ".join(line.split()))
    return lines


def token_windows(texts, tokenizer, min_tokens=2, batch_size=512):
    """Tokenizes `texts` and cuts each document into windows of `tokenizer.sequence_length` token ids.

    Long documents give several consecutive windows (none crosses a document
    boundary); the last is padded with 0. Windows with fewer than
    `min_tokens` tokens are dropped. Tokens are exactly those `tokenizer`
    (a wordpiece `tfptm.data.text.TextTokenizer`) produces, only not cut off.

    Example:
    >>> from tfptm.data import text
    >>> vocab = text.learn_vocabulary(["a b c d e f g"] * 4, vocabulary_size=20)
    >>> tokenizer = text.tokenizer_layer(vocab, sequence_length=4)
    >>> windows = token_windows(["a b c d e f g", "a"], tokenizer)
    >>> [[vocab[i] for i in row if i] for row in windows]
    [['a', 'b', 'c', 'd'], ['e', 'f', 'g']]
    """
    import keras_hub
    import tensorflow as tf

    if getattr(tokenizer, "kind", None) != "wordpiece":
        raise TfptmError("token_windows: expected a wordpiece tokenizer from tfptm.data.text.tokenizer_layer")
    texts = [str(t) for t in np.asarray(texts, dtype=object).reshape(-1)]
    # The tokenizer's own settings, without its sequence_length, so that nothing is cut off.
    ragged = keras_hub.tokenizers.WordPieceTokenizer(vocabulary=tokenizer.vocabulary, lowercase=tokenizer.lowercase)
    length = tokenizer.sequence_length
    windows = []
    for start in range(0, len(texts), batch_size):
        rows = ragged(tf.constant(texts[start:start + batch_size]))
        for ids in rows.to_list() if hasattr(rows, "to_list") else rows:  # eager KerasHub returns lists
            for offset in range(0, len(ids), length):
                window = ids[offset:offset + length]
                if len(window) >= min_tokens:
                    windows.append(window + [0] * (length - len(window)))
    if not windows:
        raise TfptmError(f"token_windows: no document has {min_tokens} or more tokens; expected some longer text")
    return np.array(windows, dtype="int32")
