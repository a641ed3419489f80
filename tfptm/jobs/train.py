"""Runs a validated recipe: one function per section, each a few calls into the floors below.

`run_recipe` is the pipeline `load_data -> make_backbone -> pretrain -> build
-> train (or distill) -> evaluate -> export -> write_run`; each step is a public function,
so a Python user (or a new data source, strategy or exporter) can call or
replace one without the rest. What a recipe may ask for but this runner cannot
yet do is refused by `check_supported` before any work starts. Data loading
lives in `tfptm.jobs.data`, training (stages, optimizer, callbacks,
resuming after a kill) in `tfptm.jobs.fit`, pre-training objectives in
`tfptm.jobs.pretrain`, distillation in `tfptm.jobs.distill`, the backbone,
head and test metrics in `tfptm.jobs.model`; the run directory's files are
`tfptm.rundir`'s.

Example (a 1-epoch run on the bundled digits):
>>> import tempfile, os
>>> from tfptm.recipes import load_recipe, bundled_path
>>> recipe = load_recipe(bundled_path("image_transfer"), sets=[
...     "pretrain.epochs=1", "finetune.head_epochs=1", "finetune.epochs=1", "export.tflite=[]", "export.saved_model=false"])
>>> summary = run_recipe(recipe, os.path.join(tempfile.mkdtemp(), "run"), progress=lambda message: None)
>>> sorted(summary["metrics"]), 0.0 <= summary["metrics"]["model"]["accuracy"] <= 1.0
(['model', 'pretrain'], True)
"""

import contextlib
import dataclasses
import datetime
import time
from pathlib import Path

import keras

import tfptm
from tfptm.errors import TfptmError
from tfptm.evaluation.report import write_report
from tfptm.files import directory_size, staged_directory, write_json_atomic, write_text_atomic
from tfptm.progress import Progress
from tfptm.jobs.data import LOADERS, check_data_agrees, load_recipe_data, read_text_splits
from tfptm.jobs.distill import DISTILLERS, distillation_section
from tfptm.jobs.embed import run_embedding_recipe
from tfptm.jobs.export import check_raw_strings
from tfptm.jobs.fit import STAGES, carry_files, claimed_work_dir, fit_recipe, prepare_model
from tfptm.jobs.model import LANGUAGE_MODELS, backbone_and_tokenizer, build, make_backbone, sample_shape, \
    teacher_tokenizer, test_metrics
from tfptm.jobs.pretrain import PRETRAINERS, pretrain_backup_dir, save_pretrained_artifact
from tfptm.recipes.schema import EMBEDDING, QUESTION_ANSWERING, TEXT_FILE_SOURCES, TOKEN_CLASSIFICATION
from tfptm.recipes.validate import dump_recipe
from tfptm.rundir import EXPORT_DIR, HISTORY_FILE, MODEL_FILE, PRETRAINED_DIR, RECIPE_FILE, REPORT_FILE, \
    REPRESENTATIVE_EXAMPLES, final_path, write_representative, write_summary


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
    if recipe.head.task in ("multilabel", "regression") and recipe.data.source not in ("csv", "jsonl"):
        raise TfptmError(f"head.task {recipe.head.task!r} reads lists of labels or numbers from a csv or jsonl table; "
                         f"data.source {recipe.data.source!r} holds class labels, expected csv or jsonl")


