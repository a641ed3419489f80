"""Runs a validated recipe: one function per section, each a few calls into the floors below.

`run_recipe` is the pipeline `load_data -> make_backbone -> pretrain -> build
-> train -> evaluate -> export -> write_run`; each step is a public function,
so a Python user (or a new data source, strategy or exporter) can call or
replace one without the rest. What a recipe may ask for but this runner cannot
yet do is refused by `check_supported` before any work starts. Data loading
lives in `tfptm.recipes.loaders`, training (stages, optimizer, callbacks,
resuming after a kill) in `tfptm.recipes.training`.

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
from pathlib import Path

import keras
import numpy as np

import tfptm
from tfptm.errors import TfptmError, one_line
from tfptm.evaluation.metrics import classification_metrics, predict_classes
from tfptm.evaluation.report import write_report
from tfptm.files import directory_size, staged_directory, write_json_atomic, write_text_atomic
from tfptm.progress import Progress
from tfptm.recipes.loaders import LOADERS, LoadedData, load_data  # noqa: F401  (LoadedData: part of this API)
from tfptm.recipes.summary import write_summary
from tfptm.recipes.training import STAGES, carry_files, claimed_work_dir, prepare_model, train
from tfptm.recipes.schema import TEXT_FILE_SOURCES
from tfptm.recipes.validate import RECIPE_FILE, dump_recipe

MODEL_FILE = "model.keras"
HISTORY_FILE = "history.json"

#: objective -> pretrain(recipe, backbone, progress, verbose) -> (backbone, metrics) or, for text objectives
#: whose vocabulary the fine-tuning text must share, (backbone, metrics, tokenizer).
PRETRAINERS = {}
DISTILLERS = {}  # "distill" -> function(recipe, student, data, progress, verbose) once tfptm.Distiller lands


def check_supported(recipe):
    """Refuses, before any work, what the recipe validly asks for but this runner cannot do yet."""

    def refuse(key, value, supported):
        raise TfptmError(f"{key} {value!r} is not supported by this runner yet; supported: {', '.join(supported) or 'none'}")

    for key, data in (("data.source", recipe.data), ("pretrain.data.source", recipe.pretrain and recipe.pretrain.data)):
        if data and data.source not in LOADERS:
            refuse(key, data.source, LOADERS)
    if recipe.finetune.strategy not in STAGES:
        refuse("finetune.strategy", recipe.finetune.strategy, STAGES)
    if recipe.pretrain and recipe.pretrain.objective not in PRETRAINERS:
        refuse("pretrain.objective", recipe.pretrain.objective, PRETRAINERS)
    if recipe.distill and "distill" not in DISTILLERS:
        raise TfptmError("distill: distillation is not supported by this runner yet; expected no distill section")
    if recipe.head.task not in ("multiclass", "binary"):
        refuse("head.task", recipe.head.task, ("multiclass", "binary"))


def _args(recipe):
    # YAML lists become the tuples builders expect.
    return {k: tuple(v) if isinstance(v, list) else v for k, v in recipe.backbone.args.items()}


def make_backbone(recipe):
    """`tfptm.backbones.get(backbone.name, **backbone.args)`."""
    try:
        return tfptm.backbones.get(recipe.backbone.name, **_args(recipe))
    except TypeError as error:  # an argument the builder does not take
        raise TfptmError(f"backbone.args: {one_line(error)}") from None


def uses_preset_tokenizer(recipe):
    """True when the recipe's text is tokenized by its backbone's own preset (not a learnt vocabulary).

    Example:
    >>> from tfptm.recipes.validate import validate
    >>> text = {"source": "csv", "path": "t.csv"}
    >>> [uses_preset_tokenizer(validate({"backbone": {"name": name}, "data": text})) for name in ("models/minilm", "lstm_encoder")]
    [True, False]
    """
    return recipe.data.source in TEXT_FILE_SOURCES and recipe.backbone.name not in tfptm.backbones.available()


def backbone_and_tokenizer(recipe):
    """The backbone, and for text recipes on a KerasHub/Hugging Face preset its preprocessor (else `None`).

    The preprocessor tokenizes at `data.max_length`; tfptm's local text
    backbones get a vocabulary learnt from the training texts instead (in `load_data`).
    """
    if not uses_preset_tokenizer(recipe):
        return make_backbone(recipe), None
    from tfptm.backbones.presets import load_preset

    try:
        backbone, preprocessor = load_preset(recipe.backbone.name, sequence_length=recipe.data.max_length, **_args(recipe))
    except TypeError as error:
        raise TfptmError(f"backbone.args: {one_line(error)}") from None
    if preprocessor is None:
        raise TfptmError(f"backbone.name {recipe.backbone.name!r}: the preset has no tokenizer; expected a text "
                         "preset (with tokenizer files) for a csv or jsonl data source")
    backbone.name = "backbone"
    return backbone, preprocessor


def load_recipe_data(recipe, backbone=None, tokenizer=None):
    """`load_data` for the recipe: text is tokenized by `tokenizer` (or a learnt vocabulary) into `backbone`'s inputs."""
    inputs = backbone.input if backbone is not None else None
    return load_data(recipe.data, recipe.seed, tokenizer=tokenizer,
                     outputs=inputs if isinstance(inputs, dict) else "token_ids",
                     vocabulary_size=recipe.backbone.args.get("vocabulary_size"))


