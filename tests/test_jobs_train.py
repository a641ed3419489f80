"""The recipe runner on every data source and training option, in-process (one TensorFlow import for all)."""

import csv
import hashlib
import json
import os
import tarfile

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfptm
from conftest import assert_no_partial
from tfptm.errors import TfptmError
from tfptm.jobs import run_recipe
from tfptm.recipes import bundled_path, load_recipe, parse_recipe
from tfptm.jobs.train import check_supported, prepare
from tfptm.jobs.fit import callbacks, fit_recipe as train
from tfptm.rundir import work_dir_for

QUIET = dict(progress=lambda message: None)


def write_reviews(path, count=60, empty_rows=1):
    texts, labels = tfptm.datasets.load_reviews("train", count=count, seed=0)
    with open(path, "w", newline="", encoding="utf-8") as f:
        if str(path).endswith(".jsonl"):
            for text, label in zip(texts, labels):
                f.write(json.dumps({"text": str(text), "label": ["neg", "pos"][label]}) + "\n")
            return
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows([text, ["neg", "pos"][label]] for text, label in zip(texts, labels))
        writer.writerows(["", "pos"] for _ in range(empty_rows))


def assert_clean(parent, name="run"):
    assert_no_partial(parent)
    assert not work_dir_for(parent / name).exists()


@pytest.fixture(scope="module")
def minilm_run(tmp_path_factory, minilm_dir):
    """`(tmp_path, summary)` of the text_minilm recipe trained for one epoch on a small csv."""
    tmp_path = tmp_path_factory.mktemp("minilm")
    write_reviews(tmp_path / "reviews.csv")
    recipe = load_recipe(bundled_path("text_minilm"), sets=[
        f"backbone.name={minilm_dir}", f"data.path={tmp_path / 'reviews.csv'}", "finetune.epochs=1",
        "data.max_length=32", "data.batch_size=16", "export.saved_model=false"])
    return tmp_path, run_recipe(recipe, tmp_path / "run", **QUIET)


def test_text_minilm_recipe_on_a_csv(minilm_run):
    tmp_path, summary = minilm_run
    data = summary["data"]
    assert data["num_skipped"] == 1 and data["skipped_by_reason"] == {"empty text": 1}
    assert data["skipped"][0]["where"] == f"{tmp_path / 'reviews.csv'}:62"
    assert (data["num_train"], data["num_validation"], data["num_test"]) == (43, 5, 12)
    assert summary["metrics"]["model"]["num_examples"] == 12 and list(summary["metrics"]["model"]["per_class"]) == ["neg", "pos"]
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert history["stage"] == ["full"] and set(history) >= {"loss", "val_loss", "val_accuracy"}
    for name in ("history.csv", "logs", "model.keras"):
        assert (tmp_path / "run" / name).exists(), name
    assert not (tmp_path / "run" / "best.keras").exists()  # one model file: the best epoch is kept in memory
    assert_clean(tmp_path)


def test_export_of_a_minilm_text_run_serves_raw_strings_and_int8(minilm_run):
    """`tfptm export RUN` on a text run: the raw-string signature and int8 TFLite, under the names `tfptm train` uses."""
    from tfptm.jobs.export import export_run
    from tfptm.rundir import load_model

    tmp_path, _ = minilm_run
    summary = export_run(tmp_path / "run", tmp_path / "export", quantizations=["dynamic", "int8"])
    parity = summary["parity"]
    assert parity["saved_model"]["ok"] and parity["tflite_dynamic"]["ok"], parity
    # int8 is calibrated on the run's representative.npz (token ids and masks) and checked on it; after one epoch on
    # 43 texts the classes are nearly tied, so its agreement is reported, not required here
    assert parity["tflite_int8"]["num_examples"] == 43 and 0.5 <= parity["tflite_int8"]["top1_agreement"] <= 1.0
    assert "raw_text" in summary["signatures"]
    assert summary["artifacts"]["saved_model"] == str(tmp_path / "export" / "minilm_classifier" / "1")
    assert summary["artifacts"]["tflite_int8"] == str(tmp_path / "export" / "minilm_classifier.int8.tflite")
    assert (tmp_path / "export" / "minilm_classifier.export.json").is_file()
    # the SavedModel tokenizes raw strings as training did: its answer equals the Keras model's on the run's tokenizer
    texts = ["a truly wonderful film", "dull and far too long"]
    served = tf.saved_model.load(summary["artifacts"]["saved_model"]).signatures["raw_text"](text=tf.constant(texts))
    model = load_model(tmp_path / "run", compile=False)
    from tfptm.jobs.export import run_tokenizer

    expected = model.predict(dict(run_tokenizer(tmp_path / "run", model)(tf.constant(texts))), verbose=0)
    np.testing.assert_allclose(served["probabilities"].numpy(), expected, atol=1e-5)