def export(recipe, model, data, base_dir):
    """Exports what `recipe.export` asks for under `base_dir` and checks each artifact against Keras.

    Parity checks (and int8 calibration with `representative_data: test`) use
    up to `tfptm.jobs.data.PARITY_EXAMPLES` test examples. Returns
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
    if section.parity and data.test_texts is not None:  # raw strings: the SavedModel's against Keras on the same texts
        check_raw_strings(summary, model, data.tokenizer, data.class_names, data.test_texts)
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
    >>> data.num_train, model.output.shape, metrics, test_metrics(model, data)["num_examples"] == data.num_test
    (8, (None, 2), {}, True)
    """
    metrics = {}
    text = recipe.data.source in TEXT_FILE_SOURCES
    progress(f"reading data ({recipe.data.source})")
    if text:  # read and checked before the backbone loads; tokenized once its tokenizer is known
        splits = read_text_splits(recipe.data, recipe.seed, recipe.head.task)
        if recipe.head.task != QUESTION_ANSWERING:  # questions have no classes: start and end of a span
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
        if text and tokenizer is None and recipe.distill and recipe.head.task == TOKEN_CLASSIFICATION:
            tokenizer = teacher_tokenizer(recipe)  # the student reads the teacher's word pieces
        if text:
            progress("tokenizing the texts")
            data = load_recipe_data(recipe, backbone, tokenizer, splits)
        if recipe.head.task == QUESTION_ANSWERING:
            progress(f"{data.num_train} training windows, {data.num_validation} validation and {data.num_test} test "
                     "questions")
        else:
            progress(f"{data.num_train} training, {data.num_validation} validation and {data.num_test} test examples, "
                     f"{len(data.class_names)} {'tags' if recipe.head.task == TOKEN_CLASSIFICATION else 'classes'}")
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
    go to `.NAME.backup/` beside it (`tfptm.jobs.fit.work_dir_for`):
    if the process is killed, the same call again resumes from the last
    backup and ends with the same epochs. A recipe with a distill section
    trains by distillation instead (`DISTILLERS`), without backups; one with
    `head.task: embedding` is run by `tfptm.jobs.embed.run_embedding_recipe`.
    With `data.text_pair_column` the examples are text pairs: the same head
    on `[CLS] a [SEP] b [SEP]`, and the SavedModel gets `raw_text_pairs`,
    checked on the raw test pairs (`parity["saved_model_raw_text_pairs"]`).
    """
    check_supported(recipe)
    progress = progress or Progress()
    run_dir = Path(run_dir or default_run_dir(recipe))
    if recipe.head.task == EMBEDDING:  # sentence embeddings: contrastive, no head (tfptm.jobs.embed)
        return run_embedding_recipe(recipe, run_dir, progress, verbose, origin)
    with claimed_work_dir(run_dir) as work, staged_directory(run_dir, "run directory") as staging, \
            precision_policy(recipe.finetune.mixed_precision):
        keras.utils.set_random_seed(recipe.seed)
        strategy = tfptm.training.get_strategy(recipe.distribute.strategy)
        data, model, metrics = prepare(recipe, strategy, progress, verbose, work)
        artifacts = {}
        if recipe.pretrain and recipe.pretrain.objective in LANGUAGE_MODELS:  # its vocabulary is the run's
            artifacts["pretrained"] = save_pretrained_artifact(staging, recipe, tfptm.backbone_of(model), data.tokenizer,
                                                               metrics["pretrain"])
        training = None
        if recipe.distill:
            history, distilled = DISTILLERS["distill"](recipe, model, data, progress, verbose)
            metrics.update(distilled)
        else:
            resuming = (work / "backup").exists()
            progress(f"training: strategy {recipe.finetune.strategy}" + (f" (resuming from {work})" if resuming else ""))
            started, timing = time.perf_counter(), {}
            history = fit_recipe(recipe, model, data, work, verbose=verbose, progress=progress, timing=timing)
            training = training_speed(history, data.num_train, time.perf_counter() - started, **timing)
            carry_files(work, staging)
            progress(f"evaluating on {data.num_test} test examples")
            metrics["model"] = test_metrics(model, data)
        tfptm.save_model(model, staging / MODEL_FILE)
        write_representative(staging, data.train_arrays(REPRESENTATIVE_EXAMPLES)[0])
        export_base = Path(recipe.export.dir) if recipe.export.dir else staging / EXPORT_DIR
        if recipe.export.saved_model or recipe.export.tflite:
            progress(f"exporting to {recipe.export.dir or run_dir / EXPORT_DIR}")
        exported, parity, sizes = export(recipe, model, data, export_base)
        artifacts.update(exported)
        summary = write_run(staging, run_dir, recipe, metrics, {"model": staging / MODEL_FILE, **artifacts},
                            parity, sizes, history, model, origin, data=data.summary(), training=training)
    summary["run_dir"] = str(run_dir)
    progress(f"done: {run_dir / REPORT_FILE}")
    return summary


def write_run(staging, run_dir, recipe, metrics, artifacts, parity, sizes, history, model, origin=None, data=None,
              training=None):
    """Writes recipe.yaml, history.json, summary.json and report.md; paths under `staging` are recorded as under `run_dir`."""
    final = {kind: final_path(path, staging, run_dir) for kind, path in artifacts.items()}
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
        report = staging / REPORT_FILE
        write_text_atomic(report, report.read_text(encoding="utf-8") + distillation_section(metrics))
    return summary


def training_speed(history, num_train, seconds, training_seconds=None, epochs_run=None):
    """`{"seconds", "epochs", "examples_per_second"}` of a training run, validation and backups included, and
    with `training_seconds` (time in training steps over `epochs_run` epochs) `training_examples_per_second`:
    the rate of the training steps alone, what a bare training loop measures.

    Example:
    >>> speed = training_speed({"loss": [1.0, 0.5, 0.4]}, num_train=100, seconds=6.0, training_seconds=4.0, epochs_run=3)
    >>> speed["examples_per_second"], speed["training_examples_per_second"]
    (50.0, 75.0)
    """
    epochs = len(history.get("loss", []))
    speed = {"seconds": seconds, "epochs": epochs, "examples_per_second": epochs * num_train / seconds if seconds else None}
    if training_seconds:
        speed["training_seconds"] = training_seconds
        speed["training_examples_per_second"] = (epochs_run or epochs) * num_train / training_seconds
    return speed


def image_scale(data):
    """What decoded 0-255 image pixels are multiplied by to look like the data section's training images.

    `tfptm export` builds it into the SavedModel's `image_bytes` signature and the TFLite metadata.

    Example:
    >>> from tfptm.recipes.schema import Data
    >>> round(image_scale(Data(source="digits")) * 255), image_scale(Data(source="image_folder"))
    (16, 1.0)
    """
    return tfptm.datasets.DIGITS_PIXEL_MAX / 255 if data.source == "digits" else 1.0


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
