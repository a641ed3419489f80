"""Extractive question answering end to end as a user runs it: `tfptm train` (data.source squad, head.task
question_answering), `tfptm evaluate`, `tfptm export RUN`, `tfptm predict 'question<TAB>context'`, on a tiny
KerasHub BERT preset (save_to_preset)."""

import json

import numpy as np
import pytest
import yaml

from tfptm.cli import main

NAMES = ["axis", "dtype", "shape", "order"]
ACTIONS = {"axis": "picks the dimension", "dtype": "sets the type", "shape": "gives the size", "order": "sorts the copy"}
WORDS = ["the", "argument", "what", "does", "do", "?", ".", "picks", "dimension", "sets", "type", "gives", "size",
         "sorts", "copy", "and"]


@pytest.fixture(scope="module")
def preset(tmp_path_factory):
    import keras_hub

    directory = tmp_path_factory.mktemp("preset") / "bert"
    vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *NAMES, *WORDS]
    keras_hub.models.BertBackbone(vocabulary_size=len(vocabulary), num_layers=1, num_heads=2, hidden_dim=16,
                                  intermediate_dim=32, max_sequence_length=48).save_to_preset(str(directory))
    keras_hub.models.BertTokenizer(vocabulary=vocabulary, lowercase=True).save_to_preset(str(directory))
    return directory


def _squad(path, count=48):
    """Contexts documenting two arguments; 'What does the X argument do?' is answered by X's action."""
    rng = np.random.default_rng(0)
    paragraphs = []
    for i in range(count):
        first, second = rng.choice(NAMES, size=2, replace=False)
        context = f"The {first} argument {ACTIONS[first]} and the {second} argument {ACTIONS[second]}."
        asked = first if i % 2 else second
        start = context.index(ACTIONS[asked])
        paragraphs.append({"context": context, "qas": [{"id": str(i), "question": f"What does the {asked} argument do?",
                                                        "answers": [{"text": ACTIONS[asked], "answer_start": start}]}]})
    path.write_text(json.dumps({"version": "1.1", "data": [{"title": "docs", "paragraphs": paragraphs}]}))
    return path


def _recipe(tmp_path, preset):
    recipe = {
        "name": "qa", "data": {"source": "squad", "path": str(_squad(tmp_path / "qa.json")), "max_length": 32,
                               "doc_stride": 8, "batch_size": 8, "test_fraction": 0.25},
        "backbone": {"name": str(preset)},
        "head": {"task": "question_answering", "max_answer_length": 6},
        "finetune": {"strategy": "full", "epochs": 12, "learning_rate": 5e-3},
        "export": {"model_name": "qa", "saved_model": True, "tflite": ["float32"]},
    }
    path = tmp_path / "qa.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def test_question_answering_train_evaluate_export_predict(tmp_path, preset, capsys):
    assert main(["train", str(_recipe(tmp_path, preset)), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    parity = summary["parity"]
    assert set(parity) == {"saved_model", "saved_model_answer", "tflite_float32"}, parity
    assert all(check["ok"] for check in parity.values()), parity
    metrics = summary["metrics"]["model"]
    assert metrics["task"] == "question_answering" and metrics["num_examples"] == summary["data"]["num_test"] > 8
    assert metrics["f1"] > 50, metrics  # learnt something: chance is far below (a span of 1-6 of ~16 words)
    assert "exact match" in (tmp_path / "run" / "report.md").read_text()

    assert main(["evaluate", str(tmp_path / "run"), "--recipe", str(tmp_path / "run" / "recipe.yaml"),
                 "--out", str(tmp_path / "eval")]) == 0
    again = json.loads((tmp_path / "eval" / "summary.json").read_text())["metrics"]["model"]
    assert again["f1"] == pytest.approx(metrics["f1"]) and again["exact_match"] == pytest.approx(metrics["exact_match"])

    assert main(["export", str(tmp_path / "run"), "--out", str(tmp_path / "again"), "--quantize", "float32"]) == 0
    exported = json.loads((tmp_path / "again" / "qa.export.json").read_text())
    assert "answer" in exported["signatures"] and exported["parity"]["saved_model_answer"]["ok"]

    capsys.readouterr()
    context = "The dtype argument sets the type and the axis argument picks the dimension."
    assert main(["predict", str(tmp_path / "again" / "qa"), f"What does the axis argument do?\t{context}", "--json"]) == 0
    (answer,) = json.loads(capsys.readouterr().out.strip())["predictions"]
    text, span = answer["label"].rsplit(" [", 1)
    start, end = (int(v) for v in span.rstrip("]").split(":"))
    assert context[start:end] == text
    assert main(["predict", str(tmp_path / "again" / "qa"), "no tab here"]) == 2
    assert "a question answerer expects 'question<TAB>context'" in capsys.readouterr().err


def test_question_answering_recipes_refuse_what_cannot_work(tmp_path, preset, capsys):
    path = _recipe(tmp_path, preset)
    assert main(["train", str(path), "--set", "data.source=conll", "--out", str(tmp_path / "r")]) == 2
    assert "task 'question_answering' reads squad files; got 'conll'" in capsys.readouterr().err
    assert main(["train", str(path), "--set", "distill.teacher=x", "--out", str(tmp_path / "r")]) == 2
    assert "no distillation yet" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text('{"data": [{"paragraphs": [{"context": "abc", "qas": [{"id": "1", '
                                       '"question": "q", "answers": [{"text": "zzz", "answer_start": 0}]}]}]}]}')
    assert main(["train", str(path), "--set", f"data.path={tmp_path / 'bad.json'}", "--set", "data.strict=true",
                 "--out", str(tmp_path / "r")]) == 2
    assert "zzz" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_lora_question_answerer(tmp_path, preset):
    """LoRA on a question answerer: adapters on the backbone's dense layers (merged into their kernels on saving),
    the embeddings unchanged."""
    import tfptm

    path = _recipe(tmp_path, preset)
    assert main(["train", str(path), "--out", str(tmp_path / "run"), "--quiet", "--set", "finetune.strategy=lora",
                 "--set", "finetune.lora_rank=2", "--set", "finetune.epochs=2", "--set", "export.tflite=[]",
                 "--set", "export.saved_model=false"]) == 0
    original = {w.path.split("/", 1)[-1]: np.array(w) for w in tfptm.backbones.presets.load_preset(str(preset))[0].weights}
    trained = {w.path.split("/", 1)[-1]: np.array(w)
               for w in tfptm.backbone_of(tfptm.load_model(tmp_path / "run", compile=False)).weights}
    common = set(original) & set(trained)
    changed = {k for k in common if not np.allclose(original[k], trained[k])}
    assert any("embedding" in k for k in common) and not any("embedding" in k for k in changed)
    assert any("kernel" in k for k in changed), sorted(common)[:5]
