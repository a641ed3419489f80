"""A recipe's model: its backbone (and that backbone's tokenizer), its head, the joined model, its test metrics.

Example:
>>> from tfptm.recipes.schema import Head
>>> make_head(Head(task="multiclass"), num_classes=3).num_classes
3
"""

import os
from pathlib import Path

import numpy as np

import tfptm
from tfptm.errors import TfptmError, one_line
from tfptm.evaluation.metrics import task_metrics, task_of
from tfptm.recipes.schema import DEFAULT_MAX_LENGTH, EMBEDDING, QUESTION_ANSWERING, TEXT_FILE_SOURCES, \
    TOKEN_CLASSIFICATION
from tfptm.rundir import PRETRAINED_DIR

#: pretrain.objective -> (the `tfptm.pretrain` function, the backbone it builds). These objectives learn the
#: vocabulary the fine-tuning text must go through: it is saved with the pre-trained backbone in RUN_DIR/pretrained.
LANGUAGE_MODELS = {"mlm": ("masked_lm", "transformer_encoder"), "causal_lm": ("causal_lm", "transformer_decoder")}


def make_head(head, num_classes):
    """A `tfptm.Head` from the head section (`tfptm.tasks.tokens.TokenHead` for token classification);
    `num_classes` (from the data) fills a missing one."""
    if head.task == TOKEN_CLASSIFICATION:
        from tfptm.tasks.tokens import TokenHead

        return TokenHead(num_tags=num_classes, dropout=head.dropout)
    if head.task == QUESTION_ANSWERING:
        from tfptm.tasks.spans import SpanHead

        return SpanHead(dropout=head.dropout)
    classes = None if head.task == "binary" else head.num_classes or num_classes
    return tfptm.Head(head.task, num_classes=classes, pooling=head.pooling, dropout=head.dropout,
                      hidden_units=head.hidden_units, label_smoothing=head.label_smoothing)


def sample_shape(data):
    """One example's shape in `data`'s training pipeline, or `None` (dict inputs, variable lengths).

    Example:
    >>> from tfptm.jobs.data import load_data
    >>> from tfptm.recipes.schema import Data
    >>> sample_shape(load_data(Data(classes=(0, 1), shots=2)))
    (8, 8, 1)
    """
    spec = data.train.element_spec[0]
    if isinstance(spec, dict) or None in spec.shape[1:]:
        return None
    return tuple(spec.shape[1:])


def check_examples_fit(model, sample_shape):
    """Raises a `TfptmError` when a one-input model cannot take examples of `sample_shape` (`None`: no check)."""
    if sample_shape is None or isinstance(model.input, dict) or len(model.inputs) != 1:
        return
    tfptm.data.check_input_shape(model, sample_shape, where=f"{model.name}: the data's examples")


def test_metrics(model, data):
    """Test-set metrics of `model` for its head's task: `tfptm.evaluate` on test arrays, else over the test pipeline;
    token classification: seqeval's entity scores on the test sentences; question answering: SQuAD's exact match
    and F1 on the test questions."""
    if data.test_table is not None:
        from tfptm.data.squad import QATable
        from tfptm.jobs.spans import qa_test_metrics
        from tfptm.jobs.tokens import tagged_test_metrics

        return (qa_test_metrics if isinstance(data.test_table, QATable) else tagged_test_metrics)(model, data)
    if data.x_test is not None:
        return tfptm.evaluate(model, data.x_test, data.y_test, data.class_names)
    outputs, labels = [], []
    for x, y in data.test:
        outputs.append(np.asarray(model.predict_on_batch(x)))
        labels.append(y.numpy())
    return task_metrics(task_of(model), np.concatenate(labels), np.concatenate(outputs), data.class_names)


def backbone_args(recipe):
    """`backbone.args` as keyword arguments: YAML lists become the tuples builders expect.

    Example:
    >>> from tfptm.recipes.validate import validate
    >>> backbone_args(validate({"backbone": {"name": "vgg_cnn", "args": {"filters": [4, 8]}}}))
    {'filters': (4, 8)}
    """
    return {k: tuple(v) if isinstance(v, list) else v for k, v in recipe.backbone.args.items()}


def make_backbone(recipe):
    """`tfptm.backbones.get(backbone.name, **backbone.args)`."""
    try:
        return tfptm.backbones.get(recipe.backbone.name, **backbone_args(recipe))
    except TypeError as error:  # an argument the builder does not take
        raise TfptmError(f"backbone.args: {one_line(error)}") from None


def uses_preset_tokenizer(recipe):
    """True when the recipe's text is tokenized by its backbone's own tokenizer (not a vocabulary learnt here).

    That is a KerasHub/Hugging Face preset's, or the one saved in a pre-trained artifact directory.

    Example:
    >>> from tfptm.recipes.validate import validate
    >>> text = {"source": "csv", "path": "t.csv"}
    >>> [uses_preset_tokenizer(validate({"backbone": {"name": name}, "data": text})) for name in ("models/minilm", "lstm_encoder")]
    [True, False]
    """
    return recipe.data.source in TEXT_FILE_SOURCES and recipe.backbone.name not in tfptm.backbones.available()


def is_artifact(name):
    """True when `name` is a pre-trained artifact directory (`tfptm pretrain`, `tfptm.pretrain.save_pretrained`)."""
    from tfptm.backbones.saved import MANIFEST

    return os.path.isfile(os.path.join(name, MANIFEST))


