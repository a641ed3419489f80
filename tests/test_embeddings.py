"""Sentence embeddings (tfptm.tasks.embeddings): pooling, loss, contrastive fit, retrieval metrics, export, MiniLM reference."""

import json
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfptm
from tfptm.data.contrastive import contrastive_batches
from tfptm.data.text import learn_vocabulary, tokenizer_layer
from tfptm.export.tasks import export_embedder
from tfptm.tasks import embeddings as E

REFERENCE = Path(__file__).parent / "data" / "minilm_reference.npz"
TOPICS = ["river", "mountain", "piano", "kitchen", "rocket", "garden", "winter", "castle",
          "violin", "desert", "harbor", "forest", "camera", "bridge", "island", "tunnel"]
ANCHORS = [f"the {t} is here" for t in TOPICS]
POSITIVES = [f"a story about a {t} today" for t in TOPICS]


@pytest.fixture(scope="module")
def tiny():
    """A tiny random BERT embedder with a learnt word vocabulary: `(model, tokenizer)`."""
    keras.utils.set_random_seed(0)
    vocab = learn_vocabulary(ANCHORS + POSITIVES + ["unrelated words"], vocabulary_size=64, kind="words")
    backbone = tfptm.backbones.get("transformer_encoder", vocabulary_size=len(vocab), num_layers=1, num_heads=2,
                                   hidden_dim=16, intermediate_dim=32, max_sequence_length=16, dropout=0.0)
    return E.build_embedder(backbone), tokenizer_layer(vocab, sequence_length=16)


def _feed(ids):
    ids = np.asarray(ids, "int32")
    return {"token_ids": ids, "padding_mask": ids > 0, "segment_ids": np.zeros_like(ids)}


def _numpy_mnrl(y_pred, scale=20.0):
    """sentence-transformers' MultipleNegativesRankingLoss, by hand: cos_sim(anchors, [positives; negatives]) * scale,
    cross-entropy against the anchor's own positive."""
    unit = y_pred / np.linalg.norm(y_pred, axis=-1, keepdims=True)
    anchors = unit[:, 0]
    candidates = np.concatenate([unit[:, j] for j in range(1, unit.shape[1])])
    scores = scale * anchors @ candidates.T
    log_softmax = scores - np.log(np.exp(scores - scores.max(1, keepdims=True)).sum(1, keepdims=True)) - scores.max(1, keepdims=True)
    return -np.mean(log_softmax[np.arange(len(anchors)), np.arange(len(anchors))])


@pytest.mark.parametrize("columns", [2, 3], ids=["in-batch negatives", "with hard negatives"])
def test_loss_matches_a_hand_computed_value(columns):
    y_pred = np.random.default_rng(columns).normal(size=(4, columns, 5)).astype("float32")
    loss = E.MultipleNegativesRankingLoss()
    np.testing.assert_allclose(float(loss(None, y_pred)), _numpy_mnrl(y_pred), rtol=1e-5)
    np.testing.assert_allclose(float(E.MultipleNegativesRankingLoss(scale=5.0)(None, y_pred)), _numpy_mnrl(y_pred, 5.0),
                               rtol=1e-5)
    # a hard negative identical to the positive makes the loss at least log 2
    if columns == 3:
        y_pred[:, 2] = y_pred[:, 1]
        assert float(loss(None, y_pred)) >= np.log(2) - 1e-5
    restored = E.MultipleNegativesRankingLoss.from_config(E.MultipleNegativesRankingLoss(scale=7.0).get_config())
    assert restored.scale == 7.0
    with pytest.raises(tfptm.TfptmError, match="scale must be a positive number"):
        E.MultipleNegativesRankingLoss(scale=0)


