"""Where an int8 MiniLM's time goes in LiteRT: every op of an encoder layer alone, float32 vs int8 vs dynamic-range.

LiteRT's Python package has no per-op profiler, so each op kind of all-MiniLM-L6-v2's encoder layer (hidden 384,
12 heads of 32, feed-forward 1536, sequence length 64) is built alone as a Keras model, converted by
`tfptm.export.tflite` (the path `tfptm export` takes; int8 calibrated on random inputs of the layer's scale) and
timed at batch 1 with the XNNPACK delegate (LiteRT's default) and without it (`BUILTIN_WITHOUT_DEFAULT_DELEGATES`).
An op the delegate takes shows a `DELEGATE` node in the model; the rest run LiteRT's reference kernels, on one
thread. The table also times one whole encoder layer (KerasHub's TransformerEncoder with a padding mask) and the
op counts per layer, so that `count x time` shows which ops make the int8 model slow.

Run: `.venv/bin/python bench/int8_ops.py` (about 2 minutes). Writes bench/results/int8_ops.json.
"""

import argparse
import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402

from common import median_seconds, save  # noqa: E402

SEQ, HIDDEN, HEADS, FFN = 64, 384, 12, 1536
VARIANTS = ("float32", "int8", "dynamic")


def op_models():
    """`{name: (keras model, per-layer count in MiniLM, representative inputs)}` of one encoder layer's op kinds."""
    import keras
    import keras_hub

    rng = np.random.default_rng(0)

    def tensor(*shape, scale=1.0):
        return (rng.normal(size=(16,) + shape) * scale).astype("float32")

    def model(layer, *shapes, scale=1.0):  # inputs "a", "b": tfptm's exporter takes one input or a dict
        inputs = {name: keras.Input(shape, name=name) for name, shape in zip("ab", shapes)}
        data = {name: tensor(*shape, scale=scale) for name, shape in zip("ab", shapes)}
        if len(shapes) == 1:
            return keras.Model(inputs["a"], layer(inputs["a"])), data["a"]
        return keras.Model(inputs, layer(*inputs.values())), data

    hidden = (SEQ, HIDDEN)
    models = {
        "dense 384->384 (q, k, v, out)": (*model(keras.layers.Dense(HIDDEN), hidden), 4),
        "dense 384->1536 (ffn in)": (*model(keras.layers.Dense(FFN), hidden), 1),
        "dense 1536->384 (ffn out)": (*model(keras.layers.Dense(HIDDEN), (SEQ, FFN)), 1),
        "gelu": (*model(keras.layers.Activation("gelu"), (SEQ, FFN), scale=2.0), 1),
        "layer norm": (*model(keras.layers.LayerNormalization(epsilon=1e-12), hidden), 2),
        "residual add": (*model(lambda a, b: keras.layers.Add()([a, b]), hidden, hidden), 2),
        "attention scores (q.k)": (*model(lambda q, k: keras.ops.einsum("bqhd,bkhd->bhqk", q, k),
                                          (SEQ, HEADS, HIDDEN // HEADS), (SEQ, HEADS, HIDDEN // HEADS)), 1),
        "softmax": (*model(keras.layers.Softmax(), (HEADS, SEQ, SEQ), scale=4.0), 1),
        "attention mix (p.v)": (*model(lambda p, v: keras.ops.einsum("bhqk,bkhd->bqhd", p, v),
                                       (HEADS, SEQ, SEQ), (SEQ, HEADS, HIDDEN // HEADS)), 1),
    }
    encoder = keras_hub.layers.TransformerEncoder(FFN, HEADS, activation="gelu", layer_norm_epsilon=1e-12)
    x, mask = keras.Input(hidden, name="a"), keras.Input((SEQ,), dtype="int32", name="b")
    whole = keras.Model({"a": x, "b": mask}, encoder(x, padding_mask=mask))
    masks = (np.arange(SEQ)[None] < rng.integers(8, SEQ + 1, (16, 1))).astype("int32")
    models["whole encoder layer"] = (whole, {"a": tensor(*hidden), "b": masks}, 0)
    return models


def measure(model, inputs, directory, name, threads, repeats):
    import tfptm
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    row = {}
    for variant in VARIANTS:
        path = os.path.join(directory, f"{name}_{variant}.tflite".replace(" ", "_").replace("/", "_"))
        tfptm.export.tflite(model, path, quantization=variant, representative_data=inputs)
        cell = {}
        for resolver, key in ((OpResolverType.AUTO, "xnnpack"), (OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES, "builtin")):
            interpreter = Interpreter(model_path=path, num_threads=threads, experimental_op_resolver_type=resolver)
            runner = interpreter.get_signature_runner()
            details = runner.get_input_details()
            arrays = inputs if isinstance(inputs, dict) else {next(iter(details)): inputs}
            feed = {k: arrays[k][:1].astype(d["dtype"]) for k, d in details.items()}
            runner(**feed)
            cell[f"{key}_ms"] = 1000 * median_seconds(lambda: runner(**feed), repeats)
            if key == "xnnpack":
                ops = [op["op_name"] for op in interpreter._get_ops_details()]  # the only LiteRT call that lists ops
                cell["delegated"] = "DELEGATE" in ops
                cell["ops"] = sorted(set(ops) - {"DELEGATE"})
        row[variant] = cell
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    import keras

    keras.utils.set_random_seed(0)
    rows = {}
    with tempfile.TemporaryDirectory() as directory:
        for name, (model, inputs, count) in op_models().items():
            rows[name] = {"count_per_layer": count, **measure(model, inputs, directory, name, args.threads, args.repeats)}
            print(f"{name:<30} x{count} " + "  ".join(
                f"{v}: {rows[name][v]['xnnpack_ms']:.3f} ms ({'XNNPACK' if rows[name][v]['delegated'] else 'builtin'}; "
                f"builtin {rows[name][v]['builtin_ms']:.3f})" for v in VARIANTS), flush=True)
    totals = {v: sum(r["count_per_layer"] * r[v]["xnnpack_ms"] for r in rows.values()) for v in VARIANTS}
    print("per-layer sum of count x time (XNNPACK): " + ", ".join(f"{v} {t:.2f} ms" for v, t in totals.items()))
    save("int8_ops", {"threads": args.threads, "repeats": args.repeats, "batch": 1, "sequence_length": SEQ},
         {"ops": rows, "per_layer_sum_ms": totals})


if __name__ == "__main__":
    main()
