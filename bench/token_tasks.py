"""Token classification and extractive QA on REAL text: pre-trained all-MiniLM-L6-v2 vs the same architecture from random weights.

The tasks, built offline from installed libraries' sources (nobody here wrote the text), by
`tfptm.datasets.docstring_tokens` (the `libraries` task: NumPy, scikit-learn, Matplotlib, Keras and the
packages tfptm installs; docstrings read with `ast`, nothing imported or run; labels derived mechanically
from the code, not annotated; its module docstring states the rules in full):

- Tagging (`tagging_task`): BIO tags over `split_words` words of docstring stretches, entity types PARAM
  and CODE. Rule (`TAGGING_RULE`): PARAM is a name equal to a parameter of the documented function's `ast`
  signature (a class: its `__init__`; no self/cls), in backticks or in prose (function-word names only in
  backticks or as a parameter entry's name); CODE is any other name in backticks, or a dotted name of 2+
  identifiers in prose; role names, :math:, link titles and URLs are O. The matching is literal, so it is
  noisy where a parameter is named by an ordinary word ("returns a copy" with a parameter `copy`).
- QA (`qa_task`, SQuAD v1.1): the context is a function's or class's whole docstring; the question asks
  what one of its parameters does (5 templates); the answer (`QA_RULE`) is the first sentence, without its
  final period, of that parameter's description in a NumPy-style `Parameters` or Google-style `Args:` section.
- Splits by source file (no file in two splits), docstrings copied between files dropped; the data are
  built once with dataset seed 0 (the model seeds vary), and depend on the installed versions (recorded).
  No validation split: fixed epochs, nothing selected on the test set.

Models: on the MiniLM preset (`load_preset`), and on the same KerasHub BertBackbone built from MiniLM's
config with random weights (`from_preset(load_weights=False)`); same tokenizer (`word_pieces`), same heads
(`tfptm.tasks.tokens.token_classifier`: dropout 0.1 and a dense softmax per token, trained on each word's
first piece; `tfptm.tasks.spans.question_answerer`: start/end logits per token), same recipe: AdamW
(weight decay 0.01), linear warmup 10% then linear decay (as bench/pairs_real.py), peak rate
`--learning-rate` (1e-4, the bundled recipes' rate), batch 8 (`--batch-size`), length-aware batches
(`tfptm.data.pipeline.trimmed_batches`). The random-weight model is also run at a 10x higher peak rate
(its best rate is the baseline), so it is not simply under-trained by a rate chosen for fine-tuning.

Sizes are chosen so that the 18 runs fit in about 40 minutes on 2 shared cores (the full run measured 13-25
tagging examples/s and 8-9 QA windows/s), so the training sets are small and the runs short (180 tagging
steps, 123 QA steps):

- Tagging: 480 training examples, 300 test examples, at most 60 words each (`max_words`; about 60 pieces on
  average), max 128 pieces (words past it would be predicted O; counted), 3 epochs. Scored by seqeval at the
  entity level (type, first and last word must all match), as `tfptm.tasks.tokens.token_metrics` computes it.
- QA: 200 training questions, 150 test questions, contexts of at most 300 words (`max_context_words`),
  windows of 192 pieces with `doc_stride` 96 (`encode_windows`; a window without the whole answer is
  labelled [CLS]), 3 epochs. Answers by `answer_metrics` (`predict_answers` over all windows) with
  `max_answer_length` 64 pieces (answers run up to 52 pieces; SQuAD's 30 would cut about 3.5% of them).

How the settings were chosen: a first full attempt (300 tagging examples of up to 100 words, batch 16, 57
steps) left MiniLM at test entity F1 0.12 and 0.05 (seeds 0, 1; random 0.04 and 0.00), plainly under-trained,
and was stopped. Shorter examples and batch 8 (more steps for the same compute) were then tried on a
validation split (150 examples from files of their own; MiniLM only, seed 0): entity F1 0.66 at 1e-4 and
0.70 at 2e-4; 1e-4 was kept. QA was not tuned (one MiniLM check on a validation split: F1 39 after 84 steps
of batch 16; the same batch 8 as tagging here).

Each task is encoded once for all its runs (the tokenizer is the same with either weights), because
`tfptm.data.tagging.encode_tagged` costs about 1.3 ms per word on this machine (`words_to_pieces` calls
`RaggedTensor.to_list()` on a `(words, parts, pieces)` tensor); the tagging test set is scored from arrays
encoded once, by `token_metrics`' own steps (`word_predictions`, `tag_scores`), checked equal to
`token_metrics` on the first run.

Reported per task and model: the test scores (tagging: entity F1, precision, recall, per-type F1, word
accuracy; QA: exact match and F1 in percent), each as the mean, half the max-min spread over seeds and the
per-seed values; training examples/s (epochs x training examples, or questions, / wall time of
`tfptm.finetune`; QA windows/s too); the margin pre-trained minus the best random model, and whether every
pre-trained seed beats every random seed.

Run: `nice -n 19 .venv/bin/python bench/token_tasks.py` (31 minutes on 2 cores shared with other work;
examples/s depend on that load); `--quick` checks the script in about 3 minutes (1 seed, 64 tagging examples,
32 questions, 1 epoch: too few steps to learn anything, its scores mean nothing).
"""

