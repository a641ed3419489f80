"""Runs fine-tuning stages through `model.fit` (floor 3)."""

import keras
import tensorflow as tf

from tfptm.backbones.registry import blocks
from tfptm.build import get_backbone
from tfptm.errors import TfptmError
from tfptm.training.stages import ALL


def set_trainable_blocks(backbone, trainable_blocks, freeze_batchnorm=True):
    """Makes the top `trainable_blocks` blocks of `backbone` trainable and freezes the rest.

    Returns the names of the blocks that train. BatchNormalization layers stay
    frozen when `freeze_batchnorm` is set, which in Keras 3 also keeps them in
    inference mode.
    """
    groups = blocks(backbone)
    count = len(groups) if trainable_blocks == ALL else trainable_blocks
    if count > len(groups):
        raise TfptmError(
            f"trainable_blocks is {count} but backbone {backbone.name!r} has {len(groups)} blocks: "
            f"{', '.join(name for name, _ in groups)}"
        )
    backbone.trainable = count > 0
    training = set(range(len(groups) - count, len(groups)))
    for index, (_, layers) in enumerate(groups):
        for layer in layers:
            frozen_bn = freeze_batchnorm and isinstance(layer, keras.layers.BatchNormalization)
            layer.trainable = index in training and not frozen_bn
    return [groups[i][0] for i in sorted(training)]


def recompile(model, learning_rate):
    """Compiles `model` again with a fresh optimizer of the same kind at `learning_rate`.

    Keras fixes the trainable weights when a model is compiled, so every change
    of what trains must be followed by a compile; a fresh optimizer also drops
    slot variables that belonged to the previous stage. The new optimizer is
    made in the model's `tf.distribute` strategy scope, so that recompiling
    outside `strategy.scope()` still gives it distributed variables.
    """
    config = model.get_compile_config()
    if config is None:
        raise TfptmError(f"Model {model.name!r} is not compiled; build it with tfptm.build_model or call compile first")
    optimizer = dict(keras.optimizers.serialize(model.optimizer))
    optimizer["config"] = {**optimizer["config"], "learning_rate": learning_rate}
    with model.distribute_strategy.scope():
        model.compile_from_config({**config, "optimizer": optimizer})


def finetune(model, train_data, stages, validation_data=None, callbacks=None, verbose="auto"):
    """Trains `model` (from `build_model`) through `stages` with `model.fit`.

    Epochs are numbered on across stages, so callbacks and the returned history
    see one continuous run. Returns a dict of per-epoch lists, as
    `History.history`, plus `"stage"` naming each epoch's stage.

    Example:
    >>> import numpy as np, tfptm
    >>> backbone = tfptm.backbones.get("vgg_cnn", input_shape=(8, 8, 1), filters=(8,))
    >>> model = tfptm.build_model(backbone, tfptm.Head("multiclass", num_classes=2))
    >>> data = tfptm.data.from_arrays(np.random.rand(8, 8, 8, 1), np.arange(8) % 2, seed=0)
    >>> history = tfptm.finetune(model, data, tfptm.training.two_stage(1, 1), verbose=0)
    >>> history["stage"]
    ['feature_extraction', 'finetune']
    """
    backbone = get_backbone(model)
    history, epoch = {"stage": []}, 0
    for stage in stages:
        set_trainable_blocks(backbone, stage.trainable_blocks, stage.freeze_batchnorm)
        recompile(model, stage.learning_rate)
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
        history["stage"].extend([stage.name] * stage.epochs)
        epoch += stage.epochs
    return history
