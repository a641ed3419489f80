"""Recipe validation (no TensorFlow): broken recipes give exact one-line messages with file and key path."""

import os
import subprocess
import sys

import pytest
import yaml

from tfptm.errors import TfptmError
from tfptm.recipes import bundled_names, bundled_path, dump_recipe, load_recipe, parse_recipe, validate
from tfptm.recipes import schema
from tfptm.recipes.validate import to_dict

GOOD = {"backbone": {"name": "vgg_cnn"}}


def merged(*updates):
    """GOOD with nested updates applied, e.g. merged({"finetune": {"epochs": 3}})."""
    recipe = yaml.safe_load(yaml.safe_dump(GOOD))
    for update in updates:
        for section, values in update.items():
            if isinstance(values, dict) and isinstance(recipe.get(section), dict):
                recipe[section].update(values)
            else:
                recipe[section] = values
    return recipe


BROKEN = [
    # wrong types
    ({"finetune": {"epochs": "ten"}}, "finetune.epochs: expected a positive integer, got 'ten'"),
    ({"finetune": {"epochs": 0}}, "finetune.epochs: expected a positive integer, got 0"),
    ({"finetune": {"epochs": 2.5}}, "finetune.epochs: expected a positive integer, got 2.5"),
    ({"finetune": {"epochs": True}}, "finetune.epochs: expected a positive integer, got true"),
    ({"finetune": {"learning_rate": -1}}, "finetune.learning_rate: expected a positive number, got -1"),
    ({"finetune": {"learning_rate": ".inf"}}, "finetune.learning_rate: expected a positive number, got '.inf'"),
    ({"head": {"dropout": 1.0}}, "head.dropout: expected a number in [0, 1), got 1.0"),
    ({"finetune": {"freeze_batchnorm": "yes please"}}, "finetune.freeze_batchnorm: expected true or false, got 'yes please'"),
    ({"data": {"classes": 5}}, "data.classes: expected a list of items, each an integer >= 0, or null, got 5"),
    ({"data": {"classes": [1, 1]}}, "data.classes: expected a list of items, each an integer >= 0, without repeats, or null, got [1, 1]"),
    ({"data": {"image_size": [224]}}, "data.image_size: expected a list of 2 items, each a positive integer, or null, got [224]"),
    ({"backbone": {"name": "vgg_cnn", "args": {"filters": {"a": 1}}}},
     "backbone.args: expected a mapping of names to numbers, strings, booleans or lists of them, got a mapping"),
    ({"head": "multiclass"}, "head: expected a mapping (the task head), got 'multiclass'"),
    # unknown keys and values, with suggestions
    ({"finetune": {"epoch": 3}}, "finetune.epoch: unknown key; did you mean 'epochs'?"),
    ({"finetuning": {"epochs": 3}}, "finetuning: unknown key; did you mean 'finetune'?"),
    ({"finetune": {"strategy": "partail"}},
     "finetune.strategy: expected one of 'feature_extraction', 'full', 'partial', 'two_stage', 'gradual', 'lora', "
     "got 'partail'; did you mean 'partial'?"),
    ({"export": {"tflite": ["int4"]}},
     "export.tflite: expected a list of items, each one of 'float32', 'float16', 'dynamic', 'int8', got ['int4']"),
    # missing
    ({"backbone": {"name": None}}, "backbone.name: expected a non-empty string, got null"),
    ({"backbone": None}, "backbone: expected a mapping (the pre-trained network), got null"),
    # impossible combinations
    ({"finetune": {"strategy": "partial"}},
     "finetune.top_blocks: strategy 'partial' needs top_blocks, the number of backbone blocks that train; got null"),
    ({"finetune": {"head_epochs": None}},
     "finetune.head_epochs: strategy 'two_stage' needs head_epochs, the epochs training the head alone; got null"),
    ({"export": {"tflite": ["int8"]}},
     "export.representative_data: int8 TFLite needs a representative data source ('train' or 'test'); got null"),
    ({"export": {"int8_io": True}}, "export.int8_io: int8_io needs 'int8' in export.tflite"),
    ({"head": {"task": "multiclass", "num_classes": 1}},
     "head.num_classes: task 'multiclass' needs num_classes >= 2, got 1 (use task 'binary' for one output)"),
    ({"head": {"num_classes": 3}, "data": {"classes": [1, 2]}},
     "head.num_classes: data.classes lists 2 classes, got num_classes 3"),
    ({"distill": {"temperature": 2.0}},
     "distill.teacher: missing; expected a non-empty string: the teacher: a .keras model or a run directory holding model.keras"),
    ({"data": {"source": "arrays"}}, "data.path: source 'arrays' needs path (a .npz file with x and y); got null"),
    ({"data": {"source": "tfds"}},
     "data.name: source 'tfds' needs name, a TFDS data set name such as 'imdb_reviews'; got null"),
    ({"data": {"classes": [3, 12]}}, "data.classes: the digits have classes 0-9, got [3, 12]"),
    ({"data": {"test_fraction": 0.5, "validation_fraction": 0.5}},
     "data.validation_fraction: test_fraction + validation_fraction must leave examples to train on"),
    ({"pretrain": {"objective": "mlm", "data": {"source": "digits"}}},
     "pretrain.data.source: objective 'mlm' needs a text source (csv, jsonl, tfds, text), got 'digits'"),
    ({"data": {"source": "text", "path": "corpus.txt"}},
     "data.source: source 'text' holds unlabelled documents, for pretrain.data with objective mlm or causal_lm; "
     "expected labelled data (csv, jsonl, ...)"),
    ({"pretrain": {"objective": "supervised", "data": {"source": "text", "path": "corpus.txt"}}},
     "pretrain.data.source: objective 'supervised' needs labelled data; source 'text' holds unlabelled documents "
     "(for mlm or causal_lm)"),
    ({"data": {"source": "csv", "path": "t.csv", "shots": 5}},
     "data.shots: shots needs an in-memory source (digits, arrays), got source 'csv'"),
    ({"data": {"source": "image_folder", "path": "photos"}},
     "data.image_size: source 'image_folder' needs image_size, the [height, width] images are resized to; got null"),
    ({"data": {"source": "csv", "path": "t.csv", "augment": True}},
     "data.augment: augment works on images (image_folder, tfds), got source 'csv'"),
    ({"data": {"strict": "yes"}}, "data.strict: expected true or false, got 'yes'"),
    ({"head": {"label_smoothing": 1.5}}, "head.label_smoothing: expected a number in [0, 1), got 1.5"),
    ({"finetune": {"monitor": "val_accuracy"}},
     "finetune.monitor: 'val_accuracy' needs validation data; expected data.validation_fraction > 0 "
     "(or a training metric such as 'loss')"),
    ({"finetune": {"patience": 0}}, "finetune.patience: expected a positive integer or null, got 0"),
    ({"finetune": {"mixed_precision": "fp16"}},
     "finetune.mixed_precision: expected one of 'auto', 'mixed_float16', 'mixed_bfloat16', 'float32', got 'fp16'"),
    ({"head": {"task": "regression"}, "export": {"saved_model": True}},
     "head.task: task 'regression' reads lists of labels or numbers from a csv or jsonl table; data.source 'digits' "
     "holds class labels, expected csv or jsonl"),
    ({"data": {"source": "csv", "path": "t.csv", "validation_fraction": 0.1}, "head": {"task": "regression"},
      "finetune": {"monitor": "val_accuracy"}},
     "finetune.monitor: 'val_accuracy' is not a metric of a regression head; expected e.g. val_loss or val_mae"),
    # text pairs and sentence embeddings
    ({"data": {"text_pair_column": "b"}},
     "data.source: text_pair_column reads text pairs from a csv or jsonl table; expected source csv or jsonl, got 'digits'"),
    ({"data": {"source": "csv", "path": "t.csv", "text_pair_column": "text"}},
     "data.text_pair_column: expected a column other than text_column, got 'text' for both"),
    ({"data": {"source": "csv", "path": "t.csv", "text_pair_column": "b"}, "head": {"task": "regression"}},
     "head.task: text pairs have one class label each; expected task multiclass or binary, got 'regression'"),
    ({"data": {"source": "csv", "path": "t.csv", "negative_column": "n"}},
     "data.negative_column: hard negatives are for head.task 'embedding'; expected null, got 'n' with task 'multiclass'"),
    ({"head": {"task": "embedding"}, "finetune": {"strategy": "full"}},
     "data.source: task 'embedding' reads text pairs from a csv or jsonl table; expected source csv or jsonl, got 'digits'"),
    ({"data": {"source": "csv", "path": "t.csv"}, "head": {"task": "embedding"}, "finetune": {"strategy": "full"}},
     "data.text_pair_column: task 'embedding' trains on (text, positive) rows; expected the positive text's column, got null"),
    ({"data": {"source": "csv", "path": "t.csv", "text_pair_column": "b"}, "head": {"task": "embedding"}},
     "finetune.strategy: task 'embedding' fine-tunes every weight contrastively ('full') or none ('feature_extraction': "
     "the checkpoint as it is); got 'two_stage'"),
    ({"data": {"source": "csv", "path": "t.csv", "text_pair_column": "b"}, "head": {"task": "embedding", "pooling": "max"},
      "finetune": {"strategy": "full"}},
     "head.pooling: task 'embedding' pools by 'avg' or 'first', got 'max'"),
    ({"data": {"source": "csv", "path": "t.csv", "text_pair_column": "b"}, "head": {"task": "embedding"},
      "finetune": {"strategy": "full"}, "optimizer": {"name": "sgd"}},
     "optimizer.name: task 'embedding' trains with AdamW (sentence-transformers' schedule); expected 'adamw' or 'adam', got 'sgd'"),
    ({"head": {"recall_at": [1, 0]}}, "head.recall_at: expected a list of items, each a positive integer, got [1, 0]"),
    ({"head": {"task": "embeddings"}},
     "head.task: expected one of 'multiclass', 'binary', 'multilabel', 'regression', 'embedding', "
     "'token_classification', 'question_answering', got 'embeddings'; "
     "did you mean 'embedding'?"),
]