import argparse
import os
import statistics
import sys
import tempfile
import time


os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TFPTM_OFFLINE", "1")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import save  # noqa: E402
from pairs_real import minilm_dir  # noqa: E402

BATCH_SIZE = 8
CONFIGS = {"minilm_pretrained": ("pretrained", 1), "random_init": ("random_init", 1),
           "random_init_lr_x10": ("random_init", 10)}  # name -> (weights, multiple of the peak rate)


def backbone_for(kind, preset, seed, sequence_length):
    """`(backbone, preprocessor)`: MiniLM's weights, or the same architecture and config with random weights."""
    import keras
    import keras_hub

    from tfptm.backbones.presets import features_model, load_preset

    keras.utils.set_random_seed(seed)
    backbone, preprocessor = load_preset(preset, sequence_length=sequence_length)
    if kind == "random_init":  # the same architecture and config, no weights loaded
        backbone = features_model(keras_hub.models.Backbone.from_preset(preset, load_weights=False))
    return backbone, preprocessor


def train(model, data, epochs, learning_rate):
    """AdamW, warmup 10% then linear decay, as bench/pairs_real.py: `(history, seconds)`."""
    import tfptm

    steps = int(data.cardinality())
    tfptm.training.recompile(model, optimizer=tfptm.training.optimizer(
        "adamw", learning_rate, weight_decay=0.01, warmup_fraction=0.1, decay="linear", total_steps=steps * epochs))
    start = time.perf_counter()
    history = tfptm.finetune(model, data, tfptm.training.full(epochs, learning_rate), verbose=0)
    return history, time.perf_counter() - start


# ------------------------------------------------------------------------------------------------------ tagging

def build_tagging(sizes):
    from tfptm.datasets.docstring_tokens import tagging_task

    return tagging_task("libraries", seed=0, train_size=sizes["train"], validation_size=0, test_size=sizes["test"],
                        max_words=sizes["max_words"])


class TaggingData:
    """The tagging task encoded once for every run (the tokenizer is the same with either weights): training
    arrays, and the test sentences packed for prediction.

    Encoding is done once because `encode_tagged` is slow on this machine: `words_to_pieces` turns its ragged
    pieces into lists with `RaggedTensor.to_list()`, about 1.3 ms per word (10 s for 8,400 words)."""

    def __init__(self, task, preset, max_length):
        from tfptm.backbones.presets import load_preset_tokenizer
        from tfptm.data.tagging import encode_tagged
        from tfptm.data.words import word_pieces

        self.task, self.max_length = task, max_length
        self.pieces = word_pieces(load_preset_tokenizer(preset, sequence_length=max_length))
        self.train = encode_tagged([e["tokens"] for e in task.train], [e["tags"] for e in task.train], self.pieces,
                                   max_length, task.tag_names)
        self.test_sentences = [e["tokens"] for e in task.test]
        self.test_tags = [e["tags"] for e in task.test]
        self.test = encode_tagged(self.test_sentences, None, self.pieces, max_length)

    def scores(self, model):
        """`tfptm.tasks.tokens.token_metrics`' scores, from the test arrays encoded once: `predict_tags`' steps
        (each word's first piece's most probable tag; words without a piece "O") and `tag_scores`."""
        import numpy as np

        from tfptm.data.tagging import word_predictions
        from tfptm.tasks.tokens import tag_scores

        ids = np.argmax(model.predict(self.test.x, batch_size=32, verbose=0), axis=-1)
        predicted = []
        for row, words, word_ids in zip(ids, self.test_sentences, self.test.word_ids):
            predicted.append([self.task.tag_names[p] if p is not None else "O"
                              for p in word_predictions(row, word_ids, len(words))])
        scores = tag_scores(self.test_tags, predicted)
        scores["num_truncated_words"] = self.test.num_truncated_words
        return scores

    def check(self, model):
        """Asserts `scores` equals `token_metrics` (which re-encodes the test set) for `model`."""
        from tfptm.tasks.tokens import token_metrics

        expected = token_metrics(model, self.test_sentences, self.test_tags, self.task.tag_names, self.pieces,
                                 self.max_length)
        got = self.scores(model)
        assert got == expected, (got, expected)
        return {"token_metrics_equal": True, "f1": expected["f1"]}


