"""Distributed training with `tf.distribute`: pick a strategy, build in its scope, fit.

Three rules, the same as for plain Keras 3:

* Build the model (and so its optimizer) inside `strategy.scope()`:
  `with strategy.scope(): model = tfptm.build_model(...)`. Keras records the
  strategy when the model and its optimizer are created; `model.fit` and
  `tfptm.finetune` can then be called inside or outside the scope
  (`finetune` recompiles in the model's own strategy scope).
* Batch sizes are global. The `batch_size` given to `tfptm.data` is the
  batch of one training step over all replicas; each replica gets
  `batch_size / strategy.num_replicas_in_sync` examples (workers times local
  devices). Scale the learning rate with the global batch if you scale it up.
* With several workers, every worker runs the same script and calls the same
  callbacks, but only the chief (see `is_chief`) should write where people
  look: give file-writing callbacks `chief_or_temp_dir(path, strategy)`.

`get_strategy` also applies `keras_multi_worker_fix`, without which `model.fit`
fails under `MultiWorkerMirroredStrategy` on Keras 3.0 to 3.15.

Example:
>>> import numpy as np, tfptm
>>> strategy = tfptm.training.get_strategy("default")
>>> with strategy.scope():
...     backbone = tfptm.backbones.get("vgg_cnn", input_shape=(8, 8, 1), filters=(8,))
...     model = tfptm.build_model(backbone, tfptm.Head("multiclass", num_classes=2))
>>> data = tfptm.data.from_arrays(np.random.rand(8, 8, 8, 1), np.arange(8) % 2, batch_size=4, seed=0)
>>> history = tfptm.finetune(model, data, tfptm.training.full(1), verbose=0)
>>> len(history["loss"])
1
"""

import atexit
import contextlib
import functools
import json
import os
import re
import shutil
import socket
import tempfile

import tensorflow as tf

from tfptm.errors import TfptmError, one_line

STRATEGIES = ("auto", "default", "mirrored", "multi_worker", "tpu")

#: Set to "0" to leave Keras unpatched (e.g. to check whether a Keras release fixed it).
FIX_ENV = "TFPTM_KERAS_MULTI_WORKER_FIX"
#: Keras versions [first, last] (major, minor) whose TensorFlow trainer has the bug.
FIX_KERAS_VERSIONS = ((3, 0), (3, 15))

_TF_CONFIG_EXAMPLE = '{"cluster": {"worker": ["host1:port", "host2:port"]}, "task": {"type": "worker", "index": 0}}'
_PATCH_MARK = "_tfptm_multi_worker_fix"


