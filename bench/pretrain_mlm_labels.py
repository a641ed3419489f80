"""Does MLM pre-training on unlabelled same-domain text help when labels are scarce?

    python bench/pretrain_mlm_labels.py            # full run, writes bench/results/pretrain_mlm_labels.json
    python bench/pretrain_mlm_labels.py --quick    # smoke run, writes bench/results/pretrain_mlm_labels_quick.json

The task uses real English text found on this machine, with nothing
downloaded: the docstrings of four installed Python libraries (NumPy,
scikit-learn, Matplotlib, Keras), read from their source files with `ast`.
The labelled task is to tell from a docstring's first paragraph (its summary)
which library it documents. The unlabelled corpus is every other paragraph of
those docstrings, plus the summaries of the training docstrings without their
labels; nothing from a test docstring is in it.

One small BERT-like encoder is pre-trained by masked language modelling on
that corpus with `tfptm.pretrain.masked_lm`, saved with `save_pretrained` and
loaded back by path, as a user would do it. For each label budget (a fraction
of the training docstrings, stratified) and seed, the pre-trained encoder and
the same architecture from random initialization get the same two recipes
(full fine-tuning, and a linear probe on the frozen backbone), and all are
scored on the same held-out test docstrings.
"""

import argparse
import ast
import datetime
import importlib.metadata
import importlib.util
import json
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

LIBRARIES = {"numpy": "numpy", "scikit-learn": "sklearn", "matplotlib": "matplotlib", "keras": "keras"}
RESULTS = Path(__file__).resolve().parent / "results"


def settings(quick):
    """Sizes of the run; the full one takes a few minutes on 2 CPU cores."""
    return dict(
        docstrings_per_library=500 if quick else 3000,
        test_per_class=100 if quick else 300,
        train_per_class=200 if quick else 900,
        # Paragraphs of unlabelled text kept for pre-training (the rest is left unused, to bound the time).
        corpus_paragraphs=3000 if quick else 15000,
        fractions=[0.05, 1.0] if quick else [0.01, 0.05, 0.1, 1.0],
        seeds=[0] if quick else [0, 1],
        vocabulary_size=2000 if quick else 4000,
        sequence_length=32,
        backbone=dict(num_layers=2, num_heads=2, hidden_dim=64, intermediate_dim=128, dropout=0.1),
        pretrain_epochs=2 if quick else 5,
        pretrain_batch_size=64,
        pretrain_learning_rate=2e-3,
        finetune_steps=100 if quick else 200,
        finetune_batch_size=16,
        finetune_learning_rate=1e-3,
        probe_learning_rate=3e-3,
    )


