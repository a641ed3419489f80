"""Multilabel and regression heads through the recipe runner: labels read as lists or numbers, their own metrics,
report plots, and exports whose parity is checked (issue 16, class 6)."""

import csv
import json

import numpy as np
import pytest
import tensorflow as tf

from tfptm.cli import main
from tfptm.errors import TfptmError
from tfptm.jobs import run_recipe
from tfptm.recipes.validate import validate

WORDS = {"cat": "animal", "dog": "animal", "red": "colour", "blue": "colour", "tea": "drink", "milk": "drink"}
FILLER = ["the", "a", "some", "very", "old", "small", "and", "with", "near", "its"]


def _texts(count, seed):
    """Texts of filler words with 1-3 topic words: a text's labels are the topics of its topic words."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(count):
        topics = list(rng.choice(list(WORDS), size=rng.integers(1, 4), replace=False))
        words = topics + list(rng.choice(FILLER, size=rng.integers(2, 6)))
        rng.shuffle(words)
        rows.append((" ".join(words), sorted({WORDS[w] for w in topics}), len(topics)))
    return rows


def _recipe(path, task, **head):
    return validate({
        "name": f"tiny_{task}", "seed": 0,
        "data": {"source": "csv" if str(path).endswith(".csv") else "jsonl", "path": str(path), "max_length": 16,
                 "batch_size": 16, "validation_fraction": 0.1, "test_fraction": 0.25},
        "backbone": {"name": "token_embeddings", "args": {"vocabulary_size": 64, "embedding_dim": 16}},
        "head": {"task": task, **head},
        "finetune": {"strategy": "full", "epochs": 12, "learning_rate": 0.01},
        "export": {"model_name": task, "saved_model": True, "tflite": ["float32"]},
    })


QUIET = {"progress": lambda line: None}


def test_multilabel_recipe_reads_label_lists_scores_them_and_exports_with_parity(tmp_path):
    path = tmp_path / "topics.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows((text, "|".join(labels)) for text, labels, _ in _texts(240, seed=0))
    summary = run_recipe(_recipe(path, "multilabel"), tmp_path / "run", **QUIET)
    metrics = summary["metrics"]["model"]
    assert metrics["task"] == "multilabel" and sorted(metrics["per_label"]) == ["animal", "colour", "drink"]
    assert metrics["num_examples"] == 60 and metrics["f1_micro"] > 0.8, metrics  # topic words decide the labels
    assert summary["class_names"] == ["animal", "colour", "drink"]
    assert (tmp_path / "run" / "per_label_f1.png").is_file()
    assert summary["parity"]["saved_model"]["ok"] and summary["parity"]["tflite_float32"]["ok"], summary["parity"]
    served = tf.saved_model.load(summary["artifacts"]["saved_model"]).signatures["serving_default"]
    assert {"probabilities", "labels_present", "label_names"} <= set(served.structured_outputs)


def test_regression_recipe_reads_numbers_scores_them_and_exports_with_parity(tmp_path):
    path = tmp_path / "counts.jsonl"
    with open(path, "w", encoding="utf-8") as f:
        for text, _, count in _texts(240, seed=1):
            f.write(json.dumps({"text": text, "label": float(count)}) + "\n")
    summary = run_recipe(_recipe(path, "regression", pooling="avg"), tmp_path / "run", **QUIET)
    metrics = summary["metrics"]["model"]
    assert metrics["task"] == "regression" and set(metrics) >= {"mae", "rmse", "r2"}
    assert metrics["num_examples"] == 60 and metrics["mae"] < 0.8, metrics  # predicting the mean (2) scores ~0.67+
    assert (tmp_path / "run" / "residuals.png").is_file()
    assert summary["parity"]["saved_model"]["ok"] and summary["parity"]["tflite_float32"]["ok"], summary["parity"]
    served = tf.saved_model.load(summary["artifacts"]["saved_model"]).signatures["serving_default"]
    assert set(served.structured_outputs) == {"values"}


@pytest.mark.parametrize("task, rows, message", [
    ("regression", [{"text": "a b", "label": "many"}], "'label' is 'many'; expected a number (the regression target)"),
    ("regression", [{"text": "a b", "label": True}], "'label' is True; expected a number (the regression target)"),
    ("multilabel", [{"text": "a b", "label": {"x": 1}}], "expected a list of labels or labels separated by '|'"),
    ("multilabel", [{"text": "a b", "label": []}, {"text": "c", "label": []}],
     "has no labels in any row; expected multilabel rows such as 'a|b'"),
])
def test_bad_labels_for_the_task_are_one_line_naming_file_and_line(tmp_path, task, rows, message):
    path = tmp_path / "bad.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows * 10), encoding="utf-8")
    with pytest.raises(TfptmError, match=message.replace("(", r"\(").replace(")", r"\)").replace("|", r"\|")):
        run_recipe(_recipe(path, task), tmp_path / "run", **QUIET)
    assert not (tmp_path / "run").exists()


def test_head_and_data_disagreements_for_multilabel_and_regression_are_exit_2(tmp_path, capsys):
    path = tmp_path / "topics.jsonl"
    path.write_text("".join(json.dumps({"text": t, "label": l}) + "\n" for t, l, _ in _texts(40, seed=2)),
                    encoding="utf-8")
    common = ["--set", "pretrain=null", "--set", "backbone.name=token_embeddings",
              "--set", "backbone.args={vocabulary_size: 64, embedding_dim: 4}", "--set", f"data.path={path}",
              "--set", "data.source=jsonl", "--set", "finetune.strategy=full", "--set", "finetune.epochs=1",
              "--out", str(tmp_path / "run"), "--quiet"]
    assert main(["train", "mlm_then_finetune", *common, "--set", "head.task=multilabel",
                 "--set", "head.num_classes=5"]) == 2
    assert "head.num_classes is 5 but data.path" in capsys.readouterr().err
    assert main(["train", "mlm_then_finetune", *common, "--set", "head.task=regression"]) == 2
    assert "expected a number (the regression target)" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
