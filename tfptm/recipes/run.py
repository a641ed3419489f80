"""Runs a validated recipe: one function per section, each a few calls into the floors below.

`run_recipe` is the pipeline `load_data -> make_backbone -> pretrain -> build
-> train (or distill) -> evaluate -> export -> write_run`; each step is a public function,
so a Python user (or a new data source, strategy or exporter) can call or
replace one without the rest. What a recipe may ask for but this runner cannot
yet do is refused by `check_supported` before any work starts. Data loading
lives in `tfptm.recipes.loaders`, training (stages, optimizer, callbacks,
resuming after a kill) in `tfptm.recipes.training`, pre-training objectives
and distillation in `tfptm.recipes.pretraining`, the helpers they share
(head, input checks, test metrics) in `tfptm.recipes.models`.

Example (a 1-epoch run on the bundled digits):
>>> import tempfile, os
>>> from tfptm.recipes import load_recipe, bundled_path, run_recipe
>>> recipe = load_recipe(bundled_path("image_transfer"), sets=[
...     "pretrain.epochs=1", "finetune.head_epochs=1", "finetune.epochs=1", "export.tflite=[]", "export.saved_model=false"])
>>> summary = run_recipe(recipe, os.path.join(tempfile.mkdtemp(), "run"), progress=lambda message: None)
>>> sorted(summary["metrics"]), 0.0 <= summary["metrics"]["model"]["accuracy"] <= 1.0
(['model', 'pretrain'], True)
"""

import contextlib
import dataclasses
import datetime
import os
import time
from pathlib import Path

import keras

import tfptm
from tfptm.errors import TfptmError, one_line
from tfptm.evaluation.report import write_report
from tfptm.files import directory_size, staged_directory, write_json_atomic, write_text_atomic
from tfptm.progress import Progress
from tfptm.recipes.loaders import LOADERS, LoadedData, check_classes, load_data, read_text_splits  # noqa: F401  (LoadedData: part of this API)
from tfptm.recipes.models import backbone_args, check_input_shape, evaluate, make_head, sample_shape
from tfptm.recipes.pretraining import DISTILLERS, LANGUAGE_MODELS, PRETRAINED_DIR, PRETRAINERS, distillation_section, \
    pretrain_backup_dir, save_pretrained_artifact
from tfptm.recipes.summary import REPRESENTATIVE_EXAMPLES, write_representative, write_summary
from tfptm.recipes.training import STAGES, carry_files, claimed_work_dir, prepare_model, train
from tfptm.recipes.schema import TEXT_FILE_SOURCES
from tfptm.recipes.validate import RECIPE_FILE, dump_recipe

MODEL_FILE = "model.keras"
HISTORY_FILE = "history.json"
def check_supported(recipe):
    """Refuses, before any work, what the recipe validly asks for but this runner cannot do yet."""

    def refuse(key, value, supported):
        raise TfptmError(f"{key} {value!r} is not supported by this runner yet; supported: {', '.join(supported) or 'none'}")

    language_model = recipe.pretrain and recipe.pretrain.objective in LANGUAGE_MODELS
    for key, data in (("data.source", recipe.data), ("pretrain.data.source", recipe.pretrain and recipe.pretrain.data)):
        if data and data.source not in LOADERS and not (language_model and key.startswith("pretrain")):
            refuse(key, data.source, LOADERS)
    if recipe.finetune.strategy not in STAGES:
        refuse("finetune.strategy", recipe.finetune.strategy, STAGES)
    if recipe.pretrain and recipe.pretrain.objective not in PRETRAINERS:
        refuse("pretrain.objective", recipe.pretrain.objective, PRETRAINERS)
    if language_model and recipe.backbone.name != LANGUAGE_MODELS[recipe.pretrain.objective][1]:
        builds = LANGUAGE_MODELS[recipe.pretrain.objective][1]
        raise TfptmError(f"backbone.name {recipe.backbone.name!r}: pretrain.objective {recipe.pretrain.objective!r} "
                         f"pre-trains a new {builds}; expected backbone.name: {builds}")
    if recipe.distill and "distill" not in DISTILLERS:
        raise TfptmError("distill: distillation is not supported by this runner yet; expected no distill section")
    if recipe.head.task not in ("multiclass", "binary"):
        refuse("head.task", recipe.head.task, ("multiclass", "binary"))


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


def load_recipe_data(recipe, backbone=None, tokenizer=None, splits=None):
    """`load_data` for the recipe: text is tokenized by `tokenizer` (or a learnt vocabulary) into `backbone`'s inputs."""
    inputs = backbone.input if backbone is not None else None
    return load_data(recipe.data, recipe.seed, tokenizer=tokenizer,
                     outputs=inputs if isinstance(inputs, dict) else "token_ids",
                     vocabulary_size=recipe.backbone.args.get("vocabulary_size"), splits=splits)


