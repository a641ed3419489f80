"""Length-aware text batching (tfptm.data.sequences): length-sorted pools, explicit buckets, exact cardinality,
reshuffling, predict_by_length."""

import math

import numpy as np
import pytest

import tfptm
from tfptm.data.sequences import POOL_BATCHES, num_batches, predict_by_length, text_batches
from tfptm.data.text import learn_vocabulary, tokenizer_layer

BATCH = 16
MAX_LENGTH = 64


@pytest.fixture(scope="module")
def skewed():
    """Many short texts (1-5 tokens) and a few long ones (40-60), labels independent of length.

    Every text starts with its own token `t<i>`, so a batch row's first id tells which text it is.
    """
    rng = np.random.default_rng(0)
    n = 480
    lengths = np.where(rng.random(n) < 0.9, rng.integers(1, 6, n), rng.integers(40, 61, n))
    words = [f"w{i}" for i in range(30)]
    texts = [" ".join([f"t{i}"] + list(rng.choice(words, size=length - 1))) for i, length in enumerate(lengths)]
    labels = rng.integers(0, 2, n).astype("int32")
    vocabulary = learn_vocabulary(texts, 1000, kind="words")
    tokenizer = tokenizer_layer(vocabulary, sequence_length=8)
    index_of = {vocabulary.index(f"t{i}"): i for i in range(n)}
    return dict(texts=texts, labels=labels, lengths=lengths, tokenizer=tokenizer, index_of=index_of,
                vocabulary=vocabulary)


def epoch(ds, data):
    """One pass: per batch, the text indices (from the first token), their labels, and the batch's padded width."""
    batches = []
    for x, y in ds:
        x, y = x.numpy(), y.numpy()
        rows = [data["index_of"][int(first)] for first in x[:, 0]]
        for row, index in zip(x, rows):  # each row is its text's tokens, then padding
            length = data["lengths"][index]
            assert (row[:length] != 0).all() and (row[length:] == 0).all()
            assert data["vocabulary"][row[0]] == f"t{index}"
        batches.append(dict(rows=rows, labels=y.tolist(), width=x.shape[1]))
    return batches


def test_training_batches_are_length_sorted_pools_exactly_counted_and_reshuffled(skewed):
    ds = text_batches(skewed["texts"], skewed["labels"], tokenizer=skewed["tokenizer"], max_length=MAX_LENGTH,
                      batch_size=BATCH, seed=0)
    first, second = epoch(ds, skewed), epoch(ds, skewed)
    n = len(skewed["texts"])
    assert n > POOL_BATCHES * BATCH  # several pools
    for batches in (first, second):
        # the dataset's cardinality is exact (as many batches as without pools): Keras sizes epochs from it
        assert len(batches) == int(ds.cardinality()) == math.ceil(n / BATCH)
        seen = [i for b in batches for i in b["rows"]]
        assert sorted(seen) == list(range(n))  # every example exactly once per epoch
        for b in batches:
            lengths = skewed["lengths"][b["rows"]]
            assert b["labels"] == skewed["labels"][b["rows"]].tolist()  # labels travel with their texts
            assert b["width"] == lengths.max()  # padded to its own longest text
            assert len(b["rows"]) <= BATCH
        # short and long batches interleave: not all short ones first
        widths = [b["width"] for b in batches]
        assert widths != sorted(widths) and widths != sorted(widths, reverse=True)
    assert [b["rows"] for b in first] != [b["rows"] for b in second]  # reshuffled every epoch
    # and regrouped: most batches hold other texts than in the epoch before
    assert len({frozenset(b["rows"]) for b in first} & {frozenset(b["rows"]) for b in second}) < len(first) / 2


def test_buckets_cut_padding_on_skewed_lengths_and_batches_still_mix_classes(skewed):
    common = dict(tokenizer=skewed["tokenizer"], max_length=MAX_LENGTH, batch_size=BATCH, seed=1)
    bucketed = text_batches(skewed["texts"], skewed["labels"], **common)
    plain = text_batches(skewed["texts"], skewed["labels"], bucket_boundaries=None, **common)
    n = len(skewed["texts"])
    assert int(plain.cardinality()) == math.ceil(n / BATCH)

    def padded_tokens(ds):
        return sum(int(np.prod(x.shape)) for x, _ in ds)

    real = int(skewed["lengths"].sum())
    with_buckets, without = padded_tokens(bucketed), padded_tokens(plain)
    assert real <= with_buckets < 0.6 * without, (real, with_buckets, without)
    batches = epoch(bucketed, skewed)
    full = [b for b in batches if len(b["rows"]) == BATCH]
    mixed = [b for b in full if len(set(b["labels"])) == 2]
    assert len(full) >= 0.7 * len(batches) and len(mixed) >= 0.8 * len(full), (len(mixed), len(full))


