"""Text-pair classification on REAL text: pre-trained all-MiniLM-L6-v2 vs the same architecture from random weights.

The task, built offline from installed libraries' sources (nobody here wrote the text):
"does paragraph B follow paragraph A in the same docstring?"

- Docstrings of classes, functions and modules are read with `ast` (nothing is imported or run) from
  NumPy, scikit-learn, Matplotlib, Keras and 8 standard-library packages; each is cut into paragraphs
  at blank lines (`tfptm.datasets.docstrings.paragraphs`: whitespace folded, paragraphs of fewer than
  4 words dropped).
- Positive (label "follows"): paragraphs i and i+1 of one docstring, as written.
- Negative (label "other"): paragraph i of one docstring with a paragraph drawn at random from ANOTHER
  docstring of the SAME package (so the package's vocabulary and style alone do not give it away).
- Labels are derived from where the text sits in the sources, not annotated; a few negatives may
  happen to read as plausible continuations, and some positives do not read as continuing (a
  "Parameters" section after a summary), so the ceiling is below 100%.
- Split by module: every source file is assigned to train or test by a hash of its path, and pairs
  (negatives included) are drawn within a split, so no held-out docstring, paragraph or file is seen
  in training. Classes are balanced in both splits.

Models: `tfptm.tasks.pairs.pair_classifier` on the MiniLM preset (`load_preset`), and on the same
KerasHub BertBackbone built from MiniLM's config with random weights (`from_preset(load_weights=False)`).
Same tokenizer, same head (`--pooling`: the mean over real tokens by default, as the checkpoint was trained
and as the text recipe found best; `first` for [CLS]; dropout 0.1), same recipe: AdamW (weight decay 0.01), linear warmup
10% then linear decay, `--epochs` epochs, batch 16, max 128 tokens, length-aware batches
(`tfptm.data.pairs.pair_batches`). The random-weight model is also run at a 10x higher peak rate
(its best rate is reported as well, so the baseline is not simply under-trained by a rate chosen for
fine-tuning).

Reported: test accuracy and macro-F1 (mean, and half the max-min spread over seeds), training
examples/s (epochs x training pairs / wall time of `tfptm.finetune`).

Run: `nice -n 19 .venv/bin/python bench/pairs_real.py` (about 25 minutes on 2 cores shared with other work; examples/s depend on that load);
`--quick` checks the script in a few minutes.
"""

import argparse
import ast
import hashlib
import os
import statistics
import sys
import time


os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TFPTM_OFFLINE", "1")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

from common import minilm_dir, save  # noqa: E402

PACKAGES = ["numpy", "sklearn", "matplotlib", "keras", "asyncio", "email", "xml", "unittest", "multiprocessing",
            "logging", "importlib", "http"]
LABELS = ["other", "follows"]
RULE = ("label 'follows': paragraphs i and i+1 of one docstring as written in the installed source; label 'other': "
        "paragraph i of one docstring with a random paragraph of another docstring of the same package; "
        "files split into train/test by a hash of their path, pairs drawn within a split")



def docstring_files(package):
    """`{relative file: [docstrings]}` of an installed package, read with ast (tests skipped)."""
    from tfptm.datasets.docstrings import source_trees

    found = {}
    for relative, tree in source_trees(package):
        docs = [ast.get_docstring(node) for node in ast.walk(tree)
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Module))]
        docs = [d for d in docs if d]
        if docs:
            found[f"{package}/{relative}"] = docs
    return found


_WORD = __import__("re").compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")
NAME_RULE = ("label 'belongs': a function's or class's name (split into words: read_csv -> 'read csv') and the "
             "first paragraph of its own docstring; label 'other': the name with the first paragraph of another "
             "definition's docstring in the same package; pairs whose summary contains any word of the name (3+ "
             "letters) are dropped on both sides, so word overlap gives nothing away; files split by path hash")


def name_words(name):
    """`read_csv` -> 'read csv', `TextVectorization` -> 'text vectorization'."""
    return " ".join(w.lower() for w in _WORD.findall(name))


def named_summaries(package):
    """`{relative file: [(name words, summary)]}` for the public functions and classes of an installed package."""
    from tfptm.datasets.docstrings import paragraphs, source_trees

    found = {}
    for relative, tree in source_trees(package):
        rows = []
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and not node.name.startswith("_"):
                doc = paragraphs(ast.get_docstring(node) or "")
                words = name_words(node.name)
                if doc and words:
                    rows.append((words, doc[0]))
        if rows:
            found[f"{package}/{relative}"] = rows
    return found