def test_retrieval_metrics_against_hand_computed_examples():
    queries = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    corpus = np.array([[1.0, 0.05], [0.05, 1.0], [0.7, 0.7], [-1.0, 0.0]])
    # cosine rankings: q0 -> 0, 2, 1, 3; q1 -> 1, 2, 0, 3; q2 -> 2, then 0 and 1 (tied: corpus order), 3
    metrics = E.retrieval_metrics(queries, corpus, [2, 1, 3], ks=(1, 2, 3))
    assert metrics == {"recall@1": pytest.approx(1 / 3), "recall@2": pytest.approx(2 / 3), "recall@3": pytest.approx(2 / 3),
                       "mrr": pytest.approx((1 / 2 + 1 + 1 / 4) / 3), "queries": 3, "documents": 4}
    # several relevant documents: recall@k is the share of them in the top k; MRR uses the first one found
    several = E.retrieval_metrics(queries, corpus, [{2, 3}, {0, 1}, {2}], ks=(2,))
    assert several["recall@2"] == pytest.approx((1 / 2 + 1 / 2 + 1) / 3)
    assert several["mrr"] == pytest.approx((1 / 2 + 1 + 1) / 3)
    # cosine, not dot product: scaling a vector changes nothing
    assert E.retrieval_metrics(queries * 7, corpus * [[3], [1], [9], [2]], [2, 1, 3]) == E.retrieval_metrics(
        queries, corpus, [2, 1, 3])
    assert E.recall_at_k(queries, corpus, [2, 1, 3], k=2) == pytest.approx(2 / 3)
    assert E.mean_reciprocal_rank(queries, corpus, [2, 1, 3]) == pytest.approx(7 / 12)
    with pytest.raises(tfptm.TfptmError, match="2 relevance entries for 3 queries"):
        E.retrieval_metrics(queries, corpus, [0, 1])
    with pytest.raises(tfptm.TfptmError, match=r"query 0 has relevant documents \[4\]"):
        E.retrieval_metrics(queries, corpus, [4, 1, 0])
    with pytest.raises(tfptm.TfptmError, match="dimension 2, corpus vectors of 3"):
        E.retrieval_metrics(queries, np.ones((4, 3)), [0, 1, 2])


def test_masked_mean_pooling_ignores_padding_and_normalises(tiny):
    model, _ = tiny
    backbone = model.get_layer("backbone")
    ids = np.array([[5, 9, 3, 7]])
    short = model.predict(_feed(ids), verbose=0)
    for pad in (1, 6, 12):
        padded = np.concatenate([ids, np.zeros((1, pad), "int32")], axis=1)
        np.testing.assert_allclose(model.predict(_feed(padded), verbose=0), short, atol=1e-6)
    # the mean over the real tokens of the backbone's features, then divided by its L2 norm
    features = backbone.predict(_feed(np.concatenate([ids, np.zeros((1, 6), "int32")], axis=1)), verbose=0)[0]
    mean = features[:4].mean(axis=0)
    np.testing.assert_allclose(short[0], mean / np.linalg.norm(mean), atol=1e-6)
    raw = E.build_embedder(backbone, normalize=False, name="raw")
    np.testing.assert_allclose(raw.predict(_feed(ids), verbose=0)[0], mean, rtol=1e-5, atol=1e-6)
    cls = E.build_embedder(backbone, pooling="cls", normalize=False, name="cls")
    np.testing.assert_allclose(cls.predict(_feed(ids), verbose=0)[0], features[0], rtol=1e-5, atol=1e-6)
    assert E.describe(raw) == {"dimension": 16, "pooling": "mean", "normalized": False}
    assert E.describe(cls)["pooling"] == "cls" and E.describe(model)["normalized"]


def test_embed_keeps_order_and_matches_one_text_at_a_time(tiny):
    model, tokenizer = tiny
    texts = ["a story about a river today", "castle", "the winter is here and the forest too", "piano"]
    together = E.embed(model, texts, tokenizer, batch_size=3)
    alone = np.concatenate([E.embed(model, [t], tokenizer) for t in texts])
    np.testing.assert_allclose(together, alone, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, rtol=1e-6)


def test_bad_inputs_give_one_line_errors(tiny):
    model, tokenizer = tiny
    image_backbone = tfptm.backbones.get("vgg_cnn", input_shape=(8, 8, 1), filters=(4,))
    with pytest.raises(tfptm.TfptmError, match="expected a text backbone taking a dict with token_ids and padding_mask"):
        E.build_embedder(image_backbone)
    with pytest.raises(tfptm.TfptmError, match="unknown pooling 'max'"):
        E.build_embedder(model.get_layer("backbone"), pooling="max")
    classifier = tfptm.build_model(image_backbone, tfptm.Head("multiclass", num_classes=2))
    with pytest.raises(tfptm.TfptmError, match="is not an embedder"):
        E.embed(classifier, ["a"], tokenizer)
    with pytest.raises(tfptm.TfptmError, match="embed: texts: got one string"):
        E.embed(model, "one text", tokenizer)
    with pytest.raises(tfptm.TfptmError, match=r"contrastive_batches: \{'anchor': 2, 'positive': 1\}"):
        contrastive_batches(["a", "b"], ["c"], tokenizer=tokenizer)


