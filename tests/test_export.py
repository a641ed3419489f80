import json
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

    monkeypatch.setattr(serving, "_serving_archive", lambda *args: CrashingArchive())
    with pytest.raises(RuntimeError, match="disk on fire"):
        tfptm.export.saved_model(tiny_classifier, tmp_path, "digits")
    assert not (tmp_path / "digits").exists()  # not even an empty model directory
    assert os.listdir(tmp_path) == [".digits.lock"]  # only the (hidden, empty) lock of the model's exports


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


@pytest.mark.parametrize("quantization", ["float32", "dynamic", "int8"])
def test_tflite_of_a_dict_input_text_model(tmp_path, quantization):
    backbone = tfptm.backbones.get(
        "transformer_encoder", vocabulary_size=30, num_layers=1, hidden_dim=8, intermediate_dim=16, max_sequence_length=8
    )
    model = tfptm.build_model(backbone, tfptm.Head("multiclass", num_classes=2, pooling="first"))
    ids = np.random.default_rng(0).integers(1, 30, size=(32, 8)).astype("int32")
    ids[:, 6:] = 0
    x = {"token_ids": ids, "padding_mask": (ids > 0).astype("int32"), "segment_ids": np.zeros_like(ids)}
    result = tfptm.export.tflite(model, tmp_path / f"t-{quantization}.tflite", quantization, representative_data=x)
    assert tfptm.export.read_metadata(result.path)["inputs"] == ["padding_mask", "segment_ids", "token_ids"]
    parity = tfptm.export.check_tflite(result.path, model, x)
    if quantization == "float32":
        assert parity["max_prob_diff"] < 1e-5
    assert parity["top1_agreement"] >= 0.9, parity


@pytest.mark.parametrize("kind", ["bilstm_encoder", "gru_encoder"])
def test_recurrent_text_models_convert_to_builtin_ops_that_litert_runs(tmp_path, kind):
    """Without unrolling, Keras's LSTM/GRU loop needs Select TF ops, which ai-edge-litert cannot run."""
    backbone = tfptm.backbones.get(kind, vocabulary_size=40, sequence_length=10, embedding_dim=6, units=(5,))
    model = tfptm.build_model(backbone, tfptm.Head("multiclass", num_classes=3, pooling="avg"))
    ids = np.random.default_rng(1).integers(1, 40, size=(24, 10)).astype("int32")
    ids[::2, 7:] = 0  # padding, which the layers mask
    result = tfptm.export.tflite(model, tmp_path / f"{kind}.tflite", "float32")
    assert not result.select_tf_ops
    assert tfptm.export.read_metadata(result.path)["recurrent_layers_unrolled"] == (2 if kind == "bilstm_encoder" else 1)
    assert tfptm.export.check_tflite(result.path, model, ids)["max_prob_diff"] < 1e-5
    assert all(not layer.unroll for layer in tfptm.export.recurrent.recurrent_layers(model))  # the Keras model is untouched


def test_tflite_report_measures_every_variant(trained_classifier, digit_batch, tmp_path):
    x, y = digit_batch
    report = tfptm.export.tflite_report(
        trained_classifier, x, y, representative_data=x, out_dir=tmp_path, name="digits", threads=1, repeats=2,
        class_names=NAMES,
    )
    assert set(report["variants"]) == {"float32", "float16", "dynamic", "int8"} and report["threads"] == 1
    for name, entry in report["variants"].items():
        assert os.path.getsize(entry["path"]) == entry["size_bytes"] and entry["latency_ms_per_example"] > 0
        assert entry["select_tf_ops"] is False and entry["top1_agreement"] >= 0.95
        assert entry["accuracy_delta"] == pytest.approx(entry["accuracy"] - report["keras"]["accuracy"])
    assert report["variants"]["float32"]["max_output_diff"] < 1e-5
    assert report["variants"]["int8"]["size_ratio"] < report["variants"]["float16"]["size_ratio"] < 1
    assert json.loads((tmp_path / "digits.tflite_report.json").read_text()) == report
    assert_no_partial(tmp_path)


