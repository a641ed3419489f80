"""Word-level tags: CoNLL-style `token TAG` files and JSON Lines with `tokens`/`tags`, aligned to WordPiece pieces.

Token classification data names a tag per word (`B-PER`, `I-PER`, `O`...),
in the BIO or BIOES scheme. A model sees sub-tokens, so the words are cut
into the checkpoint's WordPiece pieces (`tfptm.data.words.WordPieces`) and
the tags are aligned to them with the usual rule (as BERT's NER recipe and
Hugging Face's `run_ner` do): **the first piece of each word carries the
word's tag; the other pieces, `[CLS]`, `[SEP]` and padding get `IGNORE` (-1),
which the loss and the token accuracy skip** (`tfptm.tasks.tokens`). A
word's predicted tag is its first piece's.

One refinement keeps training and serving alike: a served text is split into
words by BERT's rule (`tfptm.data.words.split_words`: every punctuation
character apart), so a given word holding punctuation (`max_iter`, `U.S.`)
is several served words. Such a word's parts each get a first-piece label:
the word's tag on the first part and its continuation on the others
(`part_tags`: `B-X` then `I-X`; in BIOES `S-X` becomes `B-X ... E-X`), so the
model learns to tag every word it will be served; the word is scored by its
first part. Sentences longer than `max_length - 2` pieces are cut between
words; the words cut off are counted (`num_truncated_words`) and predicted
`O` when scoring.

Files:
- CoNLL (`.conll`, `.txt`, `.tsv`, or `format="conll"`): one word per line,
  the word first and the tag last (columns split on whitespace, so CoNLL-2003's
  four columns work), a blank line between sentences, `-DOCSTART-` lines skipped.
- JSON Lines (`.jsonl`, `.json`): one object per sentence, `{"tokens": [...], "tags": [...]}`.

Example:
>>> import os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "train.conll")
>>> _ = open(path, "w").write("-DOCSTART- O\\n\\nJohn B-PER\\nlives O\\nin O\\nNew B-LOC\\nYork I-LOC\\n")
>>> table = read_tagged(path)
>>> table.sentences, table.tag_names, table.scheme
([['John', 'lives', 'in', 'New', 'York']], ['O', 'B-LOC', 'I-LOC', 'B-PER', 'I-PER'], 'BIO')
>>> entities(table.tags[0])
[('PER', 0, 1), ('LOC', 3, 5)]
"""

import dataclasses
import json
import os

import numpy as np

from tfptm.data.arrays import split_indices
from tfptm.data.loaded import skip_or_raise, skip_summary
from tfptm.data.tables import _read_utf8
from tfptm.errors import TfptmError

SCHEMES = {"BIO": "BI", "BIOES": "BIES"}  # scheme -> the prefixes its tags may have (besides "O")
IGNORE = -1  # the label of pieces the loss skips: continuation pieces, [CLS], [SEP], padding
FORMATS = {".conll": "conll", ".txt": "conll", ".tsv": "conll", ".jsonl": "jsonl", ".json": "jsonl"}


@dataclasses.dataclass
class TagTable:
    """Sentences of words with a tag per word; `tag_names[0]` is `"O"` and a tag's id is its index.

    `skipped` lists the sentences left out (`Skip("file:line", reason)`).
    """

    sentences: list
    tags: list
    tag_names: list
    scheme: str
    skipped: list = dataclasses.field(default_factory=list)

    def __len__(self):
        return len(self.sentences)

    @property
    def class_names(self):
        """The tag names: what the model's outputs are, as a classifier's class names are."""
        return self.tag_names

    def split(self, fraction, seed=0):
        """`(rest, held_out)`: `fraction` of the sentences held out at random (the same for a seed)."""
        rest, held = split_indices(np.zeros(len(self), "float32"), fraction, seed)  # not stratified: no class per sentence
        pick = lambda idx: dataclasses.replace(self, sentences=[self.sentences[i] for i in idx],
                                               tags=[self.tags[i] for i in idx], skipped=[])
        return dataclasses.replace(pick(rest), skipped=list(self.skipped)), pick(held)

    def summary(self):
        """Counts for summary.json: sentences, words, entities per type, skips."""
        counts = {}
        for tags in self.tags:
            for kind, _, _ in entities(tags):
                counts[kind] = counts.get(kind, 0) + 1
        return {"num_sentences": len(self), "num_words": sum(map(len, self.sentences)), "entities": counts,
                "scheme": self.scheme, **skip_summary(self.skipped)}