def test_contrastive_fit_trains_the_encoder_and_lowers_the_loss(tiny, tmp_path):
    model, tokenizer = tiny
    model = keras.models.clone_model(model)  # leave the shared fixture untouched
    model.set_weights(tiny[0].get_weights())
    before = [w.copy() for w in model.get_layer("backbone").get_weights()]
    queries = E.embed(model, ANCHORS, tokenizer)
    start = E.retrieval_metrics(queries, E.embed(model, POSITIVES, tokenizer), np.arange(len(TOPICS)))
    history = E.fine_tune(model, ANCHORS, POSITIVES, tokenizer, epochs=12, batch_size=8, learning_rate=3e-3,
                          warmup_fraction=0.0, seed=0, verbose=0, validation=(ANCHORS[:8], POSITIVES[:8]))
    losses = history.history["loss"]
    assert losses[-1] < 0.5 * losses[0], losses
    after = model.get_layer("backbone").get_weights()
    assert any(not np.allclose(a, b) for a, b in zip(before, after)), "the encoder's weights did not change"
    end = E.retrieval_metrics(E.embed(model, ANCHORS, tokenizer), E.embed(model, POSITIVES, tokenizer), np.arange(16))
    assert end["mrr"] > start["mrr"] and end["recall@1"] >= 0.9, (start, end)
    # the trained encoder saves and loads as a plain Keras model
    tfptm.save_model(model, tmp_path / "embedder.keras")
    loaded = keras.saving.load_model(tmp_path / "embedder.keras", compile=False)
    np.testing.assert_allclose(E.embed(loaded, ANCHORS, tokenizer), E.embed(model, ANCHORS, tokenizer), atol=1e-6)
    # hard negatives: a third column, and the trainer round-trips its config
    trainer = E.ContrastiveModel(model)
    batch = next(iter(contrastive_batches(ANCHORS[:4], POSITIVES[:4], POSITIVES[4:8], tokenizer=tokenizer, batch_size=4,
                                          shuffle=False, outputs=model.input)))
    assert tuple(trainer(batch).shape) == (4, 3, 16)
    assert isinstance(E.ContrastiveModel.from_config(trainer.get_config()).encoder, keras.Model)


def test_saved_model_embed_signature_and_tflite_match_keras(tiny, tmp_path):
    model, tokenizer = tiny
    texts = ANCHORS + POSITIVES + ["zebra unknown words", "the"]
    summary = export_embedder(model, tmp_path, "tiny", tokenizer, quantizations=["float32"], check_texts=texts)
    assert summary["parity"]["saved_model"]["ok"] and summary["parity"]["tflite_float32"]["ok"], summary["parity"]
    assert summary["parity"]["saved_model"]["max_abs_diff"] < 1e-5
    assert summary["parity"]["tflite_float32"]["max_abs_diff"] < 1e-5
    assert set(summary["signatures"]) == {"embed", "serving_default", "token_ids"}
    # the signature itself, on raw strings, as a server would call it
    served = tf.saved_model.load(summary["artifacts"]["saved_model"]).signatures["embed"]
    vectors = served(text=tf.constant(["castle", "a story about a river today"]))["embeddings"].numpy()
    np.testing.assert_allclose(vectors, E.embed(model, ["castle", "a story about a river today"], tokenizer), atol=1e-5)
    # TFLite on token ids, at any length
    ids = tokenizer(tf.constant(["the piano is here"])).numpy()[:, :7]
    lite = tfptm.export.run_tflite(summary["artifacts"]["tflite_float32"], _feed(ids))
    np.testing.assert_allclose(lite, model.predict(_feed(ids), verbose=0), atol=1e-5)
    meta = json.loads(Path(summary["artifacts"]["tflite_float32"]).with_suffix(".json").read_text())
    assert meta["task"] == "embeddings" and meta["dimension"] == 16 and meta["pooling"] == "mean"
    assert meta["inputs"] == ["padding_mask", "segment_ids", "token_ids"] and meta["vocabulary"] == "tiny.vocab.txt"
    assert (tmp_path / "tiny.vocab.txt").read_text().split("\n")[: len(tokenizer.vocabulary)] == tokenizer.vocabulary
    assert json.loads((tmp_path / "tiny.export.json").read_text())["parity"] == summary["parity"]
    assert not [p for p in tmp_path.iterdir() if ".partial-" in p.name]


