"""A recipe's finetune and optimizer sections as `tfptm.training` calls, resumable after a kill.

Training files that must outlive a killed process live in a work directory
beside the run directory, `.NAME.backup/` for a run directory `NAME`: the
backup (`tfptm.training.BackupAndRestore`), `history.csv` and TensorBoard
`logs/`. The same command again finds it, resumes from the
last backup, and at the end moves the files into the run directory and
deletes the work directory.

Example:
>>> work_dir_for("runs/digits").name
'.digits.backup'
"""

import contextlib
import fcntl
import math
import shutil
from pathlib import Path

import keras

import tfptm
from tfptm.errors import TfptmError
from tfptm.files import created_parents, ensure_writable_dir
from tfptm.rundir import BACKUP_DIR, CARRIED, PRETRAIN_BACKUP_DIR, work_dir_for



def _gradual(f, backbone):
    # Every block from the top, one more each `unfreeze_every` epochs; the last stage (all of it) runs `epochs`.
    stages = tfptm.training.gradual_unfreezing(
        len(tfptm.backbones.blocks(backbone)), f.unfreeze_every, f.learning_rate, f.head_epochs,
        f.head_learning_rate, f.freeze_batchnorm,
    )
    last = stages[-1]
    return stages[:-1] + [tfptm.training.Stage(last.name, f.epochs, last.learning_rate, last.trainable_blocks,
                                               last.freeze_batchnorm)]


#: finetune.strategy -> stages(finetune section, backbone). `lora` adds adapters first (see `prepare_model`).
STAGES = {
    "feature_extraction": lambda f, backbone: tfptm.training.feature_extraction(f.epochs, f.learning_rate),
    "full": lambda f, backbone: tfptm.training.full(f.epochs, f.learning_rate, freeze_batchnorm=f.freeze_batchnorm),
    "partial": lambda f, backbone: tfptm.training.partial(f.epochs, f.top_blocks, f.learning_rate),
    "two_stage": lambda f, backbone: tfptm.training.two_stage(f.head_epochs, f.epochs, f.head_learning_rate,
                                                              f.learning_rate),
    "gradual": _gradual,
    "lora": lambda f, backbone: tfptm.training.full(f.epochs, f.learning_rate, freeze_batchnorm=f.freeze_batchnorm),
}


def stages_of(recipe, model):
    """The `tfptm.training.Stage`s the recipe's fine-tuning strategy runs on `model`.

    Example:
    >>> import tfptm
    >>> from tfptm.recipes.validate import validate
    >>> backbone = tfptm.backbones.get("vgg_cnn", input_shape=(8, 8, 1), filters=(4, 8))
    >>> model = tfptm.build_model(backbone, tfptm.Head("multiclass", num_classes=2))
    >>> recipe = validate({"backbone": {"name": "vgg_cnn"}, "finetune": {"strategy": "gradual", "head_epochs": 1, "epochs": 3}})
    >>> [(stage.name, stage.epochs) for stage in stages_of(recipe, model)]
    [('head', 1), ('unfreeze_top1', 1), ('unfreeze_top2', 1), ('unfreeze_top3', 3)]
    """
    return STAGES[recipe.finetune.strategy](recipe.finetune, tfptm.backbone_of(model))


def prepare_model(recipe, model):
    """Strategy set-up before training: LoRA adapters for `lora` (`tfptm.training.enable_lora`).

    Example:
    >>> import tfptm
    >>> from tfptm.recipes.validate import validate
    >>> backbone = tfptm.backbones.get("transformer_encoder", vocabulary_size=50, num_layers=1, hidden_dim=8, intermediate_dim=16)
    >>> model = tfptm.build_model(backbone, tfptm.Head("multiclass", num_classes=2, pooling="first"))
    >>> prepare_model(validate({"backbone": {"name": "x"}, "finetune": {"strategy": "lora", "lora_rank": 2}}), model)
    >>> tfptm.training.lora_rank(model)
    2
    """
    if recipe.finetune.strategy == "lora":
        tfptm.training.enable_lora(model, rank=recipe.finetune.lora_rank)