@pytest.mark.parametrize("update, message", BROKEN, ids=[m.split(":")[0] + f"-{i}" for i, (_, m) in enumerate(BROKEN)])
def test_broken_recipe_gives_file_key_path_and_expectation(tmp_path, update, message):
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(merged(update)))
    with pytest.raises(TfptmError) as error:
        load_recipe(path)
    assert str(error.value) == f"{path}: {message}"


@pytest.mark.parametrize(
    "text, message",
    [
        ("backbone: [unclosed", "r.yaml: not valid YAML (line 1): expected ',' or ']', but got '<stream end>'"),
        ("- just\n- a list", "r.yaml: expected a mapping of recipe sections (data, backbone, ...), got ['just', 'a list']"),
        ("", "r.yaml: backbone: missing; expected a section: the pre-trained network"),
        ("backbone: {args: {}}", "r.yaml: backbone.name: missing; expected a non-empty string: a registered name "
         "(tfptm.backbones.available()) or a path/URL handle"),
        ("7: 1\nbackbone: {name: x}", "r.yaml: 7: unknown key; expected one of: name, description, seed, data, backbone, "
         "head, finetune, optimizer, distribute, pretrain, distill, export"),
    ],
)
def test_unreadable_recipes(text, message):
    with pytest.raises(TfptmError) as error:
        parse_recipe(text, source="r.yaml")
    assert str(error.value) == message


