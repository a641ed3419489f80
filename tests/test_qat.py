"""Quantization-aware training: fake quantization that trains, and the int8 TFLite model it converts to."""

import numpy as np
import pytest

import tfptm
from tfptm.compress import is_quantization_aware, quantization_aware
from tfptm.errors import TfptmError
from tfptm.export.litert import read_metadata, run_tflite


def _op_types(path):
    """`{(op name, output dtype name)}` of a .tflite file."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    dtypes = {t["index"]: t["dtype"].__name__ for t in interpreter.get_tensor_details()}
    return {(op["op_name"], dtypes[op["outputs"][0]]) for op in interpreter._get_ops_details()}


def _cnn():
    backbone = tfptm.backbones.get("vgg_cnn", input_shape=(8, 8, 1), filters=(8, 16), input_scale=1 / 16)
    return tfptm.build_model(backbone, tfptm.Head("multiclass", num_classes=3))


def _digits(count=96):
    images, labels = tfptm.datasets.load_digits()
    return images[:count].astype("float32"), labels[:count] % 3


def _encoder(hidden_dim=16):
    backbone = tfptm.backbones.get("transformer_encoder", vocabulary_size=50, num_layers=2, hidden_dim=hidden_dim,
                                   intermediate_dim=2 * hidden_dim, max_sequence_length=12)
    return tfptm.build_model(backbone, tfptm.Head("multiclass", num_classes=2, pooling="first"))


def _token_inputs(count=64, length=12, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(2, 50, (count, length))
    lengths = rng.integers(3, length + 1, count)
    ids[np.arange(length)[None, :] >= lengths[:, None]] = 0  # padded: the attention mask matters
    return {"token_ids": ids.astype("int32"), "padding_mask": (ids > 0).astype("int32"), "segment_ids": 0 * ids.astype("int32")}


def test_training_learns_ranges_and_changes_weights(tmp_path):
    model = _cnn()
    x, y = _digits()
    before = [w.copy() for w in model.get_weights()]
    qat = quantization_aware(model)
    assert all(r["inputs"] is None for r in qat.ranges().values())
    tfptm.finetune(model, tfptm.data.from_arrays(x, y, batch_size=32, seed=0), tfptm.training.qat(1, 1e-3), verbose=0)
    ranges = qat.ranges()
    assert all(r["inputs"] is not None and r["inputs"][0] <= 0 <= r["inputs"][1] for r in ranges.values())
    assert [0.0, 1.0] in [r["inputs"] for r in ranges.values()]  # the first conv sees the digits scaled to [0, 1]
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


def test_fake_quantization_changes_outputs_and_remove_restores_them():
    model = _cnn()
    x, _ = _digits(32)
    plain = model.predict(x, verbose=0)
    qat = quantization_aware(model).calibrate(x)
    quantized = model.predict(x, verbose=0)
    assert 0 < np.abs(plain - quantized).max() < 0.05
    assert quantization_aware(model) is qat  # a second call gives the same handle, no double wrapping
    qat.remove()
    assert not is_quantization_aware(model)
    np.testing.assert_allclose(model.predict(x, verbose=0), plain, atol=1e-6)


def test_cnn_converts_to_int8_kernels_that_match_the_keras_model(tmp_path):
    model = _cnn()
    x, y = _digits()
    tfptm.finetune(model, tfptm.data.from_arrays(x, y, batch_size=32, seed=0), tfptm.training.full(2, 1e-3), verbose=0)
    tfptm.finetune(model, tfptm.data.from_arrays(x, y, batch_size=32, seed=0), tfptm.training.qat(1, 1e-4), verbose=0)
    keras_out = model.predict(x, verbose=0)
    exported = tfptm.export.tflite(model, tmp_path / "m.tflite", "int8")  # no representative data: learned ranges
    ops = _op_types(exported.path)
    assert ("CONV_2D", "int8") in ops and ("FULLY_CONNECTED", "int8") in ops
    assert ("CONV_2D", "float32") not in ops and ("FULLY_CONNECTED", "float32") not in ops
    meta = read_metadata(exported.path)
    assert meta["quantization"] == "int8" and meta["quantization_aware"] is True
    lite = run_tflite(exported.path, x)
    assert (lite.argmax(1) == keras_out.argmax(1)).mean() >= 0.97
    assert np.abs(lite - keras_out).max() < 0.1


@pytest.mark.parametrize("split", [False, True])
def test_encoder_attention_and_dense_become_int8_and_agree_on_padded_inputs(tmp_path, split):
    model = _encoder(hidden_dim=32 if split else 16)  # a split needs more than 2 x 8 output channels
    x = _token_inputs()
    y = (x["token_ids"][:, 1] > 25).astype("int32")
    qat = quantization_aware(model, split_outputs=("feedforward_output_dense",) if split else ())
    qat.calibrate(x)
    split_layers = [path for path, r in qat.ranges().items() if "outlier_outputs" in r]
    assert split_layers == (["transformer_layer_1/feedforward_output_dense", "transformer_layer_0/feedforward_output_dense"]
                            if split else [])
    model.fit(x, y, batch_size=16, epochs=2, verbose=0)
    keras_out = model.predict(x, verbose=0)
    exported = tfptm.export.tflite(model, tmp_path / "enc.tflite", "int8")
    ops = _op_types(exported.path)
    assert ("FULLY_CONNECTED", "int8") in ops  # q, k, v, attention output, FFN intermediate
    float_ops = read_metadata(exported.path)["float_ops"]
    # by default the feed-forward output projection (one per layer) stays float; split, it is int8 too
    assert float_ops.get("FULLY_CONNECTED", 0) == (0 if split else 2)
    assert ("GATHER", "int8") in ops  # the token embedding table is stored and read in int8
    assert "LayerNormalization" not in str(ops)
    assert float_ops.get("SOFTMAX", 0) >= 1  # kept float on purpose
    lite = run_tflite(exported.path, x)
    assert np.abs(lite - keras_out).max() < 0.05


def test_bad_smoothing_or_split_pattern_is_one_clear_error():
    with pytest.raises(TfptmError, match="smoothing is 5.*expected SmoothQuant's alpha in \\[0, 1\\]"):
        quantization_aware(_encoder(), smoothing=5)
    model = _encoder()
    with pytest.raises(TfptmError, match="split_outputs 'feed_forward_output' matches no .* layer path such as"):
        quantization_aware(model, split_outputs=("feed_forward_output",))  # misspelt
    assert not is_quantization_aware(model)


def test_smoothing_keeps_the_product_and_evens_out_the_input_channels():
    from tfptm.compress.outliers import Smoothing

    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 16)).astype("float32")
    x[:, 3] *= 40  # one outlier channel, as a Transformer's LayerNorm outputs have
    kernel = rng.normal(size=(16, 8)).astype("float32")
    smoothing = Smoothing("t", 16, 0.8)
    smoothing.observing = True
    smoothing(x, kernel)
    smoothing.observing = False
    smoothing.fit(kernel)
    smoothed, scaled = (np.asarray(t) for t in smoothing(x, kernel))
    np.testing.assert_allclose(smoothed @ scaled, x @ kernel, rtol=1e-4, atol=1e-3)
    spread = lambda a: np.abs(a).max(0).max() / np.median(np.abs(a).max(0))  # noqa: E731
    assert spread(smoothed) < spread(x) / 4


def test_outlier_split_gives_the_largest_channels_their_own_range_and_the_same_product():
    from tfptm.compress.outliers import OutlierSplit
    from tfptm.compress.qat import _Range

    rng = np.random.default_rng(0)
    x, kernel, bias = (rng.normal(size=s).astype("float32") for s in ((32, 12), (12, 40), (40,)))
    kernel[:, [5, 17, 30]] *= 50
    split = OutlierSplit("t", 40, 3, _Range("t_outliers", 0.99))
    split.observing = True
    split(x, kernel, bias, None, None)
    split.observing = False
    split.fit()
    assert sorted(split.order.numpy()[-3:]) == [5, 17, 30]
    same = lambda t: t  # noqa: E731
    outliers, split.outliers = split.outliers, lambda t, update: t  # no rounding: the two parts rejoin exactly
    np.testing.assert_allclose(np.asarray(split(x, kernel, bias, same, same)), x @ kernel + bias, rtol=1e-5, atol=1e-4)
    split.outliers, split.update = outliers, True  # as in training: the outliers' range follows their values, not the others'
    split(x, kernel, bias, same, same)
    low, high = split.outliers.value()
    assert high - low > 10 * np.abs(np.delete(x @ kernel + bias, [5, 17, 30], axis=1)).max()


def test_float_export_of_a_qat_model_is_the_float_model(tmp_path):
    model = _cnn()
    x, _ = _digits(32)
    qat = quantization_aware(model).calibrate(x)
    lite = run_tflite(tfptm.export.tflite(model, tmp_path / "f.tflite", "float32").path, x)
    assert ("CONV_2D", "float32") in _op_types(tmp_path / "f.tflite")
    qat.remove()
    np.testing.assert_allclose(lite, model.predict(x, verbose=0), atol=1e-5)


def test_int8_export_without_learned_ranges_says_what_to_do(tmp_path):
    model = _cnn()
    quantization_aware(model)
    with pytest.raises(TfptmError, match="no learned ranges.*calibrate"):
        tfptm.export.tflite(model, tmp_path / "m.tflite", "int8")
    assert list(tmp_path.iterdir()) == []


def test_matmul_form_only_accepts_plain_matmuls():
    from tfptm.compress.qat import matmul_form

    assert matmul_form("ab,bc->ac") == 1
    assert matmul_form("abc,cd->abd") == 1
    assert matmul_form("abcd,cde->abe") == 2
    assert matmul_form("abc,cd->adb") is None  # output reordered
    assert matmul_form("abc,dc->abd") is None  # kernel transposed
    assert matmul_form("...b,bc->...c") is None