def make_head(head, num_classes):
    """A `tfptm.Head` from the head section; `num_classes` (from the data) fills a missing one."""
    classes = None if head.task == "binary" else head.num_classes or num_classes
    return tfptm.Head(head.task, num_classes=classes, pooling=head.pooling, dropout=head.dropout,
                      hidden_units=head.hidden_units, label_smoothing=head.label_smoothing)


def build(recipe, backbone, class_names, sample_shape=None):
    """Joins backbone and head with `tfptm.build_model` (the optimizer is set in `train`).

    With `sample_shape` (one example's shape), a backbone that takes other inputs is a `TfptmError`.
    """
    check_input_shape(backbone, sample_shape)
    head = make_head(recipe.head, len(class_names))
    return tfptm.build_model(backbone, head, optimizer=recipe.optimizer.name, learning_rate=recipe.finetune.learning_rate,
                             name=recipe.name)


def sample_shape(data):
    """One example's shape in `data`'s training pipeline, or `None` (dict inputs, variable lengths).

    Example:
    >>> from tfptm.recipes.schema import Data
    >>> sample_shape(load_data(Data(classes=(0, 1), shots=2)))
    (8, 8, 1)
    """
    spec = data.train.element_spec[0]
    if isinstance(spec, dict) or None in spec.shape[1:]:
        return None
    return tuple(spec.shape[1:])


def check_input_shape(model, sample_shape):
    """Raises a `TfptmError` when a one-input model cannot take examples of `sample_shape` (`None`: no check)."""
    if sample_shape is None or isinstance(model.input, dict) or len(model.inputs) != 1:
        return
    tfptm.data.check_input_shape(model, sample_shape, where=f"{model.name}: the data's examples")


def _plain_optimizer(recipe, model):
    section = recipe.optimizer
    extra = {"momentum": section.momentum} if section.name == "sgd" else {}
    optimizer = tfptm.training.optimizer(section.name, weight_decay=section.weight_decay or None,
                                         clipnorm=section.clipnorm, **extra)
    tfptm.training.recompile(model, optimizer=optimizer)


def pretrain_supervised(recipe, backbone, progress, verbose=0):
    """Supervised pre-training: the backbone with a fresh head trains fully on `pretrain.data`.

    Returns `(backbone, metrics on pretrain.data's test split)`.
    """
    section = recipe.pretrain
    data = load_data(section.data, recipe.seed)
    progress(f"pre-training the backbone on {data.num_train} examples ({section.epochs} epochs)")
    check_input_shape(backbone, sample_shape(data))
    model = tfptm.build_model(backbone, make_head(recipe.head, len(data.class_names)), name="pretrain")
    _plain_optimizer(recipe, model)
    tfptm.finetune(model, data.train, tfptm.training.full(section.epochs, section.learning_rate), verbose=verbose)
    return tfptm.get_backbone(model), evaluate(model, data)


