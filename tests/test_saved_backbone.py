"""Backbones saved as .keras files load back by path, in Keras's safe mode."""

import keras
import numpy as np
import pytest

import tfptm
from tfptm.backbones import saved


def test_saved_backbone_loads_by_path_with_equal_outputs(tmp_path):
    backbone = tfptm.backbones.get("vgg_cnn", input_shape=(8, 8, 1), filters=(8, 16), input_scale=1 / 16)
    path = str(tmp_path / "pretrained_backbone.keras")
    backbone.save(path)
    loaded = tfptm.backbones.get(path)
    assert loaded.name == "backbone"
    assert [name for name, _ in tfptm.backbones.blocks(loaded)] == ["stem", "block1", "block2"]
    images = np.random.default_rng(0).uniform(0, 16, (2, 8, 8, 1)).astype("float32")
    np.testing.assert_allclose(loaded(images), backbone(images), rtol=1e-6)


def test_lambda_layer_is_refused_in_safe_mode(tmp_path):
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Lambda(lambda x: x * 2.0)(inputs))
    path = str(tmp_path / "lambda.keras")
    model.save(path)
    with pytest.raises(tfptm.TfptmError, match="safe mode refuses") as error:
        tfptm.backbones.get(path)
    assert "\n" not in str(error.value)
    with pytest.raises(tfptm.TfptmError, match="safe_mode is None"):
        saved.load_saved(path, safe_mode=None)  # only an explicit False turns safe mode off
    np.testing.assert_allclose(saved.load_saved(path, safe_mode=False)(np.ones((1, 4))), 2.0)


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(tfptm.TfptmError, match="does not exist"):
        tfptm.backbones.get(str(tmp_path / "missing.keras"))
    corrupt = tmp_path / "corrupt.keras"
    corrupt.write_bytes(b"this is not a zip archive")
    with pytest.raises(tfptm.TfptmError, match="corrupt"):
        tfptm.backbones.get(str(corrupt))
    truncated = tmp_path / "truncated.keras"
    tfptm.backbones.get("vgg_cnn", input_shape=(8, 8, 1), filters=(8,)).save(str(tmp_path / "ok.keras"))
    truncated.write_bytes((tmp_path / "ok.keras").read_bytes()[:-200])
    with pytest.raises(tfptm.TfptmError, match="truncated.keras"):
        tfptm.backbones.get(str(truncated))
