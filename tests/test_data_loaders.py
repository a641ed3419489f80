"""The data loaders on good input: image folders, TFDS by name, CSV/JSONL text, per-batch padding, augmentation."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfptm
from tfptm.errors import TfptmError

ENCODERS = {"png": tf.io.encode_png, "jpg": tf.io.encode_jpeg}


def write_image(path, value, size=(6, 9), channels=3):
    fmt = os.path.splitext(path)[1][1:]
    pixels = np.full((*size, channels), value, "uint8")
    with open(path, "wb") as f:
        f.write(ENCODERS[fmt](pixels).numpy())


def make_folder(root, classes=("cat", "dog", "emu"), per_class=4):
    for c, name in enumerate(classes):
        os.makedirs(root / name, exist_ok=True)
        for i in range(per_class):
            write_image(str(root / name / f"{i}.{'png' if i % 2 else 'jpg'}"), 40 * c + i)
    return root


def batches(ds):
    return [(x.numpy(), y.numpy()) for x, y in ds]


def test_image_folder_classes_pixels_and_stratified_seeded_split(tmp_path):
    root = make_folder(tmp_path)
    loaded = tfptm.data.image_folder(root, (5, 4), validation_fraction=0.25, seed=3, batch_size=4)
    assert loaded.class_names == ["cat", "dog", "emu"]
    assert (loaded.num_train, loaded.num_validation) == (9, 3) and loaded.summary()["num_skipped"] == 0
    val = batches(loaded.validation)
    assert sorted(np.concatenate([y for _, y in val]).tolist()) == [0, 1, 2]  # one of each class
    train = batches(loaded.train)
    x = np.concatenate([x for x, _ in train])
    y = np.concatenate([y for _, y in train])
    assert x.shape == (9, 5, 4, 3) and x.dtype == np.float32
    # raw 0..255 pixels of the right image (JPEG may be off by a little)
    np.testing.assert_allclose(x[:, 0, 0, 0] // 40, y, atol=0)
    again = tfptm.data.image_folder(root, (5, 4), validation_fraction=0.25, seed=3, batch_size=4)
    assert [b[1].tolist() for b in batches(again.train)] == [b[1].tolist() for b in train]
    assert [b[1].tolist() for b in batches(loaded.validation)] == [b[1].tolist() for b in val]


def test_image_folder_channels_and_no_split(tmp_path):
    root = make_folder(tmp_path, classes=("a", "b"), per_class=2)
    loaded = tfptm.data.image_folder(root, (3, 3), channels=1, validation_fraction=None, shuffle=False)
    assert loaded.validation is None and loaded.num_train == 4
    x, y = batches(loaded.train)[0]
    assert x.shape == (4, 3, 3, 1) and y.tolist() == [0, 0, 1, 1]


def test_check_input_shape_for_a_keras_applications_backbone():
    backbone = tfptm.backbones.get("mobilenet_v2", input_shape=(32, 32, 3))
    tfptm.data.check_input_shape(backbone, (32, 32, 3))
    with pytest.raises(TfptmError, match=r"\(16, 16, 3\) do not fit the backbone, which takes \(32, 32, 3\).*image_size=\(32, 32\)"):
        tfptm.data.check_input_shape(backbone, (16, 16, 3))
    with pytest.raises(TfptmError, match="do not fit"):
        tfptm.data.check_input_shape(backbone, (32, 32, 1))


def test_check_input_shape_for_a_backbone_with_free_size():
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(4, 5)(keras.layers.Conv2D(4, 5)(inputs))
    backbone = keras.Model(inputs, x)
    tfptm.data.check_input_shape(backbone, (12, 12, 3))
    with pytest.raises(TfptmError, match=r"\(6, 6, 3\) are too small for the backbone"):
        tfptm.data.check_input_shape(backbone, (6, 6, 3))


def test_dict_inputs_flow_through_from_arrays_split_and_evaluate():
    ids = np.random.default_rng(0).integers(1, 20, (12, 5)).astype("int32")
    x = {"token_ids": ids, "padding_mask": ids > 3}
    y = np.arange(12) % 2
    (x_tr, y_tr), (x_te, y_te) = tfptm.data.train_test_split(x, y, test_fraction=0.25, seed=0)
    assert sorted(x_tr) == ["padding_mask", "token_ids"] and len(x_tr["token_ids"]) == len(y_tr) == 9
    assert sorted(np.concatenate([x_tr["token_ids"], x_te["token_ids"]]).tolist()) == sorted(ids.tolist())
    token_ids = keras.Input((5,), dtype="int32", name="token_ids")
    mask = keras.Input((5,), dtype="bool", name="padding_mask")
    features = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(20, 4)(token_ids), mask=mask)
    model = keras.Model({"token_ids": token_ids, "padding_mask": mask}, keras.layers.Dense(2, "softmax")(features))
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(tfptm.data.from_arrays(x_tr, y_tr, batch_size=4, seed=0), epochs=1, verbose=0, shuffle=False)
    report = tfptm.evaluate(model, x_te, y_te)
    assert report["num_examples"] == 3


# --- TFDS by name, from a data set really prepared on disk ---------------------------------------

import tensorflow_datasets as tfds  # noqa: E402


from tiny_tfds import prepare as prepare_tiny_stripes  # noqa: E402


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory):
    data_dir = str(tmp_path_factory.mktemp("tfds"))
    prepare_tiny_stripes(data_dir)
    return data_dir


def test_tfds_by_name_from_a_prepared_data_dir(tfds_dir, monkeypatch):
    def no_download(*args, **kwargs):
        raise AssertionError("tfptm must never download")

    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", no_download)
    loaded = tfptm.data.tfds_dataset("tiny_stripes", tfds_dir, "train[:6]", "train[6:]", image_size=(4, 4), seed=0)
    assert loaded.class_names == ["dark", "light"] and (loaded.num_train, loaded.num_validation) == (6, 2)
    x, y = batches(loaded.train)[0]
    assert x.shape == (6, 4, 4, 3) and x.dtype == np.float32
    np.testing.assert_allclose(x[:, 0, 0, 0], 200.0 * y)
    test = tfptm.data.tfds_dataset("tiny_stripes:1.0.0", tfds_dir, "test", shuffle=False)
    assert test.num_train == 4 and batches(test.train)[0][0].shape == (4, 6, 6, 3)
    with pytest.raises(TfptmError, match="split 'validation' cannot be read.*'test', 'train'"):
        tfptm.data.tfds_dataset("tiny_stripes", tfds_dir, "validation")
    with pytest.raises(TfptmError, match=r"'mnist' is not prepared in data_dir .*tfds build mnist --data_dir"):
        tfptm.data.tfds_dataset("mnist", tfds_dir)
    with pytest.raises(TfptmError, match=r"no .*tiny_stripes/2.0.0/dataset_info.json"):
        tfptm.data.tfds_dataset("tiny_stripes:2.0.0", tfds_dir)


# --- CSV / JSONL text ----------------------------------------------------------------------------


def test_csv_tsv_and_jsonl_give_the_same_table(tmp_path):
    rows = [("a fine, bright film", "2"), ("dull", "10"), ("so-so", "2"), ("   ", "10"), ('quote "x"', "1")]
    with open(tmp_path / "t.csv", "w", newline="") as f:
        import csv

        writer = csv.writer(f)
        writer.writerow(["id", "review", "stars"])
        writer.writerows([(i, t, s) for i, (t, s) in enumerate(rows)])
    with open(tmp_path / "t.tsv", "w") as f:
        f.write("review\tstars\n" + "".join(f"{t}\t{s}\n" for t, s in rows if '"' not in t))
    with open(tmp_path / "t.jsonl", "w") as f:
        f.write("\n".join(json.dumps({"review": t, "stars": int(s)}) for t, s in rows) + "\n\n")
    tables = [tfptm.data.read_text_table(tmp_path / f"t.{ext}", "review", "stars") for ext in ("csv", "jsonl")]
    for table in tables:
        assert table.class_names == ["1", "2", "10"]  # integer labels sort as numbers
        assert table.texts == ["a fine, bright film", "dull", "so-so", 'quote "x"']
        assert table.labels.tolist() == [1, 2, 1, 0]
        assert table.summary()["skipped"] == [{"where": f"{table.path}:{5 if table.path.endswith('csv') else 4}",
                                               "reason": "empty text"}]
    tsv = tfptm.data.read_text_table(tmp_path / "t.tsv", "review", "stars", class_names=["1", "2", "10"])
    assert tsv.labels.tolist() == [1, 2, 1]


def test_a_text_table_becomes_split_batches_with_its_skips(tmp_path):
    path = tmp_path / "t.jsonl"
    rows = [{"text": "good " * (i + 1), "label": "pos"} for i in range(4)] + [{"text": "bad", "label": "neg"}] * 4
    path.write_text("\n".join(json.dumps(r) for r in rows + [{"text": "", "label": "neg"}]))
    table = tfptm.data.read_text_table(path)
    tokenizer = tfptm.data.text.tokenizer_layer(["", "[UNK]", "good", "bad"], sequence_length=3)
    loaded = tfptm.data.text_dataset(table, tokenizer, validation_fraction=0.25, seed=0, max_length=3, batch_size=8)
    assert (loaded.num_train, loaded.num_validation, loaded.class_names) == (6, 2, ["neg", "pos"])
    assert loaded.summary()["skipped"] == [{"where": f"{path}:9", "reason": "empty text"}]
    (x, y), = batches(loaded.train)
    assert x.shape[0] == 6 and x.shape[1] <= 3 and sorted(y.tolist()) == [0, 0, 0, 1, 1, 1]
    (xv, yv), = batches(loaded.validation)
    assert sorted(yv.tolist()) == [0, 1]


# --- per-batch padding ---------------------------------------------------------------------------

TEXTS = ["the film", "a long and winding story about the film and the story", "good", "the story was good",
         "bad", "a film about a story about a film about a story about a film", "ok then", "good film"]


@pytest.fixture(scope="module")
def wordpiece_vocab():
    """A wordpiece vocabulary of TEXTS' words (learn_vocabulary would give the same words, more slowly)."""
    words = sorted({word for text in TEXTS for word in text.split()} - {"ok"})  # "ok" stays unknown
    return ["[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]"] + words


