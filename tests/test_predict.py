"""`tfptm.export.predict` on exported artifacts alone: SavedModels and .tflite files, images and text."""

import numpy as np
import pytest
import tensorflow as tf

import tfptm
from tfptm.data.text import learn_vocabulary, tokenizer_layer
from tfptm.errors import TfptmError

NAMES = ["zero", "one", "two"]


@pytest.fixture
def digit_pngs(digit_batch, tmp_path):
    """Eight digits saved as 8x8 grayscale PNGs (0-255), and the same pixels in the model's 0-16 range."""
    x, _ = digit_batch
    pixels = np.round(x[:8] * 255 / 16).astype(np.uint8)
    paths = []
    for i, image in enumerate(pixels):
        path = tmp_path / f"digit{i}.png"
        path.write_bytes(tf.io.encode_png(image).numpy())
        paths.append(str(path))
    return paths, pixels.astype("float32") * 16 / 255


def test_saved_model_predicts_top_k_labels_from_image_files(trained_classifier, digit_pngs, tmp_path):
    paths, x = digit_pngs
    tfptm.export.saved_model(trained_classifier, tmp_path / "export", "digits", class_names=NAMES, image_scale=16 / 255)
    latest = tfptm.export.saved_model(
        trained_classifier, tmp_path / "export", "digits", class_names=NAMES, image_scale=16 / 255
    )
    expected = trained_classifier.predict(x, verbose=0)
    for artifact in (tmp_path / "export" / "digits", latest):  # model dir -> latest version, or a version dir
        results = tfptm.export.predict(artifact, paths, top_k=2)
        assert [r[0][0] for r in results] == [NAMES[i] for i in expected.argmax(-1)]
        assert all(len(r) == 2 and r[0][1] >= r[1][1] for r in results)
        np.testing.assert_allclose([r[0][1] for r in results], expected.max(-1), atol=1e-5)
    text = tfptm.export.format_predictions(paths[:1], results[:1])
    assert text.startswith(paths[0] + "\t" + results[0][0][0])


def test_tflite_predicts_from_image_files_with_labels_beside_it(trained_classifier, digit_pngs, tmp_path):
    paths, x = digit_pngs
    result = tfptm.export.tflite(
        trained_classifier, tmp_path / "digits.tflite", "float32", class_names=NAMES, metadata={"image_scale": 16 / 255}
    )
    results = tfptm.export.predict(result.path, paths, top_k=3)
    expected = trained_classifier.predict(x, verbose=0)
    assert [r[0][0] for r in results] == [NAMES[i] for i in expected.argmax(-1)]
    assert sorted(label for label, _ in results[0]) == sorted(NAMES)


def test_text_saved_model_predicts_from_lines(tmp_path):
    texts = ["a great film", "a dull film", "great acting", "dull acting"]
    vocab = learn_vocabulary(texts, vocabulary_size=20, kind="words")
    tokenizer = tokenizer_layer(vocab, sequence_length=4)
    backbone = tfptm.backbones.get("gru_encoder", vocabulary_size=len(vocab), embedding_dim=4, units=(4,))
    model = tfptm.build_model(backbone, tfptm.Head("binary", pooling="avg"))
    path = tfptm.export.saved_model(model, tmp_path, "reviews", class_names=["bad", "good"], tokenizer=tokenizer)
    results = tfptm.export.predict(path, texts, top_k=1)
    positive = model.predict(tokenizer(tf.constant(texts)).numpy(), verbose=0)[:, 0]
    assert [r[0][0] for r in results] == ["good" if p >= 0.5 else "bad" for p in positive]
    np.testing.assert_allclose([r[0][1] for r in results], np.maximum(positive, 1 - positive), atol=1e-5)


def test_bad_artifacts_and_inputs_are_clear_errors(trained_classifier, digit_pngs, tmp_path):
    paths, _ = digit_pngs
    with pytest.raises(TfptmError, match="does not exist or is not an export"):
        tfptm.export.predict(tmp_path / "nothing", paths)
    (tmp_path / "empty").mkdir()
    with pytest.raises(TfptmError, match="neither a SavedModel"):
        tfptm.export.predict(tmp_path / "empty", paths)
    with pytest.raises(TfptmError, match="does not exist"):
        tfptm.export.predict(tmp_path / "missing.tflite", paths)
    (tmp_path / "junk.tflite").write_bytes(b"not a flatbuffer")
    (tmp_path / "junk.json").write_text("{}")
    with pytest.raises(TfptmError, match="cannot be loaded by LiteRT"):
        tfptm.export.predict(tmp_path / "junk.tflite", paths)
    path = tfptm.export.saved_model(trained_classifier, tmp_path, "digits", class_names=NAMES)
    with pytest.raises(TfptmError, match="Cannot read image 'no-such.png'"):
        tfptm.export.predict(path, ["no-such.png"])
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(TfptmError, match="not an image TensorFlow can decode"):
        tfptm.export.predict(path, [str(tmp_path / "notes.txt")])
    with pytest.raises(TfptmError, match="top_k"):
        tfptm.export.predict(path, paths, top_k=0)
    (path / "saved_model.pb").write_bytes(b"garbage")
    with pytest.raises(TfptmError, match="cannot be loaded"):
        tfptm.export.predict(path, paths)


def test_tflite_text_model_says_to_use_the_saved_model(tmp_path):
    backbone = tfptm.backbones.get("gru_encoder", vocabulary_size=20, sequence_length=4, embedding_dim=4, units=(4,))
    model = tfptm.build_model(backbone, tfptm.Head("binary", pooling="avg"))
    result = tfptm.export.tflite(model, tmp_path / "text.tflite", "float32")
    with pytest.raises(TfptmError, match="takes token ids, not text"):
        tfptm.export.predict(result.path, ["a great film"])