def backbone_and_tokenizer(recipe):
    """The backbone, and for text recipes its own tokenizer (else `None`), checked against each other.

    A KerasHub/Hugging Face preset gives its preprocessor, tokenizing at
    `data.max_length`; a pre-trained artifact directory gives the tokenizer it
    was pre-trained with. tfptm's local text backbones get a vocabulary learnt
    from the training texts instead (in `load_data`).
    """
    if not uses_preset_tokenizer(recipe):
        return make_backbone(recipe), None
    from tfptm.backbones.presets import load_preset
    from tfptm.backbones.saved import load_artifact

    name = recipe.backbone.name
    try:
        if is_artifact(name):
            backbone, tokenizer = load_artifact(name, **backbone_args(recipe))
        else:
            backbone, tokenizer = load_preset(name, sequence_length=recipe.data.max_length, **backbone_args(recipe))
    except TypeError as error:
        raise TfptmError(f"backbone.args: {one_line(error)}") from None
    if tokenizer is None:
        raise TfptmError(f"backbone.name {name!r}: it has no tokenizer; expected a text preset (with tokenizer files) "
                         "or an artifact pre-trained on text (mlm or causal_lm) for a csv or jsonl data source")
    backbone.name = "backbone"
    tfptm.data.check_tokenizer(tokenizer, backbone)
    return backbone, tokenizer


def build(recipe, backbone, class_names, sample_shape=None):
    """Joins backbone and head with `tfptm.build_model` (the optimizer is set in `train`).

    With `sample_shape` (one example's shape), a backbone that takes other inputs is a `TfptmError`.
    """
    check_examples_fit(backbone, sample_shape)
    head = make_head(recipe.head, len(class_names))
    return tfptm.build_model(backbone, head, optimizer=recipe.optimizer.name, learning_rate=recipe.finetune.learning_rate,
                             name=recipe.name)


def recipe_tokenizer(recipe, run_dir=None):
    """The tokenizer the recipe's text went through in training, loaded again without the backbone; `None` when
    the recipe is not text, or its vocabulary was learnt from the training texts (`load_recipe_data` learns it again).
    For text pairs (`data.text_pair_column`), the `tfptm.tasks.pairs.PairTokenizer` around it.

    A preset's preprocessor (at `data.max_length`), a pre-trained artifact's
    tokenizer, or after language-model pre-training the one saved in `run_dir/pretrained`.
    """
    if recipe.data.text_pair_column is not None and recipe.head.task != EMBEDDING:  # the pair tokenizer trained with
        from tfptm.tasks.pairs import pair_tokenizer

        tokenizer = _single_text_tokenizer(recipe, run_dir)
        return None if tokenizer is None else pair_tokenizer(tokenizer, recipe.data.max_length or DEFAULT_MAX_LENGTH)
    if recipe.head.task == QUESTION_ANSWERING:  # the window tokenizer trained with
        from tfptm.jobs.spans import serving_sizes
        from tfptm.tasks.spans import span_tokenizer

        tokenizer = _single_text_tokenizer(recipe, run_dir)
        return None if tokenizer is None else span_tokenizer(tokenizer, **serving_sizes(recipe.data, recipe.head))
    if recipe.head.task == TOKEN_CLASSIFICATION:  # the word tokenizer trained with (words, pieces, offsets)
        from tfptm.tasks.tokens import word_tokenizer

        tokenizer = _single_text_tokenizer(recipe, run_dir)
        if tokenizer is None and recipe.distill:  # a local student reads its teacher's word pieces
            tokenizer = teacher_tokenizer(recipe)
        return None if tokenizer is None else word_tokenizer(tokenizer, recipe.data.max_length or DEFAULT_MAX_LENGTH)
    return _single_text_tokenizer(recipe, run_dir)


def _single_text_tokenizer(recipe, run_dir):
    from tfptm.backbones.saved import load_artifact

    if recipe.data.source not in TEXT_FILE_SOURCES:
        return None
    if uses_preset_tokenizer(recipe):
        if is_artifact(recipe.backbone.name):
            return load_artifact(recipe.backbone.name)[1]
        from tfptm.backbones.presets import load_preset_tokenizer

        return load_preset_tokenizer(recipe.backbone.name, sequence_length=recipe.data.max_length)
    if recipe.pretrain and recipe.pretrain.objective in LANGUAGE_MODELS:
        artifact = Path(run_dir or ".") / PRETRAINED_DIR
        if not artifact.is_dir():
            raise TfptmError(f"{str(artifact)!r}: missing; the recipe's text was tokenized with the vocabulary learnt "
                             "in pre-training, expected it saved there by tfptm train")
        return load_artifact(str(artifact))[1]
    return None


def teacher_tokenizer(recipe):
    """The tokenizer the distill section's teacher run read its text with (from the teacher's `recipe.yaml`), for a
    student that has none of its own (a local backbone): teacher and student must see the same token ids.
    `None` when the teacher is not a run with a checkpoint's tokenizer."""
    from tfptm.recipes.validate import load_recipe
    from tfptm.rundir import RECIPE_FILE, model_path

    run_dir = model_path(recipe.distill.teacher).parent
    if not (run_dir / RECIPE_FILE).is_file():
        return None
    tokenizer = recipe_tokenizer(load_recipe(run_dir / RECIPE_FILE), run_dir)
    size = recipe.backbone.args.get("vocabulary_size")
    pieces = getattr(tokenizer, "pieces", None)
    if pieces is not None and size is not None and size < len(pieces.vocabulary):
        raise TfptmError(f"backbone.args.vocabulary_size is {size} but the teacher's vocabulary has "
                         f"{len(pieces.vocabulary)} pieces; expected at least {len(pieces.vocabulary)} (the student "
                         "reads the teacher's token ids)")
    return tokenizer
