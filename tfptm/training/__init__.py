"""Fine-tuning strategies run through `model.fit` (floor 3), on one device or distributed."""

from tfptm.training.distribute import chief_or_temp_dir, get_strategy, is_chief, keras_multi_worker_fix
from tfptm.training.finetune import finetune, recompile, set_trainable_blocks
from tfptm.training.stages import ALL, Stage, feature_extraction, full, partial, two_stage

__all__ = [
    "ALL",
    "Stage",
    "chief_or_temp_dir",
    "feature_extraction",
    "finetune",
    "full",
    "get_strategy",
    "is_chief",
    "keras_multi_worker_fix",
    "partial",
    "recompile",
    "set_trainable_blocks",
    "two_stage",
]
