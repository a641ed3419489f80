"""Every SavedModel signature, called after `tf.saved_model.load`, agrees with the Keras model."""

import io
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import tfptm
from tfptm.data.text import learn_vocabulary, tokenizer_layer

NAMES = ["zero", "one", "two"]
TEXTS = ["a great film", "a dull film", "great acting", "dull acting", "what a great story", "a dull plot"]


@pytest.fixture
def rgb_classifier():
    """A 3-class image model on 8x8 RGB pixels 0-255 (rescaled inside the model)."""
    backbone = tfptm.backbones.get("vgg_cnn", input_shape=(8, 8, 3), filters=(8,), input_scale=1 / 255)
    return tfptm.build_model(backbone, tfptm.Head("multiclass", num_classes=3))


def _encode(image, fmt):
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def _call(path, name, **inputs):
    return tf.saved_model.load(str(path)).signatures[name](**inputs)


def test_image_signatures_float_and_bytes(rgb_classifier, tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(4, 8, 8, 3), dtype=np.uint8)
    path = tfptm.export.saved_model(rgb_classifier, tmp_path, "rgb", class_names=NAMES)
    loaded = tf.saved_model.load(str(path))
    assert sorted(loaded.signatures) == ["image_bytes", "pixels", "serving_default"]
    expected = rgb_classifier.predict(images.astype("float32"), verbose=0)
    for name in ("serving_default", "pixels"):
        out = loaded.signatures[name](pixels=tf.constant(images, tf.float32))
        np.testing.assert_allclose(out["probabilities"].numpy(), expected, atol=1e-5)
        assert out["class_ids"].numpy().tolist() == expected.argmax(-1).tolist()
    # Lossless PNG at the model's size: the in-graph decode must reproduce the pixels exactly.
    png = loaded.signatures["image_bytes"](image_bytes=tf.constant([_encode(i, "PNG") for i in images]))
    np.testing.assert_allclose(png["probabilities"].numpy(), expected, atol=1e-5)
    assert [n.decode() for n in png["class_names"].numpy()] == [NAMES[i] for i in expected.argmax(-1)]
    # JPEG at twice the size: compare with decoding and resizing the same files in Python (PIL).
    big = rng.integers(0, 256, size=(4, 16, 16, 3), dtype=np.uint8)
    jpegs = [_encode(i, "JPEG") for i in big]
    in_python = np.stack(
        [np.asarray(Image.open(io.BytesIO(j)).convert("RGB").resize((8, 8), Image.BILINEAR), "float32") for j in jpegs]
    )
    served = loaded.signatures["image_bytes"](image_bytes=tf.constant(jpegs))["probabilities"].numpy()
    np.testing.assert_allclose(served, rgb_classifier.predict(in_python, verbose=0), atol=0.05)


def test_image_scale_maps_decoded_pixels_to_the_training_range(trained_classifier, digit_batch, tmp_path):
    x, _ = digit_batch  # digits are 0-16; a PNG holds 0-255
    path = tfptm.export.saved_model(trained_classifier, tmp_path, "digits", class_names=NAMES, image_scale=16 / 255)
    as_png = np.round(x[:8] * 255 / 16).astype(np.uint8)
    served = _call(path, "image_bytes", image_bytes=tf.constant([_encode(i[..., 0], "PNG") for i in as_png]))
    expected = trained_classifier.predict(as_png.astype("float32") * 16 / 255, verbose=0)
    np.testing.assert_allclose(served["probabilities"].numpy(), expected, atol=1e-5)


