"""keras.applications backbones: registration, preprocessing inside the model, weights, blocks."""

import os
import time

import keras
import numpy as np
import pytest

import tfptm
from tfptm.backbones import applications

SHAPE = (32, 32, 3)


def _pixels(n=2):
    return np.random.default_rng(0).uniform(0, 255, (n, *SHAPE)).astype("float32")


def test_every_spec_is_registered_with_its_default_size():
    assert tfptm.backbones.available("keras.applications") == sorted(applications.SPECS)
    for name, spec in applications.SPECS.items():
        assert callable(getattr(keras.applications, spec.constructor))
        assert f"default input {spec.input_size}x{spec.input_size}" in tfptm.backbones.entry(name).summary
    assert applications.SPECS["efficientnet_b3"].default_input_shape == (300, 300, 3)


@pytest.mark.parametrize("mode", ["caffe", "torch", "tf"])
def test_preprocessing_layers_match_keras_preprocess_input(mode):
    pixels = _pixels()
    expected = keras.applications.imagenet_utils.preprocess_input(pixels.copy(), mode=mode)
    np.testing.assert_allclose(applications.preprocess(pixels, mode), expected, rtol=1e-5, atol=1e-3)


# The first and last blocks of each family, in order, as tfptm.backbones.blocks finds them.
BLOCKS = {
    "resnet50": (17, ["stem", "conv2_block1", "conv2_block2"], ["conv5_block2", "conv5_block3"]),
    "vgg16": (6, ["stem", "block1", "block2"], ["block4", "block5"]),
    "mobilenet_v2": (18, ["stem", "expanded_conv", "block_1"], ["block_15", "block_16"]),
    "efficientnet_b0": (17, ["stem", "block1a", "block2a"], ["block6d", "block7a"]),
}


@pytest.mark.parametrize("name", sorted(BLOCKS))
def test_blocks_in_order_and_raw_pixels_in(name):
    backbone = tfptm.backbones.get(name, input_shape=SHAPE)
    assert backbone.name == "backbone" and backbone.input.name == "pixels"
    assert backbone(_pixels()).shape[0] == 2
    count, first, last = BLOCKS[name]
    names = [block for block, _ in tfptm.backbones.blocks(backbone)]
    assert len(names) == count and names[: len(first)] == first and names[-len(last) :] == last
    stem = [layer.name for layer in tfptm.backbones.blocks(backbone)[0][1]]
    if applications.SPECS[name].preprocessing:  # tfptm's preprocessing layers follow the input
        assert "preprocess" in stem[1:3]


def test_mobilenet_v3_includes_its_own_preprocessing():
    backbone = tfptm.backbones.get("mobilenet_v3_small", input_shape=SHAPE)
    assert isinstance(backbone.layers[1], keras.layers.Rescaling)
    assert [block for block, _ in tfptm.backbones.blocks(backbone)][:3] == ["stem", "expanded_conv", "expanded_conv_1"]


def test_imagenet_without_cached_file_fails_fast_offline(monkeypatch, tmp_path):
    monkeypatch.setattr(applications, "keras_home", lambda: str(tmp_path))
    monkeypatch.setenv("TFPTM_OFFLINE", "1")
    started = time.monotonic()
    with pytest.raises(tfptm.TfptmError) as error:
        tfptm.backbones.get("resnet50", weights="imagenet")
    message = str(error.value)
    assert time.monotonic() - started < 5 and "\n" not in message
    assert os.path.join(str(tmp_path), "models") in message and "TFPTM_OFFLINE=1" in message
    assert "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5" in message
    assert "weights='/path/to/resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5'" in message
    assert applications.imagenet_weights_path("mobilenet_v2", (160, 160, 3)).endswith("_1.0_160_no_top.h5")
    assert applications.imagenet_weights_path("mobilenet_v2", SHAPE).endswith("_1.0_224_no_top.h5")


