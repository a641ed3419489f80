"""Serving outputs per task (issue 16, class 6): regression heads serve values, multilabel heads the labels present."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfptm
from tfptm.errors import TfptmError
from tfptm.export.litert import signature_runner

LABELS = ["cat", "dog", "bird"]


def _model(task, units, bias):
    keras.utils.set_random_seed(0)
    backbone = tfptm.backbones.get("vgg_cnn", input_shape=(8, 8, 1), filters=(4,))
    model = tfptm.build_model(backbone, tfptm.Head(task, num_classes=units))
    logits = model.get_layer("head_logits")
    logits.set_weights([logits.get_weights()[0], np.asarray(bias, "float32")])
    return model


@pytest.fixture(scope="module")
def multilabel():  # label 0 nearly always present, label 1 nearly never, label 2 either way
    return _model("multilabel", 3, [4.0, -4.0, 0.0])


@pytest.fixture(scope="module")
def regression():
    return _model("regression", 2, [10.0, -3.0])


@pytest.fixture(scope="module")
def x():
    return np.random.default_rng(0).random((24, 8, 8, 1), dtype="float32") * 16


def _signatures(path):
    return tf.saved_model.load(str(path)).signatures


def test_regression_signatures_return_values_only(regression, x, tmp_path):
    path = tfptm.export.saved_model(regression, tmp_path, "price", class_names=["price", "margin"])
    signatures = _signatures(path)
    assert sorted(signatures) == ["image_bytes", "pixels", "serving_default"]
    expected = regression.predict(x, verbose=0)
    for name in ("serving_default", "pixels"):
        out = signatures[name](pixels=tf.constant(x))
        assert sorted(out) == ["values"]
        np.testing.assert_allclose(out["values"].numpy(), expected, atol=1e-5)
    described = tfptm.export.describe_saved_model(path)["signatures"]
    assert {n: sorted(s["outputs"]) for n, s in described.items()} == {n: ["values"] for n in described}
    png = tf.io.encode_png(tf.cast(tf.fill([8, 8, 1], 255), tf.uint8))
    assert signatures["image_bytes"](image_bytes=tf.stack([png, png]))["values"].shape == (2, 2)
    parity = tfptm.export.check_saved_model(path, regression, x)
    assert parity["ok"] and parity["task"] == "regression" and "class_ids_agree" not in parity


def test_multilabel_signatures_return_labels_present_not_an_argmax(multilabel, x, tmp_path):
    path = tfptm.export.saved_model(multilabel, tmp_path, "tags", class_names=LABELS)
    out = _signatures(path)["serving_default"](pixels=tf.constant(x))
    assert sorted(out) == ["label_names", "labels_present", "probabilities"]
    expected = multilabel.predict(x, verbose=0)
    present = (expected >= 0.5).astype(int)
    assert present[:, 0].all() and not present[:, 1].any()  # so an argmax (one label per row) cannot pass
    np.testing.assert_allclose(out["probabilities"].numpy(), expected, atol=1e-6)
    np.testing.assert_array_equal(out["labels_present"].numpy(), present)
    names = [[n.decode() for n in row] for row in out["label_names"].numpy()]
    assert names == [[LABELS[j] if p else "" for j, p in enumerate(row)] for row in present]
    parity = tfptm.export.check_saved_model(path, multilabel, x)
    assert parity["ok"] and parity["labels_present_agree"] and parity["task"] == "multilabel"


def test_multiclass_and_binary_outputs_are_unchanged(x, tmp_path):
    for task, units in (("multiclass", 3), ("binary", 2)):
        model = tfptm.build_model(
            tfptm.backbones.get("vgg_cnn", input_shape=(8, 8, 1), filters=(4,)), tfptm.Head(task, num_classes=units)
        )
        path = tfptm.export.saved_model(model, tmp_path, task)
        out = _signatures(path)["serving_default"](pixels=tf.constant(x[:4]))
        assert sorted(out) == ["class_ids", "class_names", "probabilities"]
        assert tfptm.export.check_saved_model(path, model, x)["ok"]


def test_value_and_label_names_are_checked_against_the_outputs(regression, multilabel, tmp_path):
    with pytest.raises(TfptmError, match="3 value names given for a model with 2 outputs"):
        tfptm.export.saved_model(regression, tmp_path, "r", class_names=["a", "b", "c"])
    with pytest.raises(TfptmError, match="2 class names given for a model with 3 outputs"):
        tfptm.export.saved_model(multilabel, tmp_path, "m", class_names=["a", "b"])
    one = _model("regression", 1, [0.5])
    path = tfptm.export.saved_model(one, tmp_path, "one")
    assert (path / "assets" / "labels.txt").read_text().split() == ["value"]  # not two class names
    assert not (tmp_path / "r").exists() and not (tmp_path / "m").exists()


@pytest.mark.parametrize("kind", ["regression", "multilabel"])
def test_export_checked_exports_and_checks_every_artifact(kind, regression, multilabel, x, tmp_path):
    model = regression if kind == "regression" else multilabel
    names = ["price", "margin"] if kind == "regression" else LABELS
    y = model.predict(x, verbose=0) if kind == "regression" else (model.predict(x, verbose=0) >= 0.5).astype(int)
    summary = tfptm.export.export_checked(
        model, tmp_path, kind, quantizations=("float32", "dynamic"), class_names=names, check_data=(x, y), record={}
    )
    assert sorted(summary["parity"]) == ["saved_model", "tflite_dynamic", "tflite_float32"]
    assert all(p["ok"] for p in summary["parity"].values()), summary["parity"]
    for quantization in ("float32", "dynamic"):
        lite = tmp_path / f"{kind}.{quantization}.tflite"
        meta = json.loads(lite.with_suffix(".json").read_text())
        assert meta["task"] == kind
        runner = signature_runner(lite)
        if kind == "regression":
            assert list(runner.get_output_details()) == ["values"] and meta["output"] == "values"
            assert meta["value_names"] == names and "labels" not in meta
            assert not lite.with_suffix(".labels.txt").exists()
            assert f"tflite_{quantization}_labels" not in summary["artifacts"]
        else:
            assert list(runner.get_output_details()) == ["probabilities"]
            assert meta["labels"] == names and meta["threshold"] == 0.5
            assert lite.with_suffix(".labels.txt").read_text().split() == names
    served = summary["signatures"]["serving_default"]["outputs"]
    assert sorted(served) == (["values"] if kind == "regression" else ["label_names", "labels_present", "probabilities"])
    assert json.loads((tmp_path / f"{kind}.export.json").read_text())["parity"] == summary["parity"]


def test_predict_on_files_reports_values_or_the_labels_present(regression, multilabel, x, tmp_path):
    images = []
    for i in range(3):
        image = tmp_path / f"{i}.png"
        image.write_bytes(tf.io.encode_png(tf.cast(x[i] * 255 / 16, tf.uint8)).numpy())
        images.append(str(image))
    tfptm.export.export_checked(regression, tmp_path, "r", quantizations=("float32",), class_names=["price", "margin"])
    tfptm.export.export_checked(multilabel, tmp_path, "m", quantizations=("float32",), class_names=LABELS)
    for artifact in (tmp_path / "r", tmp_path / "r.float32.tflite"):
        rows = tfptm.export.predict(artifact, images)
        assert [[name for name, _ in row] for row in rows] == [["price", "margin"]] * 3
        assert all(abs(row[0][1] - 10) < 5 for row in rows)  # the values, not scores in [0, 1]
    for artifact in (tmp_path / "m", tmp_path / "m.float32.tflite"):
        rows = tfptm.export.predict(artifact, images, top_k=1)
        assert all(row and row[0][0] == "cat" for row in rows)  # present, best first
        assert all("dog" not in [label for label, _ in row] for row in rows)  # absent labels are not listed
        assert all(score >= 0.5 for row in rows for _, score in row)