def hub_archive(directory):
    """A TF Hub style module (a SavedModel in a .tar.gz) of a small RGB CNN, and its sha256."""
    backbone = tfptm.backbones.get("vgg_cnn", input_shape=(8, 8, 3), filters=(8, 16), input_scale=1 / 255)
    backbone.export(str(directory / "module"), verbose=False)
    archive = directory / "module.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(directory / "module", arcname=".")
    return archive, hashlib.sha256(archive.read_bytes()).hexdigest()


def image_folder(root, per_class=20):
    """Digits 0-2 as 8x8 RGB PNGs, one folder per class, plus one corrupt file."""
    images, labels = tfptm.datasets.load_digits()
    for label in range(3):
        os.makedirs(root / f"digit{label}")
        for i, image in enumerate(images[labels == label][:per_class]):
            rgb = np.repeat((image * 15).astype("uint8"), 3, axis=-1)
            (root / f"digit{label}" / f"{i}.png").write_bytes(tf.io.encode_png(rgb).numpy())
    (root / "digit1" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n-truncated")
    return root


def test_tfhub_recipe_on_an_image_folder(tmp_path):
    archive, sha256 = hub_archive(tmp_path)
    photos = image_folder(tmp_path / "photos")
    sets = [f"backbone.name={archive}", f"backbone.args={{input_shape: [8, 8, 3], sha256: {sha256}, signature: serve}}",
            f"data.path={photos}", "data.image_size=[8, 8]", "data.batch_size=8", "finetune.head_epochs=1",
            "finetune.epochs=1"]
    recipe = load_recipe(bundled_path("tfhub_finetune"), sets=sets)
    summary = run_recipe(recipe, tmp_path / "run", **QUIET)
    data = summary["data"]
    # 60 good images: 30% held out (stratified), a third of that for validation; the corrupt file skipped and counted.
    held_out = data["num_validation"] + data["num_test"]
    assert data["num_train"] + held_out == 60 and held_out in (18, 19) and data["num_validation"] == held_out // 3
    assert data["num_skipped"] == 1 and data["skipped"][0]["where"].endswith("broken.png")
    metrics = summary["metrics"]["model"]
    assert metrics["num_examples"] == data["num_test"] and list(metrics["per_class"]) == ["digit0", "digit1", "digit2"]
    assert all(sum(row) >= 4 for row in metrics["confusion_matrix"])  # every class in the test split
    assert summary["parity"]["saved_model"]["ok"] and summary["parity"]["tflite_float16"]["ok"]
    assert summary["parity"]["tflite_float16"]["num_examples"] == data["num_test"]
    assert_clean(tmp_path)

    strict = load_recipe(bundled_path("tfhub_finetune"), sets=sets + ["data.strict=true"])
    with pytest.raises(TfptmError, match=r"broken\.png.*strict"):
        run_recipe(strict, tmp_path / "strict", **QUIET)
    assert not (tmp_path / "strict").exists()
    assert_clean(tmp_path, "strict")




from tiny_tfds import prepare as prepare_tiny_stripes  # noqa: E402


@pytest.mark.parametrize("data, counts", [
    ("{test_split: test}", (8, 0, 4)),
    ("{test_fraction: 0.25, validation_fraction: 0.25}", (4, 2, 2)),
])
def test_tfds_by_name_from_a_prepared_data_dir(tmp_path, data, counts):
    prepare_tiny_stripes(tmp_path / "tfds")
    recipe = parse_recipe(
        "backbone: {name: vgg_cnn, args: {input_shape: [6, 6, 3], filters: [4], input_scale: 0.004}}\n"
        "finetune: {strategy: full, epochs: 1}\n"
        f"data: {{source: tfds, name: tiny_stripes, path: {tmp_path / 'tfds'}, batch_size: 4, {data[1:-1]}}}\n")
    summary = run_recipe(recipe, tmp_path / "run", **QUIET)
    got = summary["data"]
    assert (got["num_train"], got["num_validation"], got["num_test"]) == counts
    assert summary["metrics"]["model"]["num_examples"] == counts[2] and got["class_names"] == ["dark", "light"]


def test_gradual_unfreezing_with_adamw_schedule_and_layerwise_decay(tmp_path):
    recipe = parse_recipe("""
backbone: {name: vgg_cnn, args: {input_shape: [8, 8, 1], filters: [4, 8], input_scale: 0.0625}}
data: {classes: [0, 1], shots: 8, batch_size: 4, validation_fraction: 0.25}
head: {pooling: flatten, label_smoothing: 0.1}
finetune: {strategy: gradual, head_epochs: 1, unfreeze_every: 1, epochs: 2, monitor: val_accuracy, patience: 5}
optimizer: {name: adamw, weight_decay: 0.01, schedule: linear, warmup_fraction: 0.1, layerwise_decay: 0.5, clipnorm: 1.0}
""")
    check_supported(recipe)  # schedules, warmup and layer-wise decay are no longer refused
    data, model, _ = prepare(recipe, tf.distribute.get_strategy(), lambda message: None)
    history = train(recipe, model, data, tmp_path / "work", verbose=0)
    blocks = len(tfptm.backbones.blocks(tfptm.backbone_of(model)))  # stem, block1, block2
    assert history["stage"] == ["head"] + [f"unfreeze_top{i}" for i in range(1, blocks + 1)] + [f"unfreeze_top{blocks}"]
    config = model.optimizer.get_config()
    assert config["weight_decay"] == 0.01 and config["clipnorm"] == 1.0
    assert config["learning_rate"]["class_name"] == "WarmupDecay" and config["learning_rate"]["config"]["decay"] == "linear"
    assert config["lr_multipliers"]["block2_1_conv/kernel"] == 0.5 and config["lr_multipliers"]["block1_1_conv/kernel"] == 0.25
    assert model.loss.label_smoothing == 0.1
    found = {type(c).__name__: c for c in callbacks(recipe, tmp_path / "work", validation=True)}
    assert found["EarlyStopping"].monitor == "val_accuracy" and found["EarlyStopping"].restore_best_weights
    assert "ModelCheckpoint" not in found  # no second model file
    assert {"StopOnNaN", "CSVLogger", "BackupAndRestore"} <= set(found)


def test_lora_on_a_local_text_backbone_with_a_learnt_vocabulary(tmp_path):
    write_reviews(tmp_path / "reviews.jsonl")
    recipe = parse_recipe(f"""
data: {{source: jsonl, path: {tmp_path / 'reviews.jsonl'}, max_length: 16, batch_size: 8}}
backbone: {{name: transformer_encoder, args: {{vocabulary_size: 120, num_layers: 1, hidden_dim: 16, intermediate_dim: 32, max_sequence_length: 16}}}}
head: {{pooling: first}}
finetune: {{strategy: lora, lora_rank: 2, epochs: 2, learning_rate: 1.0e-2}}
""")
    data, model, _ = prepare(recipe, tf.distribute.get_strategy(), lambda message: None)
    assert isinstance(data.tokenizer, tfptm.data.text.TextTokenizer) and len(data.tokenizer.vocabulary) <= 120
    backbone = tfptm.backbone_of(model)
    before = {v.path: v.numpy().copy() for v in backbone.weights}
    train(recipe, model, data, verbose=0)
    changed = {path for path, value in before.items() if not np.array_equal(value, _value(backbone, path))}
    assert changed and all("lora" in path for path in changed), changed


def _value(model, path):
    return next(v for v in model.weights if v.path == path).numpy()


def test_mixed_precision_policy_is_restored_after_a_run(tmp_path):
    recipe = parse_recipe("backbone: {name: vgg_cnn, args: {input_shape: [8, 8, 1], filters: [4]}}\n"
                          "data: {classes: [0, 1], shots: 4}\nfinetune: {strategy: full, epochs: 1, mixed_precision: mixed_bfloat16}\n")
    summary = run_recipe(recipe, tmp_path / "run", **QUIET)
    assert summary["metrics"]["model"]["num_examples"] > 0
    assert keras.mixed_precision.global_policy().name == "float32"


def test_evaluating_a_text_run_again_tokenizes_as_training_did(tmp_path):
    write_reviews(tmp_path / "reviews.csv", count=40)
    recipe = parse_recipe(f"""
data: {{source: csv, path: {tmp_path / 'reviews.csv'}, max_length: 12, batch_size: 8}}
backbone: {{name: lstm_encoder, args: {{vocabulary_size: 100, embedding_dim: 8, units: [8]}}}}
finetune: {{strategy: full, epochs: 2, learning_rate: 1.0e-2}}
""")
    summary = run_recipe(recipe, tmp_path / "run", **QUIET)
    from tfptm.jobs.evaluate import evaluate_saved

    again = evaluate_saved(tmp_path / "run" / "model.keras", load_recipe(tmp_path / "run" / "recipe.yaml"), **QUIET)
    assert again["metrics"] == summary["metrics"]


MLM_TINY = ["pretrain.epochs=1", "pretrain.data.batch_size=16", "data.max_length=16", "data.batch_size=16",
            "backbone.args={vocabulary_size: 300, max_sequence_length: 16, num_layers: 1, hidden_dim: 16, intermediate_dim: 32}",
            "finetune.head_epochs=1", "finetune.epochs=1", "finetune.learning_rate=1.0e-3"]


def text_files(tmp_path):
    write_reviews(tmp_path / "labelled.csv", count=60, empty_rows=0)
    texts, _ = tfptm.datasets.load_reviews("train", count=150, seed=1)
    (tmp_path / "corpus.txt").write_text("\n".join(map(str, texts)) + "\n", encoding="utf-8")
    return [f"pretrain.data.path={tmp_path / 'corpus.txt'}", f"data.path={tmp_path / 'labelled.csv'}"]


def test_mlm_then_finetune_in_one_run_tokenizes_with_the_corpus_vocabulary(tmp_path):
    recipe = load_recipe(bundled_path("mlm_then_finetune"), sets=text_files(tmp_path) + MLM_TINY)
    summary = run_recipe(recipe, tmp_path / "run", **QUIET)
    assert {"train_loss", "validation_loss"} <= set(summary["metrics"]["pretrain"])
    assert summary["metrics"]["model"]["num_examples"] == 12 and summary["class_names"] == ["neg", "pos"]
    # the SavedModel carries the learnt tokenizer: raw text in, labels out, with no training code
    predictions = tfptm.export.predict(summary["artifacts"]["saved_model"], ["a great film", "dull and slow"], top_k=2)
    assert [sorted(label for label, _ in row) for row in predictions] == [["neg", "pos"]] * 2
    assert sorted(np.load(tmp_path / "run" / "representative.npz").files) == ["padding_mask", "segment_ids", "token_ids"]
    # evaluating the run again tokenizes with the corpus vocabulary kept in run/pretrained
    from tfptm.jobs.evaluate import evaluate_saved

    again = evaluate_saved(tmp_path / "run", load_recipe(tmp_path / "run" / "recipe.yaml"), **QUIET)
    assert again["metrics"]["model"] == summary["metrics"]["model"]


def test_pretrain_saves_an_artifact_that_train_fine_tunes_from(tmp_path):
    from tfptm.backbones.saved import load_artifact
    from tfptm.jobs import run_pretrain

    files = text_files(tmp_path)
    summary = run_pretrain(load_recipe(bundled_path("mlm_then_finetune"), sets=files + MLM_TINY), tmp_path / "mlm", **QUIET)
    artifact = tmp_path / "mlm" / "pretrained"
    assert summary["artifacts"]["pretrained"] == str(artifact.resolve()) and "train_loss" in summary["metrics"]["pretrain"]
    backbone, tokenizer = load_artifact(str(artifact))

    recipe = load_recipe(bundled_path("mlm_then_finetune"), sets=files + MLM_TINY + [
        "pretrain=null", f"backbone.name={artifact}", "backbone.args={}"])
    data, model, metrics = prepare(recipe, tf.distribute.get_strategy(), lambda message: None)
    assert metrics == {} and data.tokenizer.vocabulary == tokenizer.vocabulary  # the artifact's own tokenizer
    fine_tuned = tfptm.backbone_of(model)
    assert all(np.array_equal(a, b) for a, b in zip(fine_tuned.get_weights(), backbone.get_weights()))

    with pytest.raises(TfptmError, match=r"backbone.args: .*vocabulary_size"):
        prepare(load_recipe(bundled_path("mlm_then_finetune"), sets=files + MLM_TINY + [
            "pretrain=null", f"backbone.name={artifact}"]), tf.distribute.get_strategy(), lambda message: None)


def test_causal_lm_pretraining_saves_a_decoder_with_its_tokenizer(tmp_path):
    from tfptm.backbones.saved import load_artifact, read_manifest
    from tfptm.jobs import run_pretrain

    sets = text_files(tmp_path)[:1] + MLM_TINY + ["pretrain.objective=causal_lm", "backbone.name=transformer_decoder"]
    recipe = load_recipe(bundled_path("mlm_then_finetune"), sets=sets)
    summary = run_pretrain(recipe, tmp_path / "lm", **QUIET)
    assert summary["metrics"]["pretrain"]["validation_perplexity"] > 1
    backbone, tokenizer = load_artifact(str(tmp_path / "lm" / "pretrained"))
    assert read_manifest(str(tmp_path / "lm" / "pretrained"))["info"]["objective"] == "causal_lm"
    assert tfptm.data.check_tokenizer(tokenizer, backbone) == len(tokenizer.vocabulary) <= 300
    with pytest.raises(TfptmError, match="pre-trains a new transformer_encoder; expected backbone.name: transformer_encoder"):
        check_supported(load_recipe(bundled_path("mlm_then_finetune"), sets=["backbone.name=lstm_encoder"]))


def test_distill_verb_trains_the_student_from_a_teacher_and_exports_int8(tmp_path, capsys):
    from tfptm.cli import main

    images, labels = tfptm.datasets.load_digits()
    x, y = tfptm.data.select_classes(images, labels, [5, 6, 7, 8, 9])
    backbone = tfptm.backbones.get("vgg_cnn", input_shape=(8, 8, 1), filters=(16, 32), input_scale=1 / 16)
    teacher = tfptm.build_model(backbone, tfptm.Head("multiclass", num_classes=5, pooling="flatten"))
    # frozen BatchNorm: 4 epochs are too few for its moving statistics to settle
    tfptm.finetune(teacher, tfptm.data.from_arrays(x, y, seed=0), tfptm.training.full(4, 3e-3, freeze_batchnorm=True),
                   verbose=0)
    teacher.save(tmp_path / "teacher.keras")

    status = main(["distill", "distill_tflite", "--set", f"distill.teacher={tmp_path / 'teacher.keras'}",
                   "--set", "distill.epochs=10", "--out", str(tmp_path / "student"), "--quiet"])
    assert status == 0, capsys.readouterr().err[-3000:]
    run = tmp_path / "student"
    summary = json.loads((run / "summary.json").read_text())
    student, teacher_metrics = summary["metrics"]["model"], summary["metrics"]["teacher"]
    assert student["parameters"] * 3 < teacher_metrics["parameters"] and teacher_metrics["accuracy"] > 0.9
    assert student["accuracy"] > 0.7 and student["num_examples"] == teacher_metrics["num_examples"]
    assert summary["parity"]["tflite_int8"]["ok"] and summary["artifacts"]["tflite_int8"].endswith("digits_student.int8.tflite")
    history = json.loads((run / "history.json").read_text())
    assert history["stage"] == ["distill"] * 10 and len(history["distillation_loss"]) == 10
    assert "## Distillation" in (run / "report.md").read_text() and "teacher" in capsys.readouterr().out


def test_a_digits_run_exports_image_bytes_on_the_digits_scale(tmp_path):
    """PNG bytes (0-255) sent to image_bytes give what the model gives the same image on its own 0-16 scale."""
    recipe = load_recipe(bundled_path("image_transfer"), sets=[
        "pretrain=null", "finetune.head_epochs=1", "finetune.epochs=1", "export.tflite=[dynamic]"])
    summary = run_recipe(recipe, tmp_path / "run", **QUIET)
    x = tfptm.datasets.load_digits()[0][:8]
    pixels = np.round(x * 255 / 16)  # what a PNG of these digits holds
    pngs = tf.constant([tf.io.encode_png(p.astype("uint8")).numpy() for p in pixels])
    signatures = tf.saved_model.load(summary["artifacts"]["saved_model"]).signatures
    from_bytes = signatures["image_bytes"](image_bytes=pngs)["probabilities"].numpy()
    from_pixels = signatures["pixels"](pixels=tf.constant(pixels * 16 / 255, tf.float32))["probabilities"].numpy()
    np.testing.assert_allclose(from_bytes, from_pixels, atol=1e-5)
    assert tfptm.export.read_metadata(summary["artifacts"]["tflite_dynamic"])["image_scale"] == pytest.approx(16 / 255)
