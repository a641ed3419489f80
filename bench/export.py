"""Keras float vs every TFLite variant, for an image and a text classifier: size, latency, accuracy.

- image: a small CNN trained on scikit-learn's digits (all ten classes), evaluated on a held-out split;
- text: all-MiniLM-L6-v2 fine-tuned briefly on the offline sentiment task of
  `tfptm.datasets.reviews` (disjoint train/test vocabulary), sequence length 64.

Each model goes through `tfptm.export.tflite_report` (float32, float16, dynamic-range,
int8 with a representative set drawn from the training data): size, Select-TF-ops use,
top-1 agreement and accuracy delta against Keras, largest output difference, and LiteRT
latency per example (median of repeated runs of one batch, on `--threads` threads).
For the text model, PyTorch eager inference on the same checkpoint (Hugging Face
`AutoModelForSequenceClassification`), same batch, sequence length and threads, is timed
when torch and transformers are installed; otherwise that column is skipped and said so.

Run: `.venv/bin/python bench/export.py` (a few minutes on 2 cores), `--quick` for a smoke run.
Writes bench/results/export.json (export_quick.json with --quick).
"""

import argparse
import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402

from common import median_seconds, minilm_dir, save  # noqa: E402

VARIANTS = ("float32", "float16", "dynamic", "int8")


def image_report(args, out_dir):
    import tfptm

    images, labels = tfptm.datasets.load_digits()
    (x_train, y_train), (x_test, y_test) = tfptm.data.train_test_split(images, labels, test_fraction=0.3, seed=0)
    backbone = tfptm.backbones.get("vgg_cnn", input_shape=(8, 8, 1), filters=(32, 64), input_scale=1 / 16)
    model = tfptm.build_model(backbone, tfptm.Head("multiclass", num_classes=10, pooling="flatten"))
    epochs = 3 if args.quick else 15
    tfptm.finetune(model, tfptm.data.from_arrays(x_train, y_train, batch_size=32, seed=0), tfptm.training.full(epochs, 1e-3), verbose=0)
    return tfptm.export.tflite_report(
        model, x_test, y_test, representative_data=x_train, out_dir=out_dir, name="digits_cnn",
        variants=VARIANTS, threads=args.threads, repeats=args.repeats, batch_size=args.batch,
        metadata={"task": "multiclass", "image_scale": 16 / 255},
    )



def text_report(args, out_dir):
    import keras
    import tensorflow as tf
    import tfptm
    from tfptm.datasets.reviews import load_reviews

    keras.utils.set_random_seed(0)
    backbone, preprocessor = tfptm.backbones.presets.load_preset(minilm_dir(), sequence_length=args.sequence_length)
    model = tfptm.build_model(backbone, tfptm.Head("multiclass", num_classes=2, pooling="first"))

    def tokenize(texts):
        return {k: v.numpy() for k, v in preprocessor(tf.constant(texts)).items()}

    (train_texts, y_train), (test_texts, y_test) = load_reviews("train", 64, seed=0), load_reviews("test", args.eval_texts, seed=1)
    x_train, x_test = tokenize(train_texts), tokenize(test_texts)
    data = tf.data.Dataset.from_tensor_slices((x_train, y_train)).shuffle(64, seed=0).batch(16)
    epochs = 1 if args.quick else 3
    tfptm.finetune(model, data, tfptm.training.partial(epochs, top_blocks=2, learning_rate=1e-4), verbose=0)
    variants = ("dynamic", "int8") if args.quick else VARIANTS
    report = tfptm.export.tflite_report(
        model, x_test, y_test, representative_data=x_train, out_dir=out_dir, name="minilm",
        variants=variants, threads=args.threads, repeats=args.repeats, batch_size=args.batch,
        metadata={"task": "multiclass", "tokenizer": "all-MiniLM-L6-v2 WordPiece, lowercase"},
    )
    report["torch"] = torch_eager(args, x_test)
    return report


def torch_eager(args, x):
    """PyTorch eager inference on the same MiniLM checkpoint, same batch, length and threads; None without torch."""
    try:
        import torch
        from transformers import AutoModelForSequenceClassification
    except ImportError as error:
        return {"skipped": f"{error.name} is not installed (pip install torch==2.13.0 transformers)"}
    torch.set_num_threads(args.threads)
    model = AutoModelForSequenceClassification.from_pretrained(minilm_dir(), num_labels=2).eval()
    batch = {
        "input_ids": torch.tensor(x["token_ids"][: args.batch], dtype=torch.long),
        "attention_mask": torch.tensor(x["padding_mask"][: args.batch], dtype=torch.long),
        "token_type_ids": torch.tensor(x["segment_ids"][: args.batch], dtype=torch.long),
    }
    with torch.inference_mode():
        seconds = median_seconds(lambda: model(**batch), args.repeats)
    return {"threads": args.threads, "batch_size": len(batch["input_ids"]), "latency_ms_per_example": 1000 * seconds / len(batch["input_ids"])}


def table(name, report):
    keras_ms = report["keras"]["latency_ms_per_example"]
    rows = [
        f"{name}: {report['num_eval_examples']} eval examples, batch {report['batch_size']}, {report['threads']} threads",
        f"{'variant':<10} {'size MB':>8} {'x float':>8} {'ms/ex':>7} {'ex/s':>7} {'acc':>6} {'Δacc pt':>8} {'agree':>6} {'max|Δp|':>8} select_tf",
        f"{'keras':<10} {report['keras']['weights_bytes'] / 1e6:>8.2f} {'':>8} {keras_ms:>7.2f} {1000 / keras_ms:>7.0f} "
        f"{report['keras']['accuracy']:>6.3f}",
    ]
    for variant, v in report["variants"].items():
        rows.append(
            f"{variant:<10} {v['size_bytes'] / 1e6:>8.2f} {v['size_ratio']:>8.2f} {v['latency_ms_per_example']:>7.2f} "
            f"{1000 / v['latency_ms_per_example']:>7.0f} {v['accuracy']:>6.3f} {100 * v['accuracy_delta']:>+8.1f} "
            f"{v['top1_agreement']:>6.3f} {v['max_output_diff']:>8.1e} {v['select_tf_ops']}"
        )
    torch = report.get("torch")
    if torch and "skipped" in torch:
        rows.append(f"torch eager: skipped ({torch['skipped']})")
    elif torch:
        ms = torch["latency_ms_per_example"]
        rows.append(f"{'torch':<10} {'':>8} {'':>8} {ms:>7.2f} {1000 / ms:>7.0f}   (PyTorch eager, same checkpoint, batch, threads)")
    return "\n".join(rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer epochs, repeats and variants: a smoke run")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--sequence-length", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--only", choices=("image", "text"), default=None)
    args = parser.parse_args()
    args.repeats = args.repeats or (3 if args.quick else 10)
    args.eval_texts = 64 if args.quick else 256
    results = {}
    with tempfile.TemporaryDirectory() as out_dir:
        if args.only in (None, "image"):
            results["image"] = image_report(args, out_dir)
            print(table("digits CNN", results["image"]), flush=True)
        if args.only in (None, "text"):
            results["text"] = text_report(args, out_dir)
            print(table("MiniLM text classifier", results["text"]), flush=True)
    for report in results.values():
        for v in report["variants"].values():
            v.pop("path")  # a temporary directory, gone now
    settings = {k: v for k, v in vars(args).items()}
    print("wrote", save("export_quick" if args.quick else "export", settings, results))


if __name__ == "__main__":
    main()
