"""Text pairs (issue 17.1): loading, [CLS] a [SEP] b [SEP] packing, fair truncation, training under each strategy, export."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfptm
from tfptm.data.pairs import pair_arrays, pair_batches, pair_dataset, read_pair_table, tokenize_pairs
from tfptm.export.tasks import export_pairs
from tfptm.tasks.pairs import PairTokenizer, pair_classifier, pair_tokenizer

VOCABULARY = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "open", "the", "file", "plot", "a", "line", "read", "it"]
CLS, SEP = 2, 3


@pytest.fixture(scope="module")
def tokenizer():
    import keras_hub

    return keras_hub.models.BertTokenizer(vocabulary=VOCABULARY, lowercase=True)


def ids(*words):
    return [VOCABULARY.index(w) for w in words]


def test_layout_and_segment_ids_are_berts(tokenizer):
    x = pair_arrays(["Open the file", "plot"], ["read it", "a line"], tokenizer, max_length=16)
    expected = [[CLS, *ids("open", "the", "file"), SEP, *ids("read", "it"), SEP],
                [CLS, *ids("plot"), SEP, *ids("a", "line"), SEP, 0, 0]]
    assert x["token_ids"].tolist() == expected
    assert x["segment_ids"].tolist() == [[0, 0, 0, 0, 0, 1, 1, 1], [0, 0, 0, 1, 1, 1, 0, 0]]
    assert x["padding_mask"].sum(axis=1).tolist() == [8, 6]
    # The in-graph tokenizer of the SavedModel packs the same way (padded to its fixed length).
    packed = pair_tokenizer(tokenizer, 16)((tf.constant(["Open the file", "plot"]), tf.constant(["read it", "a line"])))
    assert packed["token_ids"].numpy()[:, :8].tolist() == expected
    assert packed["segment_ids"].numpy()[:, :8].tolist() == x["segment_ids"].tolist()


def test_truncation_is_fair_between_the_two_texts(tokenizer):
    long, short = " ".join(["file"] * 20), "read it"
    x = pair_arrays([long, short, long], [short, long, long], tokenizer, max_length=10)
    for row, segments, (keep_a, keep_b) in zip(x["token_ids"].tolist(), x["segment_ids"].tolist(), [(5, 2), (2, 5), (4, 3)]):
        assert len(row) == 10 and row[0] == CLS and row.count(SEP) == 2 and row[-1] == SEP
        assert segments.count(0) == keep_a + 2 and segments.count(1) == keep_b + 1  # [CLS] a [SEP] | b [SEP]
    # 7 tokens of room, handed out in turn: the 2-token text keeps both, the 20-token text loses 15


def test_batches_group_pairs_by_total_length_and_keep_every_pair(tokenizer):
    rng = np.random.default_rng(0)
    a = [" ".join(rng.choice(VOCABULARY[5:], rng.integers(1, 12))) for _ in range(64)]
    b = [" ".join(rng.choice(VOCABULARY[5:], rng.integers(1, 12))) for _ in range(64)]
    labels = np.arange(64)
    flat, segments, starts, lengths, _ = tokenize_pairs(a, b, tokenizer, max_length=32)
    ds = pair_batches(a, b, labels, tokenizer, max_length=32, batch_size=8, seed=0)
    seen, padded = {}, 0
    for x, y in ds:
        width = x["token_ids"].shape[1]
        mask = x["padding_mask"].numpy()
        assert width == mask.sum(axis=1).max()  # each batch padded to its own longest pair
        padded += mask.size
        for row, segment_row, m, label in zip(x["token_ids"].numpy(), x["segment_ids"].numpy(), mask, y.numpy()):
            seen[int(label)] = (row[m].tolist(), segment_row[m].tolist())
    assert sorted(seen) == list(range(64))
    for i in range(64):
        assert seen[i] == (flat[starts[i]:starts[i] + lengths[i]].tolist(), segments[starts[i]:starts[i] + lengths[i]].tolist())
    assert padded < 1.5 * lengths.sum()  # length-aware: far less padding than batches padded to 32


def test_read_pair_table_csv_and_jsonl(tmp_path):
    csv_path = tmp_path / "pairs.csv"
    csv_path.write_text('question,answer,label\n"Opens a file?","Yes, it does.",1\n"Plots?","",0\n"Reads?","It reads.",0\n')
    table = read_pair_table(csv_path, text_columns=("question", "answer"))
    assert table.texts_a == ["Opens a file?", "Reads?"] and table.texts_b == ["Yes, it does.", "It reads."]
    assert table.labels.tolist() == [1, 0] and table.class_names == ["0", "1"]
    assert table.summary()["num_skipped"] == 1 and table.skipped[0].reason == "empty answer"
    jsonl = tmp_path / "pairs.jsonl"
    jsonl.write_text("\n".join(json.dumps(r) for r in [{"text_a": "a", "text_b": "b", "label": "same"},
                                                       {"text_a": "c", "text_b": "d", "label": "other"}]) + "\n")
    assert read_pair_table(jsonl).class_names == ["other", "same"]


@pytest.mark.parametrize("content, kwargs, message", [
    ("text_a,label\nx,1\n", {}, r"has no column \['text_b'\]; found columns \['text_a', 'label'\]"),
    ('text_a,text_b,label\n"x","",1\n', {"strict": True}, r"pairs.csv:2: empty text_b; expected a valid text"),
    ('text_a,text_b,label\n"","",1\n', {}, r"has no rows with both texts \(1 with an empty text\)"),
    ("text_a,text_b,label\nx,y,\n", {}, r"pairs.csv:2: 'label' is ''; expected a non-empty label"),
    ("text_a,text_b,label\nx,y,1\n", {"text_columns": ("text_a", "text_a")}, r"expected two different column names"),
    ("text_a,text_b,label\nx,y,1\n", {"text_columns": "text_a"}, r"expected two different column names"),
    ("text_a,text_b,label\nx,y,1\n", {"label_column": "text_b"}, r"label_column 'text_b' is also a text column"),
])
def test_bad_pair_files_give_one_line_errors(tmp_path, content, kwargs, message):
    path = tmp_path / "pairs.csv"
    path.write_text(content)
    with pytest.raises(tfptm.TfptmError, match=message) as error:
        read_pair_table(path, **kwargs)
    assert "\n" not in str(error.value)


def test_bad_pair_inputs_give_one_line_errors(tokenizer):
    with pytest.raises(tfptm.TfptmError, match="2 first texts but 1 second texts"):
        pair_batches(["a", "b"], ["c"], tokenizer=tokenizer)
    with pytest.raises(tfptm.TfptmError, match=r"texts_b\[1\] is int; expected strings"):
        pair_batches(["a", "b"], ["c", 3], tokenizer=tokenizer)
    with pytest.raises(tfptm.TfptmError, match="max_length must be an integer >= 4"):
        pair_batches(["a"], ["c"], tokenizer=tokenizer, max_length=3)
    words = tfptm.data.text.tokenizer_layer(["", "[UNK]", "a"], 8, kind="words")
    with pytest.raises(tfptm.TfptmError, match="'words' tokenizer has no \\[CLS\\]/\\[SEP\\]"):
        pair_batches(["a"], ["c"], tokenizer=words)
    lstm = tfptm.backbones.get("lstm_encoder", vocabulary_size=10, embedding_dim=4, units=4)
    with pytest.raises(tfptm.TfptmError, match="pair_classifier: backbone takes Functional; expected a Transformer"):
        pair_classifier(lstm)


def _tiny_backbone():
    return tfptm.backbones.get("transformer_encoder", vocabulary_size=len(VOCABULARY), num_layers=2, hidden_dim=16,
                               intermediate_dim=32, max_sequence_length=32, dropout=0.0)


def _task():
    """Label 1 when text b repeats a word of text a: only learnable by looking at both texts together."""
    rng = np.random.default_rng(0)
    words = VOCABULARY[5:]
    a, b, y = [], [], []
    for i in range(48):
        first = list(rng.choice(words, 3, replace=False))
        rest = [w for w in words if w not in first]
        second = [first[0]] + list(rng.choice(rest, 1)) if i % 2 else list(rng.choice(rest, 2, replace=False))
        a.append(" ".join(first))
        b.append(" ".join(second))
        y.append(i % 2)
    return a, b, np.array(y)


@pytest.mark.parametrize("strategy", ["full", "feature_extraction", "lora"])
def test_pair_model_trains_under_each_strategy(tokenizer, strategy):
    a, b, y = _task()
    model = pair_classifier(_tiny_backbone(), num_classes=2)
    backbone = model.get_layer("backbone")
    if strategy == "lora":
        tfptm.training.enable_lora(model, rank=2)
        stages = tfptm.training.full(2, 1e-2)
    else:
        stages = getattr(tfptm.training, strategy)(2, 1e-2)
    base = {id(v): v.numpy().copy() for v in backbone.weights if "lora" not in v.name}
    head_before = model.get_layer("head_logits").kernel.numpy().copy()
    data = pair_batches(a, b, y, tokenizer, max_length=32, batch_size=16, seed=0, outputs=backbone.input)
    history = tfptm.finetune(model, data, stages, verbose=0)
    assert len(history["loss"]) == 2
    assert not np.allclose(head_before, model.get_layer("head_logits").kernel)
    changed = [not np.allclose(base[id(v)], v) for v in backbone.weights if id(v) in base]
    lora = [not np.allclose(v, 0) for v in backbone.weights if v.name == "lora_kernel_b"]
    if strategy == "full":
        assert all(changed[:4]) and sum(changed) > len(changed) // 2
    else:  # the backbone's own weights are frozen
        assert not any(changed)
    assert (strategy == "lora") == bool(lora and all(lora))


def test_segment_ids_reach_the_backbone(tokenizer):
    model = pair_classifier(_tiny_backbone(), num_classes=2)
    x = pair_arrays(["open the file"], ["read it"], tokenizer, max_length=16)
    flipped = {**x, "segment_ids": np.where(x["padding_mask"], 1 - x["segment_ids"], 0).astype("int32")}
    assert not np.allclose(model.predict(x, verbose=0), model.predict(flipped, verbose=0))


def test_export_raw_string_pairs_and_tflite_match_keras(tokenizer, tmp_path):
    a, b, y = _task()
    model = pair_classifier(_tiny_backbone(), num_classes=2)
    tfptm.finetune(model, pair_batches(a, b, y, tokenizer, max_length=32, batch_size=16, seed=0),
                   tfptm.training.full(1, 1e-2), verbose=0)
    summary = export_pairs(model, tokenizer, tmp_path, "pairs", a, b, y, max_length=32, quantizations=("float32",),
                           class_names=["other", "match"])
    parity = summary["parity"]
    assert parity["saved_model"]["ok"] and parity["tflite_float32"]["ok"], parity
    assert parity["tflite_float32"]["top1_agreement"] == 1.0
    raw = parity["saved_model_raw_text_pairs"]
    assert raw["ok"] and raw["class_ids_agree"] and raw["max_abs_diff"] < 1e-5, raw
    # Independently: the signature takes two string tensors and answers as the Keras model on the same pairs.
    signature = tf.saved_model.load(summary["artifacts"]["saved_model"]).signatures["raw_text_pairs"]
    assert sorted(signature.structured_input_signature[1]) == ["text_a", "text_b"]
    served = signature(text_a=tf.constant(a[:5]), text_b=tf.constant(b[:5]))
    expected = model.predict(pair_arrays(a[:5], b[:5], tokenizer, 32), verbose=0)
    np.testing.assert_allclose(served["probabilities"].numpy(), expected, atol=1e-5)
    assert [n.decode() for n in served["class_names"].numpy()] == [["other", "match"][i] for i in expected.argmax(1)]
    # TFLite takes token ids
    lite = tfptm.export.run_tflite(summary["artifacts"]["tflite_float32"], pair_arrays(a, b, tokenizer, 32))
    np.testing.assert_allclose(lite, model.predict(pair_arrays(a, b, tokenizer, 32), verbose=0), atol=1e-4)


def test_pair_dataset_splits_by_label(tokenizer):
    a, b, y = _task()
    table = tfptm.data.pairs.PairTable(a, b, y, ["other", "match"], [], "task.csv")
    loaded = pair_dataset(table, tokenizer, validation_fraction=0.25, max_length=32, batch_size=8)
    assert (loaded.num_train, loaded.num_validation) == (36, 12)
    assert sorted(int(v) for _, ys in loaded.validation for v in ys.numpy()) == [0] * 6 + [1] * 6


def test_minilm_packs_pairs_and_reads_segment_ids(minilm_dir):
    backbone, preprocessor = tfptm.backbones.presets.load_preset(minilm_dir)
    x = pair_arrays(["hello world"], ["good morning"], preprocessor, max_length=16)
    assert x["token_ids"].tolist() == [[101, 7592, 2088, 102, 2204, 2851, 102]]
    assert x["segment_ids"].tolist() == [[0, 0, 0, 0, 1, 1, 1]]
    flipped = {**x, "segment_ids": 1 - x["segment_ids"]}
    assert not np.allclose(backbone(x), backbone(flipped))  # MiniLM's token-type embedding is used
    assert isinstance(pair_tokenizer(preprocessor, 16), PairTokenizer)
    assert preprocessor.sequence_length != 16  # the preset's own preprocessor is left as it was
    keras.backend.clear_session()
