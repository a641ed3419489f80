"""Compression side by side: size, LiteRT latency and accuracy of every tfptm compression, and PyTorch's.

Two models, each trained here first (the "teacher"):
- text: all-MiniLM-L6-v2 fine-tuned on the REAL `libraries` task of `tfptm.datasets.docstring_task`
  (docstring summaries read from the installed NumPy, scikit-learn, Matplotlib and Keras; 4 classes),
  CLS pooling, sequence length 64;
- image: a small CNN on scikit-learn's digits (10 classes).

Variants, each exported to TFLite and run with LiteRT (`ai-edge-litert`):
- `float32`, `dynamic` (int8 weights), `int8` (post-training full integer, 300 training inputs to calibrate);
- `qat_int8`: the teacher after one epoch of quantization-aware training (`tfptm.training.qat`), int8 with
  its learned ranges (int8 matmuls and convolutions; LayerNorm, softmax and residual adds float);
- `magnitude_50` / `magnitude_75`: `MagnitudePruning` to 50% / 75% zero weights during 2 epochs (float32 TFLite;
  zeros compress, so the gzip size is given too: LiteRT has no sparse kernels for them, so no speed-up);
- `structured_ff50` / `structured_ff75` (text): `prune_transformer` keeps 50% / 25% of the feed-forward units,
  then 1 epoch of recovery; `structured_3layers`: every other Transformer layer dropped, 1 epoch of recovery;
- `student`: a smaller model distilled from the teacher with `tfptm.Distiller` (text: the teacher's layers
  0, 2, 4; image: a CNN with a quarter of the filters), float32 and dynamic.
For the text model the PyTorch alternative runs the SAME fine-tuned weights (ported into Hugging Face
`BertModel` + the same CLS head; checked against Keras) in fp32 eager and with
`torch.ao.quantization.quantize_dynamic` (int8 Linear layers), in the same run.

Per variant: file size, accuracy on the held-out test split, top-1 agreement with the float Keras teacher,
and latency per example at batch 1 with 1 and with 2 threads (median over `--repeats` calls cycling
through test examples, after warm-up; the lowest of 3 such medians).

Run: `.venv/bin/python bench/compress.py` (about 30 minutes on 2 cores); `--quick` for a smoke run.
Writes bench/results/compress.json (compress_quick.json with --quick).
"""

import argparse
import gzip
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

THREADS = (1, 2)
ROUNDS = 3



def _single(x, i):
    return {k: v[i : i + 1] for k, v in x.items()} if isinstance(x, dict) else x[i : i + 1]


def _count(x):
    return len(next(iter(x.values()))) if isinstance(x, dict) else len(x)


def litert_latency_ms(path, x, threads, repeats):
    """Median ms of one batch-1 call, cycling through the first examples of `x` (the lowest of `ROUNDS` medians)."""
    from ai_edge_litert.interpreter import Interpreter

    from tfptm.export.litert import prepare_inputs

    runner = Interpreter(model_path=str(path), num_threads=threads).get_signature_runner()
    feeds = [prepare_inputs(runner, _single(x, i)) for i in range(min(16, _count(x)))]
    for feed in feeds[:5]:
        runner(**feed)
    medians = []
    for _ in range(ROUNDS):  # the least disturbed of a few rounds: the machine is shared with nothing, but not quiet
        times = []
        for r in range(repeats):
            start = time.perf_counter()
            runner(**feeds[r % len(feeds)])
            times.append(time.perf_counter() - start)
        medians.append(statistics.median(times))
    return 1000 * min(medians)


def measure(path, x_test, y_test, reference, args):
    """Size, accuracy, agreement with the float teacher and batch-1 latency of one .tflite file."""
    from tfptm.export.litert import float_ops, run_tflite

    probs = run_tflite(path, x_test, batch_size=32)
    data = Path(path).read_bytes()
    row = {
        "size_mb": len(data) / 1e6,
        "gzip_mb": len(gzip.compress(data, 6)) / 1e6,
        "accuracy": float((probs.argmax(1) == y_test).mean()),
        "agreement_with_teacher": float((probs.argmax(1) == reference.argmax(1)).mean()),
    }
    for threads in THREADS:
        row[f"ms_{threads}t"] = litert_latency_ms(path, x_test, threads, args.repeats)
    ops = float_ops(data)
    if ops is not None:
        row["float_ops"] = sum(ops.values())
    return row


def export(model, out_dir, name, quantization, representative=None):
    import tfptm

    return tfptm.export.tflite(model, Path(out_dir) / f"{name}.{quantization}.tflite", quantization,
                               representative_data=representative).path