def test_batches_are_padded_to_their_own_longest_text(wordpiece_vocab):
    tokenizer = tfptm.data.text.tokenizer_layer(wordpiece_vocab, sequence_length=4)
    ds = tfptm.data.text_batches(TEXTS, np.arange(8), tokenizer, max_length=10, batch_size=2, shuffle=False,
                                 outputs=["token_ids", "padding_mask", "segment_ids"])
    full = tokenizer_layer_ids(wordpiece_vocab, 10)
    widths = []
    for i, (x, y) in enumerate(ds):
        ids, mask = x["token_ids"].numpy(), x["padding_mask"].numpy()
        widths.append(ids.shape[1])
        expected = full[2 * i: 2 * i + 2]
        assert ids.shape[1] == (expected > 0).sum(axis=1).max() <= 10
        np.testing.assert_array_equal(ids, expected[:, : ids.shape[1]])  # same tokens, less padding
        np.testing.assert_array_equal(mask, ids > 0)
        assert not x["segment_ids"].numpy().any() and y.numpy().tolist() == [2 * i, 2 * i + 1]
    assert len(set(widths)) > 1 and max(widths) == 10


def tokenizer_layer_ids(vocab, length):
    return tfptm.data.text.tokenizer_layer(vocab, sequence_length=length)(tf.constant(TEXTS)).numpy()


