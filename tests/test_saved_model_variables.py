"""A SavedModel export stores each weight once (Keras's ExportArchive used to write every weight twice)."""

import os

import numpy as np
import tensorflow as tf

import tfptm
from tfptm.data.text import learn_vocabulary, tokenizer_layer


def directory_bytes(path):
    return sum(os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(path) for f in files)


def check_each_weight_once(model, version):
    weights = model.get_weights()
    weight_bytes, weight_count = sum(w.nbytes for w in weights), sum(w.size for w in weights)
    assert weight_count >= 100_000  # large enough that the checkpoint's own overhead does not matter
    size = directory_bytes(version / "variables")
    assert size < 1.3 * weight_bytes, (size, weight_bytes)
    shapes = tf.train.load_checkpoint(str(version / "variables" / "variables")).get_variable_to_shape_map()
    stored = sum(int(np.prod(shape)) for name, shape in shapes.items() if "OPTIMIZER" not in name)
    assert weight_count <= stored < 1.05 * weight_count, (stored, weight_count)


def test_image_model_variables_are_saved_once_and_still_match(tmp_path, digit_batch):
    backbone = tfptm.backbones.get("vgg_cnn", input_shape=(8, 8, 1), filters=(32, 64, 128), input_scale=1 / 16)
    model = tfptm.build_model(backbone, tfptm.Head("multiclass", num_classes=3, hidden_units=64))
    x, y = digit_batch
    model.fit(x, y, epochs=1, verbose=0)  # non-trivial weights and BatchNorm statistics
    version = tfptm.export.saved_model(model, tmp_path, "digits", class_names=["0", "1", "2"])
    check_each_weight_once(model, version)
    loaded = tf.saved_model.load(str(version))
    serve = loaded.signatures["serving_default"]
    name = next(iter(serve.structured_input_signature[1]))
    got = serve(**{name: tf.constant(x[:16], tf.float32)})["probabilities"].numpy()
    np.testing.assert_allclose(got, model.predict(x[:16], verbose=0), atol=1e-5)


def test_text_model_with_its_tokenizer_is_saved_once_and_still_matches(tmp_path):
    texts = [f"token{i} common word {i % 7}" for i in range(3000)]
    vocabulary = learn_vocabulary(texts, 4000, kind="words")
    tokenizer = tokenizer_layer(vocabulary, sequence_length=8)
    backbone = tfptm.backbones.get("lstm_encoder", vocabulary_size=len(vocabulary), embedding_dim=48, units=16)
    model = tfptm.build_model(backbone, tfptm.Head("multiclass", num_classes=2, pooling="avg"))
    version = tfptm.export.saved_model(model, tmp_path, "reviews", class_names=["neg", "pos"], tokenizer=tokenizer)
    check_each_weight_once(model, version)
    sample = texts[:5] + ["common word", "unknown words only"]
    got = tf.saved_model.load(str(version)).signatures["raw_text"](text=tf.constant(sample))["probabilities"].numpy()
    np.testing.assert_allclose(got, model.predict(tokenizer(tf.constant(sample)), verbose=0), atol=1e-5)
