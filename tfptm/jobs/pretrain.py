"""The pretrain section: what teaches a backbone before fine-tuning.

`PRETRAINERS` maps `pretrain.objective` to a function (supervised,
masked LM, causal LM); the runner (`tfptm.jobs.train`) calls them, and a new
objective is one more entry. Each calls its `tfptm.pretrain` function.
Language-model pre-training learns a vocabulary from the corpus, so it also
returns the tokenizer the fine-tuning text must go through; the backbone is
kept with it as an artifact (`save_pretrained_artifact`) that a later recipe
loads by path.

Example:
>>> sorted(PRETRAINERS)
['causal_lm', 'mlm', 'supervised']
"""

from pathlib import Path

import tfptm
from tfptm.errors import TfptmError, one_line
from tfptm.jobs.data import DEFAULT_MAX_LENGTH, load_data, read_documents
from tfptm.jobs.fit import recipe_optimizer
from tfptm.jobs.model import LANGUAGE_MODELS, backbone_args, check_examples_fit, make_head, sample_shape, test_metrics
from tfptm.rundir import PRETRAIN_BACKUP_DIR, PRETRAINED_DIR

#: objective -> pretrain(recipe, backbone, progress, verbose, backup=None) -> (backbone, metrics) or, for text
#: objectives whose vocabulary the fine-tuning text must share, (backbone, metrics, tokenizer). `backup` is the
#: directory of its `tfptm.training.BackupAndRestore` (`pretrain_backup_dir`): a killed run resumes from it.
PRETRAINERS = {}


def pretrain_backup_dir(work):
    """Where pre-training keeps its backup in a run's work directory `work` (`None`: no backups).

    The backup is kept when pre-training ends (`delete_checkpoint=False`), so a
    run killed later, while fine-tuning, does not pre-train again: it restores
    the final weights. It goes with the work directory when the run completes.

    Example:
    >>> pretrain_backup_dir(Path(".run.backup")).as_posix(), pretrain_backup_dir(None)
    ('.run.backup/pretrain', None)
    """
    return None if work is None else Path(work) / PRETRAIN_BACKUP_DIR


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
    """Supervised pre-training (`tfptm.pretrain.supervised`): the backbone with a fresh head trains fully on `pretrain.data`.

    Returns `(backbone, metrics on pretrain.data's test split)`.
    """
    section = recipe.pretrain
    data = load_data(section.data, recipe.seed)
    progress(f"pre-training the backbone on {data.num_train} examples ({section.epochs} epochs)")
    check_examples_fit(backbone, sample_shape(data))
    result = tfptm.pretrain.supervised(
        backbone, make_head(recipe.head, len(data.class_names)), data.train, section.epochs, section.learning_rate,
        verbose=verbose, name="pretrain", optimizer=recipe_optimizer(recipe),
        callbacks=backup_callbacks(recipe, backup, progress))
    return result.backbone, test_metrics(result.model, data)


PRETRAINERS["supervised"] = pretrain_supervised

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


def save_pretrained_artifact(run_dir, recipe, backbone, tokenizer, metrics):
    """Saves `backbone` (and `tokenizer`) as the artifact `run_dir/pretrained` that `backbone.name` can load."""
    from tfptm.backbones.saved import save_artifact

    info = {"objective": recipe.pretrain.objective, "metrics": metrics, "recipe": recipe.name}
    return save_artifact(Path(run_dir) / PRETRAINED_DIR, backbone, tokenizer, info)