PRETRAINERS["supervised"] = pretrain_supervised


def evaluate(model, data):
    """Test-set classification metrics of `model`: `tfptm.evaluate` on test arrays, else over the test pipeline."""
    if data.x_test is not None:
        return tfptm.evaluate(model, data.x_test, data.y_test, data.class_names)
    probabilities, labels = [], []
    for x, y in data.test:
        probabilities.append(np.asarray(model.predict_on_batch(x)))
        labels.append(y.numpy())
    return classification_metrics(np.concatenate(labels), predict_classes(np.concatenate(probabilities)),
                                  data.class_names)


def export(recipe, model, data, base_dir):
    """Exports what `recipe.export` asks for under `base_dir` and checks each artifact against Keras.

    Parity checks (and int8 calibration with `representative_data: test`) use
    up to `tfptm.recipes.loaders.PARITY_EXAMPLES` test examples. Returns
    `(artifacts, parity, sizes)`, each keyed by artifact kind.
    """
    section, base_dir = recipe.export, Path(base_dir)
    artifacts, parity = {}, {}
    if not (section.saved_model or section.tflite):
        return artifacts, parity, {}
    x_test, y_test = data.test_arrays()
    if section.saved_model:
        extra = {"tokenizer": data.tokenizer} if data.tokenizer is not None else {}
        path = tfptm.export.saved_model(model, base_dir, section.model_name, class_names=data.class_names, **extra)
        artifacts["saved_model"] = path
        if section.parity:
            parity["saved_model"] = tfptm.export.check_saved_model(path, model, x_test)
    for quantization in section.tflite:
        several = len(section.tflite) > 1
        kind = f"tflite_{quantization}" if several else "tflite"
        name = f"{section.model_name}_{quantization}" if several else section.model_name
        representative = None
        if quantization == "int8":
            representative = (data.train_arrays() if section.representative_data == "train" else (x_test, y_test))[0]
        lite = tfptm.export.tflite(
            model,
            base_dir / f"{name}.tflite",
            quantization=quantization,
            representative_data=representative,
            int8_io=section.int8_io,
            class_names=data.class_names,
            metadata={"task": recipe.head.task, "recipe": recipe.name},
        )
        artifacts[kind] = lite.path
        if section.parity:
            parity[kind] = tfptm.export.check_tflite(lite.path, model, x_test, y_test)
    sizes = {kind: directory_size(path) for kind, path in artifacts.items()}
    return artifacts, parity, sizes


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


