"""A recipe's head is checked against its data's classes, in one line, before the backbone loads (tfptm train)."""

import csv

import pytest
import yaml

import tfptm.jobs.train
from tfptm.cli import main
from tfptm.recipes import bundled_names, bundled_path, load_recipe

TINY_TEXT = ["--set", "pretrain=null", "--set", "backbone.name=lstm_encoder",
             "--set", "backbone.args={vocabulary_size: 100, embedding_dim: 4, units: 4}",
             "--set", "finetune.strategy=full", "--set", "finetune.epochs=1"]


def write_csv(path, labels, header=("text", "label")):
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows([f"text number {i} about {label}", label] for i, label in enumerate(labels))
    return path


@pytest.fixture
def no_backbone(monkeypatch, tmp_path):
    """Runs in `tmp_path`; loading a backbone is an AssertionError: the checks must come before it."""
    monkeypatch.chdir(tmp_path)

    def backbone_and_tokenizer(recipe):
        raise AssertionError("the backbone was loaded before the data was checked")

    monkeypatch.setattr(tfptm.jobs.train, "backbone_and_tokenizer", backbone_and_tokenizer)
    return tmp_path


def train(path, *sets, out=None):
    args = ["train", "mlm_then_finetune", *TINY_TEXT, "--set", f"data.path={path}", *sets, "--quiet"]
    return main(args + (["--out", out] if out else []))


def one_error_line(capsys):
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("tfptm: error:")]
    assert "Traceback" not in err and len(errors) == 1, err
    return errors[0]


def assert_nothing_left(directory, *inputs):
    assert sorted(p.name for p in directory.iterdir()) == sorted(inputs)  # no run directory, no runs/, no backups


def test_the_checks_run_before_the_backbone_loads(no_backbone):
    # control: with agreeing data the run gets as far as loading the backbone (the patched AssertionError)
    path = write_csv(no_backbone / "ok.csv", ["a", "b", "c"] * 10)
    with pytest.raises(AssertionError, match="backbone was loaded"):
        train(path, "--set", "head.num_classes=3")


def test_num_classes_that_disagrees_with_the_data(no_backbone, capsys):
    path = write_csv(no_backbone / "three.csv", ["a", "b", "c"] * 10)
    assert train(path, "--set", "head.num_classes=2") == 2
    line = one_error_line(capsys)
    assert "head.num_classes is 2" in line and "3 classes" in line and "three.csv" in line, line
    assert "'a', 'b', 'c'" in line
    assert_nothing_left(no_backbone, "three.csv")

    # the same with --out: no run directory and no work directory beside it
    assert train(path, "--set", "head.num_classes=5", out="runs/named") == 2
    line = one_error_line(capsys)
    assert "head.num_classes is 5" in line and "3 classes" in line, line
    assert_nothing_left(no_backbone, "three.csv")


def test_binary_head_on_three_classes(no_backbone, capsys):
    path = write_csv(no_backbone / "three.csv", ["x", "y", "z"] * 10)
    assert train(path, "--set", "head.task=binary") == 2
    line = one_error_line(capsys)
    assert "binary" in line and "3 classes" in line and "three.csv" in line, line
    assert_nothing_left(no_backbone, "three.csv")


def test_a_single_label_is_refused_naming_the_file(no_backbone, capsys):
    path = write_csv(no_backbone / "spam_only.csv", ["spam"] * 20)
    assert train(path) == 2
    line = one_error_line(capsys)
    assert "spam_only.csv" in line and "'spam'" in line and "1 class" in line, line
    assert_nothing_left(no_backbone, "spam_only.csv")

    # a separate test file does not hide it
    test = write_csv(no_backbone / "test.csv", ["spam"] * 5)
    assert train(path, "--set", f"data.test_path={test}") == 2
    line = one_error_line(capsys)
    assert "spam_only.csv" in line and "1 class" in line, line
    assert_nothing_left(no_backbone, "spam_only.csv", "test.csv")


def test_a_csv_with_only_a_header(no_backbone, capsys):
    path = write_csv(no_backbone / "empty.csv", [])
    assert train(path) == 2
    line = one_error_line(capsys)
    assert "empty.csv" in line, line
    assert_nothing_left(no_backbone, "empty.csv")


@pytest.mark.parametrize("name", bundled_names())
def test_bundled_recipes_take_the_number_of_classes_from_the_data(name):
    raw = yaml.safe_load(bundled_path(name).read_text())
    assert "num_classes" not in (raw.get("head") or {}), name
    assert load_recipe(bundled_path(name)).head.num_classes is None