def run_tagging(kind, preset, data, seed, epochs, learning_rate, batch_size=BATCH_SIZE, check=False):
    from tfptm.data.pipeline import trimmed_batches
    from tfptm.tasks.tokens import token_classifier

    backbone, _ = backbone_for(kind, preset, seed, data.max_length)
    model = token_classifier(backbone, num_tags=len(data.task.tag_names), learning_rate=learning_rate)
    batches = trimmed_batches(data.train.x, data.train.labels, batch_size=batch_size, shuffle=True, seed=seed)
    history, seconds = train(model, batches, epochs, learning_rate)
    scores = data.scores(model)
    result = {"f1": scores["f1"], "precision": scores["precision"], "recall": scores["recall"],
              "word_accuracy": scores["word_accuracy"],
              "per_type_f1": {name: v["f1"] for name, v in scores["per_type"].items()},
              "per_type": scores["per_type"], "test_truncated_words": scores["num_truncated_words"],
              "train_truncated_words": data.train.num_truncated_words,
              "train_examples_per_second": epochs * len(data.train) / seconds, "train_seconds": seconds,
              "final_train_loss": float(history["loss"][-1]), "seed": seed, "learning_rate": learning_rate,
              "epochs": epochs, "batch_size": batch_size}
    if check:
        result["evaluation_check"] = data.check(model)
    return result


# ----------------------------------------------------------------------------------------------------------- QA

def build_qa(sizes):
    """`(task, train table, test table)`: the SQuAD dicts written and read back with `tfptm.data.squad.read_squad`
    (which checks every answer sits at its `answer_start`)."""
    from tfptm.data.squad import read_squad, write_squad
    from tfptm.datasets.docstring_tokens import qa_task

    task = qa_task("libraries", seed=0, train_size=sizes["train"], validation_size=0, test_size=sizes["test"],
                   max_context_words=sizes["max_context_words"])
    with tempfile.TemporaryDirectory() as directory:
        train_table = read_squad(write_squad(task.train, os.path.join(directory, "train.json")), strict=True)
        test_table = read_squad(write_squad(task.test, os.path.join(directory, "test.json")), strict=True)
    return task, train_table, test_table


class QAData:
    """The QA task encoded once for every run: the span tokenizer and the training windows."""

    def __init__(self, train_table, test_table, preset, max_length, doc_stride, max_answer_length):
        from tfptm.backbones.presets import load_preset_tokenizer
        from tfptm.data.squad import encode_windows
        from tfptm.tasks.spans import span_tokenizer

        self.train_table, self.test_table = train_table, test_table
        self.max_length, self.doc_stride = max_length, doc_stride
        self.tokenizer = span_tokenizer(load_preset_tokenizer(preset, sequence_length=max_length),
                                        max_length=max_length, doc_stride=doc_stride,
                                        max_answer_length=max_answer_length)
        self.windows = encode_windows(train_table.questions, train_table.contexts, train_table.answers,
                                      self.tokenizer.pieces, max_length, doc_stride)


def run_qa(kind, preset, data, seed, epochs, learning_rate, batch_size=BATCH_SIZE):
    from tfptm.data.pipeline import trimmed_batches
    from tfptm.tasks.spans import answer_metrics, question_answerer

    backbone, _ = backbone_for(kind, preset, seed, data.max_length)
    model = question_answerer(backbone, learning_rate=learning_rate)
    windows = data.windows
    batches = trimmed_batches(windows.x, windows.labels, batch_size=batch_size, shuffle=True, seed=seed,
                              trim_labels=False)
    history, seconds = train(model, batches, epochs, learning_rate)
    scores = answer_metrics(model, data.test_table, data.tokenizer)  # windows the test questions as training did
    return {"exact_match": scores["exact_match"], "f1": scores["f1"], "num_test_questions": scores["num_examples"],
            "train_windows": len(windows), "train_windows_with_answer": int((windows.labels[:, 0] > 0).sum()),
            "train_examples_per_second": epochs * len(data.train_table) / seconds,
            "train_windows_per_second": epochs * len(windows) / seconds, "train_seconds": seconds,
            "final_train_loss": float(history["loss"][-1]), "seed": seed, "learning_rate": learning_rate,
            "epochs": epochs, "batch_size": batch_size}


# -------------------------------------------------------------------------------------------------------- report