def _save_like_keras_imagenet_file(model, path):
    """Writes `model`'s weights in the legacy HDF5 layout of Keras's ImageNet files."""
    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    os.makedirs(os.path.dirname(path), exist_ok=True)
    with h5py.File(path, "w") as file:
        legacy_h5_format.save_weights_to_hdf5_group(file, model)


def _cache_as_keras_would(monkeypatch, name, model, path):
    """Writes a stand-in for Keras's ImageNet file and makes it the one whose MD5 tfptm expects."""
    import dataclasses

    _save_like_keras_imagenet_file(model, path)
    spec = dataclasses.replace(applications.SPECS[name], weights_md5=applications._md5(path))
    monkeypatch.setitem(applications.SPECS, name, spec)


def test_imagenet_from_keras_cache_and_local_files(monkeypatch, tmp_path):
    monkeypatch.setattr(applications, "keras_home", lambda: str(tmp_path))
    source = tfptm.backbones.get("mobilenet_v3_small", input_shape=SHAPE)
    cached = applications.imagenet_weights_path("mobilenet_v3_small")
    assert cached == str(tmp_path / "models" / "weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5")
    _cache_as_keras_would(monkeypatch, "mobilenet_v3_small", source, cached)
    monkeypatch.setenv("TFPTM_OFFLINE", "1")  # a cached file with the right hash loads without any request
    for weights in ("imagenet", cached):
        loaded = tfptm.backbones.get("mobilenet_v3_small", input_shape=SHAPE, weights=weights)
        np.testing.assert_allclose(loaded(_pixels()), source(_pixels()), rtol=1e-5, atol=1e-5)
    with pytest.raises(tfptm.TfptmError, match="cannot load weights file"):  # a file of another architecture
        tfptm.backbones.get("mobilenet_v3_large", input_shape=SHAPE, weights=cached)
    with pytest.raises(tfptm.TfptmError, match="does not exist"):
        tfptm.backbones.get("vgg16", input_shape=SHAPE, weights=str(tmp_path / "missing.h5"))
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    with pytest.raises(tfptm.TfptmError, match="cannot load weights file"):
        tfptm.backbones.get("mobilenet_v3_small", input_shape=SHAPE, weights=str(tmp_path / "junk.h5"))
    with pytest.raises(tfptm.TfptmError, match="at least 32x32"):
        tfptm.backbones.get("vgg16", input_shape=(16, 16, 3))


def test_efficientnet_imagenet_file_gets_the_imagenet_std_rescaling(monkeypatch, tmp_path):
    # Keras adds Rescaling(1/sqrt(std)) after Normalization only for weights="imagenet", not for a
    # path; tfptm loads both by path and adds it, which equals folding it into the variance.
    monkeypatch.setattr(applications, "keras_home", lambda: str(tmp_path))
    source = tfptm.backbones.get("efficientnet_b0", input_shape=SHAPE)
    _cache_as_keras_would(monkeypatch, "efficientnet_b0", source, applications.imagenet_weights_path("efficientnet_b0"))
    loaded = tfptm.backbones.get("efficientnet_b0", input_shape=SHAPE, weights="imagenet")
    kinds = [type(layer).__name__ for layer in loaded.layers]
    assert loaded.layers[kinds.index("Normalization") + 1].name == "imagenet_std_rescaling"
    norm = next(layer for layer in source.layers if isinstance(layer, keras.layers.Normalization))
    norm.adapt_variance.assign(norm.adapt_variance * np.array([0.229, 0.224, 0.225], "float32"))
    norm.finalize_state()
    np.testing.assert_allclose(loaded(_pixels()), source(_pixels()), rtol=1e-4, atol=1e-4)


def test_caffe_backbone_saves_and_loads_in_safe_mode(tmp_path):
    backbone = tfptm.backbones.get("vgg16", input_shape=SHAPE)
    path = str(tmp_path / "vgg16.keras")
    backbone.save(path)
    loaded = tfptm.backbones.get(path)
    assert isinstance(loaded.get_layer("preprocess_bgr"), applications.ReverseChannels)
    np.testing.assert_allclose(loaded(_pixels()), backbone(_pixels()), rtol=1e-5, atol=1e-4)
