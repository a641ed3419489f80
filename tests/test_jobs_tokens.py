"""Token classification end to end as a user runs it: `tfptm train` (data.source conll, head.task
token_classification), `tfptm evaluate`, `tfptm export RUN`, `tfptm predict` on raw text, LoRA, and the mistakes
a user makes, on a tiny KerasHub BERT preset (save_to_preset)."""

import json

import numpy as np
import pytest
import tensorflow as tf
import yaml

from tfptm.cli import main

NAMES = ["axis", "dtype", "shape", "order"]
WORDS = ["the", "argument", "sets", "result", "see", "also", "returns", "a", "copy", ".", ";", "_", "max", "iter"]


@pytest.fixture(scope="module")
def preset(tmp_path_factory):
    import keras_hub

    directory = tmp_path_factory.mktemp("preset") / "bert"
    vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *NAMES, *WORDS]
    keras_hub.models.BertBackbone(vocabulary_size=len(vocabulary), num_layers=1, num_heads=2, hidden_dim=16,
                                  intermediate_dim=32, max_sequence_length=32).save_to_preset(str(directory))
    keras_hub.models.BertTokenizer(vocabulary=vocabulary, lowercase=True).save_to_preset(str(directory))
    return directory


def _conll(path, count=60):
    """`The <name> argument sets the result ; see also <name> .` with the names tagged PARAM (max_iter: 3 words)."""
    rng = np.random.default_rng(0)
    lines = []
    for _ in range(count):
        first, second = rng.choice(NAMES + ["max_iter"], size=2)
        for word, tag in [("The", "O"), (first, "B-PARAM"), ("argument", "O"), ("sets", "O"), ("the", "O"),
                          ("result", "O"), (";", "O"), ("see", "O"), ("also", "O"), (second, "B-PARAM"), (".", "O")]:
            lines.append(f"{word} {tag}")
        lines.append("")
    path.write_text("\n".join(lines))
    return path