def build_name_task(train_pairs, test_pairs, seed=0, test_share=0.3):
    """`(train, test, info)` of the name-summary task (`NAME_RULE`): balanced, split by source file."""
    from tfptm.datasets.docstrings import _version

    rng = np.random.default_rng(seed)
    split_rows = {"train": {}, "test": {}}
    versions = {}
    for package in PACKAGES:
        versions[package] = _version(package)
        for file, rows in named_summaries(package).items():
            bucket = int(hashlib.sha256(file.encode()).hexdigest()[:8], 16) / 16**8
            split_rows["test" if bucket < test_share else "train"].setdefault(package, []).extend(rows)

    def overlaps(words, summary):
        text = summary.lower()
        return any(len(w) >= 3 and w in text for w in words.split())

    out, info = {}, {}
    for split, wanted in (("train", train_pairs), ("test", test_pairs)):
        positives, negatives = [], []
        for package, rows in split_rows[split].items():
            rows = list(dict.fromkeys(rows))
            for index, (words, summary) in enumerate(rows):
                if not overlaps(words, summary):
                    positives.append((words, summary, 1))
                other = rows[(index + 1 + rng.integers(len(rows) - 1)) % len(rows)] if len(rows) > 1 else None
                if other is not None and other[1] != summary and not overlaps(words, other[1]):
                    negatives.append((words, other[1], 0))
        kept = []
        for pool in (positives, negatives):
            kept += [pool[i] for i in rng.permutation(len(pool))[: wanted // 2]]
        kept = [kept[i] for i in rng.permutation(len(kept))]
        out[split] = ([r[0] for r in kept], [r[1] for r in kept], np.array([r[2] for r in kept], "int32"))
        info[split] = {"pairs": len(kept), "positives": int(sum(r[2] for r in kept)),
                       "available_positives": len(positives), "available_negatives": len(negatives)}
    train_names = set(out["train"][0])
    info["test_paragraphs_seen_in_training"] = sum(t in set(out["train"][1]) for t in set(out["test"][1]))
    info["test_names_also_in_training"] = sum(n in train_names for n in set(out["test"][0]))
    info["versions"] = versions
    return out["train"], out["test"], info


def build_task(train_pairs, test_pairs, seed=0, test_share=0.3):
    """`(train, test, info)`: each `(texts_a, texts_b, labels)`, balanced, split by source file."""
    from tfptm.datasets.docstrings import _version, paragraphs

    rng = np.random.default_rng(seed)
    split_docs = {"train": {}, "test": {}}  # split -> package -> [paragraph lists]
    versions = {}
    for package in PACKAGES:
        versions[package] = _version(package)
        for file, docs in docstring_files(package).items():
            bucket = int(hashlib.sha256(file.encode()).hexdigest()[:8], 16) / 16**8
            split = "test" if bucket < test_share else "train"
            split_docs[split].setdefault(package, []).extend(
                p for p in (paragraphs(d) for d in docs) if p)
    out, info, train_text = {}, {}, set()
    for split, wanted in (("train", train_pairs), ("test", test_pairs)):
        positives, negatives = [], []
        for package, docs in split_docs[split].items():
            for d_index, doc in enumerate(docs):
                for i in range(len(doc) - 1):
                    positives.append((doc[i], doc[i + 1], 1))
                    others = [k for k in range(len(docs)) if k != d_index]
                    if others:
                        other = docs[others[rng.integers(len(others))]]
                        negatives.append((doc[i], other[rng.integers(len(other))], 0))
        seen = set()
        rows = []
        for pool in (positives, negatives):
            pool = [pool[i] for i in rng.permutation(len(pool))]
            kept = []
            for a, b, y in pool:
                if split == "test" and (a in train_text or b in train_text):
                    continue  # a paragraph that also occurs in a training file (shared boilerplate)
                if a != b and (a, b) not in seen:
                    seen.add((a, b))
                    kept.append((a, b, y))
                if len(kept) == wanted // 2:
                    break
            rows += kept
        rows = [rows[i] for i in rng.permutation(len(rows))]
        out[split] = ([r[0] for r in rows], [r[1] for r in rows], np.array([r[2] for r in rows], "int32"))
        info[split] = {"pairs": len(rows), "positives": int(sum(r[2] for r in rows)),
                       "available_positives": len(positives), "available_negatives": len(negatives),
                       "docstrings": sum(len(v) for v in split_docs[split].values())}
        if split == "train":
            train_text = {p for docs in split_docs["train"].values() for doc in docs for p in doc}
    info["test_paragraphs_seen_in_training"] = sum(t in train_text for t in set(out["test"][0]) | set(out["test"][1]))
    info["versions"] = versions
    return out["train"], out["test"], info


def run(kind, preset, train, test, seed, epochs, learning_rate, max_length=128, batch_size=16, pooling="avg"):
    import keras
    import keras_hub
    from sklearn.metrics import f1_score

    import tfptm
    from tfptm.backbones.presets import features_model, load_preset
    from tfptm.data.pairs import pair_arrays, pair_batches
    from tfptm.tasks.pairs import pair_classifier

    keras.utils.set_random_seed(seed)
    backbone, preprocessor = load_preset(preset)
    if kind == "random_init":  # the same architecture and config, no weights loaded
        backbone = features_model(keras_hub.models.Backbone.from_preset(preset, load_weights=False))
    model = pair_classifier(backbone, head=tfptm.Head("multiclass", num_classes=2, pooling=pooling, dropout=0.1))
    data = pair_batches(*train, tokenizer=preprocessor, max_length=max_length, batch_size=batch_size, seed=seed)
    steps = int(data.cardinality())
    tfptm.training.recompile(model, optimizer=tfptm.training.optimizer(
        "adamw", learning_rate, weight_decay=0.01, warmup_fraction=0.1, decay="linear", total_steps=steps * epochs))
    start = time.perf_counter()
    history = tfptm.finetune(model, data, tfptm.training.full(epochs, learning_rate), verbose=0)
    seconds = time.perf_counter() - start
    x = pair_arrays(test[0], test[1], preprocessor, max_length)
    from tfptm.data.sequences import predict_by_length

    predicted = predict_by_length(model, x, batch_size=64).argmax(axis=-1)
    return {"accuracy": float(np.mean(predicted == test[2])),
            "f1_macro": float(f1_score(test[2], predicted, average="macro")),
            "train_examples_per_second": epochs * len(train[0]) / seconds, "train_seconds": seconds,
            "final_train_loss": float(history["loss"][-1]), "seed": seed, "learning_rate": learning_rate,
            "epochs": epochs}


def summarize(runs):
    out = {}
    for key in ("accuracy", "f1_macro", "train_examples_per_second"):
        values = [r[key] for r in runs]
        out[key] = {"mean": statistics.mean(values), "spread": (max(values) - min(values)) / 2,
                    "min": min(values), "max": max(values)}
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--train-pairs", type=int, default=400)
    parser.add_argument("--test-pairs", type=int, default=300)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--learning-rate", type=float, default=1e-4, help="peak rate (text_minilm's default)")
    parser.add_argument("--pooling", default="avg", choices=["avg", "first"],
                        help="avg: the mean over real tokens (as all-MiniLM-L6-v2 was trained); first: [CLS]")
    parser.add_argument("--name", default=None, help="results file name (default pairs_real)")
    parser.add_argument("--task", default="follows", choices=["follows", "name_summary"],
                        help="follows: does paragraph B follow A (RULE); name_summary: is B the summary of the "
                             "definition named A (NAME_RULE)")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.train_pairs, args.test_pairs, args.epochs = 1, 64, 64, 1
    preset = minilm_dir()
    train, test, info = (build_task if args.task == "follows" else build_name_task)(args.train_pairs, args.test_pairs)
    print(f"task: {info['train']['pairs']} training pairs, {info['test']['pairs']} test pairs; "
          f"test paragraphs also in training: {info['test_paragraphs_seen_in_training']}", flush=True)
    configs = {"minilm_pretrained": ("pretrained", args.learning_rate),
               "random_init": ("random_init", args.learning_rate),
               "random_init_lr_x10": ("random_init", 10 * args.learning_rate)}
    runs = {name: [] for name in configs}
    for seed in range(args.seeds):
        for name, (kind, rate) in configs.items():
            result = run(kind, preset, train, test, seed, args.epochs, rate, pooling=args.pooling)
            runs[name].append(result)
            print(f"seed {seed} {name:20s} accuracy {result['accuracy']:.3f} macro-F1 {result['f1_macro']:.3f} "
                  f"{result['train_examples_per_second']:.1f} ex/s", flush=True)
    results = {name: {"summary": summarize(r), "runs": r} for name, r in runs.items()}
    best_random = max(("random_init", "random_init_lr_x10"), key=lambda n: results[n]["summary"]["accuracy"]["mean"])
    results["pretrained_minus_best_random_accuracy"] = (
        results["minilm_pretrained"]["summary"]["accuracy"]["mean"] - results[best_random]["summary"]["accuracy"]["mean"])
    settings = {"task": "docstring paragraph follows (pairs)" if args.task == "follows" else
                "a definition's name and a docstring summary: its own, or another's (pairs)",
                "label_rule": RULE if args.task == "follows" else NAME_RULE,
                "labels": LABELS if args.task == "follows" else ["other", "belongs"],
                "packages": PACKAGES, "task_info": info, "checkpoint": "sentence-transformers/all-MiniLM-L6-v2",
                "seeds": args.seeds, "epochs": args.epochs, "batch_size": 16, "max_length": 128,
                "optimizer": "adamw wd 0.01, warmup 10%, linear decay", "learning_rate": args.learning_rate,
                "pooling": args.pooling, "train_pairs": args.train_pairs, "test_pairs": args.test_pairs,
                "command": "python bench/pairs_real.py " + " ".join(sys.argv[1:] if argv is None else argv)}
    for name in configs:
        s = results[name]["summary"]
        print(f"{name:20s} accuracy {s['accuracy']['mean']:.3f} ± {s['accuracy']['spread']:.3f}  macro-F1 "
              f"{s['f1_macro']['mean']:.3f} ± {s['f1_macro']['spread']:.3f}  "
              f"{s['train_examples_per_second']['mean']:.1f} ex/s")
    path = save(args.name or ("pairs_real_quick" if args.quick else "pairs_real"), settings, results)
    print(f"saved {path}")


if __name__ == "__main__":
    main()
