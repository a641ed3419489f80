"""Pre-training: corpora, masked LM (dynamic 80/10/10 masking, loss on masked positions only), causal LM
(shifted targets, perplexity), supervised pre-training, and the artifact that fine-tuning loads by path."""

import math
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfptm
from tfptm import pretrain
from tfptm.backbones import saved
from tfptm.data.corpus import read_corpus, token_windows
from tfptm.data.pipeline import finish
from tfptm.data.text import learn_vocabulary, tokenizer_layer

from conftest import assert_no_partial

TINY = dict(num_layers=1, num_heads=2, hidden_dim=16, intermediate_dim=32, dropout=0.0)
ADJECTIVES = ["red", "big", "old", "small", "quiet", "happy"]
NOUNS = ["cat", "dog", "bird", "horse", "fox", "mouse"]
VERBS = ["sees", "chases", "likes", "follows"]


def _corpus(count, seed=0):
    rng = np.random.default_rng(seed)
    return [
        f"the {rng.choice(ADJECTIVES)} {rng.choice(NOUNS)} {rng.choice(VERBS)} the {rng.choice(NOUNS)} ."
        for _ in range(count)
    ]


@pytest.fixture(scope="module")
def mlm_result():
    keras.utils.set_random_seed(0)
    return pretrain.masked_lm(
        _corpus(240), vocabulary_size=60, sequence_length=12, epochs=16, batch_size=16, learning_rate=1e-2, **TINY
    )


# Corpora