def test_missing_file_is_one_clear_error(tmp_path):
    with pytest.raises(TfptmError, match=r"nope.yaml: recipe file does not exist"):
        load_recipe(tmp_path / "nope.yaml")


def test_set_overrides_any_field_with_yaml_scalars():
    recipe = parse_recipe(
        "backbone: {name: vgg_cnn}",
        sets=["finetune.epochs=3", "finetune.learning_rate=1e-4", "export.tflite=[dynamic, float16]",
              "backbone.args.filters=[8, 16]", "head.hidden_units=null", "distribute.strategy=default", "name=my run"],
    )
    assert recipe.finetune.epochs == 3 and recipe.finetune.learning_rate == 1e-4
    assert recipe.export.tflite == ("dynamic", "float16")
    assert recipe.backbone.args == {"filters": [8, 16]}
    assert recipe.distribute.strategy == "default" and recipe.name == "my run"


def test_set_creates_optional_sections_and_is_applied_before_validation():
    recipe = parse_recipe("backbone: {name: vgg_cnn}", sets=["distill.teacher=t.keras"])
    assert recipe.distill.teacher == "t.keras" and recipe.distill.temperature == 2.0
    assert load_recipe(bundled_path("mlm_then_finetune"), sets=["pretrain=null"]).pretrain is None  # dropped
    with pytest.raises(TfptmError) as error:
        parse_recipe("backbone: {name: vgg_cnn}", source="r.yaml", sets=["finetune.epochs=ten"])
    assert str(error.value) == "r.yaml: finetune.epochs (from --set): expected a positive integer, got 'ten'"


