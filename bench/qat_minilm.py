"""Int8 MiniLM with quantization awareness: how close to the float model, how fast, by design choice.

all-MiniLM-L6-v2 fine-tuned on the REAL `libraries` docstring task (as in `bench/compress.py`: 600 training
and 240 test docstring summaries, 4 classes, sequence length 64), then exported to TFLite and run with LiteRT:
- `float32`, `dynamic` (int8 weights), `ptq_int8` (post-training full integer, 300 training inputs);
- `qat_*`: `tfptm.compress.quantization_aware` calibrated on 608 training inputs (no training: the float
  weights unchanged), int8 with its ranges, for each design step:
  `qat_plain` (every Dense and projection int8, one range per tensor), `qat_smooth` (+ SmoothQuant, alpha 0.8),
  `qat_split` (+ the feed-forward output's 8 largest channels on their own range),
  `qat_default` (smoothing, the feed-forward output projection float: tfptm's default);
- `qat_default_1epoch`: the default after one epoch of quantization-aware training with labels (lr 1e-5):
  training moves the weights, so it is compared both with the float teacher and with its own float weights.
Per variant: size, accuracy, top-1 agreement with the float Keras model on the 240 test examples and on
2000 unlabelled docstrings of the same packages (a larger sample for the same question), and LiteRT latency
at batch 1 with 1 and 2 threads (`bench/compress.py`'s `litert_latency_ms`).

Run: `.venv/bin/python bench/qat_minilm.py` (about 12 minutes on 2 cores). Writes bench/results/qat_minilm.json.
"""

import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


from common import minilm_dir, save  # noqa: E402
from compress import THREADS, litert_latency_ms  # noqa: E402

DESIGNS = {
    "qat_plain": {"smoothing": None, "keep_float": ()},
    "qat_smooth": {"keep_float": ()},
    "qat_split": {"split_outputs": ("feedforward_output_dense",)},
    "qat_default": {},
}


def main():
    import keras
    import tensorflow as tf

    import tfptm
    from tfptm.compress import quantization_aware
    from tfptm.export.litert import run_tflite

    keras.utils.set_random_seed(0)
    task = tfptm.datasets.docstring_task("libraries", train_per_class=150, test_per_class=60, seed=0)
    backbone, preprocessor = tfptm.backbones.presets.load_preset(minilm_dir(), sequence_length=64)
    teacher = tfptm.build_model(backbone, tfptm.Head("multiclass", num_classes=len(task.class_names), pooling="first"))

    def tokenize(texts):
        return {k: v.numpy() for k, v in preprocessor(tf.constant(list(texts))).items()}

    (train_texts, y_train), (test_texts, y_test) = task.train, task.test
    x_train, x_test, x_unlabelled = tokenize(train_texts), tokenize(test_texts), tokenize(task.unlabelled[:2000])
    data = tf.data.Dataset.from_tensor_slices((x_train, y_train)).shuffle(len(y_train), seed=0).batch(32)
    tfptm.finetune(teacher, data, tfptm.training.full(3, 5e-5), verbose=0)
    out = Path(tempfile.mkdtemp())
    teacher.save(out / "teacher.keras")
    reference = {"test": teacher.predict(x_test, verbose=0, batch_size=32).argmax(1),
                 "unlabelled": teacher.predict(x_unlabelled, verbose=0, batch_size=64).argmax(1)}
    rows = {"keras_float": {"accuracy": float((reference["test"] == y_test).mean())}}

    def measure(name, path, own=None, **extra):
        test = run_tflite(path, x_test, batch_size=32).argmax(1)
        unlabelled = run_tflite(path, x_unlabelled, batch_size=64).argmax(1)
        row = {"size_mb": Path(path).stat().st_size / 1e6, "accuracy": float((test == y_test).mean()),
               "agreement_test": float((test == reference["test"]).mean()),
               "agreement_unlabelled": float((unlabelled == reference["unlabelled"]).mean()), **extra}
        if own is not None:
            row["agreement_test_with_own_float"] = float((test == own["test"]).mean())
            row["agreement_unlabelled_with_own_float"] = float((unlabelled == own["unlabelled"]).mean())
        for threads in THREADS:
            row[f"ms_{threads}t"] = litert_latency_ms(path, x_test, threads, 100)
        row["float_ops"] = tfptm.export.litert.float_ops(Path(path).read_bytes())
        rows[name] = row
        print(name, {k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items() if k != "float_ops"},
              flush=True)

    for quantization, name in (("float32", "float32"), ("dynamic", "dynamic"), ("int8", "ptq_int8")):
        measure(name, tfptm.export.tflite(teacher, out / f"{name}.tflite", quantization, representative_data=x_train).path)
    for name, options in DESIGNS.items():
        model = tfptm.rundir.load_model(out / "teacher.keras")
        started = time.perf_counter()
        quantization_aware(model, **options).calibrate(x_train, steps=19)
        seconds = time.perf_counter() - started
        measure(name, tfptm.export.tflite(model, out / f"{name}.tflite", "int8").path, calibrate_seconds=seconds)
    model = tfptm.rundir.load_model(out / "teacher.keras")
    quantization_aware(model).calibrate(x_train, steps=19)
    model.compile(optimizer=keras.optimizers.AdamW(1e-5), loss="sparse_categorical_crossentropy", metrics=[])
    started = time.perf_counter()
    model.fit(x_train, y_train, batch_size=32, epochs=1, verbose=0, shuffle=True)
    seconds = time.perf_counter() - started
    path = tfptm.export.tflite(model, out / "qat_1epoch.tflite", "int8").path
    model.save(out / "qat_1epoch.keras")  # its float weights: a plain model again once loaded
    trained = tfptm.rundir.load_model(out / "qat_1epoch.keras")
    own = {"test": trained.predict(x_test, verbose=0, batch_size=32).argmax(1),
           "unlabelled": trained.predict(x_unlabelled, verbose=0, batch_size=64).argmax(1)}
    measure("qat_default_1epoch", path, own, train_seconds=seconds)
    settings = {"train": len(y_train), "test": len(y_test), "unlabelled": 2000, "sequence_length": 64,
                "designs": {k: {key: list(v) if isinstance(v, tuple) else v for key, v in o.items()}
                            for k, o in DESIGNS.items()}}
    print("wrote", save("qat_minilm", settings, {"task": task.info, "variants": rows}))


if __name__ == "__main__":
    main()
