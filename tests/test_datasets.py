"""tfptm.datasets.docstring_task: repeatable, disjoint splits whose class ids agree with read_text_table."""

import numpy as np
import pytest

import tfptm
from tfptm.datasets import TASKS, docstring_task

SMALL = dict(train_per_class=30, validation_per_class=5, test_per_class=10)


@pytest.fixture(scope="module")
def task():
    return docstring_task("stdlib", **SMALL)


def same(a, b):
    return (a.class_names == b.class_names and a.unlabelled == b.unlabelled
            and all(np.array_equal(x, y) for split in ("train", "validation", "test")
                    for x, y in zip(getattr(a, split), getattr(b, split))))


def test_deterministic_for_a_seed(task):
    assert same(task, docstring_task("stdlib", **SMALL))
    other = docstring_task("stdlib", seed=1, **SMALL)
    assert not np.array_equal(task.test[0], other.test[0])
    assert other.class_names == task.class_names


def test_class_names_sorted_and_sizes(task):
    assert task.class_names == sorted(TASKS["stdlib"]) and len(task.class_names) == 8
    for split, per_class in (("train", 30), ("validation", 5), ("test", 10)):
        texts, labels = getattr(task, split)
        assert len(texts) == len(labels) == 8 * per_class
        assert np.bincount(labels, minlength=8).tolist() == [per_class] * 8
        assert all(isinstance(t, str) and len(t.split()) >= 4 for t in texts)


def test_no_text_in_two_splits_and_no_held_out_text_unlabelled(task):
    splits = {name: set(getattr(task, name)[0].tolist()) for name in ("train", "validation", "test")}
    assert sum(len(s) for s in splits.values()) == sum(len(getattr(task, name)[0]) for name in splits)  # no repeats
    assert not splits["train"] & splits["validation"]
    assert not splits["train"] & splits["test"]
    assert not splits["validation"] & splits["test"]
    lowered = {name: {t.lower() for t in texts} for name, texts in splits.items()}  # not even in another case
    assert not (lowered["train"] & lowered["test"]) and not (lowered["validation"] & lowered["test"])
    unlabelled = set(task.unlabelled)
    assert unlabelled and not unlabelled & (splits["validation"] | splits["test"])


def test_csv_files_read_back_with_the_same_class_ids(task, tmp_path):
    paths = task.write_csv(tmp_path)
    train = tfptm.data.read_text_table(paths["train"])
    assert train.class_names == task.class_names
    assert train.texts == task.train[0].tolist()
    np.testing.assert_array_equal(train.labels, task.train[1])  # ids agree, not only the names
    for split in ("validation", "test"):
        table = tfptm.data.read_text_table(paths[split], class_names=train.class_names)
        assert table.texts == getattr(task, split)[0].tolist()
        np.testing.assert_array_equal(table.labels, getattr(task, split)[1])


def test_the_libraries_task_ids_follow_sorted_names(tmp_path):
    task = docstring_task("libraries", train_per_class=10, validation_per_class=3, test_per_class=5,
                          per_package_limit=400)
    assert task.class_names == ["keras", "matplotlib", "numpy", "scikit-learn"]
    table = tfptm.data.read_text_table(task.write_csv(tmp_path)["train"])
    assert table.class_names == task.class_names
    np.testing.assert_array_equal(table.labels, task.train[1])
