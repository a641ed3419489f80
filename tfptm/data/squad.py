"""Extractive question answering data: SQuAD-style JSON, and long contexts cut into overlapping windows (floor 1).

A question is answered by a span of its context. Files are SQuAD's JSON
(`{"data": [{"title", "paragraphs": [{"context", "qas": [{"id", "question",
"answers": [{"text", "answer_start"}]}]}]}]}`, v1.1 and v2.0 alike) or JSON
Lines with one question per line (`{"id", "title", "context", "question",
"answers"}`, the answers either SQuAD's list or Hugging Face's
`{"text": [...], "answer_start": [...]}`). `answer_start` is a character
offset into the context, and `context[answer_start:][:len(text)] == text`
must hold for every answer: a question with a misplaced answer is skipped
and counted (`strict=True`: an error), as is one without any answer (SQuAD
v2's unanswerable questions: only answerable questions are read).

Windows (`encode_windows`), as BERT's `run_squad.py` builds them: the
question's word pieces (its first `max_question_length`, and at most
`max_length - 4`) and a window of the
context's pieces are packed as `[CLS] question [SEP] window [SEP]`, with
`segment_ids` 0 up to the first `[SEP]` and 1 on the window and its `[SEP]`.
A window holds at most `capacity = max_length - 3 - len(question pieces)`
context pieces.

**`doc_stride` is BERT's `doc_stride`: the step, in context word pieces,
from the first context piece of one window to the first context piece of
the next** (window k starts at piece `k * step`, `step = min(doc_stride,
capacity)`), and windows are added until one reaches the context's end.
Consecutive windows therefore share `capacity - step` pieces (nothing when
`doc_stride >= capacity`: the step is capped at the capacity, so, unlike
BERT, no piece is ever left out of every window). Hugging Face's tokenizers
call the overlap itself `stride`: HF `stride=s` is `doc_stride = capacity - s`.
A context that fits is one window; an empty context too (no context piece).

Labels (training): the start and end token positions of the answer's pieces
(first piece of the word holding the answer's first character, last piece of
the word holding its last), in every window that holds all of them; `(0, 0)`
(the `[CLS]` token) in the windows that do not (the SQuAD v2 / BERT rule).
The first gold answer is the one trained on. Words are BERT's (`tfptm.data.
words.split_words`), so an answer's offsets are widened to whole words.

Example:
>>> from tfptm.data.words import WordPieces
>>> pieces = WordPieces(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "who", "ran", "?", "bob", "ann", "and", "sat", "."])
>>> w = encode_windows(["Who ran?"], ["Bob sat and Ann ran."], [[{"text": "Ann", "answer_start": 12}]],
...                    pieces, max_length=9, doc_stride=1)
>>> w.x["token_ids"].tolist()  # [CLS] who ran ? [SEP], 3 context pieces, [SEP]; windows one piece apart
[[2, 4, 5, 6, 3, 7, 10, 9, 3], [2, 4, 5, 6, 3, 10, 9, 8, 3], [2, 4, 5, 6, 3, 9, 8, 5, 3], [2, 4, 5, 6, 3, 8, 5, 11, 3]]
>>> w.labels.tolist(), w.context_starts.tolist(), w.word_ids[3].tolist()
([[0, 0], [7, 7], [6, 6], [5, 5]], [0, 1, 2, 3], [-1, -1, -1, -1, -1, 3, 4, 5, -1])
"""

import dataclasses
import json
import os

import numpy as np

from tfptm.data.loaded import skip_or_raise, skip_summary
from tfptm.data.tables import _read_utf8
from tfptm.errors import TfptmError

CLS_LABEL = 0  # the label of both ends when a window does not hold the whole answer: the [CLS] token