def docstrings(module, limit):
    """Up to `limit` class and function docstrings of an installed module, in a fixed order (tests skipped)."""
    root = Path(importlib.util.find_spec(module).origin).parent
    found = []
    for file in sorted(root.rglob("*.py")):
        if {"tests", "test", "testing"} & set(file.relative_to(root).parts) or file.name.startswith("test_"):
            continue
        try:
            tree = ast.parse(file.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                text = ast.get_docstring(node)
                if text:
                    found.append(text)
        if len(found) >= limit:
            break
    return found[:limit]


def paragraphs(docstring):
    """A docstring's paragraphs, whitespace-normalized, those of fewer than 4 words dropped."""
    parts = (" ".join(p.split()) for p in docstring.split("\n\n"))
    return [p for p in parts if len(p.split()) >= 4]


def build_task(config, rng):
    """`(corpus, (x_train, y_train), (x_test, y_test), sources)` from the installed libraries' docstrings."""
    by_library, sources = {}, {}
    for label, module in LIBRARIES.items():
        by_library[label] = [paragraphs(d) for d in docstrings(module, config["docstrings_per_library"])]
        sources[label] = importlib.metadata.version(label)
    # A summary seen in two libraries (or twice) says nothing about which one it came from.
    counts = {}
    for docs in by_library.values():
        for parts in docs:
            if parts:
                counts[parts[0].lower()] = counts.get(parts[0].lower(), 0) + 1
    corpus, train, test = [], [], []
    needed = config["train_per_class"] + config["test_per_class"]
    for y, (label, docs) in enumerate(by_library.items()):
        usable = [i for i, parts in enumerate(docs) if parts and counts[parts[0].lower()] == 1]
        if len(usable) < needed:
            raise SystemExit(f"{label}: only {len(usable)} usable docstrings; need {needed}")
        chosen = rng.permutation(usable)
        test_ids = set(chosen[: config["test_per_class"]].tolist())
        train_ids = chosen[config["test_per_class"]: needed]
        test += [(docs[i][0], y) for i in sorted(test_ids)]
        train += [(docs[i][0], y) for i in train_ids]
        corpus += [p for i, parts in enumerate(docs) if i not in test_ids for p in parts]
    corpus = [corpus[i] for i in np.sort(rng.permutation(len(corpus))[: config["corpus_paragraphs"]])]
    x_train, y_train = (np.array(v) for v in zip(*train))
    x_test, y_test = (np.array(v) for v in zip(*test))
    return corpus, (x_train, y_train), (x_test, y_test), sources


def label_budget(y, fraction, seed):
    """Indices of a stratified `fraction` of the examples (at least one per class)."""
    rng = np.random.default_rng(1000 + seed)
    chosen = []
    for label in np.unique(y):
        idx = np.flatnonzero(y == label)
        chosen += rng.choice(idx, size=max(1, int(round(fraction * len(idx)))), replace=False).tolist()
    return np.sort(np.array(chosen))


RECIPES = ("full_finetune", "linear_probe")


def finetune_and_score(tfptm, keras, backbone, recipe, train, test, num_classes, config, seed):
    """The recipe both backbones get: an average-pooled head trained a fixed number of steps, with every
    weight training (`full_finetune`) or the backbone frozen (`linear_probe`, which shows what its features know)."""
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    model = tfptm.build_model(backbone, tfptm.Head("multiclass", num_classes=num_classes, pooling="avg", dropout=0.1))
    (x, y), batch = train, config["finetune_batch_size"]
    steps_per_epoch = math.ceil(len(y) / batch)
    epochs = max(1, round(config["finetune_steps"] / steps_per_epoch))
    data = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(y), seed=seed).batch(batch)
    stages = (tfptm.training.full(epochs, config["finetune_learning_rate"]) if recipe == "full_finetune"
              else tfptm.training.feature_extraction(epochs, config["probe_learning_rate"]))
    tfptm.finetune(model, data, stages, verbose=0)
    predictions = model.predict(test[0], batch_size=256, verbose=0).argmax(axis=-1)
    return float((predictions == test[1]).mean())


def summarize(runs, fractions):
    """Mean and spread of accuracy over seeds, for each label budget: one point of the curve each."""
    points = []
    for fraction in fractions:
        accuracies = [r["accuracy"] for r in runs if r["fraction"] == fraction]
        labels = [r["labels"] for r in runs if r["fraction"] == fraction][0]
        points.append({"fraction": fraction, "labels": labels, "mean_accuracy": float(np.mean(accuracies)),
                       "std_accuracy": float(np.std(accuracies)), "seeds": len(accuracies)})
    return points


