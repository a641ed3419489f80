"""Fine-tuning strategies run through `model.fit` (floor 3)."""

from tfptm.training.finetune import finetune, recompile, set_trainable_blocks
from tfptm.training.stages import ALL, Stage, feature_extraction, full, partial, two_stage

__all__ = [
    "ALL",
    "Stage",
    "feature_extraction",
    "finetune",
    "full",
    "partial",
    "recompile",
    "set_trainable_blocks",
    "two_stage",
]
