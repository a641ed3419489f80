"""Tutorial 6: multi-worker training, rehearsed on one machine.

`MultiWorkerMirroredStrategy` runs the same script on several machines; each
process learns from its own slice of every global batch, and the gradients
are summed across all of them (an all-reduce) before each step, so every
worker holds identical weights after every step. Here the two "machines"
are two processes on 127.0.0.1; on real hosts only `TF_CONFIG` changes.

Three things a newcomer meets:
- Each process gets its own `TF_CONFIG`: the same cluster list, its own index.
  Worker 0 is the chief.
- Batch sizes are global: `batch_size=64` on two workers means 32 per worker
  per step, so the result matches one machine with batch 64.
- Every worker runs every line, but only the chief should write files people
  read. After training, each worker copies the weights into a plain model
  (outside the strategy) so evaluation and export are ordinary local calls.

Keras 3.0-3.15 `model.fit` fails under this strategy (keras-team/keras#20585);
`tfptm.training.get_strategy` applies tfptm's narrow fix for you.

Run: python tutorials/06_multi_worker_localhost.py   (TFPTM_TUTORIAL_FAST=1 for a smoke run)
"""

import json
import os
import socket
import subprocess
import sys
import tempfile

FAST = os.environ.get("TFPTM_TUTORIAL_FAST") == "1"
EPOCHS = 2 if FAST else 15
WORKERS = 2


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch():
    """Starts one copy of this script per worker, each with its own TF_CONFIG, and waits for all."""
    cluster = {"worker": [f"127.0.0.1:{free_port()}" for _ in range(WORKERS)]}
    export_dir = tempfile.mkdtemp() if FAST else "export"
    workers = []
    for index in range(WORKERS):
        config = {"cluster": cluster, "task": {"type": "worker", "index": index}}
        env = {**os.environ, "TF_CONFIG": json.dumps(config), "TUTORIAL_EXPORT_DIR": export_dir}
        # Only the chief's output is shown; the other worker's goes to a log file.
        log = None if index == 0 else open(os.path.join(tempfile.gettempdir(), f"tfptm_worker{index}.log"), "w")
        workers.append(subprocess.Popen([sys.executable, __file__], env=env, stdout=log, stderr=log))
    codes = [worker.wait(timeout=600) for worker in workers]
    if any(codes):
        sys.exit(f"a worker failed: exit codes {codes}")


def work():
    """What every worker runs."""
    import keras

    import tfptm

    strategy = tfptm.training.get_strategy("multi_worker")  # first TensorFlow call in the process
    images, labels = tfptm.datasets.load_digits()
    (x_train, y_train), (x_test, y_test) = tfptm.data.train_test_split(images, labels, test_fraction=0.25, seed=0)

    with strategy.scope():
        backbone = tfptm.backbones.get("vgg_cnn", input_shape=(8, 8, 1), filters=(16, 32), input_scale=1 / 16)
        model = tfptm.build_model(backbone, tfptm.Head("multiclass", num_classes=10, pooling="flatten"))
    data = tfptm.data.from_arrays(x_train, y_train, batch_size=64, seed=0)  # 64 in all, 32 per worker
    tfptm.finetune(model, data, tfptm.training.full(EPOCHS, 3e-3, freeze_batchnorm=False), verbose=0)

    # A local copy with the trained weights: no collective ops in evaluation or export.
    local = keras.models.clone_model(model)
    local.set_weights(model.get_weights())
    if not tfptm.training.is_chief(strategy):
        return
    print(f"{strategy.num_replicas_in_sync} replicas trained in sync")
    report = tfptm.evaluate(local, x_test, y_test)
    print(f"accuracy on {report['num_examples']} held-out images: {report['accuracy']:.3f}")
    version_dir = tfptm.export.saved_model(local, os.environ["TUTORIAL_EXPORT_DIR"], "digits_multi_worker")
    print("SavedModel parity:", tfptm.export.check_saved_model(version_dir, local, x_test))


if __name__ == "__main__":
    if "TF_CONFIG" in os.environ:
        work()
    else:
        launch()
