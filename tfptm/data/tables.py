"""Labelled text from CSV, TSV or JSON Lines files with named columns.

What is an error and what is skipped (`strict=True` makes skips errors):

| input | result |
|---|---|
| missing file, or no rows | `TfptmError` |
| bytes that are not UTF-8 | `TfptmError` naming the line |
| the text or label column missing (header or JSON object) | `TfptmError` naming the columns found |
| a line that is not valid CSV / JSON | `TfptmError` naming the line |
| an empty (or blank) text | skipped and counted: nothing to learn from |
| an empty label | `TfptmError` naming the line |
| a label not in the given `class_names` | `TfptmError` naming the label and line |
| more distinct labels than `num_classes` | `TfptmError` listing them |
| `task="multilabel"`: an empty label cell | no label for that text (a row of zeros) |
| `task="regression"`: a label that is not a finite number | `TfptmError` naming the line |
"""

import csv
import dataclasses
import io
import json
import os

import numpy as np

from tfptm.data.arrays import split_indices
from tfptm.data.loaded import skip_or_raise, skip_summary
from tfptm.errors import TfptmError

TASKS = ("multiclass", "binary", "multilabel", "regression")  # as tfptm.heads.TASKS
LABEL_SEPARATOR = "|"  # between the labels of a multilabel CSV cell
FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}


@dataclasses.dataclass
class TextTable:
    """Texts with class ids: `labels[i]` is the id of `texts[i]` and names `class_names[labels[i]]`.

    `skipped` lists the rows left out (`Skip("file:line", reason)`);
    `summary()` counts them for summary.json.
    """

    texts: list
    labels: np.ndarray
    class_names: list
    skipped: list
    path: str

    def summary(self):
        """A JSON-ready dict: rows kept, class names and skipped rows."""
        return {"path": self.path, "num_examples": len(self.texts), "class_names": list(self.class_names),
                **skip_summary(self.skipped)}

    def split(self, validation_fraction=0.2, seed=0):
        """A stratified `(train, validation)` pair of `TextTable`s, the same for the same seed.

        Example:
        >>> table = TextTable(["a", "b", "c", "d"], np.array([0, 1, 0, 1]), ["x", "y"], [], "t.csv")
        >>> train, validation = table.split(0.5, seed=0)
        >>> len(train.texts), sorted(validation.labels.tolist())
        (2, [0, 1])
        """
        train, validation = split_indices(self.labels, validation_fraction, seed, where=f"split of {self.path!r}")
        return tuple(
            TextTable([self.texts[i] for i in index], self.labels[index], self.class_names, self.skipped, self.path)
            for index in (train, validation)
        )


def read_text_table(path, text_column="text", label_column="label", class_names=None, num_classes=None,
                    format=None, strict=False, task="multiclass"):
    """Reads texts and labels from a CSV, TSV or JSON Lines file.

    Args:
        path: the file; its extension (`.csv`, `.tsv`, `.jsonl`) picks the format unless `format` is given.
        text_column, label_column: the column (CSV header) or key (JSON) names.
        class_names: the label set, in class-id order; `None` takes the labels
            found, sorted (numerically when they are all integers).
        num_classes: if given, the most distinct labels allowed.
        format: `"csv"`, `"tsv"` or `"jsonl"`.
        strict: make empty texts an error instead of a counted skip.
        task: what the labels are, as for `tfptm.Head`: `"multiclass"` and
            `"binary"` give class ids; `"multilabel"` a 0/1 matrix with one
            column per label (a JSON list of labels, or labels separated by
            `|` in a CSV cell; an empty cell is no label); `"regression"`
            float values (`class_names` is then `[label_column]`, the output's name).

    Example:
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "reviews.csv")
    >>> _ = open(path, "w").write('text,label\\n"great film",pos\\n"dull, slow",neg\\n"",pos\\n')
    >>> table = read_text_table(path)
    >>> table.texts, table.labels.tolist(), table.class_names, table.summary()["num_skipped"]
    (['great film', 'dull, slow'], [1, 0], ['neg', 'pos'], 1)
    """
    path = os.fspath(path)
    if task not in TASKS:
        raise TfptmError(f"read_text_table: task is {task!r}; expected one of {', '.join(TASKS)}")
    fmt = format or FORMATS.get(os.path.splitext(path)[1].lower())
    if fmt not in ("csv", "tsv", "jsonl"):
        raise TfptmError(f"read_text_table: cannot tell the format of {path!r}; expected a .csv, .tsv or .jsonl "
                         "file, or format='csv' | 'tsv' | 'jsonl'")
    rows = _rows(_read_utf8(path), path, fmt, [text_column, label_column])
    texts, raw_labels, skipped = [], [], []
    for line, text, label in rows:
        where = f"{path}:{line}"
        if not isinstance(text, str):
            raise TfptmError(f"{where}: {text_column!r} is {text!r}; expected a string")
        label = _LABEL_READERS.get(task, _class_label)(label, where, label_column)
        if not text.strip():
            skip_or_raise(skipped, where, "empty text", strict, what="text")
            continue
        texts.append(text)
        raw_labels.append((where, label))
    if not texts:
        raise TfptmError(f"read_text_table: {path!r} has no rows with text ({len(skipped)} empty); expected labelled texts")
    if task == "regression":
        return TextTable(texts, np.array([value for _, value in raw_labels], "float32"), [label_column], skipped, path)
    if task == "multilabel":
        class_names, labels = _label_matrix(raw_labels, class_names, num_classes, path)
    else:
        class_names, labels = _label_ids(raw_labels, class_names, num_classes, path)
    return TextTable(texts, labels, class_names, skipped, path)


