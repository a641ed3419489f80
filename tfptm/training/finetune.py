"""Runs fine-tuning stages through `model.fit` (floor 3)."""

import keras
import tensorflow as tf

from tfptm.backbones.registry import blocks
from tfptm.build import backbone_of
from tfptm.errors import TfptmError
from tfptm.training.callbacks import BackupAndRestore
from tfptm.training.lora import freeze_all_but_lora, lora_rank
from tfptm.training.stages import ALL


def set_trainable_blocks(backbone, trainable_blocks, freeze_batchnorm=True):
    """Makes the top `trainable_blocks` blocks of `backbone` trainable and freezes the rest.

    Returns the names of the blocks that train. BatchNormalization layers stay
    frozen when `freeze_batchnorm` is set, which in Keras 3 also keeps them in
    inference mode. A backbone with LoRA adapters (`tfptm.training.enable_lora`)
    trains only the adapters of the unfrozen blocks.

    Example:
    >>> import tfptm
    >>> backbone = tfptm.backbones.get("vgg_cnn", input_shape=(8, 8, 1), filters=(8, 16))
    >>> set_trainable_blocks(backbone, 1)
    ['block2']
    """
    groups = blocks(backbone)
    count = len(groups) if trainable_blocks == ALL else trainable_blocks
    if count > len(groups):
        raise TfptmError(
            f"trainable_blocks is {count} but backbone {backbone.name!r} has {len(groups)} blocks: "
            f"{', '.join(name for name, _ in groups)}"
        )
    lora = lora_rank(backbone) is not None
    backbone.trainable = count > 0
    training = set(range(len(groups) - count, len(groups)))
    for index, (_, layers) in enumerate(groups):
        for layer in layers:
            frozen_bn = freeze_batchnorm and isinstance(layer, keras.layers.BatchNormalization)
            layer.trainable = index in training and not frozen_bn
            if lora and layer.trainable:
                freeze_all_but_lora(layer)
    return [groups[i][0] for i in sorted(training)]


def recompile(model, learning_rate=None, optimizer=None):
    """Compiles `model` again with a fresh optimizer, keeping its loss and metrics.

    The optimizer is a new one of the same kind and config as the model's (or
    as `optimizer`, to switch), at `learning_rate` if given: for a schedule
    with a peak or initial rate (`WarmupDecay`, Keras's decays) that rate is
    set. Options kept in the optimizer's config, such as tfptm's per-variable
    rates and weight-decay exclusions, carry over.

    Keras fixes the trainable weights when a model is compiled, so every change
    of what trains must be followed by a compile; a fresh optimizer also drops
    slot variables that belonged to the previous stage. The new optimizer is
    made in the model's `tf.distribute` strategy scope, so that recompiling
    outside `strategy.scope()` still gives it distributed variables.

    Example:
    >>> import tfptm
    >>> backbone = tfptm.backbones.get("vgg_cnn", input_shape=(8, 8, 1), filters=(8,))
    >>> model = tfptm.build_model(backbone, tfptm.Head("multiclass", num_classes=2))
    >>> recompile(model, 1e-4, optimizer=tfptm.training.optimizer("sgd", momentum=0.9))
    >>> type(model.optimizer).__name__, round(float(model.optimizer.learning_rate), 8)
    ('ScaledSGD', 0.0001)
    """
    config = model.get_compile_config()
    if config is None:
        raise TfptmError(f"Model {model.name!r} is not compiled; build it with tfptm.build_model or call compile first")
    optimizer = optimizer or model.optimizer
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        optimizer = optimizer.inner_optimizer  # compiling under mixed_float16 wraps it again
    optimizer = dict(keras.optimizers.serialize(optimizer))
    optimizer["config"] = dict(optimizer["config"])
    if learning_rate is not None:
        optimizer["config"]["learning_rate"] = _with_rate(optimizer["config"]["learning_rate"], learning_rate)
    with model.distribute_strategy.scope():
        model.compile_from_config({**config, "optimizer": optimizer})


