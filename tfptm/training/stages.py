"""Fine-tuning strategies, each a list of `Stage`s that `finetune` runs in order."""

import dataclasses

from tfptm.errors import TfptmError

ALL = "all"


@dataclasses.dataclass(frozen=True)
class Stage:
    """One phase of training: which backbone blocks train, at what rate, for how long.

    Args:
        name: shown in progress output and history.
        epochs: epochs this stage adds.
        learning_rate: the optimizer's rate for this stage.
        trainable_blocks: how many of the backbone's top blocks train: `0`
            freezes the whole backbone (feature extraction), `"all"` trains it all.
        freeze_batchnorm: keep BatchNormalization layers frozen, which in Keras 3
            also runs them in inference mode (moving statistics neither used
            from the batch nor updated). Right for small target data sets.
        quantization_aware: train with int8 fake quantization
            (`tfptm.compress.quantization_aware`, switched on at the start of
            the stage and left on, so the model exports to int8 with the
            ranges it learned).
    """

    name: str
    epochs: int
    learning_rate: float
    trainable_blocks: int | str = ALL
    freeze_batchnorm: bool = True
    quantization_aware: bool = False

    def __post_init__(self):
        if self.epochs < 1:
            raise TfptmError(f"Stage {self.name!r}: epochs is {self.epochs}; expected at least 1")
        if self.learning_rate <= 0:
            raise TfptmError(f"Stage {self.name!r}: learning_rate is {self.learning_rate}; expected > 0")
        if self.trainable_blocks != ALL and (not isinstance(self.trainable_blocks, int) or self.trainable_blocks < 0):
            raise TfptmError(
                f"Stage {self.name!r}: trainable_blocks is {self.trainable_blocks!r}; expected 'all' or an integer >= 0"
            )


def feature_extraction(epochs, learning_rate=1e-3):
    """Backbone frozen (BatchNorm in inference mode); only the head trains."""
    return [Stage("feature_extraction", epochs, learning_rate, trainable_blocks=0)]


def full(epochs, learning_rate=1e-4, freeze_batchnorm=False):
    """Every weight trains. With `freeze_batchnorm=False` this is also training from scratch."""
    return [Stage("full", epochs, learning_rate, trainable_blocks=ALL, freeze_batchnorm=freeze_batchnorm)]


def partial(epochs, top_blocks, learning_rate=1e-4):
    """The head and the top `top_blocks` blocks of the backbone train."""
    return [Stage(f"partial_top{top_blocks}", epochs, learning_rate, trainable_blocks=top_blocks)]


def two_stage(head_epochs, finetune_epochs, head_learning_rate=1e-3, finetune_learning_rate=1e-4):
    """The standard transfer recipe: train the head on a frozen backbone, then
    unfreeze the backbone (BatchNorm kept frozen) and fine-tune at a lower rate,
    so the random head's large early gradients never reach pre-trained weights."""
    return feature_extraction(head_epochs, head_learning_rate) + [
        Stage("finetune", finetune_epochs, finetune_learning_rate, trainable_blocks=ALL)
    ]


def qat(epochs=1, learning_rate=1e-5):
    """Quantization-aware training after any other recipe: `stages + qat(1)`.

    Every weight trains, at a low rate, while Dense, attention projections and
    convolutions see int8 fake quantization; BatchNorm stays frozen so that
    its folded statistics do not move. Then
    `tfptm.export.tflite(model, path, "int8")` uses the learned ranges.

    Example:
    >>> [(s.name, s.quantization_aware) for s in two_stage(1, 1) + qat(1)]
    [('feature_extraction', False), ('finetune', False), ('qat', True)]
    """
    return [Stage("qat", epochs, learning_rate, trainable_blocks=ALL, quantization_aware=True)]


def gradual_unfreezing(num_blocks, epochs_per_block=1, learning_rate=1e-4, head_epochs=None, head_learning_rate=1e-3,
                       freeze_batchnorm=True):  # fmt: skip
    """ULMFiT-style gradual unfreezing: the head alone first, then one more
    backbone block from the top every `epochs_per_block` epochs, until
    `num_blocks` blocks train (`len(tfptm.backbones.blocks(backbone))` for all).

    Each step is a `Stage`, so `finetune` recompiles when what trains changes.

    Example:
    >>> [(s.name, s.trainable_blocks) for s in gradual_unfreezing(2, epochs_per_block=1)]
    [('head', 0), ('unfreeze_top1', 1), ('unfreeze_top2', 2)]
    """
    if not isinstance(num_blocks, int) or num_blocks < 1:
        raise TfptmError(f"gradual_unfreezing: num_blocks is {num_blocks!r}; expected an integer >= 1")
    stages = [Stage("head", head_epochs or epochs_per_block, head_learning_rate, trainable_blocks=0)]
    for count in range(1, num_blocks + 1):
        stages.append(Stage(f"unfreeze_top{count}", epochs_per_block, learning_rate, count, freeze_batchnorm))
    return stages