@dataclasses.dataclass
class QATable:
    """Questions about contexts, each with its gold answers (`[{"text", "answer_start"}, ...]`, at least one).

    `ids`, `titles`, `questions`, `contexts` and `answers` run in parallel;
    `skipped` lists the questions left out (`Skip(where, reason)`).

    Example:
    >>> table = QATable(["q1", "q2"], ["t", "t"], ["Who?", "What?"], ["Ann ran.", "Ann ran."],
    ...                 [[{"text": "Ann", "answer_start": 0}], [{"text": "ran", "answer_start": 4}]])
    >>> len(table), table.summary()["num_contexts"]
    (2, 1)
    """

    ids: list
    titles: list
    questions: list
    contexts: list
    answers: list
    skipped: list = dataclasses.field(default_factory=list)

    def __len__(self):
        return len(self.questions)

    def select(self, indices):
        """The questions at `indices`, as a `QATable` (no skips).

        Example:
        >>> QATable(["a", "b"], ["t", "t"], ["q1", "q2"], ["c", "c"], [[], []]).select([1]).questions
        ['q2']
        """
        return QATable(*([column[i] for i in indices] for column in
                         (self.ids, self.titles, self.questions, self.contexts, self.answers)))

    def split(self, fraction, seed=0, by="context"):
        """`(rest, held_out)`: about `fraction` of the contexts (`by="context"`) or of the titles (`by="title"`,
        whole articles) held out at random with all their questions, so no context is on both sides.

        Example:
        >>> table = QATable(list("abcd"), ["t1", "t1", "t2", "t3"], ["q"] * 4, ["c1", "c1", "c2", "c3"],
        ...                 [[{"text": "c", "answer_start": 0}]] * 4)
        >>> rest, held = table.split(0.3, seed=0)
        >>> sorted(rest.ids + held.ids), set(rest.contexts) & set(held.contexts)
        (['a', 'b', 'c', 'd'], set())
        """
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0.0 < fraction < 1.0:
            raise TfptmError(f"QATable.split: fraction is {fraction!r}; expected a number between 0 and 1")
        if by not in ("context", "title"):
            raise TfptmError(f"QATable.split: by={by!r}; expected 'context' or 'title'")
        keys = self.contexts if by == "context" else self.titles
        groups = sorted(set(keys))
        if len(groups) < 2:
            raise TfptmError(f"QATable.split: {len(groups)} distinct {by}(s); expected at least 2 to hold one out")
        order = np.random.default_rng(seed).permutation(len(groups))
        count = min(max(1, int(round(fraction * len(groups)))), len(groups) - 1)
        held_keys = {groups[i] for i in order[:count]}
        held = [i for i, key in enumerate(keys) if key in held_keys]
        rest = [i for i, key in enumerate(keys) if key not in held_keys]
        return dataclasses.replace(self.select(rest), skipped=list(self.skipped)), self.select(held)

    def summary(self):
        """Counts for summary.json: questions, contexts, titles, answers, context lengths, skips.

        Example:
        >>> summary = QATable(["a"], ["t"], ["q"], ["Ann ran."], [[{"text": "Ann", "answer_start": 0}]]).summary()
        >>> summary["num_answers"], summary["max_context_chars"], summary["num_skipped"]
        (1, 8, 0)
        """
        lengths = [len(c) for c in self.contexts]
        return {"num_questions": len(self), "num_contexts": len(set(self.contexts)),
                "num_titles": len(set(self.titles)), "num_answers": sum(map(len, self.answers)),
                "max_context_chars": max(lengths, default=0),
                "mean_context_chars": float(np.mean(lengths)) if lengths else 0.0, **skip_summary(self.skipped)}