def check_data_agrees(recipe, class_names):
    """Raises a `TfptmError`, before any training, where the recipe's head disagrees with the data's classes.

    The number of classes comes from the data; a `head.num_classes` that says
    otherwise, a binary head on other than two classes, or data with a single
    class is one error naming both sides.

    Example:
    >>> from tfptm.recipes.validate import validate
    >>> recipe = validate({"backbone": {"name": "x"}, "data": {"source": "csv", "path": "train.csv"},
    ...                    "head": {"num_classes": 2}})
    >>> try:
    ...     check_data_agrees(recipe, ["a", "b", "c"])
    ... except TfptmError as error:
    ...     print(error)
    head.num_classes is 2 but data.path 'train.csv' has 3 classes ('a', 'b', 'c'); expected 3, or leave head.num_classes out (it comes from the data)
    """
    where = data_description(recipe.data)
    check_classes(class_names, where)
    count, shown = len(class_names), ", ".join(repr(str(name)) for name in class_names[:20])
    shown += ", ..." if count > 20 else ""
    if recipe.head.task == "binary" and count != 2:
        raise TfptmError(f"head.task is binary but {where} has {count} classes ({shown}); expected 2 classes, "
                         "or head.task multiclass")
    if recipe.head.task == "multiclass" and recipe.head.num_classes and recipe.head.num_classes != count:
        raise TfptmError(f"head.num_classes is {recipe.head.num_classes} but {where} has {count} classes ({shown}); "
                         f"expected {count}, or leave head.num_classes out (it comes from the data)")


def data_description(data):
    """How an error names the data: `data.path 'x.csv'`, `data.name 'mnist'`, or the source."""
    if data.path and data.source != "tfds":
        return f"data.path {data.path!r}"
    return f"data.name {data.name!r}" if data.name else f"data ({data.source})"


def build(recipe, backbone, class_names, sample_shape=None):
    """Joins backbone and head with `tfptm.build_model` (the optimizer is set in `train`).

    With `sample_shape` (one example's shape), a backbone that takes other inputs is a `TfptmError`.
    """
    check_input_shape(backbone, sample_shape)
    head = make_head(recipe.head, len(class_names))
    return tfptm.build_model(backbone, head, optimizer=recipe.optimizer.name, learning_rate=recipe.finetune.learning_rate,
                             name=recipe.name)


def export(recipe, model, data, base_dir):
    """Exports what `recipe.export` asks for under `base_dir` and checks each artifact against Keras.

    Parity checks (and int8 calibration with `representative_data: test`) use
    up to `tfptm.recipes.loaders.PARITY_EXAMPLES` test examples. Returns
    `(artifacts, parity, sizes)`, each keyed by artifact kind.
    """
    section = recipe.export
    if not (section.saved_model or section.tflite):
        return {}, {}, {}
    x_test, y_test = data.test_arrays()
    representative = None
    if "int8" in section.tflite:
        representative = (data.train_arrays() if section.representative_data == "train" else (x_test, y_test))[0]
    scale = 1.0 if recipe.data.source in TEXT_FILE_SOURCES else image_scale(recipe.data)
    summary = tfptm.export.export_checked(
        model, base_dir, section.model_name, saved_model_export=section.saved_model, quantizations=section.tflite,
        class_names=data.class_names, image_scale=scale, tokenizer=data.tokenizer, representative_data=representative,
        check_data=(x_test, y_test) if section.parity else None, int8_io=section.int8_io,
        metadata={"task": recipe.head.task, "recipe": recipe.name, "image_scale": scale},
    )
    return summary["artifacts"], summary["parity"], summary["sizes"]


def default_run_dir(recipe):
    return Path("runs") / f"{recipe.name}-{datetime.datetime.now():%Y%m%d-%H%M%S}"