def _with_rate(serialized, learning_rate):
    """A serialized learning rate (a number or a schedule's dict) with its peak set to `learning_rate`."""
    if not isinstance(serialized, dict):
        return learning_rate
    schedule = dict(serialized["config"])
    key = next((k for k in ("peak_learning_rate", "initial_learning_rate") if k in schedule), None)
    if key is None:
        raise TfptmError(
            f"Cannot set the learning rate of schedule {serialized.get('class_name')!r}: it has no "
            "peak_learning_rate or initial_learning_rate; use tfptm.training.WarmupDecay or a Keras decay schedule"
        )
    return {**serialized, "config": {**schedule, key: learning_rate}}


def _backup(callbacks, stages):
    """The one tfptm `BackupAndRestore` among `callbacks`, or None."""
    backups = [c for c in callbacks or [] if isinstance(c, keras.callbacks.BackupAndRestore)]
    if len(backups) > 1:
        raise TfptmError(f"finetune: {len(backups)} BackupAndRestore callbacks given; expected at most one")
    if backups and not isinstance(backups[0], BackupAndRestore) and len(stages) > 1:
        raise TfptmError(
            "finetune: Keras's BackupAndRestore cannot resume a run of several stages; "
            "use tfptm.training.BackupAndRestore (or tfptm.training.callbacks.standard)"
        )
    return backups[0] if backups and isinstance(backups[0], BackupAndRestore) else None


def finetune(model, train_data, stages, validation_data=None, callbacks=None, verbose="auto"):
    """Trains `model` (from `build_model`) through `stages` with `model.fit`.

    Epochs are numbered on across stages, so callbacks and the returned history
    see one continuous run. Returns a dict of per-epoch lists, as
    `History.history`, plus `"stage"` naming each epoch's stage. A stage that
    early stopping ends has fewer epochs; the next starts at its planned epoch.

    With `tfptm.training.BackupAndRestore` among the callbacks, running the
    same call again after a crash or kill skips the finished stages, resumes
    the current one from the last backup and returns the whole history.

    Example:
    >>> import numpy as np, tfptm
    >>> backbone = tfptm.backbones.get("vgg_cnn", input_shape=(8, 8, 1), filters=(8,))
    >>> model = tfptm.build_model(backbone, tfptm.Head("multiclass", num_classes=2))
    >>> data = tfptm.data.from_arrays(np.random.rand(8, 8, 8, 1), np.arange(8) % 2, seed=0)
    >>> history = tfptm.finetune(model, data, tfptm.training.two_stage(1, 1), verbose=0)
    >>> history["stage"]
    ['feature_extraction', 'finetune']
    """
    backbone = backbone_of(model)
    backup = _backup(callbacks, stages)
    state = backup.state() if backup else None
    first = state["stage"] + bool(state.get("stage_done")) if state else 0
    history = {"stage": [], **(state["history"] if state else {})}
    if backup:
        backup.keep_between_fits, backup.history = True, {k: list(v) for k, v in history.items()}
    epoch = 0
    for index, stage in enumerate(stages):
        if index < first:
            epoch += stage.epochs
            continue
        if stage.quantization_aware:
            from tfptm.compress.qat import quantization_aware

            handle = quantization_aware(model)
            if isinstance(train_data, tf.data.Dataset):  # smoothing scales and first ranges from the float model
                handle.calibrate(train_data)
        set_trainable_blocks(backbone, stage.trainable_blocks, stage.freeze_batchnorm)
        recompile(model, stage.learning_rate)
        if backup:
            backup.stage, backup.stage_name, backup.stage_done = index, stage.name, False
        fit = model.fit(
            train_data,
            validation_data=validation_data,
            initial_epoch=epoch,
            epochs=epoch + stage.epochs,
            callbacks=callbacks,
            verbose=verbose,
            # A tf.data pipeline shuffles itself; Keras warns if asked to as well.
            shuffle=not isinstance(train_data, tf.data.Dataset),
        )
        for key, values in fit.history.items():
            history.setdefault(key, []).extend(values)
        history["stage"].extend([stage.name] * len(next(iter(fit.history.values()), [])))
        epoch += stage.epochs
        if backup and (index < len(stages) - 1 or not backup.delete_checkpoint):
            backup.complete_stage()  # after the last stage a backup that is about to be deleted would be wasted
    if backup:
        backup.keep_between_fits = False
        backup.finish()
    return history