def read_squad(path, strict=False):
    """Reads a SQuAD-style JSON file (or JSON Lines, one question a line; see the module docstring) as a `QATable`.

    A question with an empty question or context, no answer, or an answer
    that is not found at its `answer_start` is skipped and counted (an error
    with `strict`); a missing file, bad JSON, a wrong structure or a file
    with no valid question is one `TfptmError` saying where and what was expected.

    Example:
    >>> import os, tempfile, json
    >>> path = os.path.join(tempfile.mkdtemp(), "dev.json")
    >>> qas = [{"id": "1", "question": "Who ran?", "answers": [{"text": "Ann", "answer_start": 0}]},
    ...        {"id": "2", "question": "Who sat?", "answers": [{"text": "Bob", "answer_start": 0}]}]
    >>> _ = open(path, "w").write(json.dumps({"data": [{"title": "t", "paragraphs": [{"context": "Ann ran.", "qas": qas}]}]}))
    >>> table = read_squad(path)
    >>> table.questions, table.summary()["skipped_by_reason"]
    (['Who ran?'], {"answer 0: 'Bob' is not at answer_start 0 of the context (found 'Ann')": 1})
    """
    path = str(path)
    text = _read_utf8(path, "read_squad", "; expected a SQuAD-style JSON file")
    if path.lower().endswith(".jsonl"):
        rows = _jsonl_rows(text, path)
    else:
        try:
            document = json.loads(text)
        except json.JSONDecodeError as error:
            raise TfptmError(f"read_squad: {path}:{error.lineno}:{error.colno}: not valid JSON ({error.msg}); expected "
                             "SQuAD's JSON object {'data': [{'title', 'paragraphs': [{'context', 'qas'}]}]} "
                             "(or a .jsonl file with one question a line)") from None
        rows = _squad_rows(document, path)
    table, skipped = QATable([], [], [], [], []), []
    for where, qid, title, question, context, answers in rows:
        problem = _problem(question, context, answers)
        if problem:
            skip_or_raise(skipped, where, problem, strict, "question")
            continue
        for column, value in zip((table.ids, table.titles, table.questions, table.contexts, table.answers),
                                 (qid, title, question, context, answers)):
            column.append(value)
    if not table.questions:
        raise TfptmError(f"read_squad: {path!r} holds no valid question ({len(skipped)} skipped"
                         + (f", e.g. {skipped[0].where}: {skipped[0].reason}" if skipped else "")
                         + "); expected questions with answers found at their answer_start in the context")
    table.skipped = skipped
    return table


def _expect(value, kind, where, what):
    if not isinstance(value, kind):
        raise TfptmError(f"read_squad: {where}: {what} is {type(value).__name__}; expected "
                         f"{'a list' if kind is list else 'an object' if kind is dict else 'a string'}")
    return value


def _squad_rows(document, path):
    if not isinstance(document, dict) or not isinstance(document.get("data"), list):
        keys = sorted(document) if isinstance(document, dict) else type(document).__name__
        raise TfptmError(f"read_squad: {path!r}: top level is {keys}; expected SQuAD's object with a 'data' list of "
                         "articles {'title', 'paragraphs': [{'context', 'qas'}]}")
    for a, article in enumerate(document["data"]):
        where_a = f"{path}: data[{a}]"
        _expect(article, dict, where_a, "the article")
        title = str(article.get("title", ""))
        for p, paragraph in enumerate(_expect(article.get("paragraphs"), list, where_a, "'paragraphs'")):
            where_p = f"{where_a}.paragraphs[{p}]"
            _expect(paragraph, dict, where_p, "the paragraph")
            context = _expect(paragraph.get("context"), str, where_p, "'context'")
            for q, qa in enumerate(_expect(paragraph.get("qas"), list, where_p, "'qas'")):
                where = f"{where_p}.qas[{q}]"
                _expect(qa, dict, where, "the question")
                yield (f"{where} (id {qa.get('id')!r})", str(qa.get("id", f"{a}.{p}.{q}")), title, qa.get("question"),
                       context, qa.get("answers"))