@contextlib.contextmanager
def precision_policy(policy):
    """Sets Keras's dtype policy (`tfptm.training.mixed_precision`) for the block, then restores the previous one.

    Example:
    >>> with precision_policy("mixed_bfloat16"):
    ...     inside = keras.mixed_precision.global_policy().name
    >>> inside, keras.mixed_precision.global_policy().name
    ('mixed_bfloat16', 'float32')
    """
    previous = keras.mixed_precision.global_policy().name
    tfptm.training.mixed_precision(policy)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def prepare(recipe, strategy, progress, verbose=0, work=None):
    """Data, (pre-trained) backbone and task model, built in `strategy.scope()`: `(data, model, metrics)`.

    With `work` (the run's work directory), pre-training is backed up in it
    (`pretrain_backup_dir`): run again after a kill, it resumes, or restores
    its finished weights, instead of starting over.

    Example:
    >>> import tensorflow as tf
    >>> from tfptm.recipes.validate import validate
    >>> recipe = validate({"backbone": {"name": "vgg_cnn", "args": {"input_shape": [8, 8, 1], "filters": [4]}},
    ...                    "data": {"classes": [0, 1], "shots": 4}})
    >>> data, model, metrics = prepare(recipe, tf.distribute.get_strategy(), progress=lambda message: None)
    >>> data.num_train, model.output.shape, metrics, evaluate(model, data)["num_examples"] == data.num_test
    (8, (None, 2), {}, True)
    """
    metrics = {}
    text = recipe.data.source in TEXT_FILE_SOURCES
    progress(f"reading data ({recipe.data.source})")
    if text:  # read and checked before the backbone loads; tokenized once its tokenizer is known
        splits = read_text_splits(recipe.data, recipe.seed)
        check_data_agrees(recipe, splits[0].class_names)
    else:
        data = load_recipe_data(recipe)
        check_data_agrees(recipe, data.class_names)
    with strategy.scope():
        progress(f"building backbone {recipe.backbone.name!r} with a {recipe.head.task} head")
        backbone, tokenizer = backbone_and_tokenizer(recipe)
        if recipe.pretrain:
            backbone, metrics["pretrain"], *learnt = PRETRAINERS[recipe.pretrain.objective](
                recipe, backbone, progress, verbose, backup=pretrain_backup_dir(work))
            if learnt:
                tokenizer = learnt[0]
                tfptm.data.check_tokenizer(tokenizer, backbone)
        if text:
            progress("tokenizing the texts")
            data = load_recipe_data(recipe, backbone, tokenizer, splits)
        progress(f"{data.num_train} training, {data.num_validation} validation and {data.num_test} test examples, "
                 f"{len(data.class_names)} classes")
        model = build(recipe, backbone, data.class_names, sample_shape(data))
        prepare_model(recipe, model)
    return data, model, metrics


def run_recipe(recipe, run_dir=None, progress=None, verbose=0, origin=None):
    """Runs a whole recipe into a staged run directory and returns its summary.

    The run directory appears only when complete, holding `summary.json`
    (with `data`: examples per split and skipped inputs), `recipe.yaml`
    (resolved: running it again repeats the run), `history.json`,
    `history.csv`, TensorBoard `logs/`, `model.keras` (the final model:
    the best epoch on validation with `finetune.keep_best`, without optimizer state),
    `report.md` with its PNGs, `representative.npy` (training inputs for
    `tfptm export`), `pretrained/` after language-model pre-training (the
    pre-trained backbone and the tokenizer the run's text went through) and
    `export/` unless `export.dir` points elsewhere. While it trains, backups
    go to `.NAME.backup/` beside it (`tfptm.recipes.training.work_dir_for`):
    if the process is killed, the same call again resumes from the last
    backup and ends with the same epochs. A recipe with a distill section
    trains by distillation instead (`DISTILLERS`), without backups.
    """
    check_supported(recipe)
    progress = progress or Progress()
    run_dir = Path(run_dir or default_run_dir(recipe))
    with claimed_work_dir(run_dir) as work, staged_directory(run_dir, "run directory") as staging, \
            precision_policy(recipe.finetune.mixed_precision):
        keras.utils.set_random_seed(recipe.seed)
        strategy = tfptm.training.get_strategy(recipe.distribute.strategy)
        data, model, metrics = prepare(recipe, strategy, progress, verbose, work)
        artifacts = {}
        if recipe.pretrain and recipe.pretrain.objective in LANGUAGE_MODELS:  # its vocabulary is the run's
            artifacts["pretrained"] = save_pretrained_artifact(staging, recipe, tfptm.get_backbone(model), data.tokenizer,
                                                               metrics["pretrain"])
        training = None
        if recipe.distill:
            history, distilled = DISTILLERS["distill"](recipe, model, data, progress, verbose)
            metrics.update(distilled)
        else:
            resuming = (work / "backup").exists()
            progress(f"training: strategy {recipe.finetune.strategy}" + (f" (resuming from {work})" if resuming else ""))
            started = time.perf_counter()
            history = train(recipe, model, data, work, verbose=verbose, progress=progress)
            training = training_speed(history, data.num_train, time.perf_counter() - started)
            carry_files(work, staging)
            progress(f"evaluating on {data.num_test} test examples")
            metrics["model"] = evaluate(model, data)
        tfptm.save_model(model, staging / MODEL_FILE)
        write_representative(staging, data.train_arrays(REPRESENTATIVE_EXAMPLES)[0])
        export_base = Path(recipe.export.dir) if recipe.export.dir else staging / "export"
        if recipe.export.saved_model or recipe.export.tflite:
            progress(f"exporting to {recipe.export.dir or run_dir / 'export'}")
        exported, parity, sizes = export(recipe, model, data, export_base)
        artifacts.update(exported)
        summary = write_run(staging, run_dir, recipe, metrics, {"model": staging / MODEL_FILE, **artifacts},
                            parity, sizes, history, model, origin, data=data.summary(), training=training)
    summary["run_dir"] = str(run_dir)
    progress(f"done: {run_dir / 'report.md'}")
    return summary