def get_strategy(name="auto"):
    """Returns a `tf.distribute.Strategy` by name.

    Names: `"default"` (the no-op default strategy: one device), `"mirrored"`
    (`MirroredStrategy` over all local GPUs, or else the CPU devices), `"multi_worker"`
    (`MultiWorkerMirroredStrategy`, cluster from `TF_CONFIG`), `"tpu"`
    (`TPUStrategy`; a `TfptmError` if no TPU answers) and `"auto"`, which picks
    the first that applies: a `TF_CONFIG` with more than one worker (chief and
    worker jobs together) gives `multi_worker`; several GPUs give `mirrored`; a
    TPU that connects gives `tpu`; otherwise `default`.

    A multi-worker strategy must be created at program start, before other
    TensorFlow work, and comes with `keras_multi_worker_fix` applied. A
    `TF_CONFIG` that is set must be valid JSON with `cluster` and `task`.

    Example:
    >>> import tfptm
    >>> strategy = tfptm.training.get_strategy("auto")  # no TF_CONFIG, GPU or TPU here
    >>> type(strategy).__name__, strategy.num_replicas_in_sync
    ('_DefaultDistributionStrategy', 1)
    """
    if name not in STRATEGIES:
        raise TfptmError(f"get_strategy: unknown strategy {name!r}; expected one of {', '.join(STRATEGIES)}")
    config = _tf_config()  # validated first, for every name
    if name == "multi_worker" or (name == "auto" and config is not None and _num_workers(config) > 1):
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        keras_multi_worker_fix()
        return strategy
    if name == "mirrored":
        # All GPUs; without any, all CPU devices (one unless logical CPUs were configured).
        gpus = tf.config.list_logical_devices("GPU")
        return tf.distribute.MirroredStrategy(None if gpus else [d.name for d in tf.config.list_logical_devices("CPU")])
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "tpu":
        return _tpu_strategy(required=True)
    if len(tf.config.list_logical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return _tpu_strategy(required=False) or tf.distribute.get_strategy()


def is_chief(strategy=None):
    """Whether this process is the chief: the one worker that writes checkpoints and exports.

    The chief is task `chief` if the cluster has one, else `worker` 0. A
    process outside a multi-worker cluster (no `TF_CONFIG`, or a strategy that
    is not multi-worker) is its own chief. `strategy` defaults to the current one.

    Example:
    >>> import tfptm
    >>> tfptm.training.is_chief(tfptm.training.get_strategy("default"))
    True
    """
    strategy = strategy or tf.distribute.get_strategy()
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True
    resolver = strategy.cluster_resolver  # reads TF_CONFIG
    if resolver.task_type in (None, "chief"):
        return True
    return resolver.task_type == "worker" and resolver.task_id == 0 and "chief" not in resolver.cluster_spec().jobs


def chief_or_temp_dir(path, strategy=None):
    """Returns `path` on the chief and a fresh temporary directory on other workers.

    The standard multi-worker pattern for file-writing callbacks
    (`ModelCheckpoint`, `TensorBoard`) and exports: every worker runs them, as
    saving may need all workers and callbacks must act alike on each, but only
    the chief's files count, and two workers writing one file on a shared disk
    corrupt it. A temporary directory is removed when its process exits.

    `BackupAndRestore` reads back what it wrote, so a worker given a temporary
    directory restarts from scratch after a preemption while the chief resumes;
    give each worker its own lasting directory for it instead.

    Example:
    >>> import tfptm, keras
    >>> strategy = tfptm.training.get_strategy("default")
    >>> directory = tfptm.training.chief_or_temp_dir("checkpoints", strategy)
    >>> directory
    'checkpoints'
    >>> callback = keras.callbacks.ModelCheckpoint(directory + "/epoch{epoch}.weights.h5", save_weights_only=True)
    """
    if is_chief(strategy):
        return path
    temp = tempfile.mkdtemp(prefix="tfptm-worker-")
    atexit.register(shutil.rmtree, temp, ignore_errors=True)
    return temp


def keras_multi_worker_fix():
    """Makes `model.fit` and `model.evaluate` work under `MultiWorkerMirroredStrategy`.

    Covers Keras 3.0 to 3.15 (`FIX_KERAS_VERSIONS`; checked on 3.15.1), whose
    TensorFlow trainer raises in multi-worker mode (keras-team/keras issue 20585):

    * `TensorFlowTrainer._maybe_symbolic_build` builds the model from the first
      batch after reducing that batch of data across replicas with
      `strategy.reduce`, which takes no nested structure under
      `MultiWorkerMirroredStrategy` ("Attempt to convert a value (PerReplica...)").
      The build needs only shapes and dtypes, so the patch hands it the first
      local replica's batch (`strategy.experimental_local_results(...)[0]`)
      and lets the original method do the rest. No data is reduced.
    * The module function `reduce_per_replica` averages the step's logs with
      `strategy.reduce("MEAN", v, axis=0)`; logs are scalars, which have no
      axis 0 ("Invalid reduction dimension 0 for input with 0 dimensions").
      The patch averages them over replicas with `axis=None`, element by
      element, as the single-worker path of the same function does. Every
      other strategy and reduction goes to the original function.

    Both are wrappers around the originals, and change nothing unless the
    strategy is in multi-worker mode. Idempotent. A no-op (returns False) for
    other Keras versions, another backend, or with `TFPTM_KERAS_MULTI_WORKER_FIX=0`.
    Returns True when the patch is in place.

    Example:
    >>> import tfptm
    >>> tfptm.training.keras_multi_worker_fix() == tfptm.training.keras_multi_worker_fix()
    True
    """
    if os.environ.get(FIX_ENV, "1") == "0" or not _keras_has_bug():
        return False
    from keras.src.backend.tensorflow import trainer

    if getattr(trainer.reduce_per_replica, _PATCH_MARK, False):
        return True
    trainer.reduce_per_replica = _mark(_fixed_reduce_per_replica(trainer.reduce_per_replica))
    cls = trainer.TensorFlowTrainer
    cls._maybe_symbolic_build = _mark(_fixed_maybe_symbolic_build(cls._maybe_symbolic_build))
    return True


def _keras_has_bug():
    import keras

    if keras.backend.backend() != "tensorflow":
        return False
    match = re.match(r"(\d+)\.(\d+)", keras.__version__)
    first, last = FIX_KERAS_VERSIONS
    return bool(match) and first <= (int(match[1]), int(match[2])) <= last


def _mark(function):
    setattr(function, _PATCH_MARK, True)
    return function


def _multi_worker(strategy):
    # The condition Keras itself uses for its multi-worker branch.
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and strategy.extended._in_multi_worker_mode()


def _fixed_reduce_per_replica(original):
    @functools.wraps(original)
    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and _multi_worker(strategy):
            return tf.nest.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None), values)
        return original(values, strategy, reduction)

    return reduce_per_replica