def test_export_run_exports_a_saved_run_and_checks_every_artifact(trained_classifier, digit_batch, tmp_path):
    x, _ = digit_batch
    run = tmp_path / "run"
    run.mkdir()
    trained_classifier.save(run / "model.keras")
    np.save(run / "representative.npy", x)
    (run / "summary.json").write_text(json.dumps({"class_names": NAMES, "model_name": "digits", "image_scale": 16 / 255}))
    summary = tfptm.export.export_run(run, tmp_path / "export", quantizations=["float32", "dynamic", "int8"])
    assert summary["artifacts"]["saved_model"] == str(tmp_path / "export" / "digits" / "1")
    assert sorted(summary["parity"]) == ["saved_model", "tflite_dynamic", "tflite_float32", "tflite_int8"]
    assert all(check["ok"] for check in summary["parity"].values()), summary["parity"]
    assert summary["select_tf_ops"] == {"float32": False, "dynamic": False, "int8": False}
    assert sorted(summary["signatures"]) == ["image_bytes", "pixels", "serving_default"]
    assert tfptm.export.read_metadata(summary["artifacts"]["tflite_int8"])["labels"] == NAMES
    assert json.loads((tmp_path / "export" / "digits.export.json").read_text()) == summary
    with pytest.raises(TfptmError, match="has no model.keras"):
        tfptm.export.export_run(tmp_path, tmp_path / "export")
    os.remove(run / "representative.npy")
    with pytest.raises(TfptmError, match="int8 export needs representative data"):
        tfptm.export.export_run(run, tmp_path / "export", quantizations=["int8"])


@pytest.mark.parametrize("dropout", [0.0, 0.1])  # 0.0: Keras's fused dot_product_attention path; 0.1: its Softmax layer
def test_int8_attention_keeps_a_sane_logit_range_on_padded_inputs(tmp_path, dropout):
    from ai_edge_litert.interpreter import Interpreter

    from tfptm.export.attention import attention_layers

    backbone = tfptm.backbones.get(
        "transformer_encoder", vocabulary_size=50, num_layers=2, hidden_dim=16, intermediate_dim=32,
        max_sequence_length=16, dropout=dropout,
    )
    model = tfptm.build_model(backbone, tfptm.Head("multiclass", num_classes=3, pooling="first"))
    for layer in attention_layers(model):  # peaky attention, so that where it looks matters
        for dense in (layer._query_dense, layer._key_dense):
            dense.kernel.assign(dense.kernel * 30)
    rng = np.random.default_rng(0)
    ids = rng.integers(1, 50, size=(64, 16)).astype("int32")
    ids[np.arange(16)[None] >= rng.integers(3, 8, size=(64, 1))] = 0  # mostly padding, as real short texts are
    x = {"token_ids": ids, "padding_mask": (ids > 0).astype("int32"), "segment_ids": np.zeros_like(ids)}
    expected = model.predict(x, verbose=0)
    result = tfptm.export.tflite(model, tmp_path / "t.tflite", "int8", representative_data=x)
    # Keras's -1e9 (or -2.4e38) mask fill used to set the int8 scale of the attention logits to ~4e6 (or ~1e36).
    scales = [t["quantization"][0] for t in Interpreter(model_path=str(result.path)).get_tensor_details()]
    assert max(scales) < 1.0, max(scales)
    meta = tfptm.export.read_metadata(result.path)
    assert meta["int8_attention_layers_rewritten"] == 2 and meta["float_ops"] is not None
    assert "FULLY_CONNECTED" not in meta["float_ops"] and "BATCH_MATMUL" not in meta["float_ops"]
    parity = tfptm.export.check_tflite(result.path, model, x)
    assert parity["top1_agreement"] >= 0.95 and parity["max_prob_diff"] < 0.3, parity
    np.testing.assert_array_equal(model.predict(x, verbose=0), expected)  # the Keras model itself is untouched
    assert all("_compute_attention" not in vars(layer) for layer in attention_layers(model))


def test_int8_image_model_is_integer_throughout(trained_classifier, digit_batch, tmp_path):
    x, _ = digit_batch
    result = tfptm.export.tflite(trained_classifier, tmp_path / "q.tflite", "int8", representative_data=x)
    meta = tfptm.export.read_metadata(result.path)
    assert meta["float_ops"] == {} and meta["int8_attention_layers_rewritten"] == 0
