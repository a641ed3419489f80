"""Distributed training: MirroredStrategy on two logical CPUs and
MultiWorkerMirroredStrategy with two real worker processes on 127.0.0.1.

Strategies must be set up before TensorFlow starts, which this pytest process
already did, so those tests run small scripts in fresh processes.
"""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

import tfptm
from tfptm.errors import TfptmError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT = 150  # seconds for one run of workers, a hard limit; the normal run takes ~30 s

# Shared by both scripts: a tiny tfptm model, trained with `finetune` in two
# stages; the train step also logs the batch size one replica sees.
PRELUDE = """
import json, os, sys
import numpy as np, keras, tensorflow as tf
{setup}
import tfptm

out, name = sys.argv[1], sys.argv[2]
strategy = tfptm.training.get_strategy({strategy!r})
with strategy.scope():
    backbone = tfptm.backbones.get("vgg_cnn", input_shape=(8, 8, 1), filters=(8,))
    model = tfptm.build_model(backbone, tfptm.Head("multiclass", num_classes=2), learning_rate=1e-2)
step = model.train_step
model.train_step = lambda data: {{**step(data), "replica_batch": tf.cast(tf.shape(data[0])[0], "float32")}}
rng = np.random.default_rng(0)
x, y = rng.random((32, 8, 8, 1)).astype("float32"), np.arange(32) % 2
data = tfptm.data.from_arrays(x, y, batch_size=8, seed=0)
np.savez(os.path.join(out, name + "_before.npz"), *model.get_weights())
checkpoints = tfptm.training.chief_or_temp_dir(os.path.join(out, "checkpoints"), strategy)
save = keras.callbacks.ModelCheckpoint(os.path.join(checkpoints, "epoch{{epoch}}.weights.h5"), save_weights_only=True)
history = tfptm.finetune(model, data, tfptm.training.two_stage(1, 1), callbacks=[save], verbose=0)
np.savez(os.path.join(out, name + "_after.npz"), *model.get_weights())
from keras.src.backend.tensorflow import trainer
patched = trainer.reduce_per_replica
report = {{
    "strategy": next(k for k in ("MultiWorkerMirroredStrategy", "MirroredStrategy") if isinstance(strategy, getattr(tf.distribute, k))),
    "replicas": strategy.num_replicas_in_sync,
    "chief": tfptm.training.is_chief(strategy),
    "checkpoints": checkpoints,
    "history": history,
    "fix_idempotent": tfptm.training.keras_multi_worker_fix() and trainer.reduce_per_replica is patched,
}}
with open(os.path.join(out, name + ".json"), "w") as f:
    json.dump(report, f)
"""

LOGICAL_CPUS = """
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
"""


def _script(tmp_path, strategy, setup=""):
    path = tmp_path / f"train_{strategy}.py"
    path.write_text(PRELUDE.format(setup=setup, strategy=strategy))
    return path


def _env(**extra):
    path = os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path, "TF_CPP_MIN_LOG_LEVEL": "2", **extra}