def _jsonl_rows(text, path):
    for line, raw in enumerate(text.split("\n"), start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as error:
            raise TfptmError(f"read_squad: {path}:{line}: not valid JSON ({error.msg}); expected one JSON object per "
                             "line with context, question and answers") from None
        _expect(record, dict, f"{path}:{line}", "the line")
        answers = record.get("answers")
        if isinstance(answers, dict):  # Hugging Face's columns: {"text": [...], "answer_start": [...]}
            texts, starts = answers.get("text"), answers.get("answer_start")
            if not isinstance(texts, list) or not isinstance(starts, list) or len(texts) != len(starts):
                raise TfptmError(f"read_squad: {path}:{line}: answers {answers!r}; expected lists 'text' and "
                                 "'answer_start' of one length")
            answers = [{"text": t, "answer_start": s} for t, s in zip(texts, starts)]
        yield (f"{path}:{line}", str(record.get("id", line)), str(record.get("title", "")), record.get("question"),
               record.get("context"), answers)


def _problem(question, context, answers):
    if not isinstance(question, str) or not question.strip():
        return "an empty question or one that is not a string"
    if not isinstance(context, str) or not context.strip():
        return "an empty context or one that is not a string"
    if not isinstance(answers, list) or not answers:
        return "no answer (unanswerable questions are not read: expected at least one answer)"
    for k, answer in enumerate(answers):
        if not isinstance(answer, dict) or not isinstance(answer.get("text"), str) or not answer["text"].strip():
            return f"answer {k} is {answer!r}; expected {{'text': a non-empty string, 'answer_start': an int}}"
        start = answer.get("answer_start")
        if isinstance(start, bool) or not isinstance(start, int) or not 0 <= start < len(context):
            return f"answer {k}: answer_start {start!r}; expected a character offset into the context (0 to {len(context) - 1})"
        found = context[start:start + len(answer["text"])]
        if found != answer["text"]:
            return f"answer {k}: {answer['text']!r} is not at answer_start {start} of the context (found {found!r})"
    return None


# --- windows -----------------------------------------------------------------------------------------------------


def window_starts(num_pieces, capacity, doc_stride):
    """The first context piece of each window of a context of `num_pieces` pieces: BERT's `run_squad.py` loop
    (`doc_stride` the step, capped at `capacity`), `[0]` when the context fits (or is empty).

    Example:
    >>> window_starts(10, capacity=4, doc_stride=3), window_starts(3, capacity=4, doc_stride=3), window_starts(9, 4, 9)
    ([0, 3, 6], [0], [0, 4, 8])
    """
    if capacity < 1 or doc_stride < 1:
        raise TfptmError(f"window_starts: capacity {capacity}, doc_stride {doc_stride}; expected both at least 1")
    step, starts = min(doc_stride, capacity), [0]
    while starts[-1] + capacity < num_pieces:
        starts.append(starts[-1] + step)
    return starts


def answer_pieces(word_offsets, word_piece_counts, answer_start, answer_end):
    """The context pieces `(first, last)` of an answer's characters `[answer_start, answer_end)`: the first piece
    of the first word ending after `answer_start` to the last piece of the last word starting before `answer_end`;
    `None` when those words have no piece.

    Example (words "Bob" 0-3, "Ann" 4-7 of 1 and 2 pieces):
    >>> answer_pieces([(0, 3), (4, 7)], [1, 2], 4, 7), answer_pieces([(0, 3), (4, 7)], [1, 2], 3, 4)
    ((1, 2), None)
    """
    first_piece = np.concatenate([[0], np.cumsum(word_piece_counts)]).astype(int)
    words = [w for w, (start, end) in enumerate(word_offsets) if end > answer_start and start < answer_end]
    if not words:
        return None
    first, last = first_piece[words[0]], first_piece[words[-1] + 1] - 1
    return (int(first), int(last)) if first <= last else None


@dataclasses.dataclass
class QAWindows:
    """Examples cut into windows (see the module docstring), one row per window.

    - `x`: the model's inputs, `(n_windows, width)` each (`token_ids`,
      `padding_mask`, `segment_ids`), padded to the longest window.
    - `labels`: `(n_windows, 2)` answer start and end token positions, `(0, 0)`
      where the window does not hold the whole answer; `None` without answers.
    - `example_index`: `(n_windows,)` the example each window comes from.
    - `word_ids`: `(n_windows, width)` the context word of each token (an index
      into `word_offsets[example]`), -1 on `[CLS]`, the question, `[SEP]` and padding.
    - `context_starts`: `(n_windows,)` the context piece each window starts at.
    - `word_offsets`: per example, `(words, 2)` character offsets (start, end)
      of the context's words.
    - `num_unlabelled`: examples whose first answer has no piece (every window `(0, 0)`).
    """

    x: dict
    labels: object
    example_index: np.ndarray
    word_ids: np.ndarray
    context_starts: np.ndarray
    word_offsets: list
    num_unlabelled: int = 0

    def __len__(self):
        return len(self.example_index)


def encode_windows(questions, contexts, answers, pieces_layer, max_length=256, doc_stride=128, max_question_length=64,
                   batch_size=512):
    """Questions and contexts (lists of strings) as `QAWindows`, with labels when `answers` is given (per example,
    SQuAD's list of `{"text", "answer_start"}`; the first is trained on), `None` for none.

    `pieces_layer` is a `tfptm.data.words.WordPieces` (`word_pieces(tokenizer)`): the same layer splits and cuts
    words here and in the serving signature. See the module docstring for the layout, `doc_stride` and labels.

    Example (an answer inside a word is widened to the word; `ran` is word 1 of the context):
    >>> from tfptm.data.words import WordPieces
    >>> pieces = WordPieces(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "who", "?", "ann", "ran"])
    >>> w = encode_windows(["Who?"], ["Ann ran"], [[{"text": "an", "answer_start": 5}]], pieces, max_length=16)
    >>> w.x["token_ids"].tolist(), w.x["segment_ids"].tolist(), w.labels.tolist(), w.word_ids.tolist()
    ([[2, 4, 5, 3, 6, 7, 3]], [[0, 0, 0, 0, 1, 1, 1]], [[5, 5]], [[-1, -1, -1, -1, 0, 1, -1]])
    """
    if len(questions) != len(contexts) or (answers is not None and len(answers) != len(questions)):
        raise TfptmError(f"encode_windows: {len(questions)} questions, {len(contexts)} contexts"
                         + ("" if answers is None else f", {len(answers)} answer lists") + "; expected one per example")
    max_question_length = check_window_sizes(max_length, doc_stride, max_question_length)
    questions, contexts = [str(q) for q in questions], [str(c) for c in contexts]
    rows, labels, example_index, word_rows, starts, offsets, unlabelled = [], [], [], [], [], [], 0
    for begin in range(0, len(questions), batch_size):
        question_pieces, context_words = _tokenize(pieces_layer, questions[begin:begin + batch_size],
                                                   contexts[begin:begin + batch_size])
        for k, (question, (word_pieces, word_offsets)) in enumerate(zip(question_pieces, context_words)):
            i = begin + k
            question = question[:max_question_length]
            flat = [piece for pieces in word_pieces for piece in pieces]
            piece_word = [w for w, pieces in enumerate(word_pieces) for _ in pieces]
            capacity = max_length - 3 - len(question)
            span = None
            if answers is not None:
                gold = answers[i][0]
                span = answer_pieces(word_offsets, [len(p) for p in word_pieces], gold["answer_start"],
                                     gold["answer_start"] + len(gold["text"]))
                unlabelled += span is None
            offsets.append(np.asarray(word_offsets, "int64").reshape(-1, 2))
            head = [pieces_layer.cls_id, *question, pieces_layer.sep_id]
            for start in window_starts(len(flat), capacity, doc_stride):
                window = flat[start:start + capacity]
                rows.append((head + window + [pieces_layer.sep_id], len(head)))
                word_rows.append([-1] * len(head) + piece_word[start:start + capacity] + [-1])
                example_index.append(i)
                starts.append(start)
                inside = span is not None and start <= span[0] and span[1] < start + len(window)
                labels.append((len(head) + span[0] - start, len(head) + span[1] - start) if inside else (CLS_LABEL,) * 2)
    from tfptm.data.words import longest, pad_rows

    width = longest([ids for ids, _ in rows])
    token_ids = pad_rows([ids for ids, _ in rows], width, pieces_layer.pad_id)
    x = {"token_ids": token_ids,
         "padding_mask": pad_rows([[1] * len(ids) for ids, _ in rows], width, 0, "bool"),
         "segment_ids": pad_rows([[0] * context + [1] * (len(ids) - context) for ids, context in rows], width, 0)}
    return QAWindows(x, np.asarray(labels, "int32").reshape(-1, 2) if answers is not None else None,
                     np.asarray(example_index, "int32"), pad_rows(word_rows, width, -1),
                     np.asarray(starts, "int32"), offsets, int(unlabelled))


def check_window_sizes(max_length, doc_stride, max_question_length):
    """Checks the window sizes (positive integers, `max_length >= 4`: `[CLS]`, a question piece, `[SEP]`, one
    context piece and `[SEP]` at least) and returns the question pieces kept: `min(max_question_length,
    max_length - 4)`, so every window holds at least one context piece.

    Example:
    >>> check_window_sizes(256, 128, 64), check_window_sizes(9, 2, 64)
    (64, 5)
    """
    for name, value in (("max_length", max_length), ("doc_stride", doc_stride), ("max_question_length", max_question_length)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise TfptmError(f"{name} is {value!r}; expected a positive integer")
    if max_length < 5:
        raise TfptmError(f"max_length {max_length}; expected at least 5 ([CLS] question [SEP] context [SEP])")
    return int(min(max_question_length, max_length - 4))


def _tokenize(pieces_layer, questions, contexts):
    """Per question its piece ids (flat), per context `(piece ids per word, character offsets per word)`."""
    import tensorflow as tf

    from tfptm.data.words import byte_to_char_offsets

    question_pieces = [[p for word in row for p in word]
                       for row in pieces_layer(tf.constant(questions, tf.string))["piece_ids"].to_list()]
    split = pieces_layer(tf.constant(contexts, tf.string))
    out = []
    for context, pieces, starts, ends in zip(contexts, split["piece_ids"].to_list(), split["word_starts"].to_list(),
                                             split["word_ends"].to_list()):
        chars = byte_to_char_offsets(context, starts + ends)
        out.append((pieces, list(zip(chars[:len(starts)], chars[len(starts):]))))
    return question_pieces, out


def squad_json(table):
    """A `QATable` as SQuAD's JSON document (one article per title, one paragraph per context), for writing back.

    Example:
    >>> table = QATable(["1"], ["t"], ["Who?"], ["Ann ran."], [[{"text": "Ann", "answer_start": 0}]])
    >>> squad_json(table)["data"][0]["paragraphs"][0]["qas"][0]["id"]
    '1'
    """
    articles = {}
    for qid, title, question, context, answers in zip(table.ids, table.titles, table.questions, table.contexts,
                                                      table.answers):
        paragraphs = articles.setdefault(title, {})
        paragraphs.setdefault(context, []).append({"id": qid, "question": question, "answers": answers})
    return {"version": "1.1", "data": [
        {"title": title, "paragraphs": [{"context": c, "qas": qas} for c, qas in paragraphs.items()]}
        for title, paragraphs in articles.items()]}


def write_squad(table, path):
    """Writes a `QATable` (as `squad_json` lays it out), or a SQuAD dict as it is, as SQuAD JSON; `read_squad` reads
    it back. Returns the path.

    Example:
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "qa.json")
    >>> _ = write_squad(QATable(["1"], ["t"], ["Who?"], ["Ann ran."], [[{"text": "Ann", "answer_start": 0}]]), path)
    >>> read_squad(path).answers
    [[{'text': 'Ann', 'answer_start': 0}]]
    """
    os.makedirs(os.path.dirname(os.path.abspath(str(path))), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(table if isinstance(table, dict) else squad_json(table), f, ensure_ascii=False)
    return path
