"""Joins a backbone and a head into one functional `keras.Model` (floor 2)."""

import keras

from tfptm.backbones.registry import BACKBONE_NAME
from tfptm.errors import TfptmError


def build_model(backbone, head, optimizer="adam", learning_rate=1e-3, name="model"):
    """Builds `head(backbone(inputs))` as a functional model and compiles it.

    The backbone stays one nested layer, reachable as
    `model.get_layer("backbone")`, so it can be frozen, inspected or saved on
    its own. The model is compiled with the head's loss and metrics and the
    named Keras optimizer; call `model.compile` again to change any of them.

    Example:
    >>> import tfptm
    >>> backbone = tfptm.backbones.get("vgg_cnn", input_shape=(8, 8, 1), filters=(8, 16))
    >>> model = tfptm.build_model(backbone, tfptm.Head("multiclass", num_classes=5))
    >>> model.output.shape, model.get_layer("backbone") is backbone
    ((None, 5), True)
    """
    if not isinstance(backbone, keras.Model):
        raise TfptmError(f"build_model: backbone must be a keras.Model; got {type(backbone).__name__}")
    backbone.name = BACKBONE_NAME
    inputs = keras.tree.map_structure(
        lambda t: keras.Input(shape=t.shape[1:], dtype=t.dtype, name=t.name), backbone.input
    )
    # KerasHub text backbones take a padding mask but do not pass a Keras mask on to their outputs.
    padding_mask = inputs.get("padding_mask") if isinstance(inputs, dict) else None
    model = keras.Model(inputs, head(backbone(inputs), padding_mask=padding_mask), name=name)
    model.compile(
        optimizer=keras.optimizers.get({"class_name": optimizer, "config": {"learning_rate": learning_rate}}),
        loss=head.loss(),
        metrics=head.metrics(),
    )
    return model


def backbone_of(model):
    """The backbone sub-model of a model made by `build_model` (`tfptm.backbones.get` builds one from a name).

    Example:
    >>> import tfptm
    >>> backbone = tfptm.backbones.get("vgg_cnn", input_shape=(8, 8, 1), filters=(4,))
    >>> backbone_of(tfptm.build_model(backbone, tfptm.Head("multiclass", num_classes=2))) is backbone
    True
    """
    try:
        return model.get_layer(BACKBONE_NAME)
    except ValueError:
        raise TfptmError(f"Model {model.name!r} has no layer named {BACKBONE_NAME!r}; build it with tfptm.build_model")


def get_backbone(model):
    """The old name of `backbone_of`, kept for one release."""
    from tfptm._moved import warn_moved

    warn_moved("tfptm.get_backbone", "tfptm.backbone_of")
    return backbone_of(model)


def save_model(model, path, include_optimizer=False):
    """Saves `model` as a `.keras` file, by default without the optimizer's state.

    A fine-tuned model file is for predicting, exporting or fine-tuning
    again: Adam's two slots per weight would triple its size (a 90 MB MiniLM
    classifier becomes 260 MB). The compile settings are still saved, so
    `keras.saving.load_model` compiles it with a fresh optimizer; resuming an
    interrupted run uses its own backups, not this file.

    Example:
    >>> import os, tempfile, numpy as np, tfptm
    >>> backbone = tfptm.backbones.get("vgg_cnn", input_shape=(8, 8, 1), filters=(8,))
    >>> model = tfptm.build_model(backbone, tfptm.Head("multiclass", num_classes=2))
    >>> _ = model.fit(np.zeros((4, 8, 8, 1)), np.array([0, 1, 0, 1]), verbose=0)
    >>> lean, full = (os.path.join(tempfile.mkdtemp(), name) for name in ("lean.keras", "full.keras"))
    >>> save_model(model, lean); save_model(model, full, include_optimizer=True)
    >>> os.path.getsize(lean) < os.path.getsize(full)
    True
    """
    optimizer = getattr(model, "optimizer", None)
    if include_optimizer or optimizer is None:
        model.save(path)
        return
    model.optimizer = None  # Keras saves every attribute it can reach; the compile config stays
    try:
        model.save(path)
    finally:
        model.optimizer = optimizer
