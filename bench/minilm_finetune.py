"""Fine-tuning speed of all-MiniLM-L6-v2 (22.7M parameters) for text classification on CPU.

Side by side in one run, on the same checkpoint, batch and thread count:
- `keras_hub`: KerasHub's own `BertTextClassifier` compiled with defaults and trained with `fit`;
- `tfptm`: `tfptm.build_model` + `tfptm.finetune` (full fine-tuning) with `jit_compile` as tfptm sets it;
- `torch`: Hugging Face `AutoModelForSequenceClassification` in PyTorch eager, AdamW, when torch
  and transformers are installed (`pip install torch==2.13.0 transformers`; not a tfptm dependency).

Fixed length: every batch is `--batch` sequences of exactly `--sequence-length` tokens.
Variable length: real English sentences (the docstrings of Python's standard library),
padded per batch by each framework's usual way (tfptm: `tfptm.data.text_batches`
when present; torch: tokenizer `padding="longest"`), up to `--sequence-length`.

Run: `.venv/bin/python bench/minilm_finetune.py` (add `--quick` for a smoke run).
"""

import argparse
import importlib.util
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

from common import minilm_dir, save  # noqa: E402



def real_sentences(count, seed=0):
    """Sentences from the standard library's docstrings: real English of varied length."""
    import pydoc
    import re

    texts = []
    for name in sorted(sys.stdlib_module_names):
        if name.startswith("_") or name in ("antigravity", "this", "idlelib", "turtledemo", "tkinter"):
            continue
        try:
            module = __import__(name)
        except Exception:
            continue
        for sentence in re.split(r"(?<=[.!?])\s+", pydoc.getdoc(module) or ""):
            sentence = " ".join(sentence.split())
            if len(sentence.split()) >= 3:
                texts.append(sentence)
    rng = np.random.default_rng(seed)
    texts = [texts[i] for i in rng.permutation(len(texts))]
    while len(texts) < count:
        texts = texts + texts
    return texts[:count]


def step_timer():
    """A Keras callback that records the wall time at the end of every training batch."""
    import keras

    class StepTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.times = []

        def on_train_batch_end(self, batch, logs=None):
            self.times.append(time.perf_counter())

    return StepTimer()


def steady_rate(timer, batch, warmup):
    """Examples per second over the batches after the first `warmup` (tracing, caches)."""
    times = timer.times[warmup - 1 :]
    seconds = times[-1] - times[0]
    return {"examples_per_second": batch * (len(times) - 1) / seconds, "seconds": seconds}


def keras_hub_classifier(directory, learning_rate):
    import keras
    import keras_hub

    backbone = keras_hub.models.BertBackbone.from_preset(directory)
    classifier = keras_hub.models.BertTextClassifier(backbone, num_classes=2, preprocessor=None)
    classifier.compile(optimizer=keras.optimizers.AdamW(learning_rate))
    return classifier


def tfptm_classifier(directory, learning_rate):
    import tfptm

    backbone, _ = tfptm.backbones.presets.load_preset(directory)
    return tfptm.build_model(
        backbone, tfptm.Head("multiclass", num_classes=2, pooling="first"), optimizer="adamw", learning_rate=learning_rate
    )


def tokenize_fixed(directory, texts, sequence_length):
    import tfptm

    _, preprocessor = tfptm.backbones.presets.load_preset(directory, sequence_length=sequence_length)
    return {k: v.numpy() for k, v in preprocessor(texts).items()}


def batches(features, labels, batch):
    import tensorflow as tf

    data = tf.data.Dataset.from_tensor_slices((features, labels)).batch(batch, drop_remainder=True).cache()
    return data.repeat().prefetch(tf.data.AUTOTUNE)


def bench_keras_hub(directory, features, labels, args):
    import keras

    keras.utils.set_random_seed(0)
    model = keras_hub_classifier(directory, 2e-5)
    timer = step_timer()
    data = batches(features, labels, args.batch)
    model.fit(data, steps_per_epoch=args.warmup + args.steps, epochs=1, callbacks=[timer], verbose=0)
    return steady_rate(timer, args.batch, args.warmup)


