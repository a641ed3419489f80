"""What tfptm's training loop costs over a hand-written `model.fit`, side by side in one run.

Both variants train the same functional model (a VGG-style CNN from
`tfptm.build_model`, same initial weights, same compile settings) on the same
tf.data pipeline (all 1,797 digits, batch 32) for the same epochs:
- `keras_fit`: `model.fit(data, epochs=E)`, the plain Keras call;
- `tfptm_finetune`: `tfptm.finetune(model, data, tfptm.training.full(E))`, which also
  sets what trains, recompiles and keeps a per-stage history.
After one untimed run of each, every round times both, in alternating order, from a freshly compiled model (so
each pays one trace); the overhead is the median ratio over rounds.

Run: `.venv/bin/python bench/train_overhead.py` (`--quick` for a smoke run).
"""

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import save  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.epochs, args.rounds = 1, 1

    import keras

    import tfptm

    images, labels = tfptm.datasets.load_digits()
    data = tfptm.data.from_arrays(images, labels, batch_size=args.batch, seed=0)
    keras.utils.set_random_seed(0)
    backbone = tfptm.backbones.get("vgg_cnn", input_shape=(8, 8, 1), filters=(32, 64), input_scale=1 / 16)
    template = tfptm.build_model(backbone, tfptm.Head("multiclass", num_classes=10, pooling="flatten"))
    initial = template.get_weights()

    def fresh_model():
        model = tfptm.build_model(keras.models.clone_model(tfptm.backbone_of(template)),
                                  tfptm.Head("multiclass", num_classes=10, pooling="flatten"))
        model.set_weights(initial)
        return model

    def keras_fit():
        fresh_model().fit(data, epochs=args.epochs, verbose=0)

    def tfptm_finetune():
        tfptm.finetune(fresh_model(), data, tfptm.training.full(args.epochs, 1e-3), verbose=0)

    variants = {"keras_fit": keras_fit, "tfptm_finetune": tfptm_finetune}
    for run in variants.values():  # untimed: fills the tf.data cache and warms TensorFlow's kernels
        run()
    seconds = {name: [] for name in variants}
    for round_index in range(args.rounds):
        order = list(variants) if round_index % 2 == 0 else list(reversed(variants))
        for name in order:
            start = time.perf_counter()
            variants[name]()
            seconds[name].append(time.perf_counter() - start)
    ratios = [t / k for t, k in zip(seconds["tfptm_finetune"], seconds["keras_fit"])]
    results = {
        "seconds": seconds,
        "median_seconds": {name: statistics.median(values) for name, values in seconds.items()},
        "overhead_median": statistics.median(ratios) - 1,
        "steps_per_run": args.epochs * len(data),
    }
    for name, values in seconds.items():
        print(f"{name:<16} median {statistics.median(values):6.2f} s over {len(values)} runs of {args.epochs} epochs")
    print(f"tfptm overhead: {100 * results['overhead_median']:+.1f}% (median of per-round ratios)")
    print(f"saved {save('train_overhead', vars(args), results)}")


if __name__ == "__main__":
    main()
