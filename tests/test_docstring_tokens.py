"""tfptm.datasets.docstring_tokens: the tagging and QA rules on a hand-written source, and small real tasks read from
standard-library packages (valid BIO, exact answer spans, splits by file, repeatable, files that read back)."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tfptm.data.squad import write_squad
from tfptm.data.tagging import write_tagged

from tfptm.datasets import docstring_tokens as dt
from tfptm.errors import TfptmError

SOURCE = '''
import numpy as np


class Scaler:
    """Scales arrays; see ``fit`` and the `User Guide <scaling>`_.

    Parameters
    ----------
    copy : bool
        Whether to copy.
    """

    def __init__(self, copy=True):
        self.copy = copy

    def transform(self, a, max_iter=10, n=2, *args, **kwargs):
        """Scale `a` with np.clip, in max_iter steps of self.copy.

        Parameters
        ----------
        a : array_like
            The input, an n-dimensional array. See :func:`numpy.clip` and
            https://numpy.org/doc/x.html for a.
        max_iter : int
            Steps, e.g. 10. Larger is slower.

        >>> Scaler().transform(a)
        a
        """


def add(x, y):
    """Adds two tensors.

    Args:
        x (Tensor): The first tensor, as `keras.ops.add` takes it.
        y: The second tensor;
            broadcast against x. Same dtype.
    """
'''

TAG_PACKAGES = ["email"]
QA_PACKAGES = ["absl"]  # Google style, installed with TensorFlow
SPLITS = ("train", "validation", "test")


def entities(tokens, tags):
    return [(token, tag) for token, tag in zip(tokens, tags) if tag != "O"]


def valid_bio(tags):
    previous = "O"
    for tag in tags:
        if tag not in dt.TAG_NAMES or tag.startswith("I-") and previous[2:] != tag[2:]:
            return False
        previous = tag
    return True


@pytest.fixture(scope="module")
def tagging():
    return dt.tagging_task("email", packages=TAG_PACKAGES, train_size=40, validation_size=10, test_size=15)


@pytest.fixture(scope="module")
def qa():
    return dt.qa_task("absl", packages=QA_PACKAGES, train_size=20, validation_size=6, test_size=10)


def test_hand_written_source_gets_the_rule_s_tags():
    examples = dt.tag_source(SOURCE, min_words=5)
    assert len(examples) == 3  # the class, the method (its doctest left out), the function
    scaler, transform, add = examples
    assert entities(scaler["tokens"], scaler["tags"]) == [
        ("fit", "B-CODE"),  # code, not a parameter; the link title "User Guide <scaling>" is not tagged
        ("copy", "B-PARAM"),  # the entry's name: a parameter of __init__
        ("copy", "B-PARAM"),  # "Whether to copy": the literal rule, noisy for a parameter named by a word
    ]
    assert entities(transform["tokens"], transform["tags"]) == [
        ("a", "B-PARAM"),  # `a` in backticks: a function-word name counts in code
        ("np", "B-CODE"), (".", "I-CODE"), ("clip", "I-CODE"),  # a dotted name in prose
        ("max", "B-PARAM"), ("_", "I-PARAM"), ("iter", "I-PARAM"),  # one identifier, three words
        ("self", "B-CODE"), (".", "I-CODE"), ("copy", "I-CODE"),  # dotted: code, though copy is a name too
        ("a", "B-PARAM"),  # opens a parameter entry
        ("numpy", "B-CODE"), (".", "I-CODE"), ("clip", "I-CODE"),  # the role's target; ":func:" is not tagged
        ("max", "B-PARAM"), ("_", "I-PARAM"), ("iter", "I-PARAM"),
    ]  # not tagged: "an n-dimensional" (n is a parameter, hyphenated), the URL, "for a." (prose), "e.g"
    assert "Parameters" in transform["tokens"] and "-" not in transform["tokens"][:25]  # underline left out
    assert ">>>" not in " ".join(transform["tokens"]) and transform["tokens"][-4:] == ["Larger", "is", "slower", "."]
    assert entities(add["tokens"], add["tags"]) == [
        ("x", "B-PARAM"), ("keras", "B-CODE"), (".", "I-CODE"), ("ops", "I-CODE"), (".", "I-CODE"),
        ("add", "I-CODE"), ("y", "B-PARAM"), ("x", "B-PARAM")]
    for example in examples:
        assert len(example["tokens"]) == len(example["tags"]) and valid_bio(example["tags"])


def test_tag_docstring_keeps_every_word():
    from tfptm.data.words import split_words

    text = "Use ``sklearn.base.clone`` on `estimator`; estimator-wise e.g. estimator.fit or x.y."
    tokens, tags = dt.tag_docstring(text, ["estimator", "self"])
    assert tokens == [word for word, _, _ in split_words(text)]
    assert entities(tokens, tags) == [
        ("sklearn", "B-CODE"), (".", "I-CODE"), ("base", "I-CODE"), (".", "I-CODE"), ("clone", "I-CODE"),
        ("estimator", "B-PARAM"), ("estimator", "B-CODE"), (".", "I-CODE"), ("fit", "I-CODE")]


def test_long_docstrings_are_cut_at_line_ends_into_valid_pieces():
    lines = [f"Line {i} passes `x` to numpy.sum and max_iter along." for i in range(40)]  # 16 words a line
    source = 'def f(x, max_iter):\n    """' + "\n    ".join(lines) + '"""\n'
    examples = dt.tag_source(source, min_words=20, max_words=50)
    assert len(examples) == 13  # 13 pieces of 3 whole lines; the 40th line alone is under min_words
    for i, example in enumerate(examples):
        assert len(example["tokens"]) == 48 and valid_bio(example["tags"])
        assert example["tokens"][:2] == ["Line", str(3 * i)]
        assert entities(example["tokens"], example["tags"])[:6] == [
            ("x", "B-PARAM"), ("numpy", "B-CODE"), (".", "I-CODE"), ("sum", "I-CODE"), ("max", "B-PARAM"),
            ("_", "I-PARAM")]


def test_parameter_entries_and_qa_answers_of_the_hand_written_source():
    articles = dt.qa_source(SOURCE)
    assert [article["title"] for article in articles] == ["source.Scaler", "source.Scaler.transform", "source.add"]
    answers = {qa["id"].split(":")[-1] + "@" + article["title"]: qa["answers"][0]["text"]
               for article in articles for qa in article["paragraphs"][0]["qas"]}
    assert answers == {
        "copy@source.Scaler": "Whether to copy",
        "a@source.Scaler.transform": "The input, an n-dimensional array",
        "max_iter@source.Scaler.transform": "Steps, e.g. 10",  # "e.g." ends no sentence
        "y@source.add": "The second tensor;\n        broadcast against x",  # over two lines; "x." ends it
        "x@source.add": "The first tensor, as `keras.ops.add` takes it",
    }
    for article in articles:
        [paragraph] = article["paragraphs"]
        for qa in paragraph["qas"]:
            answer = qa["answers"][0]
            assert paragraph["context"][answer["answer_start"]:answer["answer_start"] + len(answer["text"])] \
                == answer["text"]
            name = qa["id"].split(":")[-1]
            assert name in qa["question"] and qa["question"] in [
                template.format(param=name, function=article["title"].split(".", 1)[1])
                for template in dt.QUESTION_TEMPLATES]
    doc = articles[2]["paragraphs"][0]["context"]
    assert [(e.name, doc[e.name_start:e.name_start + len(e.name)]) for e in dt.parameter_entries(doc)] \
        == [("x", "x"), ("y", "y")]


def test_tagging_task_is_valid_bio_with_capped_sizes(tagging):
    assert tagging.tag_names == ["O", "B-PARAM", "I-PARAM", "B-CODE", "I-CODE"]
    assert [len(getattr(tagging, split)) for split in SPLITS] == [40, 10, 15]
    for split in SPLITS:
        for example in getattr(tagging, split):
            assert set(example) == {"tokens", "tags"}
            assert len(example["tokens"]) == len(example["tags"]) and valid_bio(example["tags"])
            assert 20 <= len(example["tokens"]) <= 200
            assert all(token and not any(c.isspace() for c in token) for token in example["tokens"])
    counts = tagging.info["entities"]["train"]
    assert counts["PARAM"] > 10 and counts["CODE"] > 10
    assert tagging.info["versions"] == {"email": f"python {sys.version_info.major}.{sys.version_info.minor}"}
    every = [e for split in SPLITS for e in getattr(tagging, split)]
    assert len({tuple(e["tokens"]) for e in every}) == len(every)  # no text twice


def _package_dir(package):
    return Path(importlib.util.find_spec(package).origin).parent


def test_tagging_splits_are_by_source_file(tagging):
    files = tagging.info["files"]
    assert all(files[split] for split in SPLITS)
    assert not set(files["train"]) & set(files["validation"]) and not set(files["train"]) & set(files["test"])
    assert not set(files["validation"]) & set(files["test"])
    # Every example comes from a file of its own split: rebuilt from that file's source alone.
    for split in SPLITS:
        made = set()
        for file in files[split]:
            package, relative = file.split("/", 1)
            source = (_package_dir(package) / relative).read_text(encoding="utf-8")
            made |= {tuple(e["tokens"]) for e in dt.tag_source(source)}
        assert all(tuple(e["tokens"]) in made for e in getattr(tagging, split)), split


def test_same_seed_same_data_other_seed_other_data(tagging, qa):
    again = dt.tagging_task("email", packages=TAG_PACKAGES, train_size=40, validation_size=10, test_size=15)
    assert again == tagging
    other = dt.tagging_task("email", packages=TAG_PACKAGES, train_size=40, validation_size=10, test_size=15, seed=1)
    assert other.test != tagging.test
    assert dt.qa_task("absl", packages=QA_PACKAGES, train_size=20, validation_size=6, test_size=10) == qa


def test_qa_task_answers_are_exact_spans_and_splits_by_file(qa):
    ids, titles = set(), {}
    for split in SPLITS:
        squad = getattr(qa, split)
        assert squad["version"] == "tfptm-docstring-qa"
        for article in squad["data"]:
            [paragraph] = article["paragraphs"]
            assert 1 <= len(paragraph["qas"]) <= 4
            for item in paragraph["qas"]:
                [answer] = item["answers"]
                start = answer["answer_start"]
                assert isinstance(start, int) and paragraph["context"][start:start + len(answer["text"])] \
                    == answer["text"] and answer["text"].strip() == answer["text"]
                assert item["id"] not in ids and item["question"].endswith("?")
                ids.add(item["id"])
            titles.setdefault(split, set()).add(article["title"].rsplit(".", 1)[0])
    sizes = qa.info["sizes"]
    assert [sizes[split]["questions"] for split in SPLITS] == [20, 6, 10]
    files = qa.info["files"]
    assert not set(files["train"]) & set(files["test"]) and not set(files["validation"]) & set(files["test"])
    assert not set(files["train"]) & set(files["validation"])
    for split in SPLITS:  # the module a title names is one of its split's files
        modules = {f.removesuffix(".py").removesuffix("/__init__").replace("/", ".") for f in files[split]}
        assert all(any(title == m or title.startswith(m + ".") for m in modules) for title in titles[split]), split


def test_writers_read_back(tagging, qa, tmp_path):
    examples = tagging.train[:5]
    path = write_tagged(examples, tmp_path / "a" / "train.jsonl")
    assert [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] == examples
    path = write_tagged(examples, tmp_path / "train.conll")
    blocks = path.read_text(encoding="utf-8").split("\n\n")
    assert blocks[-1] == ""
    read = [{"tokens": [line.split(" ")[0] for line in block.split("\n")],
             "tags": [line.split(" ")[1] for line in block.split("\n")]} for block in blocks[:-1]]
    assert read == examples
    path = write_squad(qa.test, tmp_path / "test.json")
    assert json.loads(path.read_text(encoding="utf-8")) == qa.test
    with pytest.raises(TfptmError, match="whitespace"):
        write_tagged([{"tokens": ["a b"], "tags": ["O"]}], tmp_path / "bad.conll")
    assert write_tagged([{"tokens": ["a b"], "tags": ["O"]}], tmp_path / "ok.jsonl").is_file()  # JSON Lines may


def test_files_read_back_through_the_project_s_readers(tagging, qa, tmp_path):
    from tfptm.data.squad import read_squad
    from tfptm.data.tagging import read_tagged

    for path in (write_tagged(tagging.test, tmp_path / "test.conll"),
                 write_tagged(tagging.test, tmp_path / "test.jsonl")):
        table = read_tagged(path, strict=True)
        assert table.scheme == "BIO" and table.sentences == [e["tokens"] for e in tagging.test]
        assert table.tags == [e["tags"] for e in tagging.test] and set(table.tag_names) <= set(dt.TAG_NAMES)
    table = read_squad(write_squad(qa.train, tmp_path / "train.json"), strict=True)
    assert len(table) == 20 and not table.skipped
    assert table.ids == [item["id"] for a in qa.train["data"] for p in a["paragraphs"] for item in p["qas"]]


def test_bad_arguments_are_one_error():
    with pytest.raises(TfptmError, match="unknown task"):
        dt.tagging_task("nope")
    with pytest.raises(TfptmError, match="expected a count"):
        dt.qa_task("stdlib", train_size=-1)
    with pytest.raises(TfptmError, match="top-level"):
        dt.qa_task("x", packages=["sklearn.linear_model"])
    with pytest.raises(TfptmError, match="hold no question"):  # json documents no parameter in a section
        dt.qa_task("json", packages=["json"])


def test_importing_the_module_loads_no_tensorflow():
    code = "import sys, tfptm.datasets.docstring_tokens; print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.split() == ["False", "False"], result.stderr