def copy_model(model, out_dir, name):
    """An independent copy (through a .keras file) with the same compile settings."""
    import tfptm

    path = Path(out_dir) / f"{name}.keras"
    model.save(path)
    return tfptm.rundir.load_model(path)


def compile_for(model, learning_rate):
    import keras

    model.compile(optimizer=keras.optimizers.AdamW(learning_rate), loss="sparse_categorical_crossentropy", metrics=["accuracy"])


def variants(teacher, data, out_dir, args, kind, student_fn, structured=True):
    """Every compression of `teacher`, exported and measured: `{variant: row}`."""
    import keras

    import tfptm
    from tfptm.compress import HeadDistillation, MagnitudePruning, prune_transformer, quantization_aware, sparsity

    x_train, y_train, x_test, y_test, batch, epochs = data
    reference = teacher.predict(x_test, verbose=0, batch_size=32)
    rows = {"keras_float": {"accuracy": float((reference.argmax(1) == y_test).mean()), "agreement_with_teacher": 1.0}}

    def add(name, model, quantization, representative=None, **extra):
        started = time.perf_counter()
        path = export(model, out_dir, name, quantization, representative)
        rows[f"{name}:{quantization}"] = {**measure(path, x_test, y_test, reference, args), **extra,
                                          "export_seconds": time.perf_counter() - started}
        print(f"  {name}:{quantization} {rows[f'{name}:{quantization}']}", flush=True)

    representative = (x_train if not isinstance(x_train, dict) else x_train)
    for quantization in ("float32", "dynamic", "int8"):
        add("teacher", teacher, quantization, representative)

    qat = copy_model(teacher, out_dir, "qat")
    quantization_aware(qat).calibrate(x_train, steps=19)  # smoothing scales and first ranges
    compile_for(qat, args.qat_learning_rate)
    started = time.perf_counter()
    qat.fit(x_train, y_train, batch_size=batch, epochs=1, verbose=0, shuffle=True)
    keras_qat = qat.predict(x_test, verbose=0, batch_size=32)
    add("qat", qat, "int8", qat_seconds=time.perf_counter() - started,
        keras_qat_accuracy=float((keras_qat.argmax(1) == y_test).mean()))
    rows["qat:int8"]["agreement_with_keras_qat"] = float(
        (tfptm.export.run_tflite(Path(out_dir) / "qat.int8.tflite", x_test).argmax(1) == keras_qat.argmax(1)).mean())

    for target in (0.5, 0.75):
        pruned = copy_model(teacher, out_dir, f"magnitude_{int(target * 100)}")
        compile_for(pruned, args.learning_rate / 2)
        steps = 2 * int(np.ceil(_count(x_train) / batch))
        pruned.fit(x_train, y_train, batch_size=batch, epochs=2, verbose=0, shuffle=True,
                   callbacks=[MagnitudePruning(target, end_step=int(0.7 * steps), frequency=max(1, steps // 20))])
        add(f"magnitude_{int(target * 100)}", pruned, "float32", sparsity=round(sparsity(pruned)["sparsity"], 4))

    if structured:
        for name, kwargs in (("structured_ff50", {"feedforward": 0.5}), ("structured_ff75", {"feedforward": 0.75}),
                             ("structured_3layers", {"drop_layers": [1, 3, 5]})):
            smaller = prune_transformer(teacher, **kwargs)
            before = float((smaller.predict(x_test, verbose=0, batch_size=32).argmax(1) == y_test).mean())
            compile_for(smaller, args.learning_rate)
            smaller.fit(x_train, y_train, batch_size=batch, epochs=1, verbose=0, shuffle=True)
            add(name, smaller, "float32", parameters=smaller.count_params(), accuracy_before_recovery=before)
            add(name, smaller, "dynamic", parameters=smaller.count_params())

    student = student_fn()
    with student.distribute_strategy.scope():
        distiller = tfptm.Distiller(teacher, student, HeadDistillation(2.0), student_loss_weight=0.5)
        distiller.compile(keras.optimizers.AdamW(args.learning_rate if kind == "text" else 1e-3))
    distiller.fit(x_train, y_train, batch_size=batch, epochs=epochs, verbose=0, shuffle=True)
    add("student", student, "float32", parameters=student.count_params())
    add("student", student, "dynamic", parameters=student.count_params())
    rows["keras_float"]["parameters"] = teacher.count_params()
    return rows


def text_bench(args, out_dir):
    import keras
    import tensorflow as tf

    import tfptm
    from tfptm.compress import prune_transformer

    keras.utils.set_random_seed(0)
    task = tfptm.datasets.docstring_task("libraries", train_per_class=args.train_per_class,
                                         test_per_class=args.test_per_class, seed=0)
    backbone, preprocessor = tfptm.backbones.presets.load_preset(minilm_dir(), sequence_length=64)
    teacher = tfptm.build_model(backbone, tfptm.Head("multiclass", num_classes=len(task.class_names), pooling="first"))

    def tokenize(texts):
        return {k: v.numpy() for k, v in preprocessor(tf.constant(list(texts))).items()}

    (train_texts, y_train), (test_texts, y_test) = task.train, task.test
    x_train, x_test = tokenize(train_texts), tokenize(test_texts)
    started = time.perf_counter()
    data = tf.data.Dataset.from_tensor_slices((x_train, y_train)).shuffle(len(y_train), seed=0).batch(32)
    tfptm.finetune(teacher, data, tfptm.training.full(args.epochs, args.learning_rate), verbose=0)
    fit_seconds = time.perf_counter() - started
    rows = variants(teacher, (x_train, y_train, x_test, y_test, 32, args.epochs), out_dir, args, "text",
                    lambda: prune_transformer(teacher, drop_layers=[1, 3, 5]))
    rows.update(torch_rows(teacher, x_test, y_test, rows, args))
    return {"task": task.info, "train": len(y_train), "test": len(y_test), "teacher_fit_seconds": fit_seconds,
            "variants": rows}


def image_bench(args, out_dir):
    import keras

    import tfptm

    keras.utils.set_random_seed(0)
    images, labels = tfptm.datasets.load_digits()
    (x_train, y_train), (x_test, y_test) = tfptm.data.train_test_split(images, labels, test_fraction=0.3, seed=0)

    def cnn(filters):
        backbone = tfptm.backbones.get("vgg_cnn", input_shape=(8, 8, 1), filters=filters, input_scale=1 / 16)
        return tfptm.build_model(backbone, tfptm.Head("multiclass", num_classes=10, pooling="flatten"))

    teacher = cnn((32, 64))
    epochs = 3 if args.quick else 15
    tfptm.finetune(teacher, tfptm.data.from_arrays(x_train, y_train, batch_size=32, seed=0),
                   tfptm.training.full(epochs, 1e-3), verbose=0)
    args_image = argparse.Namespace(**{**vars(args), "qat_learning_rate": 1e-4, "learning_rate": 1e-3})
    rows = variants(teacher, (x_train.astype("float32"), y_train, x_test.astype("float32"), y_test, 32, epochs),
                    out_dir, args_image, "image", lambda: cnn((8, 16)), structured=False)
    return {"train": len(y_train), "test": len(y_test), "variants": rows}


def torch_rows(teacher, x_test, y_test, rows, args):
    """The same fine-tuned weights in PyTorch: fp32 eager and torch.ao dynamic int8, batch 1, 1 and 2 threads."""
    try:
        import torch
        from transformers import BertConfig, BertModel
    except ImportError as error:
        return {"torch": {"skipped": f"{error.name} is not installed"}}
    model = TorchClassifier(BertModel(BertConfig.from_pretrained(minilm_dir()), add_pooling_layer=False), teacher)
    model.eval()
    inputs = [torch.tensor(x_test[k], dtype=torch.long) for k in ("token_ids", "padding_mask", "segment_ids")]
    reference = teacher.predict(x_test, verbose=0, batch_size=32)
    out = {}
    quantized = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    for name, module in (("torch_fp32", model), ("torch_dynamic_int8", quantized)):
        with torch.inference_mode():
            probs = torch.cat([module(*[t[i : i + 32] for t in inputs]) for i in range(0, len(y_test), 32)]).numpy()
        path = Path(tempfile.mkdtemp()) / f"{name}.pt"
        torch.save(module.state_dict(), path)
        row = {"size_mb": path.stat().st_size / 1e6, "accuracy": float((probs.argmax(1) == y_test).mean()),
               "agreement_with_teacher": float((probs.argmax(1) == reference.argmax(1)).mean()),
               "max_prob_diff_vs_keras": float(np.abs(probs - reference).max())}
        for threads in THREADS:
            torch.set_num_threads(threads)
            times = []
            with torch.inference_mode():
                for r in range(args.repeats + 5):
                    i = r % 16
                    start = time.perf_counter()
                    module(*[t[i : i + 1] for t in inputs])
                    times.append(time.perf_counter() - start)
            row[f"ms_{threads}t"] = 1000 * statistics.median(times[5:])
        out[name] = row
        print(f"  {name} {row}", flush=True)
    return out


def TorchClassifier(bert, keras_model):
    """Hugging Face `BertModel` + CLS + Linear + softmax, carrying the Keras model's fine-tuned weights."""
    import torch

    from tfptm.compress.pruning import all_layers

    layers = {layer.name: layer for layer in all_layers(keras_model)}
    state = {}

    def put(key, value):
        state[key] = torch.tensor(np.asarray(value))

    put("embeddings.word_embeddings.weight", layers["token_embedding"].embeddings.numpy())
    put("embeddings.position_embeddings.weight", layers["position_embedding"].position_embeddings.numpy())
    put("embeddings.token_type_embeddings.weight", layers["segment_embedding"].embeddings.numpy())
    put("embeddings.LayerNorm.weight", layers["embeddings_layer_norm"].gamma.numpy())
    put("embeddings.LayerNorm.bias", layers["embeddings_layer_norm"].beta.numpy())
    for i in range(bert.config.num_hidden_layers):
        block, prefix = layers[f"transformer_layer_{i}"], f"encoder.layer.{i}."
        attention = block._self_attention_layer
        for name, dense in (("attention.self.query", attention.query_dense), ("attention.self.key", attention.key_dense),
                            ("attention.self.value", attention.value_dense)):
            kernel = dense.kernel.numpy()
            put(prefix + name + ".weight", kernel.reshape(kernel.shape[0], -1).T)
            put(prefix + name + ".bias", dense.bias.numpy().reshape(-1))
        kernel = attention.output_dense.kernel.numpy()
        put(prefix + "attention.output.dense.weight", kernel.reshape(-1, kernel.shape[-1]).T)
        put(prefix + "attention.output.dense.bias", attention.output_dense.bias.numpy())
        put(prefix + "attention.output.LayerNorm.weight", block._self_attention_layer_norm.gamma.numpy())
        put(prefix + "attention.output.LayerNorm.bias", block._self_attention_layer_norm.beta.numpy())
        put(prefix + "intermediate.dense.weight", block._feedforward_intermediate_dense.kernel.numpy().T)
        put(prefix + "intermediate.dense.bias", block._feedforward_intermediate_dense.bias.numpy())
        put(prefix + "output.dense.weight", block._feedforward_output_dense.kernel.numpy().T)
        put(prefix + "output.dense.bias", block._feedforward_output_dense.bias.numpy())
        put(prefix + "output.LayerNorm.weight", block._feedforward_layer_norm.gamma.numpy())
        put(prefix + "output.LayerNorm.bias", block._feedforward_layer_norm.beta.numpy())
    missing = bert.load_state_dict(state, strict=False).missing_keys
    if [k for k in missing if "position_ids" not in k]:
        raise RuntimeError(f"port to PyTorch: weights missing for {missing}")
    head = torch.nn.Linear(*layers["head_logits"].kernel.shape)
    head.weight.data = torch.tensor(layers["head_logits"].kernel.numpy().T)
    head.bias.data = torch.tensor(layers["head_logits"].bias.numpy())

    class Classifier(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.bert, self.head = bert, head

        def forward(self, token_ids, padding_mask, segment_ids):
            hidden = self.bert(input_ids=token_ids, attention_mask=padding_mask, token_type_ids=segment_ids).last_hidden_state
            return torch.softmax(self.head(hidden[:, 0]), dim=-1)

    return Classifier()


def table(name, report):
    rows = [f"{name}", f"{'variant':<28} {'MB':>7} {'gzMB':>7} {'ms 1t':>7} {'ms 2t':>7} {'acc':>6} {'agree':>6}"]
    for variant, v in report["variants"].items():
        if "skipped" in v:
            rows.append(f"{variant:<28} skipped: {v['skipped']}")
            continue
        rows.append(f"{variant:<28} {v.get('size_mb', float('nan')):>7.2f} {v.get('gzip_mb', float('nan')):>7.2f} "
                    f"{v.get('ms_1t', float('nan')):>7.2f} {v.get('ms_2t', float('nan')):>7.2f} "
                    f"{v['accuracy']:>6.3f} {v['agreement_with_teacher']:>6.3f}")
    return "\n".join(rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny data and few repeats: a smoke run")
    parser.add_argument("--only", choices=("image", "text"), default=None)
    parser.add_argument("--repeats", type=int, default=None)
    args = parser.parse_args()
    args.repeats = args.repeats or (10 if args.quick else 100)
    args.train_per_class = 16 if args.quick else 150
    args.test_per_class = 60
    args.epochs = 1 if args.quick else 3
    args.learning_rate, args.qat_learning_rate = 5e-5, 1e-5
    results = {}
    with tempfile.TemporaryDirectory() as out_dir:
        if args.only in (None, "image"):
            results["image"] = image_bench(args, out_dir)
            print(table("digits CNN", results["image"]), flush=True)
        if args.only in (None, "text"):
            results["text"] = text_bench(args, out_dir)
            print(table("MiniLM on the libraries docstring task", results["text"]), flush=True)
    print("wrote", save("compress_quick" if args.quick else "compress", vars(args), results))


if __name__ == "__main__":
    main()