@pytest.mark.parametrize(
    "text, message",
    [
        ("finetune.epoch=3", "--set finetune.epoch=3: unknown key 'epoch' in finetune; did you mean 'epochs'?"),
        ("finetun.epochs=3", "--set finetun.epochs=3: unknown key 'finetun' in the recipe; did you mean 'finetune'?"),
        ("finetune.epochs.x=3", "--set finetune.epochs.x=3: finetune.epochs is a value, not a section"),
        ("finetune=3", "--set finetune=3: finetune is a section; set one of its keys, e.g. finetune.strategy"),
        ("finetune=null", "--set finetune=null: finetune is a section; set one of its keys, e.g. finetune.strategy"),
        ("finetune.epochs", "--set 'finetune.epochs': expected KEY.PATH=VALUE, e.g. --set finetune.epochs=3"),
        ("finetune..epochs=1", "--set 'finetune..epochs=1': expected KEY.PATH=VALUE, e.g. --set finetune.epochs=3"),
        ("export.tflite=[a", "--set 'export.tflite=[a': the value is not valid YAML: expected ',' or ']', but got '<stream end>'"),
    ],
)
def test_bad_set_paths_are_rejected(text, message):
    with pytest.raises(TfptmError) as error:
        parse_recipe("backbone: {name: vgg_cnn}", sets=[text])
    assert str(error.value) == message


@pytest.mark.parametrize("name", bundled_names())
def test_every_bundled_recipe_validates_and_round_trips(name):
    recipe = load_recipe(bundled_path(name))
    assert recipe.name == name and recipe.description
    again = parse_recipe(dump_recipe(recipe))
    assert again == recipe and to_dict(again) == to_dict(recipe)


def test_bundled_recipes_cover_the_issue():
    assert set(bundled_names()) >= {"image_transfer", "text_minilm", "mlm_then_finetune", "distill_tflite", "tfhub_finetune",
                                    "text_pairs_minilm", "embeddings_minilm"}
    assert load_recipe(bundled_path("text_pairs_minilm")).data.text_pair_column == "text_b"
    assert load_recipe(bundled_path("embeddings_minilm")).head.task == "embedding"


def test_resolved_recipe_fills_every_default():
    resolved = yaml.safe_load(dump_recipe(validate(GOOD)))
    assert resolved["finetune"] == to_dict(validate(GOOD))["finetune"]
    assert resolved["optimizer"]["name"] == "adam" and resolved["distill"] is None
    assert "1e-4" not in dump_recipe(validate(GOOD))  # floats written so YAML reads them back as floats


def test_exponent_floats_without_a_dot_are_numbers():
    # PyYAML (YAML 1.1) reads 1e-4 as text; recipes accept it as the number people mean.
    assert parse_recipe("backbone: {name: x}\nfinetune: {learning_rate: 1e-4}").finetune.learning_rate == 1e-4


def test_distribute_names_match_tfptm_training():
    code = "from tfptm.training.distribute import STRATEGIES; print(','.join(STRATEGIES))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert tuple(out.stdout.strip().split(",")) == schema.DISTRIBUTE


def test_recipes_need_no_tensorflow():
    code = ("import sys; from tfptm.recipes import load_recipe, bundled_path; "
            "load_recipe(bundled_path('image_transfer')); print('tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("key", ["name", "export.model_name"])
@pytest.mark.parametrize("value", ["../../outside", "a/b", "/abs", ".hidden", "..", "a\\b", "x" * 101, "bad\nname", " lead", "nul\0"])
def test_names_that_become_paths_cannot_escape(key, value):
    with pytest.raises(TfptmError, match=rf"r.yaml: {key}: expected a plain name"):
        validate({"backbone": {"name": "vgg_cnn"}, **_nested(key, value)}, source="r.yaml")


def _nested(key, value):
    first, _, rest = key.partition(".")
    return {first: {rest: value}} if rest else {first: value}


@pytest.mark.parametrize("value", ["my run", "run_1.v2", "café-5"])
def test_plain_names_are_accepted(value):
    assert validate({"backbone": {"name": "vgg_cnn"}, "name": value}).name == value


def test_cli_refuses_an_escaping_name_in_one_line_and_writes_nothing(tmp_path, monkeypatch, capsys):
    from tfptm.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "r.yaml").write_text("name: ../../outside\nbackbone: {name: vgg_cnn}\n")
    assert main(["train", "r.yaml"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "r.yaml: name: expected a plain name" in err, err
    assert sorted(os.listdir(tmp_path)) == ["r.yaml"] and not (tmp_path.parent.parent / "outside").exists()


def test_a_directory_given_as_the_recipe_file_says_directory(tmp_path, capsys):
    from tfptm.cli import main

    (tmp_path / "recipe.yaml").mkdir()
    (tmp_path / "plain").mkdir()
    for path in (tmp_path / "recipe.yaml", tmp_path / "plain"):
        with pytest.raises(TfptmError, match=r"is a directory; expected a recipe YAML file"):
            load_recipe(path)
        assert main(["recipes", "check", str(path)]) == 2
        assert "is a directory" in capsys.readouterr().err
