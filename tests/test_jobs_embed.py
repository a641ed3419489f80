"""Sentence embeddings end to end as a user runs them: `tfptm train` on a `head.task: embedding` recipe, `tfptm embed`
(run directory, .keras, exported SavedModel, stdin), `tfptm export RUN`, on a tiny KerasHub BERT preset."""

import io
import json
import sys

import numpy as np
import pytest
import tensorflow as tf
import yaml

from tfptm.cli import main

TOPICS = ["river", "castle", "piano", "rocket", "garden", "winter", "harbor", "forest", "desert", "bridge"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One trained embedding run (tiny BERT preset, 1 epoch) shared by the tests: its directory."""
    import keras_hub

    base = tmp_path_factory.mktemp("embed")
    vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "a", "is", "about", "here", "story", *TOPICS]
    keras_hub.models.BertBackbone(vocabulary_size=len(vocabulary), num_layers=1, num_heads=2, hidden_dim=16,
                                  intermediate_dim=32, max_sequence_length=16).save_to_preset(str(base / "bert"))
    keras_hub.models.BertTokenizer(vocabulary=vocabulary, lowercase=True).save_to_preset(str(base / "bert"))
    rows = ["query,text"] + [f"the {t} is here,a story about the {t}" for t in TOPICS * 4]
    (base / "pairs.csv").write_text("\n".join(rows) + "\n")
    recipe = {"name": "emb", "data": {"source": "csv", "path": str(base / "pairs.csv"), "text_column": "query",
                                      "text_pair_column": "text", "max_length": 12, "batch_size": 8, "test_fraction": 0.25},
              "backbone": {"name": str(base / "bert")},
              "head": {"task": "embedding", "recall_at": [1, 3]},
              "finetune": {"strategy": "full", "epochs": 1, "learning_rate": 1e-3},
              "export": {"model_name": "emb", "saved_model": True, "tflite": ["float32"]}}
    (base / "emb.yaml").write_text(yaml.safe_dump(recipe))
    assert main(["train", str(base / "emb.yaml"), "--out", str(base / "run"), "--quiet"]) == 0
    return base / "run"


def test_train_writes_retrieval_metrics_and_checked_exports(run):
    summary = json.loads((run / "summary.json").read_text())
    assert set(summary["metrics"]) == {"pretrained", "model"}
    assert set(summary["metrics"]["model"]) >= {"recall@1", "recall@3", "mrr"} and summary["metrics"]["model"]["queries"] == 10
    assert set(summary["parity"]) == {"saved_model", "saved_model_embed", "tflite_float32"}
    assert all(check["ok"] for check in summary["parity"].values()), summary["parity"]
    assert summary["embedding"] == {"dimension": 16, "pooling": "mean", "normalized": True, "max_length": 12}
    assert yaml.safe_load((run / "recipe.yaml").read_text())["data"]["max_length"] == 12
    assert (run / "report.md").is_file() and (run / "export" / "emb.vocab.txt").is_file()


def test_embed_from_run_keras_and_saved_model_agree(run, tmp_path, monkeypatch, capsys):
    import tfptm
    from tfptm.jobs.export import run_tokenizer
    from tfptm.tasks.embeddings import embed

    lines = ["the river is here", "a story about the piano", "castle castle winter", "unknown words only"]
    (tmp_path / "texts.txt").write_text("\n".join(lines) + "\n")
    assert main(["embed", str(run), str(tmp_path / "texts.txt"), "--out", str(tmp_path / "run.npy")]) == 0
    from_run = np.load(tmp_path / "run.npy")
    assert from_run.shape == (len(lines), 16) and "4 vectors of dimension 16" in capsys.readouterr().out
    model = tfptm.load_model(run, compile=False)
    np.testing.assert_allclose(from_run, embed(model, lines, run_tokenizer(run)), atol=1e-6)
    assert main(["embed", str(run / "model.keras"), str(tmp_path / "texts.txt"), "--out", str(tmp_path / "k.npy")]) == 0
    np.testing.assert_allclose(np.load(tmp_path / "k.npy"), from_run, atol=1e-6)
    # the exported SavedModel's embed signature, from standard input
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(("\n".join(lines) + "\n").encode())))
    assert main(["embed", str(run / "export" / "emb"), "-", "--out", str(tmp_path / "saved.npy")]) == 0
    saved = np.load(tmp_path / "saved.npy")
    cosine = np.sum(saved * from_run, axis=1) / np.linalg.norm(saved, axis=1) / np.linalg.norm(from_run, axis=1)
    assert cosine.min() > 0.99999, cosine


def test_export_run_re_exports_an_embedder_with_parity(run, tmp_path):
    assert main(["export", str(run), "--out", str(tmp_path / "again"), "--quantize", "float32"]) == 0
    exported = json.loads((tmp_path / "again" / "emb.export.json").read_text())
    assert set(exported["parity"]) == {"saved_model", "saved_model_embed", "tflite_float32"}
    assert all(check["ok"] for check in exported["parity"].values()), exported["parity"]
    signature = tf.saved_model.load(exported["artifacts"]["saved_model"]).signatures["embed"]
    assert signature(text=tf.constant(["the river"]))["embeddings"].shape == (1, 16)


@pytest.mark.parametrize("content, model, out, message", [
    ("river\n\nwinter\n", "RUN", "v.npy", "texts.txt:2: empty line; expected one text per line"),
    (b"\xff\xfe river\n", "RUN", "v.npy", "not UTF-8 text"),
    ("river\n", "RUN", "v.txt", "expected a .npy file path"),
    ("river\n", "RUN/export/emb/1/variables", "v.npy", "is neither a SavedModel"),
    ("river\n", "NOWHERE", "v.npy", "is not a .keras file or a run directory with model.keras"),
])
def test_bad_embed_input_is_one_line_exit_2_and_writes_nothing(run, tmp_path, capsys, content, model, out, message):
    texts = tmp_path / "texts.txt"
    texts.write_bytes(content if isinstance(content, bytes) else content.encode())
    model = model.replace("RUN", str(run)).replace("NOWHERE", str(tmp_path / "nowhere"))
    assert main(["embed", model, str(texts), "--out", str(tmp_path / out)]) == 2
    error = capsys.readouterr().err.strip()
    assert message in error and len(error.splitlines()) == 1, error
    assert sorted(p.name for p in tmp_path.iterdir()) == ["texts.txt"]


def test_a_classifier_is_not_an_embedder(tmp_path, capsys):
    import tfptm

    backbone = tfptm.backbones.get("vgg_cnn", input_shape=(8, 8, 1), filters=(4,))
    (tmp_path / "run").mkdir()
    tfptm.build_model(backbone, tfptm.Head("multiclass", num_classes=2)).save(tmp_path / "run" / "model.keras")
    (tmp_path / "texts.txt").write_text("river\n")
    assert main(["embed", str(tmp_path / "run"), str(tmp_path / "texts.txt"), "--out", str(tmp_path / "v.npy")]) == 2
    assert "no tokenizer; expected the run directory of an embedding recipe" in capsys.readouterr().err
    assert not (tmp_path / "v.npy").exists()
