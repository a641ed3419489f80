"""Fine-tuning strategies run through `model.fit` (floor 3), on one device or distributed:
stages and gradual unfreezing, optimizers and schedules, LoRA, callbacks and mixed precision."""

from tfptm.training.callbacks import BackupAndRestore, CSVLogger, StopOnNaN
from tfptm.training.epoch_progress import EpochProgress
from tfptm.training.distribute import chief_or_temp_dir, get_strategy, is_chief, keras_multi_worker_fix
from tfptm.training.finetune import finetune, recompile, set_trainable_blocks
from tfptm.training.lora import enable_lora, lora_rank
from tfptm.training.optimizers import WarmupDecay, layerwise_lr_decay, optimizer, with_lr_multipliers
from tfptm.training.precision import mixed_precision
from tfptm.training.stages import ALL, Stage, feature_extraction, full, gradual_unfreezing, partial, qat, two_stage

__all__ = [
    "ALL",
    "BackupAndRestore",
    "CSVLogger",
    "EpochProgress",
    "Stage",
    "StopOnNaN",
    "WarmupDecay",
    "chief_or_temp_dir",
    "enable_lora",
    "feature_extraction",
    "finetune",
    "full",
    "get_strategy",
    "gradual_unfreezing",
    "is_chief",
    "keras_multi_worker_fix",
    "layerwise_lr_decay",
    "lora_rank",
    "mixed_precision",
    "optimizer",
    "partial",
    "recompile",
    "set_trainable_blocks",
    "two_stage",
    "qat",
    "with_lr_multipliers",
]