def read_tagged(path, format=None, tokens_key="tokens", tags_key="tags", scheme=None, tag_names=None, strict=False):
    """Reads a CoNLL or JSON Lines file of tagged words as a `TagTable`.

    Args:
        path: the file; `format` ("conll" or "jsonl") defaults from its extension (`FORMATS`).
        tokens_key, tags_key: the JSON keys of the words and their tags.
        scheme: "BIO" or "BIOES"; by default BIOES when any tag starts with
            `E-` or `S-`, else BIO. Every tag must be `O` or `<prefix>-<TYPE>`
            with a prefix of the scheme.
        tag_names: the training tags, for a test file: its sentences with a
            tag outside them are skipped (counted), since the model cannot predict it.
        strict: make every bad sentence an error instead of a counted skip.

    A sentence whose words and tags differ in number, or holding an empty
    word, is skipped and counted (an error with `strict`); a file with no
    sentence, an unknown scheme or an invalid tag is one error.
    """
    fmt = format or FORMATS.get(os.path.splitext(str(path))[1].lower())
    if fmt not in ("conll", "jsonl"):
        raise TfptmError(f"read_tagged: {str(path)!r}: unknown format {format or os.path.splitext(str(path))[1]!r}; "
                         f"expected a CoNLL file ({', '.join(e for e, f in FORMATS.items() if f == 'conll')}) or JSON "
                         "Lines (.jsonl) with tokens and tags, or format='conll' / 'jsonl'")
    if scheme is not None and scheme not in SCHEMES:
        raise TfptmError(f"read_tagged: scheme {scheme!r}; expected one of {', '.join(SCHEMES)}")
    text = _read_utf8(str(path), "read_tagged", "; expected a CoNLL or JSON Lines file of tagged words")
    rows = _conll_rows(text, path) if fmt == "conll" else _jsonl_rows(text, path, tokens_key, tags_key)
    sentences, tags, skipped = [], [], []
    known = set(tag_names) if tag_names is not None else None
    for where, words, labels in rows:
        problem = _problem(words, labels, known)
        if problem:
            skip_or_raise(skipped, where, problem, strict, "sentence")
            continue
        sentences.append(words)
        tags.append(labels)
    if not sentences:
        raise TfptmError(f"read_tagged: {str(path)!r} holds no tagged sentence; expected "
                         + ("`word TAG` lines, a blank line between sentences" if fmt == "conll"
                            else f"one JSON object per line with {tokens_key!r} and {tags_key!r}"))
    scheme = scheme or detect_scheme(tags)
    for where_tags in tags:
        check_tags(where_tags, scheme, str(path))
    names = list(tag_names) if tag_names is not None else tag_vocabulary(tags, scheme)
    return TagTable(sentences, tags, names, scheme, skipped)


def _problem(words, labels, known):
    if len(words) != len(labels):
        return f"{len(words)} words but {len(labels)} tags"
    if not words:
        return "no words"
    if any(not isinstance(w, str) or not w.strip() or any(c.isspace() for c in w) for w in words):
        return "an empty word, a word with whitespace or one that is not a string"
    if any(not isinstance(t, str) for t in labels):
        return "a tag that is not a string"
    if known is not None and set(labels) - known:
        return f"tags {sorted(set(labels) - known)} not in the training data"
    return None