def recipe_optimizer(recipe, learning_rate=None):
    """The optimizer section's optimizer without a schedule: pre-training and distillation (`make_optimizer` adds
    the schedule and layer-wise rates for fine-tuning).

    Example:
    >>> from tfptm.recipes.validate import validate
    >>> sgd = recipe_optimizer(validate({"backbone": {"name": "x"}, "optimizer": {"name": "sgd", "momentum": 0.5}}), 0.01)
    >>> round(float(sgd.learning_rate), 6), sgd.momentum
    (0.01, 0.5)
    """
    section = recipe.optimizer
    extra = {"momentum": section.momentum} if section.name == "sgd" else {}
    extra.update({"learning_rate": learning_rate} if learning_rate else {})
    return tfptm.training.optimizer(section.name, weight_decay=section.weight_decay or None, clipnorm=section.clipnorm,
                                    **extra)


def make_optimizer(recipe, model, steps_per_epoch):
    """The optimizer section as `tfptm.training.optimizer`, compiled into `model` (each stage sets its own rate).

    A schedule (`linear`, `cosine`, or warmup) spans `finetune.epochs` epochs of
    steps, the last stage's length; each stage starts it afresh.

    Example:
    >>> import tfptm
    >>> from tfptm.recipes.validate import validate
    >>> backbone = tfptm.backbones.get("vgg_cnn", input_shape=(8, 8, 1), filters=(4, 8))
    >>> model = tfptm.build_model(backbone, tfptm.Head("multiclass", num_classes=2))
    >>> recipe = validate({"backbone": {"name": "vgg_cnn"}, "optimizer": {"name": "adamw", "schedule": "cosine", "layerwise_decay": 0.5}})
    >>> config = make_optimizer(recipe, model, steps_per_epoch=10).get_config()
    >>> config["learning_rate"]["config"]["total_steps"], config["lr_multipliers"]["block1_1_conv/kernel"]
    (100, 0.25)
    """
    section = recipe.optimizer
    decay = None if section.schedule == "constant" else section.schedule
    scheduled = decay is not None or section.warmup_fraction
    extra = {"momentum": section.momentum} if section.name == "sgd" else {}
    optimizer = tfptm.training.optimizer(
        section.name,
        learning_rate=recipe.finetune.learning_rate,
        weight_decay=section.weight_decay or None,
        warmup_fraction=section.warmup_fraction if scheduled else None,
        decay=decay,
        total_steps=max(2, steps_per_epoch * recipe.finetune.epochs) if scheduled else None,
        clipnorm=section.clipnorm,
        lr_multipliers=tfptm.training.layerwise_lr_decay(model, section.layerwise_decay) if section.layerwise_decay else None,
        **extra,
    )
    tfptm.training.recompile(model, optimizer=optimizer)
    return optimizer


@contextlib.contextmanager
def claimed_work_dir(run_dir):
    """Creates (or finds) the work directory of `run_dir` and holds a lock on it while the run lasts;
    removes it at the end unless it holds a backup to resume from.

    Example:
    >>> import tempfile
    >>> parent = Path(tempfile.mkdtemp())
    >>> with claimed_work_dir(parent / "run") as work:
    ...     print(work.name)
    .run.backup
    >>> work.exists()
    False

    A second process on the same run directory is one `TfptmError`. Staging
    directories of an earlier attempt that was killed (`.NAME.partial-*`) are
    removed: the lock proves no one is writing them.
    """
    run_dir = Path(run_dir)
    with created_parents(run_dir, what="run directory"), _locked_work_dir(run_dir) as work:
        yield work


@contextlib.contextmanager
def _locked_work_dir(run_dir):
    work = ensure_writable_dir(work_dir_for(run_dir), what="training work directory")
    with open(work / "lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise TfptmError(f"run directory {str(run_dir)!r}: another tfptm process is training into it "
                             f"(it holds {str(work / 'lock')!r}); expected one run per directory") from None
        for stale in run_dir.parent.glob(f".{run_dir.name}.partial-*"):
            shutil.rmtree(stale, ignore_errors=True)
        try:
            yield work
        except BaseException:
            if not any((work / name).exists() for name in (BACKUP_DIR, PRETRAIN_BACKUP_DIR)):  # nothing to resume from
                shutil.rmtree(work, ignore_errors=True)
            raise
        shutil.rmtree(work, ignore_errors=True)  # the run completed: nothing to resume


