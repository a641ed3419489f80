"""Extractive question answering (issue 18, part 2): SQuAD reading, context windows and their labels, span decoding,
SQuAD v1.1 scores, training, and export (SavedModel `answer` on raw strings, TFLite on token ids)."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfptm
from tfptm.data.squad import QATable, encode_windows, read_squad, window_starts, write_squad
from tfptm.data.words import WordPieces
from tfptm.errors import TfptmError
from tfptm.export.tasks import export_question_answerer
from tfptm.tasks.spans import (MASK_LOGIT, NO_ANSWER_SCORE, SpanLoss, answer_f1, answer_texts, best_span,
                               check_answer_signature, normalize_answer, predict_answers,
                               question_answerer, span_tokenizer, squad_metrics)

WORDS = [f"w{i}" for i in range(30)]
VOCABULARY = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, "who", "what", "is", "?", ".", "run", "##s", "ann",
              "bob", "sat", "ran", "and", "the", "cat"]
CLS, SEP = 2, 3


@pytest.fixture(scope="module")
def pieces():
    return WordPieces(VOCABULARY)


def ids(*words):
    return [VOCABULARY.index(w) for w in words]


def squad_file(path, paragraphs, title="t"):
    path.write_text(json.dumps({"version": "1.1", "data": [{"title": title, "paragraphs": paragraphs}]}))
    return path


# --- reading ------------------------------------------------------------------------------------------------------


def test_read_squad_reads_v11_and_counts_misplaced_answers(tmp_path):
    qas = [{"id": "a", "question": "Who ran?", "answers": [{"text": "Ann", "answer_start": 0}, {"text": "Ann ran", "answer_start": 0}]},
           {"id": "b", "question": "Who sat?", "answers": [{"text": "Bob", "answer_start": 1}]},  # off by one
           {"id": "c", "question": "Who?", "answers": []},  # unanswerable (SQuAD v2)
           {"id": "d", "question": "What sat?", "answers": [{"text": "Bob", "answer_start": 9}]}]
    path = squad_file(tmp_path / "qa.json", [{"context": "Ann ran. Bob sat.", "qas": qas}])
    table = read_squad(path)
    assert table.ids == ["a", "d"] and table.contexts == ["Ann ran. Bob sat."] * 2
    assert table.answers[0][1] == {"text": "Ann ran", "answer_start": 0}
    summary = table.summary()
    assert summary["num_questions"] == 2 and summary["num_skipped"] == 2 and summary["num_answers"] == 3
    assert "qas[1] (id 'b')" in summary["skipped"][0]["where"]
    assert "'Bob' is not at answer_start 1" in summary["skipped"][0]["reason"]
    with pytest.raises(TfptmError, match=r"data\[0\]\.paragraphs\[0\]\.qas\[1\] \(id 'b'\): answer 0: 'Bob' is not at "
                                         r"answer_start 1 .*strict=True"):
        read_squad(path, strict=True)


@pytest.mark.parametrize("content, message", [
    (None, "does not exist; expected a SQuAD-style JSON file"),
    ('{"data": [', r"qa.json:1:11: not valid JSON .*expected SQuAD's JSON object"),
    ("[1, 2]", "top level is list; expected SQuAD's object with a 'data' list"),
    ('{"data": [{"title": "t", "paragraphs": {}}]}', r"data\[0\]: 'paragraphs' is dict; expected a list"),
    ('{"data": [{"paragraphs": [{"context": 3, "qas": []}]}]}', r"paragraphs\[0\]: 'context' is int; expected a string"),
    ('{"data": [{"paragraphs": [{"context": "x", "qas": [{"question": "q", "answers": [{"text": "y", "answer_start": 0}]}]}]}]}',
     "holds no valid question .*'y' is not at answer_start 0"),
])
def test_bad_squad_files_give_one_line_errors(tmp_path, content, message):
    path = tmp_path / "qa.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(TfptmError, match=message) as error:
        read_squad(path)
    assert "\n" not in str(error.value)


def test_read_squad_jsonl_with_hugging_face_answers(tmp_path):
    path = tmp_path / "qa.jsonl"
    path.write_text(json.dumps({"id": "1", "title": "t", "context": "Ann ran.", "question": "Who ran?",
                                "answers": {"text": ["Ann", "Ann"], "answer_start": [0, 0]}}) + "\n\n"
                    + json.dumps({"id": "2", "context": "Ann ran.", "question": "Who?",
                                  "answers": {"text": ["ran"], "answer_start": [0]}}) + "\n")
    table = read_squad(path)
    assert table.answers == [[{"text": "Ann", "answer_start": 0}] * 2] and table.skipped[0].where.endswith("qa.jsonl:3")
    path.write_text('{"context": "x", "question": "q", "answers": {"text": ["x"]}}\n')
    with pytest.raises(TfptmError, match=r"qa.jsonl:1: answers .*expected lists 'text' and 'answer_start'"):
        read_squad(path)


def test_split_keeps_each_context_and_title_on_one_side(tmp_path):
    contexts = [f"context {i} w{i}" for i in range(10)]
    table = QATable([str(i) for i in range(30)], [f"title {i % 5}" for i in range(30)], ["q"] * 30,
                    [contexts[i % 10] for i in range(30)], [[{"text": "context", "answer_start": 0}]] * 30)
    rest, held = table.split(0.2, seed=1)
    assert len(rest) + len(held) == 30 and len(set(held.contexts)) == 2 and not set(rest.contexts) & set(held.contexts)
    assert table.split(0.2, seed=1)[1].ids == held.ids and table.split(0.2, seed=2)[1].ids != held.ids
    rest, held = table.split(0.4, seed=0, by="title")
    assert len(set(held.titles)) == 2 and not set(rest.titles) & set(held.titles)
    write_squad(held, tmp_path / "held.json")
    again = read_squad(tmp_path / "held.json")
    assert sorted(again.ids) == sorted(held.ids) and again.skipped == []
    with pytest.raises(TfptmError, match="expected at least 2"):
        table.select([0]).split(0.5)


# --- windows ------------------------------------------------------------------------------------------------------


def test_windows_step_by_doc_stride_and_label_the_answer_where_it_is_whole(pieces):
    context = " ".join(WORDS)  # 30 words of one piece each
    answer = {"text": "w12 w13", "answer_start": context.index("w12")}
    w = encode_windows(["who"], [context], [[answer]], pieces, max_length=10, doc_stride=4)
    # capacity = 10 - 3 - 1 question piece = 6 context pieces; windows start every 4 pieces: 2 shared
    assert w.context_starts.tolist() == [0, 4, 8, 12, 16, 20, 24] == window_starts(30, 6, 4)
    context_ids = ids(*WORDS)
    for row, start in enumerate(w.context_starts):
        tokens = w.x["token_ids"][row][w.x["padding_mask"][row]].tolist()
        window = context_ids[start:start + 6]
        assert tokens == [CLS, *ids("who"), SEP, *window, SEP]
        assert w.x["segment_ids"][row][w.x["padding_mask"][row]].tolist() == [0, 0, 0] + [1] * (len(window) + 1)
        assert w.word_ids[row][3:3 + len(window)].tolist() == list(range(start, start + len(window)))
        if row:  # consecutive windows overlap by capacity - doc_stride = 2 pieces
            previous = w.x["token_ids"][row - 1][3:9].tolist()
            assert previous[-2:] == tokens[3:5]
    assert sorted({p for s in w.context_starts for p in range(s, min(s + 6, 30))}) == list(range(30))  # nothing left out
    # the answer's pieces (12, 13) are whole in the windows starting at 8 and 12, and nowhere else
    for row, (first, last) in enumerate(w.labels.tolist()):
        start = int(w.context_starts[row])
        if start <= 12 and 13 < start + 6:
            assert w.x["token_ids"][row][first:last + 1].tolist() == ids("w12", "w13")
            assert first == 3 + 12 - start
        else:
            assert (first, last) == (0, 0)
    assert [tuple(label) != (0, 0) for label in w.labels.tolist()] == [False, False, True, True, False, False, False]


def test_labels_cover_whole_words_and_multi_piece_words(pieces):
    context = "Ann runs and Bob sat."  # runs = run ##s
    w = encode_windows(["Who runs?", "Who runs?"], [context, context],
                       [[{"text": "Ann runs", "answer_start": 0}], [{"text": "un", "answer_start": 5}]], pieces,
                       max_length=32)
    question = ids("who", "run", "##s", "?")
    assert w.x["token_ids"][0][:6].tolist() == [CLS, *question, SEP]
    first, last = w.labels[0]
    assert w.x["token_ids"][0][first:last + 1].tolist() == ids("ann", "run", "##s")  # ends on the last piece of "runs"
    first, last = w.labels[1]  # an answer inside a word is widened to the word
    assert w.x["token_ids"][1][first:last + 1].tolist() == ids("run", "##s")
    assert w.word_offsets[0].tolist() == [[0, 3], [4, 8], [9, 12], [13, 16], [17, 20], [20, 21]]


def test_doc_stride_above_the_capacity_leaves_no_piece_out_and_questions_are_cut(pieces):
    context = " ".join(WORDS[:10])
    w = encode_windows(["who is the cat ?"], [context], None, pieces, max_length=9, doc_stride=50, max_question_length=3)
    # question cut to 3 pieces: capacity 9 - 3 - 3 = 3, step capped at 3: windows at 0, 3, 6, 9 with no overlap
    assert w.labels is None and w.context_starts.tolist() == [0, 3, 6, 9]
    assert w.x["token_ids"][0].tolist() == [CLS, *ids("who", "is", "the"), SEP, *ids("w0", "w1", "w2"), SEP]
    assert w.x["token_ids"][3][w.x["padding_mask"][3]].tolist() == [CLS, *ids("who", "is", "the"), SEP, *ids("w9"), SEP]
    with pytest.raises(TfptmError, match="doc_stride is 0; expected a positive integer"):
        encode_windows(["q"], ["c"], None, pieces, doc_stride=0)


def test_graph_windows_are_the_python_windows(pieces):
    """The SavedModel's in-graph windows (closed form) equal encode_windows' (BERT's loop), row for row."""
    rng = np.random.default_rng(0)
    words = WORDS + ["runs", "Ann", "café", "?", "."]
    questions = [" ".join(rng.choice(words, rng.integers(1, 9))) for _ in range(12)]
    contexts = [" ".join(rng.choice(words, rng.integers(0, 40))) for _ in range(12)]
    tokenizer = span_tokenizer(pieces, max_length=16, doc_stride=5, max_question_length=6)
    graph = tokenizer.windows(tf.constant(questions), tf.constant(contexts))
    python = encode_windows(questions, contexts, None, pieces, max_length=16, doc_stride=5, max_question_length=6)
    assert len(python) > 30 and python.x["token_ids"].shape[1] == 16
    for key in ("token_ids", "padding_mask", "segment_ids"):
        assert np.array_equal(graph["inputs"][key].numpy(), python.x[key]), key
    assert np.array_equal(graph["word_ids"].numpy(), python.word_ids)
    assert np.array_equal(graph["example_index"].numpy(), python.example_index)
    assert np.array_equal(graph["context_starts"].numpy(), python.context_starts)


# --- decoding and scores ------------------------------------------------------------------------------------------


def test_best_span_respects_order_length_and_context():
    start = np.array([[9.0, 1.0, 4.0, 0.0, 0.0, 0.0],
                      [0.0, 1.0, 0.0, 0.0, 7.0, 0.0],
                      [0.0, 2.0, 1.0, -9.0, -9.0, -9.0],
                      [5.0, 0.0, 0.0, 0.0, 0.0, 5.0]], "float32")
    end = np.array([[9.0, 0.0, 0.0, 0.0, 0.0, 3.0],
                    [0.0, 3.0, 0.0, 0.0, 0.0, 1.0],   # the best end (1) is before the best start (4)
                    [0.0, 0.0, 1.0, 0.0, 0.0, 6.0],   # the best end (5) is 5 tokens after the start
                    [5.0, 0.0, 0.0, 0.0, 0.0, 5.0]], "float32")
    mask = np.array([[0, 1, 1, 1, 1, 1], [0, 1, 1, 1, 1, 1], [0, 1, 1, 1, 1, 1], [0, 0, 0, 0, 0, 0]], bool)
    starts, ends, scores = best_span(start, end, mask, max_answer_length=3)
    # row 0: [CLS] (9 + 9) is not context, and 2..5 (4 + 3) is 4 tokens long: 2..2 (4 + 0) is the best of the rest;
    # row 1: the best end (1) is before the best start (4): 4..5 (7 + 1); row 2: the best end (5) is too far from
    # the best start (1): 1..2 (2 + 1); row 3: no context token, no span
    assert starts.tolist() == [2, 4, 1, -1] and ends.tolist() == [2, 5, 2, -1]
    assert scores.tolist() == [4.0, 8.0, 3.0, NO_ANSWER_SCORE]
    starts, ends, _ = best_span(start, end, mask, max_answer_length=5)
    assert (starts[:3].tolist(), ends[:3].tolist()) == ([2, 4, 1], [5, 5, 5])
    assert best_span(start[0], end[0], np.ones(6), 1) == (0, 0, 18.0)
    with pytest.raises(TfptmError, match="expected one shape"):
        best_span(start, end[:, :3], mask)


@pytest.mark.parametrize("prediction, gold, exact, f1", [
    ("the cat sat", "cat sat on", 0.0, 0.8),             # normalised: "cat sat" vs "cat sat on": P 1, R 2/3
    ("The Cat!", "cat", 1.0, 1.0),                      # case, article and punctuation removed
    ("a dog.", "the  dog", 1.0, 1.0),
    ("an apple pie", "pie, apple", 0.0, 1.0),           # same bag of tokens, another order
    ("cat cat", "cat", 0.0, 2 / 3),                     # bags: 1 shared of 2 predicted
    ("cat's hat", "cats hat", 1.0, 1.0),                # punctuation is deleted, not a space
    ("theater anthem", "theater", 0.0, 2 / 3),          # articles are whole words only
    ("dog", "cat", 0.0, 0.0),
    ("the", "a", 1.0, 0.0),                             # both normalise to "": equal, but no token to share
])
def test_squad_scores_by_hand(prediction, gold, exact, f1):
    assert squad_metrics([prediction], [[gold]]) == {"exact_match": 100.0 * exact, "f1": pytest.approx(100.0 * f1),
                                                     "num_examples": 1}
    assert answer_f1(prediction, gold) == pytest.approx(f1)


def test_squad_metrics_take_the_best_gold_answer_and_average_in_percent():
    predictions = ["an apple pie", "Paris", {"text": "in 1990", "start": 0, "end": 7, "score": 1.0}]
    golds = [["apple", "pie apple"],                                   # F1 max(2/3, 1) = 1, EM 0
             [{"text": "Paris, France", "answer_start": 3}, "paris"],  # EM 1
             ["1990"]]                                                 # P 1/2, R 1: F1 2/3, EM 0
    scores = squad_metrics(predictions, golds)
    assert scores["exact_match"] == pytest.approx(100 / 3) and scores["f1"] == pytest.approx(100 * (1 + 1 + 2 / 3) / 3)
    assert normalize_answer("  The  U.S.  Army ") == "us army"
    with pytest.raises(TfptmError, match="2 predictions for 1 gold"):
        squad_metrics(["a", "b"], [["a"]])


# --- model --------------------------------------------------------------------------------------------------------


def tiny_backbone(length=32):
    return tfptm.backbones.get("transformer_encoder", vocabulary_size=len(VOCABULARY), num_layers=1, num_heads=2,
                               hidden_dim=16, intermediate_dim=32, max_sequence_length=length)


def test_span_loss_padding_mask_and_saving(tmp_path):
    uniform = np.zeros((2, 4, 2), "float32")
    assert float(SpanLoss()(np.array([[1, 2], [0, 3]]), uniform)) == pytest.approx(np.log(4), rel=1e-5)
    model = question_answerer(tiny_backbone())
    x = {"token_ids": np.array([[2, 5, 3, 6, 3, 0, 0]]), "padding_mask": np.array([[1, 1, 1, 1, 1, 0, 0]], bool),
         "segment_ids": np.array([[0, 0, 0, 1, 1, 0, 0]])}
    logits = model.predict(x, verbose=0)
    assert logits.shape == (1, 7, 2) and logits.dtype == np.float32
    assert (logits[0, 5:] == MASK_LOGIT).all() and (np.abs(logits[0, :5]) < 100).all()
    tfptm.save_model(model, tmp_path / "qa.keras")
    loaded = keras.saving.load_model(tmp_path / "qa.keras")
    assert isinstance(loaded.loss, SpanLoss) and np.array_equal(loaded.predict(x, verbose=0), logits)


def synthetic(count, rng, filler=0):
    """Questions about who did what, the answer somewhere in a context padded with `filler` random words."""
    names, verbs = ["ann", "bob"], ["sat", "ran"]
    questions, contexts, answers = [], [], []
    for _ in range(count):
        name, verb = rng.choice(names), rng.choice(verbs)
        before = " ".join(rng.choice(WORDS, rng.integers(0, filler + 1)))
        context = f"{before} {name} {verb} . {' '.join(rng.choice(WORDS, filler))}".strip()
        questions.append(f"who {verb} ?")
        contexts.append(context)
        answers.append([{"text": name, "answer_start": context.index(f"{name} {verb}")}])
    return questions, contexts, answers


def test_tiny_model_learns_the_spans(pieces):
    rng = np.random.default_rng(0)
    questions, contexts, answers = synthetic(48, rng, filler=4)
    w = encode_windows(questions, contexts, answers, pieces, max_length=16, doc_stride=4)
    assert (w.labels[:, 0] > 0).sum() >= 48  # every example has a window holding its answer
    model = question_answerer(tiny_backbone(16), learning_rate=3e-3)
    before = model.evaluate(w.x, w.labels, verbose=0, return_dict=True)["loss"]
    history = model.fit(w.x, w.labels, epochs=25, batch_size=16, verbose=0, shuffle=False)
    after = history.history["loss"][-1]
    assert after < 0.6 * before, (before, after)
    assert history.history["span_accuracy"][-1] > history.history["span_accuracy"][0]


@pytest.mark.parametrize("max_answer_length", [1, 2, 3])
def test_graph_and_python_decoding_keep_the_length_limit(pieces, max_answer_length):
    rng = np.random.default_rng(max_answer_length)
    questions = [" ".join(rng.choice(WORDS, 3)) for _ in range(16)]
    contexts = [" ".join(rng.choice(WORDS, rng.integers(1, 30))) for _ in range(16)]
    tokenizer = span_tokenizer(pieces, max_length=12, doc_stride=3, max_answer_length=max_answer_length)
    model = question_answerer(tiny_backbone(12))
    model.get_layer("span_dense").set_weights([rng.normal(0, 3, (16, 2)).astype("float32"), np.zeros(2, "float32")])
    python = predict_answers(model, questions, contexts, tokenizer)
    graph = answer_texts(model, tokenizer, tf.constant(questions), tf.constant(contexts))
    assert [a["text"] for a in python] == [t.decode() for t in graph["answer_text"].numpy()]
    lengths = [len(a["text"].split()) for a in python]  # one piece per word here
    assert max(lengths) == max_answer_length and min(lengths) >= 1, lengths
    np.testing.assert_allclose([a["score"] for a in python], graph["score"].numpy(), rtol=1e-5, atol=1e-4)


# --- export -------------------------------------------------------------------------------------------------------


def test_export_tiny_answerer_with_answer_signature_and_tflite_parity(pieces, tmp_path):
    rng = np.random.default_rng(1)
    questions, contexts, answers = synthetic(32, rng, filler=6)
    tokenizer = span_tokenizer(pieces, max_length=16, doc_stride=4, max_question_length=6, max_answer_length=4)
    w = encode_windows(questions, contexts, answers, pieces, **{k: v for k, v in tokenizer.sizes().items()
                                                                  if k != "max_answer_length"})
    model = question_answerer(tiny_backbone(16), learning_rate=3e-3)
    model.fit(w.x, w.labels, epochs=8, batch_size=16, verbose=0)
    # The Python path (encode_windows + best_span) and the graph path (answer_texts) answer alike, long contexts too.
    test_q, test_c = questions[:6] + ["who ran ?", "who sat ?"], contexts[:6] + ["", "ann sat . " * 12]
    python = predict_answers(model, test_q, test_c, tokenizer)
    graph = answer_texts(model, tokenizer, tf.constant(test_q), tf.constant(test_c))
    assert [a["text"] for a in python] == [t.decode() for t in graph["answer_text"].numpy()]
    assert [a["start"] for a in python] == graph["answer_start"].numpy().tolist()
    assert [a["end"] for a in python] == graph["answer_end"].numpy().tolist()
    np.testing.assert_allclose([a["score"] for a in python], graph["score"].numpy(), atol=1e-4)
    assert python[6] == {"text": "", "start": -1, "end": -1, "score": NO_ANSWER_SCORE}
    for a, context in zip(python, test_c):
        assert a["text"] == context[a["start"]:a["end"]] and (a["text"] or not context)
        assert len(a["text"].split()) <= 4

    summary = export_question_answerer(model, tokenizer, tmp_path, "qa", test_q, test_c, quantizations=("float32",))
    parity = summary["parity"]
    assert parity["saved_model"]["ok"] and parity["saved_model"]["max_logit_diff"] <= 1e-5 * max(1, parity["saved_model"]["max_abs_logit"]), parity
    assert parity["tflite_float32"]["ok"] and parity["tflite_float32"]["start_agreement"] == 1.0, parity
    assert parity["saved_model_answer"]["ok"] and parity["saved_model_answer"]["same_answers_and_offsets"], parity
    signatures = summary["signatures"]
    assert sorted(signatures["answer"]["inputs"]) == ["context", "question"]
    assert sorted(signatures["answer"]["outputs"]) == ["answer_end", "answer_start", "answer_text", "score"]
    assert sorted(signatures["serving_default"]["outputs"]) == ["end_logits", "span_logits", "start_logits"]
    # The reloaded SavedModel answers raw strings as predict_answers does, without the Keras model.
    served = tf.saved_model.load(summary["artifacts"]["saved_model"]).signatures["answer"](
        question=tf.constant(test_q), context=tf.constant(test_c))
    assert [t.decode() for t in served["answer_text"].numpy()] == [a["text"] for a in python]
    lite = tfptm.export.run_tflite(summary["artifacts"]["tflite_float32"], {k: w.x[k][:8] for k in w.x})
    np.testing.assert_allclose(lite, model.predict({k: w.x[k][:8] for k in w.x}, verbose=0), atol=1e-4)
    # a broken parity is caught: another model's logits disagree
    other = question_answerer(tiny_backbone(16))
    report = check_answer_signature(summary["artifacts"]["saved_model"], other, tokenizer, test_q, test_c)
    assert not report["ok"]


def test_export_refuses_what_is_not_a_question_answerer(tmp_path):
    classifier = tfptm.tasks.pair_classifier(tiny_backbone(), num_classes=2)
    with pytest.raises(TfptmError, match="expected a question answerer"):
        export_question_answerer(classifier, WordPieces(VOCABULARY), tmp_path, "qa", ["q"], ["c"])
    assert tfptm.tasks.token_task(question_answerer(tiny_backbone())).TASK == "question_answering"


# --- MiniLM -------------------------------------------------------------------------------------------------------


def minilm_examples(rng, count):
    people = ["Alice", "Omar", "Chen", "Maria", "Ivan", "Priya", "Tom", "Sara"]
    cities = ["Paris", "Cairo", "Lima", "Oslo", "Tokyo", "Nairobi", "Madrid", "Toronto"]
    jobs = ["baker", "pilot", "doctor", "teacher", "farmer", "lawyer", "painter", "nurse"]
    questions, contexts, answers = [], [], []
    for _ in range(count):
        person, city, job = (str(rng.choice(names)) for names in (people, cities, jobs))
        filler = [f"The weather in {c} was mild that year." for c in rng.choice(cities, 5)]
        cut = int(rng.integers(0, 6))  # the facts anywhere among five sentences about the weather
        context = " ".join(filler[:cut] + [f"{person} was born in {city}. Later {person} worked as a {job} for many "
                                           "years."] + filler[cut:])
        if rng.random() < 0.5:
            question, answer = f"Where was {person} born?", city
            start = context.index(f"born in {city}") + len("born in ")
        else:
            question, answer = f"What did {person} work as?", job
            start = context.index(f"a {job} for") + 2
        questions.append(question)
        contexts.append(context)
        answers.append([{"text": answer, "answer_start": start}])
    return questions, contexts, answers


@pytest.mark.slow
def test_minilm_fine_tunes_and_exports(minilm_dir, tmp_path):
    backbone, preprocessor = tfptm.backbones.presets.load_preset(minilm_dir, sequence_length=48)
    tokenizer = span_tokenizer(preprocessor, max_length=48, doc_stride=16, max_question_length=16)
    rng = np.random.default_rng(0)
    questions, contexts, answers = minilm_examples(rng, 40)
    sizes = {k: v for k, v in tokenizer.sizes().items() if k != "max_answer_length"}
    w = encode_windows(questions, contexts, answers, tokenizer.pieces, **sizes)
    assert len(w) > 40 and (w.labels[:, 0] == 0).any()  # long contexts: several windows, some without the answer
    model = question_answerer(backbone, learning_rate=1e-4)
    keras.utils.set_random_seed(0)
    history = model.fit(w.x, w.labels, epochs=4, batch_size=16, verbose=0)
    assert history.history["loss"][-1] < 0.7 * history.history["loss"][0], history.history["loss"]
    test_q, test_c, test_a = minilm_examples(np.random.default_rng(1), 8)
    scores = squad_metrics(predict_answers(model, test_q, test_c, tokenizer), test_a)
    assert scores["num_examples"] == 8 and scores["f1"] > 50.0, scores  # 87.5 when this was written (4 epochs)
    summary = export_question_answerer(model, tokenizer, tmp_path, "minilm_qa", test_q, test_c,
                                       quantizations=("dynamic",))
    parity = summary["parity"]
    assert parity["saved_model"]["ok"] and parity["saved_model_answer"]["ok"], parity
    assert parity["tflite_dynamic"]["ok"], parity  # int8 weights: the same start and end on >= 99% of the windows