def bench_tfptm(directory, features, labels, args, jit_compile=False, texts=None):
    """With `texts`, batches come from `tfptm.data.text_batches`: padded per batch, not to the maximum."""
    import keras

    import tfptm

    keras.utils.set_random_seed(0)
    model = tfptm_classifier(directory, 2e-5)
    if jit_compile:
        model.compile_from_config({**model.get_compile_config(), "jit_compile": True})
    timer = step_timer()
    if texts is None:
        data = batches(features, labels, args.batch)
    else:
        _, preprocessor = tfptm.backbones.presets.load_preset(directory)
        data = tfptm.data.text_batches(
            texts, labels, tokenizer=preprocessor, max_length=args.sequence_length, batch_size=args.batch,
            outputs=model.input, shuffle=False,
        ).repeat()
    data = data.take(args.warmup + args.steps)
    tfptm.finetune(model, data, tfptm.training.full(1, 2e-5), callbacks=[timer], verbose=0)
    return steady_rate(timer, args.batch, args.warmup)


def bench_torch(directory, texts, labels, args, fixed):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    tokenizer = AutoTokenizer.from_pretrained(directory)
    model = AutoModelForSequenceClassification.from_pretrained(directory, num_labels=2)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-5)
    padding = "max_length" if fixed else "longest"
    batches = []
    for start in range(0, len(texts) - args.batch + 1, args.batch):
        encoded = tokenizer(
            list(texts[start : start + args.batch]), padding=padding, truncation=True,
            max_length=args.sequence_length, return_tensors="pt",
        )
        batches.append((encoded, torch.tensor(labels[start : start + args.batch], dtype=torch.long)))

    def step(i):
        encoded, y = batches[i % len(batches)]
        optimizer.zero_grad()
        loss = model(**encoded, labels=y).loss
        loss.backward()
        optimizer.step()

    for i in range(args.warmup):
        step(i)
    start = time.perf_counter()
    for i in range(args.steps):
        step(args.warmup + i)
    seconds = time.perf_counter() - start
    tokens = int(sum(int(b[0]["attention_mask"].shape[1]) for b in batches) / len(batches))
    return {"examples_per_second": args.batch * args.steps / seconds, "seconds": seconds, "mean_padded_length": tokens}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--sequence-length", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--quick", action="store_true", help="3 timed steps: checks the script, not the speed")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.warmup = 3, 1

    import tensorflow as tf

    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    directory = minilm_dir()
    count = args.batch * max(args.steps, 8)
    texts = real_sentences(count)
    labels = np.array([len(t.split()) % 2 for t in texts], dtype="int32")
    fixed = tokenize_fixed(directory, texts, args.sequence_length)
    results = {"fixed_length": {}}
    results["fixed_length"]["keras_hub"] = bench_keras_hub(directory, fixed, labels, args)
    results["fixed_length"]["tfptm"] = bench_tfptm(directory, fixed, labels, args)
    results["fixed_length"]["tfptm_xla"] = bench_tfptm(directory, fixed, labels, args, jit_compile=True)
    have_torch = all(importlib.util.find_spec(m) for m in ("torch", "transformers"))
    if have_torch:
        results["fixed_length"]["torch"] = bench_torch(directory, texts, labels, args, fixed=True)
    else:
        results["fixed_length"]["torch"] = "not installed: pip install torch==2.13.0 transformers"
    results["variable_length"] = {"tfptm": bench_tfptm(directory, None, labels, args, texts=texts),
                                  "tfptm_xla": bench_tfptm(directory, None, labels, args, jit_compile=True, texts=texts)}
    if have_torch:
        results["variable_length"]["torch"] = bench_torch(directory, texts, labels, args, fixed=False)
    for section, rows in results.items():
        print(f"{section.replace('_', ' ') + ' (max ' + str(args.sequence_length) + ')':<32}examples/s")
        for name, row in rows.items():
            print(f"  {name:<30}{row['examples_per_second']:.1f}" if isinstance(row, dict) else f"  {name:<30}{row}")
    path = save("minilm_finetune", vars(args), results)
    print(f"saved {path}")


if __name__ == "__main__":
    main()
