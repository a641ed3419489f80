"""The pretrain and distill sections: what teaches a backbone before fine-tuning, or a student instead of it.

`PRETRAINERS` maps `pretrain.objective` to a function (supervised,
masked LM, causal LM) and `DISTILLERS` holds the distillation step; the
runner (`tfptm.recipes.run`) calls them, and a new objective is one more entry.
Language-model pre-training learns a vocabulary from the corpus, so it also
returns the tokenizer the fine-tuning text must go through; the backbone is
kept with it as an artifact (`save_pretrained_artifact`) that a later recipe
loads by path.

Example:
>>> sorted(PRETRAINERS), sorted(DISTILLERS)
(['causal_lm', 'mlm', 'supervised'], ['distill'])
"""

from pathlib import Path

import tfptm
from tfptm.errors import TfptmError, one_line
from tfptm.pretrain.common import train
from tfptm.recipes.loaders import DEFAULT_MAX_LENGTH, load_data, read_documents
from tfptm.recipes.models import backbone_args, check_input_shape, evaluate, make_head, sample_shape

PRETRAINED_DIR = "pretrained"  # the artifact `run_pretrain` saves: use RUN_DIR/pretrained as backbone.name

#: objective -> pretrain(recipe, backbone, progress, verbose, backup=None) -> (backbone, metrics) or, for text
#: objectives whose vocabulary the fine-tuning text must share, (backbone, metrics, tokenizer). `backup` is the
#: directory of its `tfptm.training.BackupAndRestore` (`pretrain_backup_dir`): a killed run resumes from it.
PRETRAINERS = {}
PRETRAIN_BACKUP = "pretrain"  # in the run's work directory (`tfptm.recipes.training.work_dir_for`)
#: "distill" -> distill(recipe, student, data, progress, verbose) -> (history, metrics of the teacher and student).
DISTILLERS = {}


def optimizer(recipe, learning_rate=None):
    """The optimizer section's optimizer without a schedule (each pre-training or distillation call sets its rate).

    Example:
    >>> from tfptm.recipes.validate import validate
    >>> sgd = optimizer(validate({"backbone": {"name": "x"}, "optimizer": {"name": "sgd", "momentum": 0.5}}), 0.01)
    >>> round(float(sgd.learning_rate), 6), sgd.momentum
    (0.01, 0.5)
    """
    section = recipe.optimizer
    extra = {"momentum": section.momentum} if section.name == "sgd" else {}
    extra.update({"learning_rate": learning_rate} if learning_rate else {})
    return tfptm.training.optimizer(section.name, weight_decay=section.weight_decay or None, clipnorm=section.clipnorm,
                                    **extra)


def pretrain_backup_dir(work):
    """Where pre-training keeps its backup in a run's work directory `work` (`None`: no backups).

    The backup is kept when pre-training ends (`delete_checkpoint=False`), so a
    run killed later, while fine-tuning, does not pre-train again: it restores
    the final weights. It goes with the work directory when the run completes.

    Example:
    >>> pretrain_backup_dir(Path(".run.backup")).as_posix(), pretrain_backup_dir(None)
    ('.run.backup/pretrain', None)
    """
    return None if work is None else Path(work) / PRETRAIN_BACKUP


def backup_callbacks(recipe, backup, progress):
    """`[tfptm.training.BackupAndRestore]` in directory `backup` (every `finetune.backup_every_steps` steps and
    epoch, kept at the end), or `[]` without one; says so when there is a backup to resume from."""
    if backup is None:
        return []
    callback = tfptm.training.BackupAndRestore(backup, save_freq=recipe.finetune.backup_every_steps,
                                               delete_checkpoint=False)
    state = callback.state()
    if state is not None:
        done = "finished, restoring its weights" if state.get("stage_done") else f"{state['epoch']} epochs done"
        progress(f"resuming pre-training from its backup in {backup} ({done})")
    return [callback]


def pretrain_supervised(recipe, backbone, progress, verbose=0, backup=None):
    """Supervised pre-training: the backbone with a fresh head trains fully on `pretrain.data`.

    Returns `(backbone, metrics on pretrain.data's test split)`.
    """
    section = recipe.pretrain
    data = load_data(section.data, recipe.seed)
    progress(f"pre-training the backbone on {data.num_train} examples ({section.epochs} epochs)")
    check_input_shape(backbone, sample_shape(data))
    model = tfptm.build_model(backbone, make_head(recipe.head, len(data.class_names)), name="pretrain")
    tfptm.training.recompile(model, optimizer=optimizer(recipe))
    # tfptm.finetune, one full stage, resuming from (or restoring) the backup
    train(model, data.train, section.epochs, section.learning_rate, None, None, verbose,
          backup_callbacks(recipe, backup, progress))
    return tfptm.get_backbone(model), evaluate(model, data)


PRETRAINERS["supervised"] = pretrain_supervised

#: pretrain.objective -> (the `tfptm.pretrain` function, the backbone it builds).
LANGUAGE_MODELS = {"mlm": ("masked_lm", "transformer_encoder"), "causal_lm": ("causal_lm", "transformer_decoder")}


