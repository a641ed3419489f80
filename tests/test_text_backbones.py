"""Local text backbones (RNNs, KerasHub Transformers), learnt vocabularies and the in-graph tokenizer."""

import numpy as np
import pytest
import tensorflow as tf

import tfptm
from tfptm.data import text

TEXTS = [
    "the movie was great and the acting was great",
    "the movie was terrible and the plot was terrible",
    "a great cast makes a great movie",
    "a terrible script makes a terrible movie",
] * 4
LABELS = np.array([1, 0, 1, 0] * 4)


def _ids(batch=2, steps=6, vocabulary_size=30):
    ids = np.random.default_rng(0).integers(1, vocabulary_size, size=(batch, steps))
    ids[0, 3:] = 0  # padding
    return ids


@pytest.mark.parametrize(
    "name, units, width, block",
    [("lstm_encoder", (8, 6), 6, "block2"), ("gru_encoder", (8, 6), 6, "block2"), ("bilstm_encoder", (5,), 10, "block1")],
)
def test_rnn_encoders(name, units, width, block):
    backbone = tfptm.backbones.get(name, vocabulary_size=30, embedding_dim=8, units=units)
    assert tfptm.backbones.entry(name).source == "local"
    assert backbone(_ids()).shape == (2, 6, width)
    names = [b for b, _ in tfptm.backbones.blocks(backbone)]
    assert names[0] == "stem" and names[-1] == block and len(names) == 1 + len(units)
    model = tfptm.build_model(backbone, tfptm.Head("multiclass", num_classes=2, pooling="avg"))
    assert model.predict(_ids(), verbose=0).shape == (2, 2)


@pytest.mark.parametrize("name, inputs", [("transformer_encoder", 3), ("transformer_decoder", 2)])
def test_transformers_from_keras_hub(name, inputs):
    backbone = tfptm.backbones.get(
        name, vocabulary_size=30, num_layers=2, num_heads=2, hidden_dim=8, intermediate_dim=16, max_sequence_length=8
    )
    assert backbone.name == "backbone" and len(backbone.input) == inputs
    ids = _ids()
    feed = {"token_ids": ids, "padding_mask": ids > 0, "segment_ids": 0 * ids}
    feed = {k: feed[k] for k in backbone.input}
    assert backbone(feed).shape == (2, 6, 8)
    assert [b for b, _ in tfptm.backbones.blocks(backbone)] == ["stem", "transformer_layer_0", "transformer_layer_1"]
    model = tfptm.build_model(backbone, tfptm.Head("multiclass", num_classes=2, pooling="first"))
    probabilities = model.predict(feed, verbose=0)
    assert probabilities.shape == (2, 2)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_bad_sizes_raise_one_clear_error():
    with pytest.raises(tfptm.TfptmError, match="lstm_encoder: units"):
        tfptm.backbones.get("lstm_encoder", units=(8, 0))
    with pytest.raises(tfptm.TfptmError, match="transformer_encoder: num_layers"):
        tfptm.backbones.get("transformer_encoder", num_layers=0)


@pytest.mark.parametrize("kind", ["wordpiece", "words"])
def test_learnt_vocabulary_and_round_trip(kind):
    vocab = text.learn_vocabulary(TEXTS, vocabulary_size=60, kind=kind)
    assert len(vocab) <= 60 and {"the", "movie", "great", "terrible"} <= set(vocab)
    assert vocab[0] == ("" if kind == "words" else "[PAD]")
    tokenizer = text.tokenizer_layer(vocab, sequence_length=8)
    ids = tokenizer(tf.constant(["The movie was GREAT", "zzzz"])).numpy()
    assert ids.shape == (2, 8) and ids.dtype == np.int32
    # Round trip: ids map back to the (lowercased) words, padded with 0.
    assert [vocab[i] for i in ids[0][:4]] == ["the", "movie", "was", "great"] and (ids[0][4:] == 0).all()
    assert ids[1][0] == vocab.index("[UNK]") and (ids[1][1:] == 0).all()


def test_bad_vocabulary_inputs():
    with pytest.raises(tfptm.TfptmError, match="unknown kind"):
        text.learn_vocabulary(TEXTS, 50, kind="bytes")
    with pytest.raises(tfptm.TfptmError, match="list of strings"):
        text.learn_vocabulary("one string", 50)
    with pytest.raises(tfptm.TfptmError, match="must start with"):
        text.tokenizer_layer(["a", "b"], 4, kind="wordpiece")


@pytest.fixture
def string_model():
    """A trained LSTM classifier on token ids, then wrapped to take raw strings."""
    vocab = text.learn_vocabulary(TEXTS, vocabulary_size=40, kind="wordpiece")
    tokenizer = text.tokenizer_layer(vocab, sequence_length=10)
    backbone = tfptm.backbones.get("lstm_encoder", vocabulary_size=len(vocab), embedding_dim=8, units=8)
    model = tfptm.build_model(backbone, tfptm.Head("multiclass", num_classes=2, pooling="avg"), learning_rate=1e-2)
    model.fit(tokenizer(tf.constant(TEXTS)), LABELS, epochs=3, verbose=0)
    return text.with_tokenizer(model, tokenizer)


