"""LoRA fine-tuning with Keras's own low-rank adapters (floor 3).

`enable_lora` calls Keras's `layer.enable_lora(rank)` on the backbone's
`Dense` and `EinsumDense` layers (by default the attention query and value
projections, as KerasHub's `Backbone.enable_lora` does) and freezes every
other backbone weight, biases included. The head trains as usual.

Keras keeps the adapters apart in the model (`kernel + A @ B * alpha / rank`),
so exported SavedModels compute exactly what the Keras model computes, and
`.keras` files store the merged kernel (the adapters load as zeros), so they
round-trip with the same outputs. Layers that KerasHub builds inside its own
layers (the attention projections) come back from a `.keras` file as plain
layers with the merged kernels; call `enable_lora` again to train new adapters.
"""

import keras

from tfptm.build import backbone_of
from tfptm.errors import TfptmError

#: KerasHub's default LoRA targets (`Backbone.default_lora_layer_names`): attention query and value.
ATTENTION_TARGETS = ("query_dense", "value_dense", "query", "value")
LORA_NAMES = ("lora_kernel_a", "lora_kernel_b")


def _backbone(model_or_backbone):
    if not isinstance(model_or_backbone, keras.Model):
        raise TfptmError(f"enable_lora: expected a keras.Model; got {type(model_or_backbone).__name__}")
    try:
        return backbone_of(model_or_backbone)
    except TfptmError:
        return model_or_backbone  # a backbone itself


def _dense_layers(backbone):
    return [l for l in backbone._flatten_layers(include_self=False) if isinstance(l, (keras.layers.Dense, keras.layers.EinsumDense))]


def is_lora_variable(variable):
    """Whether `variable` is a LoRA adapter weight (`lora_kernel_a` or `lora_kernel_b`)."""
    return variable.name in LORA_NAMES


def lora_rank(model_or_backbone):
    """The LoRA rank of a backbone (or of a model's backbone), or None if it has no adapters.

    Read from the layers themselves, so it holds for a model loaded from a `.keras` file too.
    """
    ranks = [l.lora_rank for l in _dense_layers(_backbone(model_or_backbone)) if getattr(l, "lora_enabled", False)]
    return ranks[0] if ranks else None


def freeze_all_but_lora(layer):
    """Marks every weight of `layer` and its sublayers untrainable except the LoRA adapters.

    Called by `enable_lora` and, in LoRA mode, by `set_trainable_blocks` on
    the blocks it unfreezes, so that `finetune` stages train only adapters there.
    """
    layer.trainable = True
    for variable in layer.weights:
        variable.trainable = is_lora_variable(variable)


def enable_lora(model_or_backbone, rank=8, target_names=None, alpha=None):
    """Adds rank-`rank` LoRA adapters to the backbone and freezes its other weights.

    Args:
        model_or_backbone: a model from `build_model` (its backbone gets the
            adapters, its head keeps training) or a backbone.
        rank: the adapters' rank.
        target_names: names of the `Dense`/`EinsumDense` layers to adapt. By
            default the attention query and value projections if the backbone
            has any (KerasHub's choice), otherwise every `Dense`/`EinsumDense`.
        alpha: LoRA scale numerator (`alpha / rank`); Keras's default is `rank`.

    Returns the adapted layers. Calling it again with the same rank (say on a
    model loaded from a `.keras` file, whose variables all load trainable)
    freezes all but the adapters again. Afterwards only the adapters (and layers
    outside the backbone) train; `finetune` keeps it so, with
    `trainable_blocks` choosing the blocks whose adapters train. Compile
    again (`tfptm.training.recompile`) before training a compiled model.

    Example:
    >>> import tfptm
    >>> backbone = tfptm.backbones.get("transformer_encoder", vocabulary_size=50, num_layers=2, hidden_dim=8, intermediate_dim=16)
    >>> model = tfptm.build_model(backbone, tfptm.Head("multiclass", num_classes=2, pooling="first"))
    >>> len(enable_lora(model, rank=2))  # query and value in two layers
    4
    >>> sorted({v.name for v in model.trainable_weights})
    ['bias', 'kernel', 'lora_kernel_a', 'lora_kernel_b']
    """
    backbone = _backbone(model_or_backbone)
    if not isinstance(rank, int) or rank < 1:
        raise TfptmError(f"enable_lora: rank is {rank!r}; expected an integer >= 1")
    dense = _dense_layers(backbone)
    existing = lora_rank(backbone)
    if existing is not None and existing != rank:
        raise TfptmError(f"enable_lora: backbone {backbone.name!r} already has LoRA of rank {existing}; asked for {rank}")
    if existing is not None:  # e.g. loaded from a .keras file, where only the adapters' layers come back LoRA-enabled
        adapted = [l for l in dense if getattr(l, "lora_enabled", False)]
        freeze_all_but_lora(backbone)
        return adapted
    if target_names is None:
        targets = [l for l in dense if l.name in ATTENTION_TARGETS] or dense
    else:
        targets = [l for l in dense if l.name in set(target_names)]
    if not targets:
        names = ", ".join(sorted({l.name for l in dense})) or "none"
        raise TfptmError(
            f"enable_lora: no Dense or EinsumDense layer of {backbone.name!r} matches {target_names}; its layers: {names}"
        )
    for layer in targets:
        layer.enable_lora(rank, lora_alpha=alpha)
    freeze_all_but_lora(backbone)
    return targets