def prepare(recipe, strategy, progress, verbose=0):
    """Data, (pre-trained) backbone and task model, built in `strategy.scope()`: `(data, model, metrics)`.

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
    if not text:
        progress(f"loading data ({recipe.data.source})")
        data = load_recipe_data(recipe)
    with strategy.scope():
        progress(f"building backbone {recipe.backbone.name!r} with a {recipe.head.task} head")
        backbone, tokenizer = backbone_and_tokenizer(recipe)
        if recipe.pretrain:
            backbone, metrics["pretrain"], *learnt = PRETRAINERS[recipe.pretrain.objective](recipe, backbone, progress, verbose)
            tokenizer = learnt[0] if learnt else tokenizer
        if text:
            progress(f"loading data ({recipe.data.source})")
            data = load_recipe_data(recipe, backbone, tokenizer)
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
    `history.csv`, TensorBoard `logs/`, `best.keras`, `model.keras`,
    `report.md` with its PNGs, and `export/` unless `export.dir` points
    elsewhere. While it trains, backups go to `.NAME.backup/` beside it
    (`tfptm.recipes.training.work_dir_for`): if the process is killed, the same
    call again resumes from the last backup and ends with the same epochs.
    """
    check_supported(recipe)
    progress = progress or Progress()
    run_dir = Path(run_dir or default_run_dir(recipe))
    with claimed_work_dir(run_dir) as work, staged_directory(run_dir, "run directory") as staging, \
            precision_policy(recipe.finetune.mixed_precision):
        keras.utils.set_random_seed(recipe.seed)
        strategy = tfptm.training.get_strategy(recipe.distribute.strategy)
        data, model, metrics = prepare(recipe, strategy, progress, verbose)
        resuming = (work / "backup").exists()
        progress(f"training: strategy {recipe.finetune.strategy}" + (f" (resuming from {work})" if resuming else ""))
        history = train(recipe, model, data, work, verbose=verbose)
        carry_files(work, staging)
        progress(f"evaluating on {data.num_test} test examples")
        metrics["model"] = evaluate(model, data)
        model.save(staging / MODEL_FILE)
        export_base = Path(recipe.export.dir) if recipe.export.dir else staging / "export"
        if recipe.export.saved_model or recipe.export.tflite:
            progress(f"exporting to {recipe.export.dir or run_dir / 'export'}")
        artifacts, parity, sizes = export(recipe, model, data, export_base)
        summary = write_run(staging, run_dir, recipe, metrics, {"model": staging / MODEL_FILE, **artifacts},
                            parity, sizes, history, model, origin, data=data.summary())
    summary["run_dir"] = str(run_dir)
    progress(f"done: {run_dir / 'report.md'}")
    return summary


def write_run(staging, run_dir, recipe, metrics, artifacts, parity, sizes, history, model, origin=None, data=None):
    """Writes recipe.yaml, history.json, summary.json and report.md; paths under `staging` are recorded as under `run_dir`."""
    final = {kind: _final(path, staging, run_dir) for kind, path in artifacts.items()}
    sizes = {**sizes, **{k: directory_size(p) for k, p in artifacts.items() if k not in sizes and Path(p).exists()}}
    write_text_atomic(staging / RECIPE_FILE, dump_recipe(recipe, origin))
    write_json_atomic(staging / HISTORY_FILE, history)
    extra = {"data": data} if data is not None else {}
    summary = write_summary(staging, metrics, final, parity, sizes=sizes, recipe=recipe.name, **extra)
    write_report(staging, summary, history=history, model=model, title=f"{recipe.name}: {recipe.description}".rstrip(": "),
                 final_dir=run_dir)
    return summary


def _final(path, staging, run_dir):
    path = Path(path)
    try:
        return Path(run_dir).resolve() / path.relative_to(staging)
    except ValueError:
        return path


def run_pretrain(recipe, run_dir=None, progress=None, verbose=0):
    """Runs only the recipe's pretrain section and saves `pretrained_backbone.keras` in a staged run directory."""
    if recipe.pretrain is None:
        raise TfptmError("pretrain: the recipe has no pretrain section; expected e.g. pretrain: {objective: supervised, data: ...}")
    check_supported(dataclasses.replace(recipe, distill=None))
    progress = progress or Progress()
    run_dir = Path(run_dir or default_run_dir(recipe))
    with staged_directory(run_dir, "run directory") as staging:
        keras.utils.set_random_seed(recipe.seed)
        with tfptm.training.get_strategy(recipe.distribute.strategy).scope():
            backbone, metrics, *_ = PRETRAINERS[recipe.pretrain.objective](recipe, make_backbone(recipe), progress, verbose)
        backbone.save(staging / "pretrained_backbone.keras")
        write_text_atomic(staging / RECIPE_FILE, dump_recipe(recipe))
        summary = write_summary(staging, {"pretrain": metrics}, {"pretrained_backbone": run_dir / "pretrained_backbone.keras"}, {})
    progress(f"done: {run_dir / 'pretrained_backbone.keras'}")
    return summary