def test_bucketing_groups_texts_of_similar_length(wordpiece_vocab):
    tokenizer = tfptm.data.text.tokenizer_layer(wordpiece_vocab, sequence_length=4)
    ds = tfptm.data.text_batches(TEXTS * 4, tokenizer=tokenizer, max_length=16, batch_size=4, bucket_boundaries=[4, 8],
                                 seed=0)
    lengths = [(b.numpy() > 0).sum(axis=1) for b in ds]
    assert sum(len(b) for b in lengths) == 32
    for batch in lengths:  # every batch lies within one bucket: [1, 4), [4, 8) or [8, 16]
        assert len({int(np.digitize(n, [4, 8])) for n in batch}) == 1


def test_bert_gives_the_same_cls_output_padded_per_batch_or_to_max(wordpiece_vocab):
    import keras_hub

    backbone = tfptm.backbones.get("transformer_encoder", vocabulary_size=len(wordpiece_vocab), num_layers=1,
                                   hidden_dim=16, intermediate_dim=32, max_sequence_length=32)
    tokenizer = keras_hub.tokenizers.BertTokenizer(vocabulary=wordpiece_vocab)
    ds = tfptm.data.text_batches(TEXTS, tokenizer=tokenizer, max_length=32, batch_size=3, shuffle=False,
                                 outputs=backbone.input)
    per_batch, padded = [], []
    for x in ds:
        per_batch.append(backbone(x)[:, 0].numpy())
        width = x["token_ids"].shape[1]
        assert width < 32 and x["token_ids"].numpy()[0, 0] == tokenizer.cls_token_id
        to_max = {k: np.pad(v.numpy(), [(0, 0), (0, 32 - width)]) for k, v in x.items()}
        padded.append(backbone(to_max)[:, 0].numpy())
    np.testing.assert_allclose(np.concatenate(per_batch), np.concatenate(padded), atol=1e-5)