def test_explicit_boundaries_and_dict_outputs(skewed):
    ds = text_batches(skewed["texts"], skewed["labels"], tokenizer=skewed["tokenizer"], max_length=MAX_LENGTH,
                      batch_size=BATCH, seed=0, bucket_boundaries=[3, 10],
                      outputs=["token_ids", "padding_mask", "segment_ids"])
    count, seen = 0, []
    for x, y in ds:
        ids, mask = x["token_ids"].numpy(), x["padding_mask"].numpy()
        rows = [skewed["index_of"][int(first)] for first in ids[:, 0]]
        lengths = skewed["lengths"][rows]
        assert mask.sum(axis=1).tolist() == lengths.tolist() and (x["segment_ids"].numpy() == 0).all()
        assert len(set(np.searchsorted([3, 10], lengths, side="right").tolist())) == 1
        assert y.numpy().tolist() == skewed["labels"][rows].tolist()
        seen += rows
        count += 1
    assert count == int(ds.cardinality()) == num_batches(skewed["lengths"], [3, 10], BATCH)
    assert sorted(seen) == list(range(len(skewed["texts"])))


def test_sort_by_length_batches_shortest_first_with_labels_kept(skewed):
    common = dict(tokenizer=skewed["tokenizer"], max_length=MAX_LENGTH, batch_size=BATCH, shuffle=False)
    ds = text_batches(skewed["texts"], skewed["labels"], sort_by_length=True, **common)
    batches = epoch(ds, skewed)
    rows = [i for b in batches for i in b["rows"]]
    assert sorted(rows) == list(range(len(skewed["texts"])))
    lengths = skewed["lengths"][rows]
    assert (np.diff(lengths) >= 0).all()  # shortest first
    assert [b["width"] for b in batches] == sorted(b["width"] for b in batches)
    assert [y for b in batches for y in b["labels"]] == skewed["labels"][rows].tolist()
    assert len(batches) == int(ds.cardinality()) == math.ceil(len(rows) / BATCH)
    # the same order every pass
    assert [b["rows"] for b in epoch(ds, skewed)] == [b["rows"] for b in batches]
    # without sort_by_length, evaluation batches keep the texts' order
    kept = epoch(text_batches(skewed["texts"], skewed["labels"], **common), skewed)
    assert [i for b in kept for i in b["rows"]] == list(range(len(skewed["texts"])))


# --- predict_by_length -------------------------------------------------------------------------------------------


def padded_ids(n=37, width=24, seed=0):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, width + 1, n)  # unsorted, every row has at least one token
    lengths[[0, 5]] = width
    return (rng.integers(1, 50, (n, width)) * (np.arange(width) < lengths[:, None])).astype("int32")


def spy_on_batches(monkeypatch, model):
    widths = []
    original = model.predict_on_batch

    def predict_on_batch(batch):
        first = batch["token_ids"] if isinstance(batch, dict) else batch
        widths.append(np.asarray(first).shape[1])
        return original(batch)

    monkeypatch.setattr(model, "predict_on_batch", predict_on_batch)
    return widths


def test_predict_by_length_matches_predict_for_a_masked_lstm(monkeypatch):
    backbone = tfptm.backbones.get("lstm_encoder", vocabulary_size=50, embedding_dim=8, units=8)
    model = tfptm.build_model(backbone, tfptm.Head("multiclass", num_classes=3, pooling="avg"))
    x = padded_ids()
    expected = model.predict(x, verbose=0)
    widths = spy_on_batches(monkeypatch, model)
    got = predict_by_length(model, x, batch_size=8)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-5)  # same outputs, same order
    assert len(widths) == math.ceil(len(x) / 8) and min(widths) < x.shape[1]  # batches were cut to their texts


def test_predict_by_length_matches_predict_for_a_keras_hub_dict(monkeypatch):
    backbone = tfptm.backbones.get("transformer_encoder", vocabulary_size=50, num_layers=1, hidden_dim=16,
                                   intermediate_dim=32, max_sequence_length=24, dropout=0.0)
    model = tfptm.build_model(backbone, tfptm.Head("multiclass", num_classes=3, pooling="first"))
    ids = padded_ids(seed=1)
    x = {"token_ids": ids, "padding_mask": (ids > 0).astype("int32"), "segment_ids": np.zeros_like(ids)}
    expected = model.predict(x, verbose=0)
    widths = spy_on_batches(monkeypatch, model)
    got = predict_by_length(model, x, batch_size=8)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert len(widths) == math.ceil(len(ids) / 8) and min(widths) < ids.shape[1]


def test_predict_by_length_leaves_images_and_fixed_length_inputs_to_predict(monkeypatch, tiny_classifier, digit_batch):
    images = digit_batch[0][:20]
    widths = spy_on_batches(monkeypatch, tiny_classifier)
    np.testing.assert_allclose(predict_by_length(tiny_classifier, images, batch_size=8),
                               tiny_classifier.predict(images, verbose=0), atol=1e-6)
    assert widths == []  # not cut into length-sorted batches

    backbone = tfptm.backbones.get("lstm_encoder", vocabulary_size=50, sequence_length=24, embedding_dim=8, units=8)
    fixed = tfptm.build_model(backbone, tfptm.Head("multiclass", num_classes=3, pooling="avg"))
    x = padded_ids()
    widths = spy_on_batches(monkeypatch, fixed)
    np.testing.assert_allclose(predict_by_length(fixed, x, batch_size=8), fixed.predict(x, verbose=0), atol=1e-6)
    assert widths == []