def test_local_text_model_raw_text_and_token_ids(tmp_path):
    vocab = learn_vocabulary(TEXTS, vocabulary_size=20, kind="words")
    tokenizer = tokenizer_layer(vocab, sequence_length=6)
    backbone = tfptm.backbones.get("gru_encoder", vocabulary_size=len(vocab), embedding_dim=4, units=(4,))
    model = tfptm.build_model(backbone, tfptm.Head("binary", pooling="avg"))
    path = tfptm.export.saved_model(model, tmp_path, "reviews", class_names=["bad", "good"], tokenizer=tokenizer)
    loaded = tf.saved_model.load(str(path))
    assert sorted(loaded.signatures) == ["raw_text", "serving_default", "token_ids"]
    ids = tokenizer(tf.constant(TEXTS)).numpy()
    expected = model.predict(ids, verbose=0)
    (input_name,) = loaded.signatures["token_ids"].structured_input_signature[1]
    for name in ("serving_default", "token_ids"):
        out = loaded.signatures[name](**{input_name: tf.constant(ids)})
        np.testing.assert_allclose(out["probabilities"].numpy(), expected, atol=1e-5)
    raw = loaded.signatures["raw_text"](text=tf.constant(TEXTS))
    np.testing.assert_allclose(raw["probabilities"].numpy(), expected, atol=1e-5)
    assert raw["class_ids"].numpy().tolist() == (expected[:, 0] >= 0.5).astype(int).tolist()


def test_minilm_dict_model_with_keras_hub_preprocessor(minilm_dir, tmp_path):
    backbone, preprocessor = tfptm.backbones.presets.load_preset(minilm_dir, sequence_length=16)
    model = tfptm.build_model(backbone, tfptm.Head("multiclass", num_classes=2, pooling="first"))
    path = tfptm.export.saved_model(model, tmp_path, "minilm", class_names=["neg", "pos"], tokenizer=preprocessor)
    info = tfptm.export.describe_saved_model(path)
    assert sorted(info["signatures"]) == ["raw_text", "serving_default", "token_ids"]
    assert sorted(info["signatures"]["serving_default"]["inputs"]) == ["padding_mask", "segment_ids", "token_ids"]
    assert info["signatures"]["raw_text"]["inputs"] == {"text": {"dtype": "DT_STRING", "shape": [-1]}}
    tokens = {k: v.numpy() for k, v in preprocessor(tf.constant(TEXTS)).items()}
    expected = model.predict(tokens, verbose=0)
    loaded = tf.saved_model.load(str(path))
    for name in ("serving_default", "token_ids"):
        out = loaded.signatures[name](**{k: tf.constant(v, tf.int32) for k, v in tokens.items()})
        np.testing.assert_allclose(out["probabilities"].numpy(), expected, atol=1e-5)
    raw = loaded.signatures["raw_text"](text=tf.constant(TEXTS))
    np.testing.assert_allclose(raw["probabilities"].numpy(), expected, atol=1e-5)
    assert tfptm.export.check_saved_model(path, model, tokens)["ok"]


def test_describe_matches_saved_model_cli(rgb_classifier, tmp_path):
    path = tfptm.export.saved_model(rgb_classifier, tmp_path, "rgb")
    info = tfptm.export.describe_saved_model(path)
    assert info["signatures"]["image_bytes"]["inputs"] == {"image_bytes": {"dtype": "DT_STRING", "shape": [-1]}}
    assert info["signatures"]["pixels"]["outputs"]["probabilities"] == {"dtype": "DT_FLOAT", "shape": [-1, 3]}
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")  # .venv/bin/saved_model_cli
    if not os.path.exists(cli):
        pytest.skip("saved_model_cli is not installed beside this Python")
    real = subprocess.run(
        [cli, "show", "--dir", str(path), "--all"], capture_output=True, text=True, check=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    ).stdout
    assert real.startswith(info["text"] + "\n")
    assert "signature_def['image_bytes']" in info["text"]


def test_tokenizer_for_a_model_without_token_ids_is_refused(rgb_classifier, tmp_path):
    tokenizer = tokenizer_layer(learn_vocabulary(TEXTS, vocabulary_size=20, kind="words"), sequence_length=4)
    with pytest.raises(tfptm.TfptmError, match="does not take token ids"):
        tfptm.export.saved_model(rgb_classifier, tmp_path, "rgb", tokenizer=tokenizer)
    assert not (tmp_path / "rgb").exists() or os.listdir(tmp_path / "rgb") == []
