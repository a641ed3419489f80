"""Real text classification tasks built from docstrings: which library (or standard-library package) wrote this?

The labels are derived, not annotated: a text's label is the package whose
source it was read from (with `ast`, so nothing is imported or run). The
texts are each docstring's summary, its first paragraph with whitespace
folded; summaries shorter than 4 words, and any summary found in two
packages (or twice), are left out, since they say nothing of where they came from.

- `libraries`: 4 classes, the scientific packages tfptm itself installs
  (NumPy, scikit-learn, Matplotlib, Keras). Long, technical summaries.
- `stdlib`: 8 classes, packages of Python's standard library (asyncio,
  email, xml, unittest, multiprocessing, logging, importlib, http + urllib).
  Shorter summaries, more classes: the shape of a typical user task.

The texts depend on the installed versions (recorded in `TextTask.info`).

Example:
>>> task = docstring_task("stdlib", train_per_class=10, validation_per_class=2, test_per_class=5)
>>> len(task.class_names), len(task.train[0]), len(task.test[0]), len(task.validation[0])
(8, 80, 40, 16)
>>> sorted(set(task.train[1].tolist())) == list(range(8)), task.class_names[:3]
(True, ['asyncio', 'email', 'http'])
"""

import ast
import dataclasses
import importlib.metadata
import importlib.util
import sysconfig
from pathlib import Path

import numpy as np

from tfptm.errors import TfptmError

#: task name -> {class name: the packages (importable names) its texts come from}
TASKS = {
    "libraries": {"numpy": ["numpy"], "scikit-learn": ["sklearn"], "matplotlib": ["matplotlib"], "keras": ["keras"]},
    "stdlib": {
        "asyncio": ["asyncio"], "email": ["email"], "xml": ["xml"], "unittest": ["unittest"],
        "multiprocessing": ["multiprocessing"], "logging": ["logging"], "importlib": ["importlib"],
        "http": ["http", "urllib"],
    },
}
_DISTRIBUTIONS = {"sklearn": "scikit-learn"}
_SKIPPED_PARTS = {"tests", "test", "testing", "idle_test"}


@dataclasses.dataclass(frozen=True)
class TextTask:
    """A labelled text task: `(texts, labels)` arrays per split, the class names, the unlabelled rest, provenance.

    `unlabelled` holds the other summaries of the same packages (none of a
    validation or test text), for distillation transfer sets or pre-training.
    """

    name: str
    class_names: list
    train: tuple
    validation: tuple
    test: tuple
    unlabelled: list
    info: dict

    def write_csv(self, directory):
        """Writes `train.csv`, `validation.csv` and `test.csv` (columns `text`, `label`) for `tfptm train`; returns the paths."""
        import csv

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        paths = {}
        for split in ("train", "validation", "test"):
            texts, labels = getattr(self, split)
            paths[split] = directory / f"{split}.csv"
            with open(paths[split], "w", newline="", encoding="utf-8") as file:
                writer = csv.writer(file)
                writer.writerow(["text", "label"])
                writer.writerows((text, self.class_names[label]) for text, label in zip(texts, labels))
        return paths


def source_trees(package):
    """Yields `(path relative to the package, ast tree)` for each source file of an installed package, in a fixed
    order, tests skipped: the one reader of sources the docstring tasks and the benchmarks share (nothing is imported).

    Example:
    >>> [path.name for path, tree in source_trees("json")][:2]
    ['__init__.py', 'decoder.py']
    """
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None or not Path(spec.origin).is_file():
        raise TfptmError(f"docstrings: package {package!r} is not installed with Python sources (found "
                         f"{getattr(spec, 'origin', None)!r}); expected an importable package with .py files")
    origin = Path(spec.origin)
    files = sorted(origin.parent.rglob("*.py")) if origin.name == "__init__.py" else [origin]
    for file in files:
        relative = file.relative_to(origin.parent)
        if set(relative.parts) & _SKIPPED_PARTS or file.name.startswith("test_"):
            continue
        try:
            yield relative, ast.parse(file.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue


def docstrings(package, limit=None, modules=True):
    """Class, function and (with `modules`) module docstrings of an installed package, in a fixed order (tests skipped).

    Example:
    >>> any("JSON" in text for text in docstrings("json"))
    True
    """
    found = []
    for _, tree in source_trees(package):
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) or (modules and isinstance(node, ast.Module)):
                text = ast.get_docstring(node)
                if text:
                    found.append(text)
        if limit is not None and len(found) >= limit:
            return found[:limit]
    return found


