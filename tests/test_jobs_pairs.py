"""Text pairs end to end as a user runs them: `tfptm train` (a recipe with data.text_pair_column), `tfptm export RUN`,
`tfptm predict` on 'text_a<TAB>text_b', on a tiny KerasHub BERT preset (save_to_preset)."""

import json

import numpy as np
import pytest
import tensorflow as tf
import yaml

from tfptm.cli import main

TOPICS = ["river", "castle", "piano", "rocket", "garden", "winter", "harbor", "forest"]


@pytest.fixture(scope="module")
def preset(tmp_path_factory):
    import keras_hub

    directory = tmp_path_factory.mktemp("preset") / "bert"
    vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "a", "is", "about", "near", "story", *TOPICS]
    keras_hub.models.BertBackbone(vocabulary_size=len(vocabulary), num_layers=1, num_heads=2, hidden_dim=16,
                                  intermediate_dim=32, max_sequence_length=32).save_to_preset(str(directory))
    keras_hub.models.BertTokenizer(vocabulary=vocabulary, lowercase=True).save_to_preset(str(directory))
    return directory


def _pairs_csv(path):
    """Does text B speak of text A's topic? 'yes' for the same topic, 'no' for another one."""
    rng = np.random.default_rng(0)
    rows = ["first,second,same"]
    for i in range(64):
        a = TOPICS[i % len(TOPICS)]
        b = a if i % 2 else TOPICS[(i + 1 + rng.integers(len(TOPICS) - 1)) % len(TOPICS)]
        rows.append(f"the {a} is near,a story about the {b},{'yes' if a == b else 'no'}")
    path.write_text("\n".join(rows) + "\n")
    return path


def _recipe(tmp_path, preset):
    recipe = {
        "name": "pairs", "data": {"source": "csv", "path": str(_pairs_csv(tmp_path / "pairs.csv")), "text_column": "first",
                                  "text_pair_column": "second", "label_column": "same", "max_length": 24,
                                  "batch_size": 8, "test_fraction": 0.25, "validation_fraction": 0.1},
        "backbone": {"name": str(preset)},
        "head": {"task": "multiclass", "pooling": "first"},
        "finetune": {"strategy": "two_stage", "head_epochs": 1, "epochs": 1, "learning_rate": 1e-3},
        "export": {"model_name": "pairs", "saved_model": True, "tflite": ["float32"]},
    }
    path = tmp_path / "pairs.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def test_pairs_train_export_predict_end_to_end(tmp_path, preset, capsys):
    assert main(["train", str(_recipe(tmp_path, preset)), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    parity = summary["parity"]
    assert set(parity) == {"saved_model", "saved_model_raw_text_pairs", "tflite_float32"}, parity
    assert all(check["ok"] for check in parity.values()), parity
    assert summary["data"]["num_test"] == 16 and summary["class_names"] == ["no", "yes"]
    assert 0 <= summary["metrics"]["model"]["accuracy"] <= 1

    # the SavedModel's raw_text_pairs is the Keras model on the raw pairs
    import tfptm
    from tfptm.data.pairs import pair_arrays
    from tfptm.jobs.export import run_tokenizer

    model = tfptm.load_model(tmp_path / "run", compile=False)
    texts_a, texts_b = ["the river is near", "the piano is near"], ["a story about the river", "a story about the castle"]
    served = tf.saved_model.load(summary["artifacts"]["saved_model"]).signatures["raw_text_pairs"](
        text_a=tf.constant(texts_a), text_b=tf.constant(texts_b))["probabilities"].numpy()
    tokenizer = run_tokenizer(tmp_path / "run")  # the PairTokenizer, from the run's recipe.yaml
    x = pair_arrays(texts_a, texts_b, tokenizer.preprocessor, 24)
    np.testing.assert_allclose(served, model.predict(x, verbose=0), atol=1e-5)

    # tfptm export RUN: the same signatures and checks, under the names train uses
    assert main(["export", str(tmp_path / "run"), "--out", str(tmp_path / "again"), "--quantize", "float32"]) == 0
    exported = json.loads((tmp_path / "again" / "pairs.export.json").read_text())
    assert "raw_text_pairs" in exported["signatures"] and (tmp_path / "again" / "pairs.float32.tflite").is_file()
    assert exported["parity"]["saved_model"]["ok"] and exported["parity"]["tflite_float32"]["ok"]

    # tfptm predict on 'text_a<TAB>text_b'
    capsys.readouterr()
    artifact = str(tmp_path / "again" / "pairs")
    assert main(["predict", artifact, "the river is near\ta story about the river", "--top-k", "1", "--json"]) == 0
    line = json.loads(capsys.readouterr().out.strip())
    assert line["predictions"][0]["label"] in ("no", "yes")
    assert main(["predict", artifact, "no tab in this input"]) == 2
    assert "expects 'text_a<TAB>text_b'" in capsys.readouterr().err


def test_pairs_need_a_checkpoint_tokenizer_and_class_labels(tmp_path, capsys):
    path = _recipe(tmp_path, "transformer_encoder")
    assert main(["train", str(path), "--set", "backbone.args={vocabulary_size: 50}", "--out", str(tmp_path / "r")]) == 2
    assert "text pairs are packed as [CLS] a [SEP] b [SEP] by a BERT-style checkpoint's tokenizer" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
    assert main(["train", str(path), "--set", "head.task=regression", "--out", str(tmp_path / "r")]) == 2
    assert "head.task: text pairs have one class label each" in capsys.readouterr().err