@pytest.fixture(scope="module")
def minilm(minilm_dir):
    return E.load_embedder(minilm_dir)


def test_minilm_matches_the_sentence_transformers_reference(minilm):
    """all-MiniLM-L6-v2 through tfptm vs PyTorch + Transformers (bench/minilm_reference_embeddings.py): mean pooling
    over the attention mask, L2 normalisation, 256 tokens, on 300 real standard-library docstring texts."""
    reference = np.load(REFERENCE)
    texts, expected = reference["texts"].tolist(), reference["vectors"]
    model, tokenizer = minilm
    assert E.describe(model) == {"dimension": 384, "pooling": "mean", "normalized": True}
    assert E.sequence_length(tokenizer) == 256  # read from sentence_bert_config.json
    from tfptm.data.sequences import token_ids_function, tokenize_all

    _, _, lengths = tokenize_all(np.array(texts, dtype=object), token_ids_function(tokenizer, 256)[0])
    np.testing.assert_array_equal(lengths, reference["token_counts"])  # the same tokens, the same truncation
    vectors = E.embed(model, texts, tokenizer)
    cosine = np.sum(vectors * expected, axis=1) / np.linalg.norm(vectors, axis=1) / np.linalg.norm(expected, axis=1)
    assert cosine.min() >= 0.9999, (cosine.min(), texts[int(cosine.argmin())][:80])
    assert (reference["token_counts"] == 256).sum() >= 10  # some texts were cut: truncation is checked too


def test_minilm_tokenizer_strips_accents_as_hugging_face_does(minilm):
    """Hugging Face's tokenizer for all-MiniLM-L6-v2 reads "café" as "cafe" (ids from its tokenizer.json, computed
    with transformers); KerasHub's converter left accented words [UNK]."""
    _, preprocessor = minilm
    ids = preprocessor(tf.constant(["Café naïve résumé Ångström"]))["token_ids"].numpy()[0]
    assert ids[:8].tolist() == [101, 7668, 15743, 13746, 17076, 15687, 102, 0]


def test_a_keras_hub_preset_embeds_and_serves_raw_strings_with_its_preprocessor(tmp_path):
    """A tiny BERT preset with sentence-transformers' files: load_embedder reads CLS pooling, no normalisation and
    the length from them, and the SavedModel's `embed` runs KerasHub's preprocessor in the graph."""
    import keras_hub

    vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", "the", "river", "castle"]
    keras_hub.models.BertBackbone(vocabulary_size=len(vocabulary), num_layers=1, num_heads=2, hidden_dim=16,
                                  intermediate_dim=32, max_sequence_length=16).save_to_preset(str(tmp_path / "p"))
    keras_hub.models.BertTokenizer(vocabulary=vocabulary, lowercase=True).save_to_preset(str(tmp_path / "p"))
    (tmp_path / "p" / "1_Pooling").mkdir()
    (tmp_path / "p" / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_cls_token": True}))
    (tmp_path / "p" / "modules.json").write_text(json.dumps([{"type": "sentence_transformers.models.Pooling"}]))
    (tmp_path / "p" / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 12}))
    model, preprocessor = E.load_embedder(tmp_path / "p")
    assert E.describe(model) == {"dimension": 16, "pooling": "cls", "normalized": False}
    assert E.sequence_length(preprocessor) == 12
    texts = ["hello world", "the river", "castle castle the hello world river", "world", "Hello, THE castle!"]
    summary = export_embedder(model, tmp_path / "export", "bert", preprocessor, quantizations=["float32"],
                                check_texts=texts)
    assert summary["parity"]["saved_model"]["max_abs_diff"] < 1e-5, summary["parity"]
    assert summary["parity"]["tflite_float32"]["max_abs_diff"] < 1e-5, summary["parity"]
    meta = json.loads((tmp_path / "export" / "bert.float32.json").read_text())
    assert (meta["cls_token_id"], meta["sep_token_id"], meta["pad_token_id"], meta["max_length"]) == (2, 3, 0, 12)
    assert (tmp_path / "export" / "bert.vocab.txt").read_text().split() == vocabulary
    (tmp_path / "q" / "1_Pooling").mkdir(parents=True)
    (tmp_path / "q" / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_max_tokens": True}))
    with pytest.raises(tfptm.TfptmError, match=r"pooling modes \['max_tokens'\]; tfptm builds exactly one of"):
        E.sentence_transformers_settings(tmp_path / "q")