def spread(values):
    return {"mean": statistics.mean(values), "spread": (max(values) - min(values)) / 2, "min": min(values),
            "max": max(values), "per_seed": list(values)}


def summarize(runs, keys):
    out = {key: spread([r[key] for r in runs]) for key in keys}
    for kind in sorted({k for r in runs for k in r.get("per_type_f1", {})}):
        out[f"f1_{kind}"] = spread([r["per_type_f1"].get(kind, 0.0) for r in runs])
    return out


def compare(results, key):
    """The margin of the pre-trained model over the best random model (by mean `key`) and whether every
    pre-trained seed beats every seed of that random model."""
    best = max(("random_init", "random_init_lr_x10"), key=lambda n: results[n]["summary"][key]["mean"])
    pretrained, random_ = results["minilm_pretrained"]["summary"][key], results[best]["summary"][key]
    return {"metric": key, "best_random": best, "margin": pretrained["mean"] - random_["mean"],
            "pretrained_min_above_random_max": pretrained["min"] > random_["max"]}


def run_task(name, runner, seeds, print_keys, summary_keys, margin_keys):
    runs = {config: [] for config in CONFIGS}
    for seed in range(seeds):
        for config in CONFIGS:
            result = runner(config, seed)
            runs[config].append(result)
            shown = " ".join(f"{k} {result[k]:.3f}" for k in print_keys)
            print(f"{name} seed {seed} {config:20s} {shown} {result['train_examples_per_second']:.1f} ex/s "
                  f"({result['train_seconds']:.0f} s)", flush=True)
    results = {config: {"summary": summarize(r, summary_keys), "runs": r} for config, r in runs.items()}
    results["pretrained_vs_best_random"] = {key: compare(results, key) for key in margin_keys}
    return results