def test_read_corpus_file_and_folder(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_bytes(b"\xef\xbb\xbffirst  document\r\n\n   \nsecond document\n")
    corpus = read_corpus(path)
    assert corpus.documents == ["first document", "second document"] and corpus.skipped == 2 and len(corpus) == 2
    folder = tmp_path / "docs"
    (folder / "sub").mkdir(parents=True)
    (folder / "b.txt").write_text("one\ndocument")
    (folder / "sub" / "a.txt").write_text("another")
    (folder / "empty.txt").write_text("\n")
    (folder / "notes.md").write_text("not a .txt file")
    corpus = read_corpus(folder)
    assert corpus.documents == ["one document", "another"] and corpus.files == 3 and corpus.skipped == 1


def test_read_corpus_errors_name_the_problem(tmp_path):
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("fine line\ncaf\u00e9 au lait\n".encode("latin-1"))
    with pytest.raises(tfptm.TfptmError, match=r"latin1.txt.* not UTF-8 at line 2 \(byte 3"):
        read_corpus(bad)
    blank = tmp_path / "blank.txt"
    blank.write_text("\n\n")
    with pytest.raises(tfptm.TfptmError, match="contains no text"):
        read_corpus(blank)
    with pytest.raises(tfptm.TfptmError, match="does not exist"):
        read_corpus(tmp_path / "missing.txt")
    (tmp_path / "empty_folder").mkdir()
    with pytest.raises(tfptm.TfptmError, match="has no .txt files"):
        read_corpus(tmp_path / "empty_folder")


def test_token_windows_cut_long_documents_without_losing_tokens():
    vocab = learn_vocabulary(_corpus(50), vocabulary_size=60)
    tokenizer = tokenizer_layer(vocab, sequence_length=8)
    long_document = " ".join(_corpus(4, seed=1))
    everything = tokenizer_layer(vocab, sequence_length=200)(tf.constant([long_document])).numpy()[0]
    everything = everything[everything != 0]
    windows = token_windows([long_document, "the"], tokenizer)  # "the" alone is too short and dropped
    assert windows.shape == (math.ceil(len(everything) / 8), 8) and len(everything) > 16
    np.testing.assert_array_equal(windows[windows != 0], everything)  # in order, none lost, no window crosses documents
    # The first window is exactly what the fine-tuning tokenizer gives for the same text.
    np.testing.assert_array_equal(tokenizer(tf.constant([long_document]))[0], windows[0])


# Masked language modelling


def test_masking_rates_and_padding():
    vocab = ["[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]"] + [f"w{i}" for i in range(95)]
    generator = pretrain.mask_generator(vocab, sequence_length=40)
    rng = np.random.default_rng(0)
    ids = rng.integers(5, 100, size=(3000, 40)).astype("int32")
    lengths = rng.integers(20, 41, size=3000)
    ids[np.arange(40) >= lengths[:, None]] = 0
    # Through tf.data, as in training.
    out = {k: v.numpy() for k, v in next(iter(tf.data.Dataset.from_tensors(ids).map(generator))).items()}
    weights = out["mask_weights"].astype(bool)
    np.testing.assert_array_equal(weights.sum(axis=1), np.ceil(0.15 * lengths))  # per window, padding excluded
    rows = np.repeat(np.arange(len(ids))[:, None], weights.shape[1], axis=1)[weights]
    positions = out["mask_positions"][weights]
    assert (positions < lengths[rows]).all()  # padding is never selected
    assert 0.15 <= weights.sum() / lengths.sum() < 0.15 + 1 / lengths.min()  # 15%, rounded up per window
    np.testing.assert_array_equal(out["mask_ids"][weights], ids[rows, positions])  # targets are the original tokens
    new = out["token_ids"][rows, positions]
    masked, kept = new == vocab.index("[MASK]"), new == ids[rows, positions]
    assert abs(masked.mean() - 0.8) < 0.02
    assert abs(kept.mean() - 0.1) < 0.02
    assert abs((~masked & ~kept).mean() - 0.1) < 0.02
    unselected = np.ones(ids.shape, bool)
    unselected[rows, positions] = False
    np.testing.assert_array_equal(out["token_ids"][unselected], ids[unselected])  # nothing else changes


def _mlm_batch(result, documents):
    generator = pretrain.mask_generator(result.tokenizer.vocabulary, result.tokenizer.sequence_length)
    windows = tf.data.Dataset.from_tensors(token_windows(documents, result.tokenizer))
    return generator, next(iter(pretrain.masked_batches(windows, generator, result.backbone)))


def test_loss_counts_masked_positions_only(mlm_result):
    _, (inputs, targets, weights) = _mlm_batch(mlm_result, _corpus(64, seed=5) + ["the cat ."] * 16)
    targets, weights = targets.numpy(), weights.numpy()
    assert 0 < (weights == 0).sum() and 0 < (weights == 1).sum()  # short windows leave unused prediction slots
    model = mlm_result.model

    def loss(y):
        return model.evaluate(inputs, y, sample_weight=weights, batch_size=len(y), verbose=0, return_dict=True)["loss"]

    base = loss(targets)
    logits = model.predict(inputs, verbose=0)
    by_hand = -np.take_along_axis(tf.nn.log_softmax(logits).numpy(), targets[..., None], -1)[..., 0]
    assert base == pytest.approx((by_hand * weights).sum() / weights.sum(), rel=1e-4)  # mean over masked tokens
    changed = targets.copy()
    changed[weights == 0] = 7
    assert loss(changed) == pytest.approx(base, rel=1e-6)
    changed = targets.copy()
    changed[weights == 1] = 7
    assert abs(loss(changed) - base) > 0.1


def test_masks_differ_between_epochs(mlm_result):
    # The training pipeline: windows reshuffled every epoch, masked afresh in tf.data. Every token of
    # window i is 5 + i, so a masked window still tells which it was.
    ids = np.repeat(np.arange(5, 37, dtype="int32")[:, None], 12, axis=1)
    generator = pretrain.mask_generator(mlm_result.tokenizer.vocabulary, 12)
    windows = finish(tf.data.Dataset.from_tensor_slices(ids), len(ids), batch_size=8, seed=0)
    data = pretrain.masked_batches(windows, generator, mlm_result.backbone)

    def selected_positions():
        chosen = {}
        for inputs, _, _ in data:
            for row, positions in zip(inputs["token_ids"].numpy(), inputs["mask_positions"].numpy()):
                chosen[int(np.bincount(row).argmax())] = tuple(sorted(positions))
        return chosen

    first, second = selected_positions(), selected_positions()
    assert sorted(first) == sorted(second) == list(range(5, 37))
    assert sum(first[w] != second[w] for w in first) >= 24  # 2 of 12 positions: the same by chance 1 time in 66


def test_mlm_training_reduces_loss_and_learns_the_corpus(mlm_result):
    history = mlm_result.history
    assert history["loss"][-1] < 0.6 * history["loss"][0]
    # On held-out sentences: always guessing "the" (2 of every 7 tokens) scores 0.29, the best possible about 0.54.
    _, (inputs, targets, weights) = _mlm_batch(mlm_result, _corpus(300, seed=7))
    scores = mlm_result.model.evaluate(inputs, targets, sample_weight=weights, verbose=0, return_dict=True)
    assert scores["accuracy"] > 0.38
    assert mlm_result.backbone.name == "backbone" and "[MASK]" in mlm_result.tokenizer.vocabulary


def test_mlm_head_is_tied_to_the_token_embedding(mlm_result):
    embedding = mlm_result.backbone.get_layer("token_embedding")
    head = mlm_result.model.get_layer("mlm_head")
    assert head.token_embedding is embedding
    assert not any(w.shape == embedding.embeddings.shape.as_list()[::-1] for w in head.weights)


def test_mlm_argument_errors():
    with pytest.raises(tfptm.TfptmError, match="pass the vocabulary"):
        pretrain.masked_lm(_corpus(10), backbone=tfptm.backbones.get("transformer_encoder", vocabulary_size=30, **TINY))
    with pytest.raises(tfptm.TfptmError, match=r"no '\[MASK\]' token"):
        pretrain.mask_generator(["[PAD]", "[UNK]", "a"], sequence_length=8)
    with pytest.raises(tfptm.TfptmError, match="corpus must be"):
        pretrain.masked_lm([])


# Causal language modelling


def test_causal_targets_are_inputs_shifted_by_one():
    backbone = tfptm.backbones.get("transformer_decoder", vocabulary_size=30, **TINY)
    ids = np.array([[5, 6, 7, 8, 0, 0], [9, 10, 11, 12, 13, 14]], "int32")
    inputs, targets, weights = next(iter(pretrain.next_token_batches(tf.data.Dataset.from_tensors(ids), backbone)))
    np.testing.assert_array_equal(inputs["token_ids"], ids[:, :-1])
    np.testing.assert_array_equal(targets, ids[:, 1:])
    np.testing.assert_array_equal(weights, ids[:, 1:] != 0)
    np.testing.assert_array_equal(inputs["padding_mask"], ids[:, :-1] != 0)


def test_causal_lm_perplexity_drops_and_is_exp_of_the_mean_loss():
    keras.utils.set_random_seed(0)
    corpus = _corpus(200)
    result = pretrain.causal_lm(corpus, vocabulary_size=60, sequence_length=12, epochs=12, batch_size=16,
                                learning_rate=1e-2, **TINY)
    vocabulary_size = len(result.tokenizer.vocabulary)
    assert result.model.count_params() == result.backbone.count_params()  # the output layer is the tied embedding
    held_out = _corpus(40, seed=9)
    value = pretrain.perplexity(result, held_out)
    # The corpus is "the ADJ NOUN VERB the NOUN ." with 4-6 choices per slot: perplexity ~ 3, far below the vocabulary.
    assert value < 6 < vocabulary_size / 5
    assert result.metrics["validation_perplexity"] < 6
    # By hand: exp of the mean next-token cross-entropy over the real tokens.
    ids = token_windows(held_out, result.tokenizer)
    logits = result.model.predict({"token_ids": ids[:, :-1], "padding_mask": ids[:, :-1] != 0}, verbose=0)
    log_probs = tf.nn.log_softmax(logits).numpy()
    targets, real = ids[:, 1:], ids[:, 1:] != 0
    losses = -np.take_along_axis(log_probs, targets[..., None], -1)[..., 0]
    assert value == pytest.approx(math.exp(losses[real].mean()), rel=1e-4)


# Supervised pre-training and the artifact


def test_supervised_pretraining_trains_the_backbone(digits, tmp_path):
    images, labels = digits
    x, y = tfptm.data.select_classes(images, labels, [0, 1, 2, 3, 4])
    backbone = tfptm.backbones.get("vgg_cnn", input_shape=(8, 8, 1), filters=(8, 16), input_scale=1 / 16)
    before = [w.numpy().copy() for w in backbone.trainable_weights]
    result = pretrain.supervised(backbone, tfptm.Head("multiclass", num_classes=5), tfptm.data.from_arrays(x, y, seed=0),
                                 epochs=3, learning_rate=3e-3)
    assert result.backbone is backbone and result.tokenizer is None and result.metrics["train_accuracy"] > 0.8
    assert all(not np.allclose(b, w.numpy()) for b, w in zip(before, backbone.trainable_weights))
    path = pretrain.save_pretrained(tmp_path / "supervised", result)
    loaded, tokenizer = saved.load_artifact(path)
    assert tokenizer is None and saved.read_manifest(path)["info"]["objective"] == "supervised"
    np.testing.assert_allclose(loaded(x[:4]), backbone(x[:4]), rtol=1e-5, atol=1e-6)


def test_artifact_loads_by_path_for_fine_tuning_with_its_tokenizer(mlm_result, tmp_path):
    path = str(tmp_path / "mlm")
    assert pretrain.save_pretrained(path, mlm_result) == path
    assert sorted(os.listdir(path)) == ["backbone.keras", "pretrained.json", "vocabulary.txt"]
    assert_no_partial(tmp_path)
    manifest = saved.read_manifest(path)
    assert manifest["info"]["objective"] == "masked_lm" and "validation_loss" in manifest["info"]["metrics"]

    texts = tf.constant(["the big dog chases the cat .", "a fox ."])
    backbone = tfptm.backbones.get(path)
    _, tokenizer = saved.load_artifact(path)
    assert tokenizer.vocabulary == mlm_result.tokenizer.vocabulary
    features = tokenizer(texts)
    np.testing.assert_array_equal(features["token_ids"], mlm_result.tokenizer(texts)["token_ids"])
    np.testing.assert_allclose(backbone(features), mlm_result.backbone(features), rtol=1e-5, atol=1e-6)

    model = tfptm.build_model(backbone, tfptm.Head("binary", pooling="avg"))
    data = tf.data.Dataset.from_tensor_slices((tokenizer(tf.constant(_corpus(16))), np.arange(16) % 2)).batch(8)
    history = tfptm.finetune(model, data, tfptm.training.full(1, 1e-3), verbose=0)
    assert len(history["loss"]) == 1
    assert tfptm.data.text.with_tokenizer(model, tokenizer).predict(texts, verbose=0).shape == (2, 1)

    with pytest.raises(tfptm.TfptmError, match="already exists"):
        pretrain.save_pretrained(path, mlm_result)


def test_bad_artifacts_raise_one_clear_error(tmp_path):
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "pretrained.json").write_text('{"format": "something-else"}')
    with pytest.raises(tfptm.TfptmError, match="not format 'tfptm-pretrained'"):
        tfptm.backbones.get(str(tmp_path / "bad"))
    (tmp_path / "bad" / "pretrained.json").write_text("{not json")
    with pytest.raises(tfptm.TfptmError, match="unreadable"):
        saved.load_artifact(str(tmp_path / "bad"))
    with pytest.raises(tfptm.TfptmError, match="expected a Pretrained"):
        pretrain.save_pretrained(tmp_path / "x", object())