def _conll_rows(text, path):
    words, tags, start = [], [], None
    for line, raw in enumerate(text.split("\n"), start=1):
        parts = raw.split()
        if not parts or parts[0] == "-DOCSTART-":
            if words:
                yield f"{path}:{start}", words, tags
            words, tags, start = [], [], None
            continue
        if len(parts) < 2:
            raise TfptmError(f"{path}:{line}: {raw.strip()!r} has one column; expected `word TAG` "
                             "(the word first, the tag last, split by whitespace)")
        start = start or line
        words.append(parts[0])
        tags.append(parts[-1])
    if words:
        yield f"{path}:{start}", words, tags


def _jsonl_rows(text, path, tokens_key, tags_key):
    for line, raw in enumerate(text.split("\n"), start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as error:
            raise TfptmError(f"{path}:{line}: not valid JSON ({error.msg}); expected one JSON object per line") from None
        if not isinstance(record, dict) or not isinstance(record.get(tokens_key), list) \
                or not isinstance(record.get(tags_key), list):  # fmt: skip
            raise TfptmError(f"{path}:{line}: expected an object with lists {tokens_key!r} and {tags_key!r}; "
                             f"got {type(record).__name__} with keys {sorted(record) if isinstance(record, dict) else []}")
        yield f"{path}:{line}", record[tokens_key], record[tags_key]


def detect_scheme(tags):
    """"BIOES" when any tag starts with `E-` or `S-`, else "BIO".

    Example:
    >>> detect_scheme([["B-X", "E-X", "O"]]), detect_scheme([["B-X", "I-X"]])
    ('BIOES', 'BIO')
    """
    return "BIOES" if any(tag[:2] in ("E-", "S-") for sentence in tags for tag in sentence) else "BIO"


def check_tags(tags, scheme, where="tags"):
    """Raises a `TfptmError` unless every tag is `O` or `<prefix>-<TYPE>` with a prefix of `scheme`.

    Example:
    >>> check_tags(["B-PER", "O", "X-PER"], "BIO", "train.conll")
    Traceback (most recent call last):
    ...
    tfptm.errors.TfptmError: train.conll: tag 'X-PER' is not a BIO tag; expected O or B-TYPE, I-TYPE
    """
    prefixes = SCHEMES[scheme]
    for tag in tags:
        if tag != "O" and not (len(tag) > 2 and tag[0] in prefixes and tag[1] == "-"):
            shown = ", ".join(f"{p}-TYPE" for p in prefixes)
            raise TfptmError(f"{where}: tag {tag!r} is not a {scheme} tag; expected O or {shown}")


def tag_vocabulary(tags, scheme="BIO"):
    """The tag names of tagged sentences: `O`, then every prefix of `scheme` for each type found, by type (ids follow
    this order). Every prefix is there even when the data lacks it: a word split into parts needs `I-` (`part_tags`).

    Example:
    >>> tag_vocabulary([["B-PER", "O"], ["B-LOC"]])
    ['O', 'B-LOC', 'I-LOC', 'B-PER', 'I-PER']
    """
    types = sorted({tag[2:] for sentence in tags for tag in sentence if tag != "O"})
    return ["O"] + [f"{prefix}-{kind}" for kind in types for prefix in SCHEMES[scheme]]


def part_tags(tag, parts):
    """The tags of the `parts` served words one given word is split into: its tag carried over as one entity.

    Example:
    >>> part_tags("B-X", 3), part_tags("S-X", 3), part_tags("E-X", 2), part_tags("O", 2), part_tags("I-X", 1)
    (['B-X', 'I-X', 'I-X'], ['B-X', 'I-X', 'E-X'], ['I-X', 'E-X'], ['O', 'O'], ['I-X'])
    """
    if parts <= 1 or tag == "O":
        return [tag] * max(parts, 1)
    prefix, kind = tag[0], tag[2:]
    first = {"B": "B", "I": "I", "S": "B", "E": "I"}[prefix]
    last = {"B": "I", "I": "I", "S": "E", "E": "E"}[prefix]
    return [f"{first}-{kind}"] + [f"I-{kind}"] * (parts - 2) + [f"{last}-{kind}"]


def entities(tags):
    """The entities of one tag sequence as `(type, first_word, end_word)` (end exclusive), decoded by `seqeval`
    (BIO or BIOES; an `I-` without its `B-` opens an entity, as in CoNLL's scoring).

    Example:
    >>> entities(["B-PER", "I-PER", "O", "S-LOC", "B-ORG", "E-ORG"])
    [('PER', 0, 2), ('LOC', 3, 4), ('ORG', 4, 6)]
    """
    from seqeval.metrics.sequence_labeling import get_entities

    return [(kind, start, end + 1) for kind, start, end in get_entities(list(tags))]


def align(word_parts, word_tags, max_length, cls_id, sep_id, tag_index=None):
    """One sentence packed as `[CLS] pieces [SEP]`, with labels on first pieces: `(ids, labels, word_ids)`.

    `word_parts` holds, per word, its parts' piece ids (`words_to_pieces`);
    `word_tags` each word's tag name (or `None` when unknown, e.g. at
    prediction time: every label is then `IGNORE`), and `tag_index` maps tag
    names to ids. Each part's first piece is labelled (`part_tags`: the
    word's tag, then its continuation), every other piece is `IGNORE`;
    `word_ids[i]` is the word a piece belongs to (-1 for `[CLS]`, `[SEP]`).
    A word that does not fit in `max_length` (with `[CLS]` and `[SEP]`) is
    left out whole, with every word after it; a word with no pieces (only
    accents, say) has no first piece, so no label: scoring predicts it `O`.

    Example (word 1 is one part of two pieces; word 2, `max_iter`, three parts; word 3 does not fit):
    >>> index = {"O": 0, "B-P": 1, "I-P": 2}
    >>> align([[[7]], [[8, 9]], [[10], [11], [12]], [[13]]], ["O", "B-P", "B-P", "O"], 8, 2, 3, index)
    ([2, 7, 8, 9, 10, 11, 12, 3], [-1, 0, 1, -1, 1, 2, 2, -1], [-1, 0, 1, 1, 2, 2, 2, -1])
    """
    ids, labels, word_ids = [cls_id], [IGNORE], [-1]
    for w, parts in enumerate(word_parts):
        if len(ids) + sum(map(len, parts)) > max_length - 1:
            break
        tags = part_tags(word_tags[w], len(parts)) if word_tags is not None else [None] * len(parts)
        for part, tag in zip(parts, tags):
            for k, piece in enumerate(part):
                ids.append(int(piece))
                labels.append(IGNORE if k or tag is None else int(tag_index[tag]))
                word_ids.append(w)
    return ids + [sep_id], labels + [IGNORE], word_ids + [-1]


@dataclasses.dataclass
class TaggedArrays:
    """Sentences packed for a token classifier: the model's inputs `x` (a dict of `(n, length)` arrays),
    `labels` (`IGNORE` off first pieces) and `word_ids` (the word of each piece, -1 elsewhere)."""

    x: dict
    labels: np.ndarray
    word_ids: np.ndarray
    num_truncated_words: int

    def __len__(self):
        return len(self.labels)


def encode_tagged(sentences, tags, pieces_layer, max_length, tag_names=None):
    """Sentences (lists of words) and their tags (lists of tag names, or `None`) as `TaggedArrays`, padded to the
    longest; `tag_names` (the model's tags, ids in this order) is needed with `tags`.

    `pieces_layer` is a `tfptm.data.words.WordPieces` (`word_pieces(tokenizer)`).

    Example:
    >>> from tfptm.data.words import WordPieces
    >>> layer = WordPieces(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "john", "lives", "here", "##s"])
    >>> arrays = encode_tagged([["John", "lives"], ["here"]], [["B-PER", "O"], ["O"]], layer, 8, ["O", "B-PER", "I-PER"])
    >>> arrays.x["token_ids"].tolist(), arrays.labels.tolist()
    ([[2, 4, 5, 3], [2, 6, 3, 0]], [[-1, 1, 0, -1], [-1, 0, -1, -1]])
    """
    from tfptm.data.words import longest, pad_rows, words_to_pieces

    if max_length < 3:
        raise TfptmError(f"encode_tagged: max_length {max_length}; expected at least 3 ([CLS], a piece, [SEP])")
    if tags is not None and tag_names is None:
        raise TfptmError("encode_tagged: tags given without tag_names; expected the model's tag names")
    index = {name: i for i, name in enumerate(tag_names or [])}
    pieces = words_to_pieces(pieces_layer, sentences)
    packed = [align(p, None if tags is None else tags[i], max_length, pieces_layer.cls_id, pieces_layer.sep_id, index)
              for i, p in enumerate(pieces)]
    width = longest([ids for ids, _, _ in packed])
    token_ids = pad_rows([ids for ids, _, _ in packed], width, pieces_layer.pad_id)
    truncated = sum(len(words) - (max(w) + 1 if max(w) >= 0 else 0) for words, (_, _, w) in zip(sentences, packed))
    return TaggedArrays(
        x={"token_ids": token_ids, "padding_mask": pad_rows([[1] * len(ids) for ids, _, _ in packed], width, 0, "bool"),
           "segment_ids": np.zeros_like(token_ids)},
        labels=pad_rows([labels for _, labels, _ in packed], width, IGNORE),
        word_ids=pad_rows([w for _, _, w in packed], width, -1),
        num_truncated_words=int(truncated),
    )


def word_predictions(piece_predictions, word_ids, num_words):
    """Each word's prediction: its first piece's. `piece_predictions` `(length,)`, `word_ids` as `align` gives;
    words without a piece (cut off, or unknown to the vocabulary) get `None`.

    Example:
    >>> word_predictions([5, 1, 2, 2, 5], [-1, 0, 1, 1, -1], num_words=3)
    [1, 2, None]
    """
    out = [None] * num_words
    for prediction, w in zip(piece_predictions, word_ids):
        if w >= 0 and out[w] is None:
            out[w] = prediction
    return out


def write_tagged(examples, path, format=None):
    """Writes tagged sentences (`{"tokens": [...], "tags": [...]}` dicts) as CoNLL or JSON Lines, the format read
    from the extension (`FORMATS`) unless given; `read_tagged` reads them back. Returns the path.

    CoNLL is one `word TAG` line per word and a blank line after each sentence, so a word may not hold whitespace.

    Example:
    >>> import os, tempfile
    >>> examples = [{"tokens": ["fit", "x"], "tags": ["O", "B-PARAM"]}]
    >>> path = write_tagged(examples, os.path.join(tempfile.mkdtemp(), "a.conll"))
    >>> open(path).read(), read_tagged(path).sentences
    ('fit O\\nx B-PARAM\\n\\n', [['fit', 'x']])
    """
    from pathlib import Path

    fmt = format or FORMATS.get(os.path.splitext(str(path))[1].lower())
    if fmt not in ("conll", "jsonl"):
        raise TfptmError(f"write_tagged: {str(path)!r}: unknown format; expected a .conll or .jsonl path, or "
                         "format='conll' / 'jsonl'")
    lines = []
    for example in examples:
        tokens, tags = list(example["tokens"]), list(example["tags"])
        if len(tokens) != len(tags):
            raise TfptmError(f"write_tagged: {len(tokens)} tokens but {len(tags)} tags; expected one tag per token")
        if fmt == "jsonl":
            lines.append(json.dumps({"tokens": tokens, "tags": tags}, ensure_ascii=False))
            continue
        for token, tag in zip(tokens, tags):
            if not token or any(char.isspace() for char in token):
                raise TfptmError(f"write_tagged: token {token!r} is empty or holds whitespace; CoNLL expects "
                                 "split_words words (or write JSON Lines)")
            lines.append(f"{token} {tag}")
        lines.append("")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path