def _recipe(tmp_path, preset, **finetune):
    recipe = {
        "name": "tags", "data": {"source": "conll", "path": str(_conll(tmp_path / "train.conll")), "max_length": 24,
                                 "batch_size": 8, "test_fraction": 0.25, "validation_fraction": 0.1},
        "backbone": {"name": str(preset)},
        "head": {"task": "token_classification"},
        "finetune": {"strategy": "full", "epochs": 4, "learning_rate": 3e-3, **finetune},
        "export": {"model_name": "tagger", "saved_model": True, "tflite": ["float32"]},
    }
    path = tmp_path / "tags.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def test_token_classification_train_evaluate_export_predict(tmp_path, preset, capsys):
    assert main(["train", str(_recipe(tmp_path, preset)), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    parity = summary["parity"]
    assert set(parity) == {"saved_model", "saved_model_raw_text", "tflite_float32"}, parity
    assert all(check["ok"] for check in parity.values()), parity
    metrics = summary["metrics"]["model"]
    assert metrics["task"] == "token_classification" and metrics["num_sentences"] == 15
    assert metrics["f1"] > 0.9, metrics  # the names sit in fixed places: an easy task
    assert summary["class_names"] == ["O", "B-PARAM", "I-PARAM"]  # I-: the continuation of a split word
    report = (tmp_path / "run" / "report.md").read_text()
    assert "entity F1" in report and "| PARAM |" in report

    # tfptm evaluate: the same test sentences, the same scores
    assert main(["evaluate", str(tmp_path / "run"), "--recipe", str(tmp_path / "run" / "recipe.yaml"),
                 "--out", str(tmp_path / "eval")]) == 0
    again = json.loads((tmp_path / "eval" / "summary.json").read_text())["metrics"]["model"]
    assert again["f1"] == pytest.approx(metrics["f1"]) and again["num_words"] == metrics["num_words"]

    # tfptm export RUN: raw_text again, checked on the run's test sentences
    assert main(["export", str(tmp_path / "run"), "--out", str(tmp_path / "again"), "--quantize", "float32"]) == 0
    exported = json.loads((tmp_path / "again" / "tagger.export.json").read_text())
    assert "raw_text" in exported["signatures"] and exported["parity"]["saved_model_raw_text"]["ok"]

    # tfptm predict on raw text: the entities with character offsets
    capsys.readouterr()
    text = "The max_iter argument sets the result."
    assert main(["predict", str(tmp_path / "again" / "tagger"), text, "--json"]) == 0
    found = json.loads(capsys.readouterr().out.strip())["predictions"]
    assert [p["label"] for p in found] == ["PARAM: max_iter [4:12]"] and text[4:12] == "max_iter"


def test_lora_trains_adapters_and_the_head_only(tmp_path, preset):
    """LoRA on a token classifier: the dense kernels move (adapters merged into them on saving), the embeddings
    do not (full fine-tuning moves them too)."""
    import tfptm

    def weights(model):
        return {w.path.split("/", 1)[-1]: np.array(w) for w in tfptm.backbone_of(model).weights}

    original = weights(tfptm.build_model(tfptm.backbones.presets.load_preset(str(preset))[0],
                                         tfptm.tasks.tokens.TokenHead(num_tags=3)))
    changed = {}
    for strategy in ("lora", "full"):
        out = tmp_path / strategy
        path = _recipe(tmp_path, preset, strategy=strategy, lora_rank=2, epochs=2)
        assert main(["train", str(path), "--out", str(out), "--quiet", "--set", "export.tflite=[]"]) == 0
        trained = weights(tfptm.load_model(out, compile=False))
        changed[strategy] = {k for k, v in trained.items() if k in original and not np.allclose(v, original[k])}
    embeddings = {k for k in original if "embedding" in k}
    assert embeddings and not changed["lora"] & embeddings and embeddings <= changed["full"]
    assert any("kernel" in k for k in changed["lora"])


def test_distil_a_token_classifier_into_a_small_student(tmp_path, preset):
    """A recipe with a distill section: a local Transformer student learns per-token from the teacher run, reading
    the teacher's word pieces; exported with raw_text like any tagger, and exported again from its run."""
    teacher = tmp_path / "teacher"
    assert main(["train", str(_recipe(tmp_path, preset)), "--out", str(teacher), "--quiet", "--set",
                 "export.tflite=[]", "--set", "export.saved_model=false"]) == 0
    student = {"backbone.name": "transformer_encoder",
               "backbone.args": "{vocabulary_size: 23, num_layers: 1, num_heads: 1, hidden_dim: 8, intermediate_dim: 16, "
                                "max_sequence_length: 32}",
               "distill.teacher": str(teacher), "distill.epochs": "6", "distill.learning_rate": "0.01"}
    sets = [arg for key, value in student.items() for arg in ("--set", f"{key}={value}")]
    assert main(["train", str(tmp_path / "tags.yaml"), "--out", str(tmp_path / "student"), "--quiet", *sets]) == 0
    summary = json.loads((tmp_path / "student" / "summary.json").read_text())
    metrics = summary["metrics"]
    assert metrics["model"]["parameters"] < metrics["teacher"]["parameters"] / 2
    assert metrics["model"]["task"] == "token_classification" and metrics["model"]["f1"] > 0.5, metrics["model"]
    assert all(check["ok"] for check in summary["parity"].values()) and "saved_model_raw_text" in summary["parity"]
    assert "| student |" in (tmp_path / "student" / "report.md").read_text()
    assert main(["export", str(tmp_path / "student"), "--out", str(tmp_path / "again"), "--quantize", "float32"]) == 0
    assert json.loads((tmp_path / "again" / "tagger.export.json").read_text())["parity"]["saved_model_raw_text"]["ok"]


def test_token_recipes_refuse_what_cannot_work(tmp_path, preset, capsys):
    path = _recipe(tmp_path, preset)
    assert main(["train", str(path), "--set", "head.task=multiclass", "--out", str(tmp_path / "r")]) == 2
    assert "data.source 'conll' holds tagged words; expected head.task 'token_classification'" in capsys.readouterr().err
    assert main(["train", str(path), "--set", "backbone.name=transformer_encoder", "--set",
                 "backbone.args={vocabulary_size: 50}", "--out", str(tmp_path / "r")]) == 2
    assert "words are cut into a checkpoint's WordPiece pieces" in capsys.readouterr().err
    (tmp_path / "all_o.conll").write_text("a O\nb O\n\nc O\n")
    assert main(["train", str(path), "--set", f"data.path={tmp_path / 'all_o.conll'}", "--out", str(tmp_path / "r")]) == 2
    assert "every word is tagged O" in capsys.readouterr().err
    assert main(["train", str(path), "--set", "data.source=csv", "--out", str(tmp_path / "r")]) == 2
    assert "task 'token_classification' reads conll or jsonl files; got 'csv'" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_jsonl_tokens_and_tags(tmp_path, preset):
    rows = [{"words": ["the", "axis", "argument"], "labels": ["O", "B-PARAM", "O"]}] * 20
    (tmp_path / "t.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    from tfptm.jobs.tokens import read_tagged_splits
    from tfptm.recipes.validate import validate

    recipe = validate({"backbone": {"name": str(preset)}, "head": {"task": "token_classification"},
                       "data": {"source": "jsonl", "path": str(tmp_path / "t.jsonl"), "tokens_key": "words",
                                "tags_key": "labels"}})
    train, test = read_tagged_splits(recipe.data, 0)
    assert len(train) == 16 and len(test) == 4 and train.tag_names == ["O", "B-PARAM", "I-PARAM"]
    assert tf.is_tensor(tf.constant(train.sentences[0]))


@pytest.mark.parametrize("finetune", [{"strategy": "feature_extraction"}, {"strategy": "partial", "top_blocks": 1},
                                      {"strategy": "two_stage", "head_epochs": 1}, {"strategy": "gradual", "head_epochs": 1}],
                         ids=lambda f: f["strategy"])
def test_every_strategy_trains_a_token_classifier(tmp_path, preset, finetune):
    """The strategies act on the backbone, whatever the head: each runs, and feature extraction leaves it as it was."""
    import tfptm

    path = _recipe(tmp_path, preset, epochs=1, **finetune)
    assert main(["train", str(path), "--out", str(tmp_path / "run"), "--quiet", "--set", "export.tflite=[]",
                 "--set", "export.saved_model=false"]) == 0
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert history["loss"] and all(np.isfinite(history["loss"]))
    if finetune["strategy"] == "feature_extraction":
        original = tfptm.backbones.presets.load_preset(str(preset))[0]
        trained = tfptm.backbone_of(tfptm.load_model(tmp_path / "run", compile=False))
        assert all(np.allclose(a, b) for a, b in zip(original.get_weights(), trained.get_weights()))