def _class_label(label, where, column):
    if isinstance(label, bool) or not isinstance(label, (str, int)) or str(label).strip() == "":
        raise TfptmError(f"{where}: {column!r} is {label!r}; expected a non-empty label (a string or integer)")
    return str(label).strip()


def _label_list(label, where, column):
    """A multilabel cell: a JSON list of labels, or `a|b` text; empty means no label."""
    items = label if isinstance(label, list) else str(label).split(LABEL_SEPARATOR) if isinstance(label, (str, int)) \
        and not isinstance(label, bool) else None
    if items is None:
        raise TfptmError(f"{where}: {column!r} is {label!r}; expected a list of labels or labels separated by "
                         f"{LABEL_SEPARATOR!r}")
    names = [str(item).strip() for item in items if not isinstance(item, (list, dict, bool)) and str(item).strip()]
    if len(names) != len([item for item in items if str(item).strip()]):
        raise TfptmError(f"{where}: {column!r} is {label!r}; expected labels that are strings or integers")
    return tuple(dict.fromkeys(names))


def _value(label, where, column):
    try:
        value = float(label) if not isinstance(label, bool) and isinstance(label, (int, float, str)) else None
    except ValueError:
        value = None
    if value is None or not np.isfinite(value):
        raise TfptmError(f"{where}: {column!r} is {label!r}; expected a number (the regression target)")
    return value


_LABEL_READERS = {"multilabel": _label_list, "regression": _value}


def _label_matrix(raw_labels, class_names, num_classes, path):
    """`(label names, 0/1 float32 matrix)` of multilabel rows, one column per label."""
    found = [(where, label) for where, labels in raw_labels for label in labels]
    names, _ = _label_ids(found, class_names, num_classes, path) if found else (list(class_names or []), None)
    if not names:
        raise TfptmError(f"read_text_table: {path!r} has no labels in any row; expected multilabel rows such as 'a|b'")
    column = {name: i for i, name in enumerate(names)}
    matrix = np.zeros((len(raw_labels), len(names)), "float32")
    for row, (_, labels) in enumerate(raw_labels):
        matrix[row, [column[label] for label in labels]] = 1.0
    return names, matrix


def _read_utf8(path, reader="read_text_table", expected=""):
    """The UTF-8 text of file `path`; a missing, unreadable or non-UTF-8 file is one `TfptmError` opening with
    `reader` (the function reading it) and ending with `expected` (what the file should be)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise TfptmError(f"{reader}: {path!r} does not exist{expected}") from None
    except OSError as error:
        raise TfptmError(f"{reader}: {path!r} cannot be read ({error.strerror or error})") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise TfptmError(
            f"{path}:{line}: byte 0x{data[error.start]:02x} is not UTF-8; expected UTF-8 text (re-save the file as UTF-8)"
        ) from None


def _rows(text, path, fmt, wanted):
    """Yields `(line, *values)` for every row: the values of the columns (or JSON keys) named in `wanted`."""
    if fmt == "jsonl":
        # Lines end at "\n" only: U+2028, U+2029 and U+0085 are legal inside JSON strings (str.splitlines splits on them).
        for line, raw in enumerate(text.split("\n"), start=1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
            except json.JSONDecodeError as error:
                raise TfptmError(f"{path}:{line}: not valid JSON ({error.msg}); expected one JSON object per line") from None
            if not isinstance(record, dict):
                raise TfptmError(f"{path}:{line}: a JSON {type(record).__name__}; expected an object with {wanted}")
            missing = [c for c in wanted if c not in record]
            if missing:
                raise TfptmError(f"{path}:{line}: no {missing} key; found keys {sorted(record)}, expected {wanted}")
            yield (line, *(record[c] for c in wanted))
        return
    reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t" if fmt == "tsv" else ",")
    try:
        header = next(reader, None)
        if header is None:
            raise TfptmError(f"read_text_table: {path!r} is empty; expected a header row naming {wanted}")
        missing = [c for c in wanted if c not in header]
        if missing:
            raise TfptmError(f"read_text_table: {path!r} has no column {missing}; found columns {header}, expected {wanted}")
        at = [header.index(c) for c in wanted]
        for row in reader:
            if not row:
                continue
            if len(row) <= max(at):
                raise TfptmError(f"{path}:{reader.line_num}: {len(row)} fields; expected {len(header)} as in the header")
            yield (reader.line_num, *(row[i] for i in at))
    except csv.Error as error:
        raise TfptmError(f"{path}:{reader.line_num}: not valid {fmt.upper()} ({error})") from None


def _label_ids(raw_labels, class_names, num_classes, path):
    found = sorted({label for _, label in raw_labels}, key=_label_order)
    if class_names is None:
        class_names = found
    else:
        class_names = [str(name) for name in class_names]
        index = set(class_names)
        if len(index) != len(class_names) or not class_names:
            raise TfptmError(f"read_text_table: class_names {class_names} must be distinct and not empty")
        for where, label in raw_labels:
            if label not in index:
                raise TfptmError(f"{where}: label {label!r} is not in the label set {class_names}")
    if num_classes is not None:
        if len(class_names) > num_classes:
            raise TfptmError(f"read_text_table: {path!r} has {len(class_names)} distinct labels {class_names[:20]}; "
                             f"expected at most num_classes={num_classes}")
    ids = {name: i for i, name in enumerate(class_names)}
    return class_names, np.array([ids[label] for _, label in raw_labels], dtype="int32")


def _label_order(label):
    try:
        return (0, int(label), "")
    except ValueError:
        return (1, 0, label)