def paragraphs(docstring, min_words=4):
    """A docstring's paragraphs, whitespace folded, those of fewer than `min_words` words dropped.

    >>> paragraphs("Adds two numbers.\\n\\nIt returns   their sum as an int.\\n\\nOk.")
    ['It returns their sum as an int.']
    """
    parts = (" ".join(p.split()) for p in docstring.split("\n\n"))
    return [p for p in parts if len(p.split()) >= min_words]


def docstring_task(name="stdlib", train_per_class=None, validation_per_class=20, test_per_class=60, seed=0,
                   per_package_limit=3000):
    """Builds the task `name` (see the module doc) with a stratified split, the same for the same `seed` and versions.

    Every class gets `test_per_class` and `validation_per_class` texts, and
    `train_per_class` for training (`None`: all that remain, so classes may differ in size).
    """
    if name not in TASKS:
        raise TfptmError(f"docstring_task: unknown task {name!r}; expected one of {', '.join(TASKS)}")
    rng = np.random.default_rng(seed)
    summaries, others, versions = {}, {}, {}
    for label, packages in sorted(TASKS[name].items()):  # class ids in sorted order, as read_text_table gives them
        summaries[label], others[label] = [], []
        for package in packages:
            for doc in docstrings(package, per_package_limit):
                parts = " ".join(doc.split("\n\n")[0].split()), paragraphs(doc)
                if len(parts[0].split()) >= 4:
                    summaries[label].append(parts[0])
                others[label] += parts[1][1:]
            versions[package] = _version(package)
    counts = {}
    for texts in summaries.values():
        for text in texts:
            counts[text.lower()] = counts.get(text.lower(), 0) + 1
    splits = {"train": [], "validation": [], "test": []}
    unlabelled = []
    for y, (label, texts) in enumerate(summaries.items()):
        usable = sorted({t for t in texts if counts[t.lower()] == 1})
        held = validation_per_class + test_per_class
        if len(usable) < held + 2:
            raise TfptmError(f"docstring_task {name!r}: class {label!r} has {len(usable)} usable summaries; "
                             f"expected at least {held + 2}")
        chosen = [usable[i] for i in rng.permutation(len(usable))]
        test, validation = chosen[:test_per_class], chosen[test_per_class:held]
        train = chosen[held: held + train_per_class] if train_per_class else chosen[held:]
        splits["test"] += [(t, y) for t in test]
        splits["validation"] += [(t, y) for t in validation]
        splits["train"] += [(t, y) for t in train]
        unlabelled += chosen[held + len(train):] + others[label]
    arrays = {}
    for split, pairs in splits.items():
        order = rng.permutation(len(pairs))
        arrays[split] = (np.array([pairs[i][0] for i in order], dtype=object),
                         np.array([pairs[i][1] for i in order], dtype="int32"))
    info = {"task": name, "label": "the package whose source a docstring summary was read from",
            "packages": TASKS[name], "versions": versions, "seed": seed,
            "sizes": {split: len(pairs) for split, pairs in splits.items()}, "unlabelled": len(unlabelled)}
    return TextTask(name, sorted(TASKS[name]), arrays["train"], arrays["validation"], arrays["test"],
                    [unlabelled[i] for i in rng.permutation(len(unlabelled))], info)


def _version(package):
    spec = importlib.util.find_spec(package)
    if spec and spec.origin and spec.origin.startswith(sysconfig.get_paths()["stdlib"]):
        return "python " + sysconfig.get_python_version()
    try:
        return importlib.metadata.version(_DISTRIBUTIONS.get(package, package))
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
