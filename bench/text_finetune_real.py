"""Fine-tuning all-MiniLM-L6-v2 on REAL short-text classification: tfptm's default recipe vs the loops users write.

Side by side in one run, on the same texts, checkpoint, machine and threads:
- `tfptm`: the bundled `text_minilm` recipe as `tfptm train` runs it (only paths and seed set), plus
  candidate settings (`--configs`) for choosing its defaults;
- `torch`: a plain PyTorch + transformers loop (AdamW 5e-5 constant, 3 epochs, batch 32, each shuffled
  batch padded to its longest text, at most 128 tokens), when torch and transformers are installed;
- `keras_hub`: KerasHub's `BertTextClassifier` from the same checkpoint with its own preprocessor
  (fixed length 128), compiled with KerasHub's defaults (Adam 5e-5), 3 epochs, batch 32.

Tasks (`tfptm.datasets.docstring_task`, REAL text read from installed sources; labels are the package
each docstring summary was read from): `stdlib` (8 standard-library packages) and `libraries`
(NumPy, scikit-learn, Matplotlib, Keras). Every framework trains on the same training texts and is
tested on the same held-out texts; tfptm's recipe holds out 10% of its training texts for validation
(early stopping and best epoch), as it does for users.

Reported per run: accuracy, macro-F1, training examples/s (epochs run x training texts / wall time of
the training loop, validation included for tfptm) and wall time; the JSON also holds per-seed values.

Run: `.venv/bin/python bench/text_finetune_real.py --configs default,previous_defaults,no_length_buckets`
(about 30 minutes on 2 cores);
`--quick` checks the script in a few minutes.
"""

import argparse
import dataclasses
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

from common import minilm_dir, save  # noqa: E402

#: candidate settings of the text recipe: name -> --set overrides on top of the bundled recipe
CONFIGS = {
    "default": [],
    "previous_defaults": ["head.pooling=first", "finetune.learning_rate=5.0e-5", "finetune.epochs=3"],
    "cls_pooling": ["head.pooling=first"],
    "lr_5e-5": ["finetune.learning_rate=5.0e-5"],
    "no_layerwise_decay": ["optimizer.layerwise_decay=null"],
    "no_length_buckets": ["data.length_buckets=false"],
    "no_validation": ["data.validation_fraction=0", "finetune.patience=null", "finetune.monitor=null",
                      "finetune.epochs=4"],
    "monitor_val_loss": ["finetune.monitor=val_loss"],
}


def parse(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", default="stdlib,libraries")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--configs", default="default", help=f"comma-separated, from: {', '.join(CONFIGS)}")
    parser.add_argument("--peers", default="torch,keras_hub", help="torch and/or keras_hub, or none")
    parser.add_argument("--keras-hub-seeds", type=int, default=1, help="seeds for keras_hub (fixed length 128 is slow)")
    parser.add_argument("--keras-hub-tasks", default="stdlib", help="tasks keras_hub runs on (comma-separated)")
    parser.add_argument("--train-per-class", type=int, default=60)
    parser.add_argument("--test-per-class", type=int, default=60)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--name", default="text_finetune_real", help="results file name")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.tasks, args.seeds, args.train_per_class, args.test_per_class = "stdlib", 1, 12, 10
        args.name = "text_finetune_real_quick"
    return args



def run_tfptm(task_dir, sets, seed, quick):
    """The bundled text recipe through `run_recipe`, as `tfptm train` runs it."""
    from tfptm.recipes.bundled import bundled_path
    from tfptm.jobs.train import run_recipe
    from tfptm.recipes.validate import load_recipe

    overrides = [f"backbone.name={minilm_dir()}", f"data.path={task_dir / 'train.csv'}",
                 f"data.test_path={task_dir / 'test.csv'}", f"seed={seed}", "export.saved_model=false", *sets]
    if quick:
        overrides += ["finetune.epochs=1"]
    with tempfile.TemporaryDirectory() as out:
        summary = run_recipe(load_recipe(bundled_path("text_minilm"), sets=overrides), Path(out) / "run",
                             progress=lambda message: print(f"    {message}", flush=True))
    metrics, training = summary["metrics"]["model"], summary["training"]
    return {"accuracy": metrics["accuracy"], "f1_macro": metrics["f1_macro"], "epochs": training["epochs"],
            "train_seconds": training["seconds"], "examples_per_second": training["examples_per_second"],
            # the training steps alone (validation, backups and tracing-free bookkeeping left out): what the
            # PyTorch and keras-hub loops below measure, as they neither validate nor back up
            "training_examples_per_second": training.get("training_examples_per_second",
                                                         training["examples_per_second"])}