def callbacks(recipe, work, validation, progress=None, total_epochs=None, examples_per_epoch=None):
    """`tfptm.training.callbacks.standard` in `work`, with tfptm's multi-stage backup in `work/backup`.

    Early stopping (when `finetune.patience` is set) watches `finetune.monitor`
    (default `val_loss` with validation data, else `loss`). With
    `finetune.keep_best` and validation data, the run ends with the weights of
    its best epoch on that metric, kept in memory: the run directory holds one
    model file, not a second best-checkpoint copy. With `progress`, one
    `tfptm.training.EpochProgress` line per epoch goes to it.

    Example:
    >>> import tempfile
    >>> from tfptm.recipes.validate import validate
    >>> recipe = validate({"backbone": {"name": "vgg_cnn"}, "finetune": {"patience": 3}})
    >>> [type(c).__name__ for c in callbacks(recipe, Path(tempfile.mkdtemp()), validation=False)][:2]
    ['StopOnNaN', 'EarlyStopping']
    """
    f = recipe.finetune
    monitor = f.monitor or ("val_loss" if validation else "loss")
    keep_best = f.keep_best and validation
    found = tfptm.training.callbacks.standard(
        work, monitor=monitor, patience=f.patience or 10**9, backup=False, checkpoint=False,
        early_stopping=f.patience is not None or keep_best, restore_best_weights=bool(keep_best),
    )  # tfptm's EarlyStopping: the best epoch of all the stages
    if progress is not None:
        found.append(tfptm.training.EpochProgress(progress, total_epochs, examples_per_epoch))
    return found + [tfptm.training.BackupAndRestore(work / BACKUP_DIR, save_freq=f.backup_every_steps,
                                                    min_seconds=f.backup_min_seconds)]


def fit_recipe(recipe, model, data, work=None, verbose="auto", progress=None, timing=None):
    """Runs the strategy's stages with `tfptm.finetune` (resuming from `work` if a backup is there).

    Returns the per-epoch history as JSON-ready lists. With `progress` (a
    callable taking a line), one line per epoch reports speed, ETA and validation metrics,
    and a dict `timing` gets `training_seconds`: the time spent in training steps (validation
    and backups left out) over the epochs this call ran.

    Example:
    >>> import tfptm
    >>> from tfptm.recipes.validate import validate
    >>> from tfptm.jobs.data import load_recipe_data
    >>> from tfptm.jobs.model import build
    >>> recipe = validate({"backbone": {"name": "vgg_cnn"}, "data": {"classes": [0, 1], "shots": 4},
    ...                    "finetune": {"head_epochs": 1, "epochs": 1}})
    >>> data = load_recipe_data(recipe)
    >>> model = build(recipe, tfptm.backbones.get("vgg_cnn", input_shape=(8, 8, 1), filters=(4,)), data.class_names)
    >>> fit_recipe(recipe, model, data, verbose=0)["stage"]
    ['feature_extraction', 'finetune']
    """
    steps = steps_per_epoch(data.train, data.num_train, recipe.data.batch_size)
    make_optimizer(recipe, model, steps)
    stages = stages_of(recipe, model)
    if work:
        found = callbacks(recipe, Path(work), data.validation is not None, progress,
                          total_epochs=sum(stage.epochs for stage in stages), examples_per_epoch=data.num_train)
    else:
        found = [tfptm.training.StopOnNaN()]
    history = tfptm.finetune(model, data.train, stages, validation_data=data.validation, callbacks=found,
                             verbose=verbose)
    for callback in found:  # close the CSV file before it is moved
        if isinstance(callback, keras.callbacks.CSVLogger) and callback.csv_file is not None:
            callback.csv_file.close()
        if isinstance(callback, tfptm.training.EpochProgress) and timing is not None:
            timing.update(training_seconds=sum(callback.training_seconds), epochs_run=len(callback.training_seconds))
    return {k: [v if isinstance(v, str) else float(v) for v in vs] for k, vs in history.items()}


def steps_per_epoch(dataset, num_examples, batch_size):
    """Batches in one epoch: the dataset's own count where it knows it (length buckets add part-filled batches)."""
    known = int(dataset.cardinality())
    return known if known > 0 else math.ceil(num_examples / batch_size)


def carry_files(work, run_dir):
    """Moves the training files that belong in the run (history.csv, logs) from `work` to `run_dir`.

    Example:
    >>> import tempfile
    >>> work, run = Path(tempfile.mkdtemp()), Path(tempfile.mkdtemp())
    >>> _ = (work / "history.csv").write_text("epoch,loss")
    >>> carry_files(work, run)
    >>> sorted(p.name for p in run.iterdir())
    ['history.csv']
    """
    for name in CARRIED:
        if (Path(work) / name).exists():
            shutil.move(str(Path(work) / name), str(Path(run_dir) / name))