def table(name, results, keys):
    print(f"\n{name}")
    for config in CONFIGS:
        s = results[config]["summary"]
        cells = "  ".join(f"{key} {s[key]['mean']:.3f} ± {s[key]['spread']:.3f}" for key in keys if key in s)
        print(f"  {config:20s} {cells}  {s['train_examples_per_second']['mean']:.1f} ex/s")
    for key, c in results["pretrained_vs_best_random"].items():
        print(f"  pretrained - best random ({c['best_random']}) {key}: {c['margin']:+.3f}; every pretrained seed "
              f"above every random seed: {c['pretrained_min_above_random_max']}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--tasks", default="tagging,qa", help="comma-separated: tagging, qa")
    parser.add_argument("--learning-rate", type=float, default=1e-4, help="peak rate (the random model also at 10x)")
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    parser.add_argument("--tag-train", type=int, default=480)
    parser.add_argument("--tag-test", type=int, default=300)
    parser.add_argument("--tag-max-words", type=int, default=60)
    parser.add_argument("--tag-max-length", type=int, default=128)
    parser.add_argument("--tag-epochs", type=int, default=3)
    parser.add_argument("--qa-train", type=int, default=200)
    parser.add_argument("--qa-test", type=int, default=150)
    parser.add_argument("--qa-max-context-words", type=int, default=300)
    parser.add_argument("--qa-max-length", type=int, default=192)
    parser.add_argument("--qa-doc-stride", type=int, default=96)
    parser.add_argument("--qa-max-answer-length", type=int, default=64)
    parser.add_argument("--qa-epochs", type=int, default=3)
    parser.add_argument("--name", default=None, help="results file name (default token_tasks)")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.tag_train, args.tag_test, args.tag_epochs = 1, 64, 64, 1
        args.qa_train, args.qa_test, args.qa_epochs = 32, 32, 1
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    if not tasks or set(tasks) - {"tagging", "qa"}:
        raise SystemExit(f"--tasks {args.tasks!r}; expected tagging, qa or both")
    from tfptm.datasets.docstring_tokens import QA_RULE, TAGGING_RULE

    preset = minilm_dir()
    started = time.perf_counter()
    rate, batch_size = args.learning_rate, args.batch_size
    settings = {"checkpoint": "sentence-transformers/all-MiniLM-L6-v2", "seeds": args.seeds, "dataset_seed": 0,
                "batch_size": batch_size, "optimizer": "adamw wd 0.01, warmup 10%, linear decay",
                "learning_rate": rate,
                "models": {name: {"weights": kind, "peak_learning_rate": factor * rate}
                           for name, (kind, factor) in CONFIGS.items()},
                "random_init": "KerasHub BertBackbone.from_preset(minilm, load_weights=False): MiniLM's config, "
                               "random weights (keras.utils.set_random_seed(seed) first)",
                "how_chosen": "a first attempt (tagging: 300 examples of <= 100 words, batch 16, 57 steps) gave "
                              "MiniLM test entity F1 0.12 / 0.05 (random 0.04 / 0.00): under-trained, stopped; "
                              "max_words 60, 480 examples and batch 8 were chosen on a validation split (MiniLM, "
                              "seed 0: F1 0.66 at 1e-4, 0.70 at 2e-4; 1e-4 kept); QA not tuned",
                "command": "python bench/token_tasks.py " + " ".join(sys.argv[1:] if argv is None else argv)}
    results, name = {}, args.name or ("token_tasks_quick" if args.quick else "token_tasks")
    if "tagging" in tasks:  # both tasks' data are built and encoded before any training
        task = build_tagging({"train": args.tag_train, "test": args.tag_test, "max_words": args.tag_max_words})
        tagging = TaggingData(task, preset, args.tag_max_length)
        print(f"tagging: {task.info['sizes']} examples; entities {task.info['entities']}", flush=True)
    if "qa" in tasks:
        qa, train_table, test_table = build_qa({"train": args.qa_train, "test": args.qa_test,
                                                "max_context_words": args.qa_max_context_words})
        qa_data = QAData(train_table, test_table, preset, args.qa_max_length, args.qa_doc_stride,
                         args.qa_max_answer_length)
        print(f"qa: {qa.info['sizes']}; {len(qa_data.windows)} training windows", flush=True)
    if "tagging" in tasks:
        info = {k: v for k, v in task.info.items() if k != "files"}
        info["num_files"] = {split: len(files) for split, files in task.info["files"].items()}
        settings["tagging"] = {
            "task": "docstring_tokens.tagging_task('libraries')", "label_rule": TAGGING_RULE,
            "tag_names": task.tag_names, "task_info": info, "train_examples": len(task.train),
            "test_examples": len(task.test), "max_words": args.tag_max_words, "max_length": args.tag_max_length,
            "epochs": args.tag_epochs, "train_pieces_mean": float(tagging.train.x["padding_mask"].sum(1).mean()),
            "scores": "seqeval entity-level micro P/R/F1 (tfptm.tasks.tokens.token_metrics' computation on test "
                      "arrays encoded once; checked equal to token_metrics on the first run)"}
        results["tagging"] = run_task(
            "tagging", lambda config, seed: run_tagging(
                CONFIGS[config][0], preset, tagging, seed, args.tag_epochs, CONFIGS[config][1] * rate, batch_size,
                check=seed == 0 and config == "minilm_pretrained"),
            args.seeds, ("f1", "precision", "recall"),
            ("f1", "precision", "recall", "word_accuracy", "train_examples_per_second"), ("f1",))
        save(name, settings, results)  # kept if the QA runs fail; overwritten at the end
    if "qa" in tasks:
        info = {k: v for k, v in qa.info.items() if k != "files"}
        info["num_files"] = {split: len(files) for split, files in qa.info["files"].items()}
        windows = qa_data.windows
        settings["qa"] = {"task": "docstring_tokens.qa_task('libraries')", "label_rule": QA_RULE,
                          "task_info": info, "train_questions": len(train_table), "test_questions": len(test_table),
                          "train_windows": len(windows),
                          "train_windows_with_answer": int((windows.labels[:, 0] > 0).sum()),
                          "max_context_words": args.qa_max_context_words,
                          "max_length": args.qa_max_length, "doc_stride": args.qa_doc_stride,
                          "max_answer_length": args.qa_max_answer_length, "epochs": args.qa_epochs,
                          "scores": "SQuAD v1.1 exact match and F1, percent (tfptm.tasks.spans.answer_metrics)"}
        results["qa"] = run_task(
            "qa", lambda config, seed: run_qa(
                CONFIGS[config][0], preset, qa_data, seed, args.qa_epochs, CONFIGS[config][1] * rate, batch_size),
            args.seeds, ("exact_match", "f1"),
            ("exact_match", "f1", "train_examples_per_second", "train_windows_per_second"), ("exact_match", "f1"))
    settings["wall_seconds"] = time.perf_counter() - started
    if "tagging" in results:
        table("tagging (entity-level, seqeval)", results["tagging"],
              ("f1", "precision", "recall", "f1_PARAM", "f1_CODE"))
    if "qa" in results:
        table("qa (SQuAD v1.1, percent)", results["qa"], ("exact_match", "f1"))
    print(f"\nwall time {settings['wall_seconds'] / 60:.1f} min")
    path = save(name, settings, results)
    print(f"saved {path}")


if __name__ == "__main__":
    main()