def _fixed_maybe_symbolic_build(original):
    @functools.wraps(original)
    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        strategy = self._distribute_strategy
        if iterator is not None and strategy is not None and _multi_worker(strategy):
            for _, _, batches in iterator:  # as the original does: the first batch
                data_batch = tf.nest.map_structure(
                    lambda v: strategy.experimental_local_results(v)[0]
                    if isinstance(v, tf.distribute.DistributedValues)
                    else v,
                    next(batches),
                )
                break
            iterator = None
        return original(self, iterator=iterator, data_batch=data_batch)

    return _maybe_symbolic_build


def _tf_config():
    """The parsed `TF_CONFIG`, or None if unset; a `TfptmError` if malformed."""
    text = os.environ.get("TF_CONFIG", "").strip()
    if not text:
        return None
    try:
        config = json.loads(text)
    except json.JSONDecodeError as error:
        raise TfptmError(f"TF_CONFIG is not valid JSON ({error}); expected e.g. {_TF_CONFIG_EXAMPLE}") from None
    if not isinstance(config, dict):
        raise TfptmError(f"TF_CONFIG is a JSON {type(config).__name__}; expected an object such as {_TF_CONFIG_EXAMPLE}")
    cluster, task = config.get("cluster"), config.get("task")
    if not isinstance(cluster, dict) or not cluster or not all(isinstance(v, list) for v in cluster.values()):
        raise TfptmError(f"TF_CONFIG has no 'cluster' mapping jobs to address lists; expected e.g. {_TF_CONFIG_EXAMPLE}")
    if "ps" in cluster:
        raise TfptmError("TF_CONFIG describes a parameter-server cluster ('ps' job); tfptm supports chief and worker jobs")
    if not isinstance(task, dict) or not isinstance(task.get("type"), str) or not isinstance(task.get("index"), int):
        raise TfptmError(f"TF_CONFIG has no 'task' with a 'type' and an integer 'index'; expected e.g. {_TF_CONFIG_EXAMPLE}")
    job = cluster.get(task["type"])
    if task["type"] != "evaluator" and (job is None or not 0 <= task["index"] < len(job)):
        raise TfptmError(
            f"TF_CONFIG task {task['type']}:{task['index']} is not in the cluster "
            f"({', '.join(f'{k}: {len(v)}' for k, v in cluster.items())})"
        )
    return config


def _num_workers(config):
    return sum(len(config["cluster"].get(job, [])) for job in ("chief", "worker"))


@contextlib.contextmanager
def _socket_timeout(seconds):
    # The Cloud TPU client looks names up over HTTP with the default socket
    # timeout (none): bound it so that a bad TPU name fails instead of hanging.
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def _tpu_strategy(required):
    """A TPUStrategy, or (unless `required`) None when no TPU is configured or answers."""
    tpu = "local" if tf.config.list_physical_devices("TPU") else None
    try:
        with _socket_timeout(10):
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
    except Exception as error:  # the resolver raises ValueError, RuntimeError, OSError or OpError
        if required:
            raise TfptmError(
                f"get_strategy('tpu'): no TPU found ({type(error).__name__}: {one_line(error)}); expected a TPU VM, "
                "or TPU_NAME set to a reachable Cloud TPU"
            ) from None
        return None
    return tf.distribute.TPUStrategy(resolver)