def test_model_with_tokenizer_saves_and_reloads(string_model, tmp_path):
    import keras

    queries = tf.constant(["a great movie", "a terrible plot", "never seen words"])
    expected = string_model.predict(queries, verbose=0)
    assert expected.shape == (3, 2)
    path = str(tmp_path / "text.keras")
    string_model.save(path)
    reloaded = keras.saving.load_model(path)  # safe mode: the vocabulary is config, not code
    np.testing.assert_allclose(reloaded.predict(queries, verbose=0), expected, rtol=1e-5, atol=1e-6)


def test_model_with_tokenizer_exports_saved_model_on_strings(string_model, tmp_path):
    import keras

    queries = tf.constant(["a great movie", "a terrible plot"])
    archive = keras.export.ExportArchive()
    archive.track(string_model)
    archive.add_endpoint("serve", string_model.call, input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    archive.write_out(str(tmp_path / "export"), verbose=False)
    loaded = tf.saved_model.load(str(tmp_path / "export"))  # keep a reference: its variables live in it
    served = loaded.serve(queries)
    np.testing.assert_allclose(served.numpy(), string_model.predict(queries, verbose=0), rtol=1e-5, atol=1e-6)


def test_transformer_with_tokenizer_takes_strings():
    vocab = text.learn_vocabulary(TEXTS, vocabulary_size=40)
    backbone = tfptm.backbones.get(
        "transformer_encoder", vocabulary_size=len(vocab), num_layers=1, hidden_dim=8, intermediate_dim=16,
        max_sequence_length=8,
    )
    model = tfptm.build_model(backbone, tfptm.Head("multiclass", num_classes=2, pooling="avg"))
    string_model = text.with_tokenizer(model, text.tokenizer_layer(vocab, sequence_length=8))
    assert string_model.predict(tf.constant(["a great movie"]), verbose=0).shape == (1, 2)


def test_extract_features_pools_and_fits_logistic_regression(digits):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    images, labels = digits
    backbone = tfptm.backbones.get("vgg_cnn", input_shape=(8, 8, 1), filters=(8, 16), input_scale=1 / 16)
    model = tfptm.build_model(backbone, tfptm.Head("multiclass", num_classes=10), learning_rate=1e-2)
    model.fit(images[300:800], labels[300:800], epochs=5, verbose=0)
    features = tfptm.evaluation.extract_features(model, images[:300], pooling="avg", batch_size=64)
    assert features.shape == (300, 16) and features.dtype == np.float32
    np.testing.assert_allclose(features, tfptm.evaluation.extract_features(backbone, images[:300]), rtol=1e-5)
    assert tfptm.evaluation.extract_features(backbone, images[:4], pooling="max").shape == (4, 16)
    assert tfptm.evaluation.extract_features(backbone, images[:4], pooling="flatten").shape == (4, 4 * 4 * 16)
    dataset = tf.data.Dataset.from_tensor_slices((images[:10], labels[:10])).batch(4)
    assert tfptm.evaluation.extract_features(backbone, dataset).shape == (10, 16)
    classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(features[:200], labels[:200])
    assert classifier.score(features[200:], labels[200:300]) > 0.6
    sequences = tfptm.backbones.get("gru_encoder", vocabulary_size=20, embedding_dim=4, units=3)
    assert tfptm.evaluation.extract_features(sequences, _ids(vocabulary_size=20), pooling="first").shape == (2, 3)
    with pytest.raises(tfptm.TfptmError, match="unknown pooling"):
        tfptm.evaluation.extract_features(backbone, images[:4], pooling="mean")


def test_avg_pooling_ignores_padding_so_batch_padding_does_not_change_predictions(tmp_path):
    """KerasHub encoders pass no Keras mask on; build_model feeds the padding mask to the head's average."""
    import keras

    backbone = tfptm.backbones.get("transformer_encoder", vocabulary_size=40, num_layers=1, num_heads=2,
                                   hidden_dim=8, intermediate_dim=16, max_sequence_length=16)
    model = tfptm.build_model(backbone, tfptm.Head("multiclass", num_classes=3, pooling="avg"))

    def padded(length):
        ids = np.zeros((1, length), "int32")
        ids[0, :5] = [2, 7, 9, 11, 3]
        return {"token_ids": ids, "padding_mask": (ids != 0).astype("int32"), "segment_ids": np.zeros_like(ids)}

    short, long = model.predict(padded(6), verbose=0), model.predict(padded(16), verbose=0)
    np.testing.assert_allclose(short, long, atol=1e-6)
    path = tmp_path / "m.keras"
    model.save(path)
    np.testing.assert_allclose(keras.models.load_model(path).predict(padded(16), verbose=0), long, atol=1e-6)
    features = tfptm.evaluation.extract_features(model, padded(6), pooling="avg")
    np.testing.assert_allclose(features, tfptm.evaluation.extract_features(model, padded(16), pooling="avg"), atol=1e-6)