def test_minilm_tokens_per_batch_match_its_own_preprocessor(minilm_dir):
    _, preprocessor = tfptm.backbones.presets.load_preset(minilm_dir, sequence_length=24)
    ds = tfptm.data.text_batches(TEXTS, tokenizer=preprocessor, max_length=24, batch_size=4, shuffle=False,
                                 outputs=["token_ids", "padding_mask", "segment_ids"])
    ours = [x for x in ds]
    theirs = preprocessor(tf.constant(TEXTS))
    for i, x in enumerate(ours):
        width = x["token_ids"].shape[1]
        for name in ("token_ids", "padding_mask", "segment_ids"):
            expected = np.asarray(theirs[name])[4 * i: 4 * i + 4]
            np.testing.assert_array_equal(np.asarray(x[name]).astype(int), expected[:, :width].astype(int))
            assert not expected[:, width:].astype(int).any()  # the rest was only padding


# --- augmentation --------------------------------------------------------------------------------


def test_augmentation_changes_training_batches_each_epoch_and_stays_out_of_the_model(tmp_path):
    root = make_folder(tmp_path / "images", classes=("a", "b"), per_class=6)
    for name in ("a", "b"):  # images with structure, so flips and shifts show
        for i in range(6):
            pixels = np.random.default_rng(i).integers(0, 255, (12, 12, 3)).astype("uint8")
            (root / name / f"{i}.png").write_bytes(tf.io.encode_png(pixels).numpy())
            (root / name / f"{i}.jpg").unlink(missing_ok=True)
    loaded = tfptm.data.image_folder(root, (12, 12), validation_fraction=1 / 3, seed=0, batch_size=8, augment=True,
                                     shuffle=False)
    epoch1, epoch2 = batches(loaded.train), batches(loaded.train)
    assert not np.allclose(epoch1[0][0], epoch2[0][0])
    again = tfptm.data.image_folder(root, (12, 12), validation_fraction=1 / 3, seed=0, batch_size=8, augment=True,
                                    shuffle=False)
    np.testing.assert_allclose(batches(again.train)[0][0], epoch1[0][0], atol=1e-4)  # seeded: repeatable
    assert [y.tolist() for _, y in epoch1] == [y.tolist() for _, y in epoch2]
    plain = tfptm.data.image_folder(root, (12, 12), validation_fraction=1 / 3, seed=0, batch_size=8, shuffle=False)
    assert not np.allclose(epoch1[0][0], batches(plain.train)[0][0])  # augmented at all
    val1, val2 = batches(loaded.validation), batches(loaded.validation)
    np.testing.assert_array_equal(val1[0][0], val2[0][0])
    np.testing.assert_array_equal(val1[0][0], batches(plain.validation)[0][0])  # never augmented

    backbone = tfptm.backbones.get("vgg_cnn", input_shape=(12, 12, 3), filters=(4,))
    model = tfptm.build_model(backbone, tfptm.Head("multiclass", num_classes=2))
    model.fit(loaded.train, epochs=1, verbose=0, shuffle=False)
    path = tfptm.export.saved_model(model, tmp_path / "export", "m", class_names=loaded.class_names)
    layers = [type(layer).__name__ for layer in model._flatten_layers()]
    assert not [name for name in layers if name.startswith("Random")]
    graph = tf.saved_model.load(str(path)).signatures["serving_default"].graph.as_graph_def()
    ops = {node.op for f in graph.library.function for node in f.node_def} | {node.op for node in graph.node}
    assert not [op for op in ops if "Random" in op], sorted(ops)