def _run(script, out, names, envs):
    """Starts one process per name, waits for all under TIMEOUT; kills the rest on failure."""
    procs, logs = [], [out / f"{name}.log" for name in names]
    try:
        for name, env, log in zip(names, envs, logs):
            with open(log, "w") as f:
                command = [sys.executable, str(script), str(out), name]
                procs.append(subprocess.Popen(command, env=env, stdout=f, stderr=subprocess.STDOUT, cwd=out))
        for proc in procs:
            proc.wait(timeout=TIMEOUT)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return [proc.returncode for proc in procs], [log.read_text() for log in logs]


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _workers(tmp_path, **extra_env):
    """Runs the multi-worker script as worker 0 and worker 1 of one cluster on 127.0.0.1."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
    envs = [
        _env(TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}}), **extra_env)
        for i in range(2)
    ]
    return _run(_script(tmp_path, "auto"), tmp_path, ["worker0", "worker1"], envs)


def _weights(path):
    with np.load(path) as f:
        return [f[k] for k in sorted(f.files, key=lambda k: int(k.split("_")[1]))]


def _report(tmp_path, name):
    return json.loads((tmp_path / f"{name}.json").read_text())


def test_mirrored_strategy_splits_the_global_batch_and_finetunes(tmp_path):
    codes, logs = _run(_script(tmp_path, "mirrored", LOGICAL_CPUS), tmp_path, ["mirrored"], [_env()])
    assert codes == [0], logs[0][-3000:]
    report = _report(tmp_path, "mirrored")
    assert (report["strategy"], report["replicas"]) == ("MirroredStrategy", 2)
    assert report["history"]["stage"] == ["feature_extraction", "finetune"]
    assert report["history"]["replica_batch"] == [4.0, 4.0]  # global batch 8 over 2 replicas
    before, after = _weights(tmp_path / "mirrored_before.npz"), _weights(tmp_path / "mirrored_after.npz")
    assert any(not np.allclose(a, b) for a, b in zip(before, after))
    assert report["chief"] and sorted(os.listdir(tmp_path / "checkpoints")) == ["epoch1.weights.h5", "epoch2.weights.h5"]


def test_two_workers_train_identically_and_only_the_chief_writes(tmp_path):
    codes, logs = _workers(tmp_path)
    assert codes == [0, 0], "\n---\n".join(log[-3000:] for log in logs)
    chief, worker = _report(tmp_path, "worker0"), _report(tmp_path, "worker1")
    for report in (chief, worker):
        assert (report["strategy"], report["replicas"]) == ("MultiWorkerMirroredStrategy", 2)
        assert report["history"]["replica_batch"] == [4.0, 4.0]  # global batch 8 over 2 workers
        assert report["fix_idempotent"]
    assert chief["history"]["loss"] == worker["history"]["loss"]  # logs are averaged over workers
    after = [_weights(tmp_path / f"worker{i}_after.npz") for i in range(2)]
    assert all(np.array_equal(a, b) for a, b in zip(*after))
    before = _weights(tmp_path / "worker0_before.npz")
    assert any(not np.allclose(a, b) for a, b in zip(before, after[0]))
    assert chief["chief"] and not worker["chief"]
    assert chief["checkpoints"] == str(tmp_path / "checkpoints")
    assert not worker["checkpoints"].startswith(str(tmp_path))
    assert not os.path.exists(worker["checkpoints"])  # removed when the worker exited
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["epoch1.weights.h5", "epoch2.weights.h5"]


def test_two_workers_fail_without_the_keras_fix(tmp_path):
    codes, logs = _workers(tmp_path, TFPTM_KERAS_MULTI_WORKER_FIX="0")
    assert 0 not in codes, "\n---\n".join(log[-3000:] for log in logs)
    for log in logs:  # Keras's first failure: reducing the first batch of data in _maybe_symbolic_build
        assert "Attempt to convert a value (PerReplica:" in log, log[-3000:]


@pytest.mark.parametrize(
    "tf_config, message",
    [
        ("{not json", "TF_CONFIG is not valid JSON"),
        ('["worker"]', "TF_CONFIG is a JSON list"),
        ('{"task": {"type": "worker", "index": 0}}', "TF_CONFIG has no 'cluster'"),
        ('{"cluster": {"worker": ["127.0.0.1:1"]}}', "TF_CONFIG has no 'task'"),
        ('{"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker", "index": 3}}', "task worker:3 is not in"),
        ('{"cluster": {"ps": ["a:1"], "worker": ["b:1"]}, "task": {"type": "worker", "index": 0}}', "parameter-server"),
    ],
)
def test_a_malformed_tf_config_is_one_clear_error(monkeypatch, tf_config, message):
    monkeypatch.setenv("TF_CONFIG", tf_config)
    with pytest.raises(TfptmError, match=message):
        tfptm.training.get_strategy("auto")


def test_unknown_strategy_and_missing_tpu_are_errors(monkeypatch):
    with pytest.raises(TfptmError, match="unknown strategy 'gpus'; expected one of auto, default, mirrored"):
        tfptm.training.get_strategy("gpus")
    for variable in ("TPU_NAME", "KUBE_GOOGLE_CLOUD_TPU_ENDPOINTS", "TPU_CONFIG"):
        monkeypatch.delenv(variable, raising=False)
    with pytest.raises(TfptmError, match="get_strategy\\('tpu'\\): no TPU found"):
        tfptm.training.get_strategy("tpu")


def test_single_process_defaults(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    strategy = tfptm.training.get_strategy("default")
    assert strategy.num_replicas_in_sync == 1 and tfptm.training.is_chief(strategy)
    assert tfptm.training.chief_or_temp_dir("checkpoints", strategy) == "checkpoints"


def test_the_fix_is_a_no_op_outside_the_keras_versions_it_covers(monkeypatch):
    import keras
    from keras.src.backend.tensorflow import trainer

    original = trainer.reduce_per_replica, trainer.TensorFlowTrainer._maybe_symbolic_build
    monkeypatch.setattr(keras, "__version__", "3.16.0")
    assert tfptm.training.keras_multi_worker_fix() is False
    monkeypatch.setattr(keras, "__version__", "3.15.1")
    monkeypatch.setenv("TFPTM_KERAS_MULTI_WORKER_FIX", "0")
    assert tfptm.training.keras_multi_worker_fix() is False
    assert (trainer.reduce_per_replica, trainer.TensorFlowTrainer._maybe_symbolic_build) == original