def run_torch(task, seed, threads, epochs=3, batch=32, max_length=128, learning_rate=5e-5):
    """The 30-line PyTorch loop: AdamW constant rate, shuffled batches padded to their longest text."""
    import torch
    from sklearn.metrics import f1_score
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    directory = minilm_dir()
    tokenizer = AutoTokenizer.from_pretrained(directory)
    model = AutoModelForSequenceClassification.from_pretrained(directory, num_labels=len(task.class_names))
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate)
    texts, labels = list(task.train[0]), task.train[1]
    rng = np.random.default_rng(seed)
    padded = []
    start = time.perf_counter()
    model.train()
    for _ in range(epochs):
        order = rng.permutation(len(texts))
        for i in range(0, len(order), batch):
            rows = order[i: i + batch]
            encoded = tokenizer([texts[r] for r in rows], padding="longest", truncation=True, max_length=max_length,
                                return_tensors="pt")
            padded.append(int(encoded["input_ids"].shape[1]))
            loss = model(**encoded, labels=torch.tensor(labels[rows], dtype=torch.long)).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    seconds = time.perf_counter() - start
    model.eval()
    predictions = []
    with torch.no_grad():
        test = list(task.test[0])
        for i in range(0, len(test), 64):
            encoded = tokenizer(test[i: i + 64], padding="longest", truncation=True, max_length=max_length,
                                return_tensors="pt")
            predictions.append(model(**encoded).logits.argmax(-1).numpy())
    predicted = np.concatenate(predictions)
    return {"accuracy": float(np.mean(predicted == task.test[1])),
            "f1_macro": float(f1_score(task.test[1], predicted, average="macro")), "epochs": epochs,
            "train_seconds": seconds, "examples_per_second": epochs * len(texts) / seconds,
            "training_examples_per_second": epochs * len(texts) / seconds,
            "mean_padded_length": float(np.mean(padded))}


def run_keras_hub(task, seed, epochs=3, batch=32, sequence_length=128):
    """KerasHub's own classifier and preprocessor, compiled with its defaults."""
    import keras
    import keras_hub
    from sklearn.metrics import f1_score

    keras.utils.set_random_seed(seed)
    classifier = keras_hub.models.TextClassifier.from_preset(minilm_dir(), num_classes=len(task.class_names),
                                                             sequence_length=sequence_length)
    start = time.perf_counter()
    classifier.fit(x=list(task.train[0]), y=task.train[1], batch_size=batch, epochs=epochs, verbose=0)
    seconds = time.perf_counter() - start
    predicted = classifier.predict(list(task.test[0]), batch_size=64, verbose=0).argmax(-1)
    return {"accuracy": float(np.mean(predicted == task.test[1])),
            "f1_macro": float(f1_score(task.test[1], predicted, average="macro")), "epochs": epochs,
            "train_seconds": seconds, "examples_per_second": epochs * len(task.train[0]) / seconds,
            "training_examples_per_second": epochs * len(task.train[0]) / seconds}


def summarize(runs):
    keys = ("accuracy", "f1_macro", "examples_per_second", "training_examples_per_second", "train_seconds")
    out = {}
    for key in keys:
        values = [r[key] for r in runs]
        out[key] = {"mean": statistics.mean(values), "stdev": statistics.stdev(values) if len(values) > 1 else 0.0}
    return out


def main(argv=None):
    args = parse(argv)
    import tensorflow as tf

    import tfptm

    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    peers = [p for p in args.peers.split(",") if p and p != "none"]
    configs = args.configs.split(",")
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown:
        sys.exit(f"bench: unknown configs {unknown}; expected some of {', '.join(CONFIGS)}")
    started = time.perf_counter()
    results, tasks_info = {}, {}
    with tempfile.TemporaryDirectory() as data_dir:
        for name in args.tasks.split(","):
            task = tfptm.datasets.docstring_task(name, train_per_class=args.train_per_class, validation_per_class=0,
                                                 test_per_class=args.test_per_class, seed=0)
            task = dataclasses.replace(task, unlabelled=[])
            task_dir = task.write_csv(Path(data_dir) / name)["train"].parent
            tasks_info[name] = task.info
            print(f"task {name}: {len(task.train[0])} training, {len(task.test[0])} test texts, "
                  f"{len(task.class_names)} classes", flush=True)
            rows = {}

            def record(key, run):
                rows.setdefault(key, []).append(run)
                print(f"    {key:<28} acc {run['accuracy']:.3f}  F1 {run['f1_macro']:.3f}  "
                      f"{run['examples_per_second']:.1f} ex/s (steps alone {run['training_examples_per_second']:.1f})  "
                      f"{run['train_seconds']:.0f} s", flush=True)

            for seed in range(args.seeds):
                for config in configs:
                    print(f"  tfptm[{config}] seed {seed}", flush=True)
                    record(f"tfptm[{config}]", run_tfptm(task_dir, CONFIGS[config], seed, args.quick))
                for peer in [p for p in peers if p != "keras_hub" or (seed < args.keras_hub_seeds
                                                                      and name in args.keras_hub_tasks.split(","))]:
                    print(f"  {peer} seed {seed}", flush=True)
                    record(peer, run_torch(task, seed, args.threads) if peer == "torch" else run_keras_hub(task, seed))
            results[name] = {key: {"runs": runs, **summarize(runs)} for key, runs in rows.items()}
    total = time.perf_counter() - started
    print(f"\n{'task':<10} {'run':<28} {'accuracy':>15} {'macro F1':>15} {'run ex/s':>9} {'steps ex/s':>11}")
    for name, rows in results.items():
        torch_rate = rows.get("torch", {}).get("training_examples_per_second", {}).get("mean")
        for key, row in rows.items():
            rate = row["training_examples_per_second"]["mean"]
            ratio = f"  {rate / torch_rate:.2f}x torch" if torch_rate else ""
            print(f"{name:<10} {key:<28} {row['accuracy']['mean']:.3f} +- {row['accuracy']['stdev']:.3f} "
                  f"{row['f1_macro']['mean']:.3f} +- {row['f1_macro']['stdev']:.3f} "
                  f"{row['examples_per_second']['mean']:>9.1f} {rate:>11.1f}{ratio}")
    settings = {**vars(args), "tasks": tasks_info, "configs": {c: CONFIGS[c] for c in configs}}
    path = save(args.name, settings, {"results": results, "total_seconds": total})
    print(f"saved {path}")


if __name__ == "__main__":
    main()