def machine():
    import keras
    import keras_hub
    import tensorflow as tf

    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "keras_hub": keras_hub.__version__,
        "gpus": [d.name for d in tf.config.list_physical_devices("GPU")],
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a small smoke run (about a minute)")
    parser.add_argument("--out", help="the JSON file to write (default under bench/results/)")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    import tfptm
    import tfptm.pretrain  # noqa: F401  (until tfptm/__init__.py lists it)

    config = settings(args.quick)
    started = time.monotonic()
    corpus, (x_train, y_train), (x_test, y_test), sources = build_task(config, np.random.default_rng(0))
    print(f"task: {len(x_train)} training and {len(x_test)} test docstring summaries, 4 libraries; "
          f"unlabelled corpus of {len(corpus)} paragraphs ({time.monotonic() - started:.0f} s)", flush=True)

    keras.utils.set_random_seed(0)
    pretrain_started = time.monotonic()
    result = tfptm.pretrain.masked_lm(
        corpus,
        vocabulary_size=config["vocabulary_size"],
        sequence_length=config["sequence_length"],
        epochs=config["pretrain_epochs"],
        batch_size=config["pretrain_batch_size"],
        learning_rate=config["pretrain_learning_rate"],
        validation_fraction=0.05,
        **config["backbone"],
    )
    pretrain_seconds = time.monotonic() - pretrain_started
    print(f"MLM pre-training: {pretrain_seconds:.0f} s, masked-token loss {result.history['loss'][0]:.2f} -> "
          f"{result.history['loss'][-1]:.2f}, held-out masked-token accuracy {result.metrics['validation_accuracy']:.3f}",
          flush=True)
    artifact = os.path.join(tempfile.mkdtemp(), "mlm")
    tfptm.pretrain.save_pretrained(artifact, result)
    _, tokenizer = tfptm.backbones.saved.load_artifact(artifact)
    vocabulary_size = len(tokenizer.vocabulary)

    def tokens(texts):
        return {k: v.numpy() for k, v in tokenizer(texts).items()}

    train_tokens, test = tokens(x_train), (tokens(x_test), y_test)
    curves = {recipe: {"pretrained": [], "random_init": []} for recipe in RECIPES}
    for fraction in config["fractions"]:
        for seed in config["seeds"]:
            chosen = label_budget(y_train, fraction, seed)
            train = ({k: v[chosen] for k, v in train_tokens.items()}, y_train[chosen])
            for recipe in RECIPES:
                keras.utils.set_random_seed(100 + seed)
                backbones = {
                    "pretrained": tfptm.backbones.get(artifact),
                    "random_init": tfptm.backbones.get("transformer_encoder", vocabulary_size=vocabulary_size,
                                                       max_sequence_length=config["sequence_length"], **config["backbone"]),
                }
                assert backbones["pretrained"].count_params() == backbones["random_init"].count_params()
                for name, backbone in backbones.items():
                    accuracy = finetune_and_score(tfptm, keras, backbone, recipe, train, test, len(LIBRARIES), config, seed)
                    curves[recipe][name].append(
                        {"fraction": fraction, "labels": len(chosen), "seed": seed, "accuracy": accuracy})
                    print(f"{recipe:<13} {name:<12} {len(chosen):>5} labels ({100 * fraction:g}%) seed {seed}: "
                          f"accuracy {accuracy:.3f}", flush=True)

    summary = {recipe: {name: summarize(runs, config["fractions"]) for name, runs in by_init.items()}
               for recipe, by_init in curves.items()}
    for recipe in RECIPES:
        for p, r in zip(summary[recipe]["pretrained"], summary[recipe]["random_init"]):
            print(f"{recipe:<13} {r['labels']:>5} labels: pre-trained {p['mean_accuracy']:.3f} +- {p['std_accuracy']:.3f}"
                  f"   random init {r['mean_accuracy']:.3f} +- {r['std_accuracy']:.3f}")
    output = {
        "benchmark": "pretrain_mlm_labels",
        "quick": args.quick,
        "question": "Does MLM pre-training on unlabelled same-domain text beat random init when labels are scarce?",
        "task": {
            "description": "which library a docstring summary (first paragraph) documents; real text from installed packages",
            "classes": list(LIBRARIES),
            "library_versions": sources,
            "train_examples": int(len(y_train)),
            "test_examples": int(len(y_test)),
            "chance_accuracy": 1 / len(LIBRARIES),
            "pretraining_corpus_paragraphs": len(corpus),
        },
        "config": config,
        "pretraining": {"seconds": round(pretrain_seconds, 1), "history": {k: v for k, v in result.history.items()},
                        "metrics": result.metrics, "vocabulary_size": vocabulary_size},
        "summary": summary,
        "runs": curves,
        "machine": machine(),
        "seconds": round(time.monotonic() - started, 1),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    out = Path(args.out) if args.out else RESULTS / f"pretrain_mlm_labels{'_quick' if args.quick else ''}.json"
    from tfptm.files import write_json_atomic

    write_json_atomic(out, output)
    print(f"wrote {out} ({output['seconds']:.0f} s)")
    return output


if __name__ == "__main__":
    main()