def write_run(staging, run_dir, recipe, metrics, artifacts, parity, sizes, history, model, origin=None, data=None,
              training=None):
    """Writes recipe.yaml, history.json, summary.json and report.md; paths under `staging` are recorded as under `run_dir`."""
    final = {kind: _final(path, staging, run_dir) for kind, path in artifacts.items()}
    sizes = {**sizes, **{k: directory_size(p) for k, p in artifacts.items() if k not in sizes and Path(p).exists()}}
    write_text_atomic(staging / RECIPE_FILE, dump_recipe(recipe, origin))
    write_json_atomic(staging / HISTORY_FILE, history)
    extra = {"data": data, "class_names": data["class_names"]} if data is not None else {}
    if training is not None:
        extra["training"] = training
    if data is not None and recipe.data.source not in TEXT_FILE_SOURCES:
        extra["image_scale"] = image_scale(recipe.data)
    summary = write_summary(staging, metrics, final, parity, sizes=sizes, recipe=recipe.name,
                            model_name=recipe.export.model_name, **extra)
    write_report(staging, summary, history=history, model=model, title=f"{recipe.name}: {recipe.description}".rstrip(": "),
                 final_dir=run_dir)
    if "teacher" in metrics:
        report = staging / "report.md"
        write_text_atomic(report, report.read_text(encoding="utf-8") + distillation_section(metrics))
    return summary


def training_speed(history, num_train, seconds):
    """`{"seconds", "epochs", "examples_per_second"}` of a training run, validation and backups included.

    Example:
    >>> training_speed({"loss": [1.0, 0.5, 0.4]}, num_train=100, seconds=6.0)["examples_per_second"]
    50.0
    """
    epochs = len(history.get("loss", []))
    return {"seconds": seconds, "epochs": epochs, "examples_per_second": epochs * num_train / seconds if seconds else None}


def image_scale(data):
    """What decoded 0-255 image pixels are multiplied by to look like the data section's training images.

    `tfptm export` builds it into the SavedModel's `image_bytes` signature and the TFLite metadata.

    Example:
    >>> from tfptm.recipes.schema import Data
    >>> round(image_scale(Data(source="digits")) * 255), image_scale(Data(source="image_folder"))
    (16, 1.0)
    """
    return tfptm.data.DIGITS_PIXEL_MAX / 255 if data.source == "digits" else 1.0


def _final(path, staging, run_dir):
    path = Path(path)
    try:
        return Path(run_dir).resolve() / path.relative_to(staging)
    except ValueError:
        return path


def run_pretrain(recipe, run_dir=None, progress=None, verbose=0):
    """Runs only the recipe's pretrain section and saves the backbone as an artifact, `RUN_DIR/pretrained/`.

    The artifact (`tfptm.backbones.saved.save_artifact`) holds the backbone
    and, for `mlm` and `causal_lm`, the tokenizer it was pre-trained with: a
    later recipe with `backbone.name: RUN_DIR/pretrained` fine-tunes from it and
    tokenizes its text the same way.
    """
    if recipe.pretrain is None:
        raise TfptmError("pretrain: the recipe has no pretrain section; expected e.g. pretrain: {objective: supervised, data: ...}")
    check_supported(dataclasses.replace(recipe, distill=None))
    progress = progress or Progress()
    run_dir = Path(run_dir or default_run_dir(recipe))
    # Backups go to .NAME.backup/ beside the run directory, as for `tfptm train`: a killed run resumes.
    with claimed_work_dir(run_dir) as work, staged_directory(run_dir, "run directory") as staging:
        keras.utils.set_random_seed(recipe.seed)
        with tfptm.training.get_strategy(recipe.distribute.strategy).scope():
            backbone, metrics, *learnt = PRETRAINERS[recipe.pretrain.objective](
                recipe, make_backbone(recipe), progress, verbose, backup=pretrain_backup_dir(work))
        save_pretrained_artifact(staging, recipe, backbone, learnt[0] if learnt else None, metrics)
        write_text_atomic(staging / RECIPE_FILE, dump_recipe(recipe))
        summary = write_summary(staging, {"pretrain": metrics}, {"pretrained": run_dir / PRETRAINED_DIR}, {})
    summary["run_dir"] = str(run_dir)
    progress(f"done: {run_dir / PRETRAINED_DIR} (fine-tune from it with backbone.name: {run_dir / PRETRAINED_DIR})")
    return summary