def pretrain_language_model(recipe, backbone, progress, verbose=0, backup=None):
    """`mlm` or `causal_lm` pre-training (`tfptm.pretrain.masked_lm` / `causal_lm`) on `pretrain.data`'s texts.

    The objective builds its own backbone (`check_supported` makes sure
    `backbone.name` names it) sized by `backbone.args`, for a wordpiece vocabulary of at most
    `backbone.args.vocabulary_size` tokens learnt from the corpus; `backbone`
    is not used. Windows are `backbone.args.max_sequence_length` tokens (else
    `pretrain.data.max_length`, else 128). Returns `(backbone, metrics,
    tokenizer)`: the fine-tuning text is tokenized with the corpus's vocabulary.
    """
    section = recipe.pretrain
    function, builds = LANGUAGE_MODELS[section.objective]
    args = backbone_args(recipe)
    vocabulary_size = args.pop("vocabulary_size", 8000)
    sequence_length = args.pop("max_sequence_length", None) or section.data.max_length or DEFAULT_MAX_LENGTH
    documents = read_documents(section.data)
    progress(f"pre-training a {builds} ({section.objective}) on {len(documents)} documents ({section.epochs} epochs)")
    extra = {"mask_rate": section.mask_rate} if section.objective == "mlm" else {}
    try:
        result = getattr(tfptm.pretrain, function)(
            documents, vocabulary_size=vocabulary_size, sequence_length=sequence_length, epochs=section.epochs,
            batch_size=section.data.batch_size, learning_rate=section.learning_rate,
            warmup_fraction=section.warmup_fraction, seed=recipe.seed,
            verbose=verbose, callbacks=backup_callbacks(recipe, backup, progress), **extra, **args)
    except TypeError as error:
        raise TfptmError(f"backbone.args: {one_line(error)}") from None
    return result.backbone, result.metrics, result.tokenizer


PRETRAINERS["mlm"] = PRETRAINERS["causal_lm"] = pretrain_language_model


def distill(recipe, student, data, progress, verbose=0):
    """Trains `student` from `distill.teacher` with `tfptm.Distiller`, in place of the finetune section's stages.

    The teacher is a `.keras` model or a run directory's `model.keras`, on
    the same inputs and classes. Array data (the same inputs every epoch) is
    labelled with the teacher's outputs once (`cache_teacher_outputs`); other
    pipelines run the teacher on every batch. Returns `(history, metrics)`:
    test-split metrics of `"model"` (the student) and `"teacher"`, each with
    its `parameters`.
    """
    from tfptm.distill import cache_teacher_outputs
    from tfptm.recipes.saved import load_model

    section = recipe.distill
    progress(f"loading the teacher {section.teacher}")
    teacher = load_model(section.teacher)
    check_input_shape(teacher, sample_shape(data))
    with student.distribute_strategy.scope():
        distiller = tfptm.Distiller(student, teacher, alpha=section.alpha, temperature=section.temperature)
        distiller.compile(optimizer(recipe, section.learning_rate))
    train_data = data.train
    if data.x_train is not None:
        train_data = cache_teacher_outputs(teacher, data.x_train, data.y_train, batch_size=recipe.data.batch_size,
                                           seed=recipe.seed)
    progress(f"distilling {teacher.count_params():,} teacher parameters into {student.count_params():,} "
             f"({section.epochs} epochs, alpha {section.alpha}, temperature {section.temperature})")
    fitted = distiller.fit(train_data, epochs=section.epochs, validation_data=data.validation, verbose=verbose)
    history = {k: [float(v) for v in vs] for k, vs in fitted.history.items()}
    history["stage"] = ["distill"] * section.epochs
    progress(f"evaluating the student and the teacher on {data.num_test} test examples")
    metrics = {name: {**evaluate(model, data), "parameters": model.count_params()}
               for name, model in (("model", student), ("teacher", teacher))}
    return history, metrics


DISTILLERS["distill"] = distill


def distillation_section(metrics):
    """The report.md lines comparing the teacher with the distilled student (`metrics["teacher"]`, `["model"]`).

    Example:
    >>> print(distillation_section({"teacher": {"accuracy": 0.9, "parameters": 4000},
    ...                             "model": {"accuracy": 0.85, "parameters": 1000}}), end="")
    <BLANKLINE>
    ## Distillation
    <BLANKLINE>
    | | parameters | test accuracy |
    |---|---:|---:|
    | teacher | 4,000 | 0.900 |
    | student | 1,000 | 0.850 |
    <BLANKLINE>
    The student has 25.0% of the teacher's parameters and 94.4% of its accuracy.
    """
    teacher, student = metrics["teacher"], metrics["model"]
    rows = ["", "## Distillation", "", "| | parameters | test accuracy |", "|---|---:|---:|"]
    rows += [f"| {name} | {m['parameters']:,} | {m['accuracy']:.3f} |" for name, m in (("teacher", teacher), ("student", student))]
    share = student["accuracy"] / teacher["accuracy"] if teacher["accuracy"] else float("nan")
    rows += ["", f"The student has {100 * student['parameters'] / teacher['parameters']:.1f}% of the teacher's "
             f"parameters and {100 * share:.1f}% of its accuracy.", ""]
    return "\n".join(rows)


def save_pretrained_artifact(run_dir, recipe, backbone, tokenizer, metrics):
    """Saves `backbone` (and `tokenizer`) as the artifact `run_dir/pretrained` that `backbone.name` can load."""
    from tfptm.backbones.saved import save_artifact

    info = {"objective": recipe.pretrain.objective, "metrics": metrics, "recipe": recipe.name}
    return save_artifact(Path(run_dir) / PRETRAINED_DIR, backbone, tokenizer, info)
