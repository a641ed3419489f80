import os

import numpy as np
import pytest
import tensorflow as tf

import tfptm
from tfptm.errors import TfptmError
from conftest import assert_no_partial

NAMES = ["zero", "one", "two"]


def test_saved_model_uses_tf_serving_layout_and_counts_versions(tiny_classifier, tmp_path):
    first = tfptm.export.saved_model(tiny_classifier, tmp_path, "digits", class_names=NAMES)
    second = tfptm.export.saved_model(tiny_classifier, tmp_path, "digits", class_names=NAMES)
    assert first == tmp_path / "digits" / "1" and second == tmp_path / "digits" / "2"
    assert (first / "saved_model.pb").is_file() and (first / "variables").is_dir()
    assert (first / "assets" / "labels.txt").read_text().split() == NAMES
    assert tfptm.export.existing_versions(tmp_path / "digits") == [1, 2]
    assert_no_partial(tmp_path / "digits")
    with pytest.raises(TfptmError, match="already exists"):
        tfptm.export.saved_model(tiny_classifier, tmp_path, "digits", version=2, class_names=NAMES)


def test_saved_model_signature_matches_keras(tiny_classifier, digit_batch, tmp_path):
    x, _ = digit_batch
    path = tfptm.export.saved_model(tiny_classifier, tmp_path, "digits", class_names=NAMES)
    serving = tf.saved_model.load(str(path)).signatures["serving_default"]
    assert list(serving.structured_input_signature[1]) == ["pixels"]
    out = serving(pixels=tf.constant(x[:5]))
    expected = tiny_classifier.predict(x[:5], verbose=0)
    np.testing.assert_allclose(out["probabilities"].numpy(), expected, atol=1e-6)
    ids = expected.argmax(-1)
    assert out["class_ids"].numpy().tolist() == ids.tolist()
    assert [n.decode() for n in out["class_names"].numpy()] == [NAMES[i] for i in ids]
    parity = tfptm.export.check_saved_model(path, tiny_classifier, x)
    assert parity["ok"] and parity["max_abs_diff"] <= 1e-5


def test_a_failed_export_leaves_no_version_behind(tiny_classifier, tmp_path, monkeypatch):
    import tfptm.export.serving as serving

    class CrashingArchive:
        def write_out(self, path, **kwargs):
            os.makedirs(path + "/variables")  # something half-written
            raise RuntimeError("disk on fire")

    monkeypatch.setattr(serving, "_serving_archive", lambda model, labels: CrashingArchive())
    with pytest.raises(RuntimeError, match="disk on fire"):
        tfptm.export.saved_model(tiny_classifier, tmp_path, "digits")
    assert os.listdir(tmp_path / "digits") == []


@pytest.mark.parametrize("quantization", ["float32", "float16", "dynamic", "int8"])
def test_tflite_variants_agree_with_keras(trained_classifier, digit_batch, tmp_path, quantization):
    x, y = digit_batch
    result = tfptm.export.tflite(
        trained_classifier, tmp_path / f"m-{quantization}.tflite", quantization, representative_data=x, class_names=NAMES
    )
    assert result.path.stat().st_size > 0 and not result.select_tf_ops
    assert result.labels_path.read_text().split() == NAMES
    assert tfptm.export.read_metadata(result.path)["quantization"] == quantization
    parity = tfptm.export.check_tflite(result.path, trained_classifier, x, y)
    assert parity["top1_agreement"] >= (0.999 if quantization in ("float32", "float16") else 0.95)
    if quantization == "float32":
        assert parity["max_prob_diff"] < 1e-5
    assert_no_partial(tmp_path)


def test_int8_with_integer_io_is_really_integer(trained_classifier, digit_batch, tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    x, _ = digit_batch
    result = tfptm.export.tflite(trained_classifier, tmp_path / "q.tflite", "int8", representative_data=x, int8_io=True)
    interpreter = Interpreter(model_path=str(result.path))
    assert interpreter.get_input_details()[0]["dtype"] == np.int8
    assert interpreter.get_output_details()[0]["dtype"] == np.int8
    assert tfptm.export.check_tflite(result.path, trained_classifier, x)["top1_agreement"] >= 0.95


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"path": "model.lite"}, "must end in .tflite"),
        ({"quantization": "int4"}, "Unknown quantization 'int4'"),
        ({"quantization": "int8"}, "int8 quantization needs representative_data"),
        ({"class_names": ["a", "b"]}, "2 class names given for a model with 3 outputs"),
    ],
)
def test_bad_tflite_requests(tiny_classifier, tmp_path, kwargs, message):
    kwargs = {"path": "m.tflite", **kwargs}
    kwargs["path"] = tmp_path / kwargs["path"]
    with pytest.raises(TfptmError, match=message):
        tfptm.export.tflite(tiny_classifier, **kwargs)
    assert os.listdir(tmp_path) == []
