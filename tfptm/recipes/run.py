"""Runs a validated recipe: one function per section, each a few calls into the floors below.

`run_recipe` is the pipeline `load_data -> make_backbone -> pretrain -> build
-> train -> evaluate -> export -> write_run`; each step is a public function,
so a Python user (or a new data source, strategy or exporter) can call or
replace one without the rest. What a recipe may ask for but this runner cannot
yet do is refused by `check_supported` before any work starts.

Example (a 1-epoch run on the bundled digits):
>>> import tempfile, os
>>> from tfptm.recipes import load_recipe, bundled_path, run_recipe
>>> recipe = load_recipe(bundled_path("image_transfer"), sets=[
...     "pretrain.epochs=1", "finetune.head_epochs=1", "finetune.epochs=1", "export.tflite=[]", "export.saved_model=false"])
>>> summary = run_recipe(recipe, os.path.join(tempfile.mkdtemp(), "run"), progress=lambda message: None)
>>> sorted(summary["metrics"]), 0.0 <= summary["metrics"]["model"]["accuracy"] <= 1.0
(['model', 'pretrain'], True)
"""

import dataclasses
import datetime
from pathlib import Path

import keras
import numpy as np

import tfptm
from tfptm.errors import TfptmError, one_line
from tfptm.evaluation.report import write_report
from tfptm.files import directory_size, staged_directory, write_json_atomic, write_text_atomic
from tfptm.progress import Progress
from tfptm.recipes.summary import write_summary
from tfptm.recipes.validate import RECIPE_FILE, dump_recipe

MODEL_FILE = "model.keras"
HISTORY_FILE = "history.json"


@dataclasses.dataclass
class LoadedData:
    """A data section loaded: a training pipeline, optional validation, and test arrays for evaluation and export checks."""

    train: object  # batched tf.data.Dataset
    validation: object | None
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list


def _digits(data):
    images, labels = tfptm.data.load_digits()
    return (images, labels), None, [str(c) for c in (data.classes or range(10))]


def _arrays(data):
    train = _read_npz(data.path, "data.path")
    test = _read_npz(data.test_path, "data.test_path") if data.test_path else None
    return train, test, None


def _read_npz(path, key):
    try:
        with np.load(path, allow_pickle=False) as arrays:
            if "x" not in arrays or "y" not in arrays:
                raise TfptmError(f"{key}: {path!r} holds {sorted(arrays.files)}; expected arrays named x and y")
            return arrays["x"], arrays["y"]
    except (OSError, ValueError) as error:
        raise TfptmError(f"{key}: cannot read {path!r} as a .npz file with x and y: {one_line(error)}") from None


#: data.source -> loader(data section) -> ((x, y), (x_test, y_test) or None, class names or None).
#: Loaders that return tf.data pipelines (image folders, TFDS, CSV text) plug in here.
LOADERS = {"digits": _digits, "arrays": _arrays}


def load_data(data, seed=0):
    """Loads a recipe's data section: keeps `classes` (relabelled 0..n-1), samples `shots` per class, splits.

    Without a test set, the examples not sampled as shots (or `test_fraction`
    of them) are the test set; `validation_fraction` of the training examples
    validate.

    Example:
    >>> from tfptm.recipes.schema import Data
    >>> loaded = load_data(Data(source="digits", classes=(3, 8), shots=5))
    >>> len(loaded.x_train), loaded.class_names
    (10, ['3', '8'])
    """
    if data.source not in LOADERS:
        raise TfptmError(f"data.source {data.source!r} is not supported by this runner yet; expected one of {', '.join(LOADERS)}")
    (x, y), test, class_names = LOADERS[data.source](data)
    if data.classes:
        x, y = tfptm.data.select_classes(x, y, data.classes)
        test = tfptm.data.select_classes(*test, data.classes) if test else None
        class_names = class_names or [str(c) for c in data.classes]
    x, y = tfptm.data.check_arrays(x, y, where=f"data ({data.source})")
    if data.shots:
        (x, y), rest = tfptm.data.sample_per_class(x, y, data.shots, seed=seed)
        test = test or rest
    elif test is None:
        (x, y), test = _split(x, y, data.test_fraction, seed, "data.test_fraction")
    validation = None
    if data.validation_fraction:
        (x, y), validation = _split(x, y, data.validation_fraction, seed, "data.validation_fraction")
    class_names = class_names or [str(c) for c in range(int(max(y.max(), test[1].max())) + 1)]
    batches = lambda a, b, shuffle: tfptm.data.from_arrays(a, b, batch_size=data.batch_size, shuffle=shuffle, seed=seed)
    return LoadedData(
        train=batches(x, y, True),
        validation=batches(*validation, False) if validation else None,
        x_train=x, y_train=y, x_test=test[0], y_test=test[1], class_names=class_names,
    )


def _split(x, y, fraction, seed, key):
    try:
        return tfptm.data.train_test_split(x, y, fraction, seed=seed)
    except ValueError as error:  # scikit-learn: too few examples of a class to stratify
        raise TfptmError(f"{key}: cannot split {len(x)} examples by class: {one_line(error)}") from None


STAGES = {
    "feature_extraction": lambda f: tfptm.training.feature_extraction(f.epochs, f.learning_rate),
    "full": lambda f: tfptm.training.full(f.epochs, f.learning_rate, freeze_batchnorm=f.freeze_batchnorm),
    "partial": lambda f: tfptm.training.partial(f.epochs, f.top_blocks, f.learning_rate),
    "two_stage": lambda f: tfptm.training.two_stage(f.head_epochs, f.epochs, f.head_learning_rate, f.learning_rate),
}
PRETRAINERS = {}  # filled below: objective -> pretrain(recipe, backbone, progress, verbose)
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
    if recipe.optimizer.schedule != "constant":
        refuse("optimizer.schedule", recipe.optimizer.schedule, ("constant",))
    for key in ("layerwise_decay", "warmup_fraction"):
        if getattr(recipe.optimizer, key):
            raise TfptmError(f"optimizer.{key}: not supported by this runner yet; expected it left out")


def make_backbone(recipe):
    """`tfptm.backbones.get(backbone.name, **backbone.args)`; YAML lists become the tuples builders expect."""
    args = {k: tuple(v) if isinstance(v, list) else v for k, v in recipe.backbone.args.items()}
    try:
        return tfptm.backbones.get(recipe.backbone.name, **args)
    except TypeError as error:  # an argument the builder does not take
        raise TfptmError(f"backbone.args: {one_line(error)}") from None


def make_head(head, num_classes):
    """A `tfptm.Head` from the head section; `num_classes` (from the data) fills a missing one."""
    classes = None if head.task == "binary" else head.num_classes or num_classes
    return tfptm.Head(head.task, num_classes=classes, pooling=head.pooling, dropout=head.dropout, hidden_units=head.hidden_units)


def build(recipe, backbone, class_names, sample_shape=None):
    """Joins backbone and head with `tfptm.build_model` and compiles the recipe's optimizer.

    With `sample_shape` (one example's shape), a backbone that takes other inputs is a `TfptmError`.
    """
    check_input_shape(backbone, sample_shape)
    head = make_head(recipe.head, len(class_names))
    model = tfptm.build_model(backbone, head, optimizer=recipe.optimizer.name, learning_rate=recipe.finetune.learning_rate, name=recipe.name)
    _set_optimizer(model, recipe.optimizer)
    return model


def check_input_shape(model, sample_shape):
    """Raises a `TfptmError` when a one-input model cannot take examples of `sample_shape`."""
    if sample_shape is None or len(model.inputs) != 1:
        return
    expected = tuple(model.inputs[0].shape[1:])
    fits = len(expected) == len(sample_shape) and all(e in (None, s) for e, s in zip(expected, sample_shape))
    if not fits:
        raise TfptmError(
            f"{model.name}: takes inputs of shape {list(expected)} but the data's examples have shape {list(sample_shape)}; "
            "expected them to match (e.g. set backbone.args.input_shape)"
        )


def _set_optimizer(model, section):
    # tfptm.training.recompile keeps every optimizer setting but the learning rate, so these last across stages.
    options = {"weight_decay": section.weight_decay or None, "clipnorm": section.clipnorm}
    if section.name == "sgd":
        options["momentum"] = section.momentum
    options = {k: v for k, v in options.items() if v is not None}
    if options:
        config = model.get_compile_config()
        optimizer = keras.optimizers.serialize(model.optimizer)
        config["optimizer"] = {**optimizer, "config": {**optimizer["config"], **options}}
        model.compile_from_config(config)


def pretrain_supervised(recipe, backbone, progress, verbose=0):
    """Supervised pre-training: the backbone with a fresh head trains fully on `pretrain.data`.

    Returns `(backbone, metrics on pretrain.data's test split)`.
    """
    section = recipe.pretrain
    data = load_data(section.data, recipe.seed)
    progress(f"pre-training the backbone on {len(data.x_train)} examples ({section.epochs} epochs)")
    check_input_shape(backbone, data.x_train.shape[1:])
    model = tfptm.build_model(backbone, make_head(recipe.head, len(data.class_names)), name="pretrain")
    _set_optimizer(model, recipe.optimizer)
    tfptm.finetune(model, data.train, tfptm.training.full(section.epochs, section.learning_rate), verbose=verbose)
    metrics = tfptm.evaluate(model, data.x_test, data.y_test, data.class_names)
    return tfptm.get_backbone(model), metrics


PRETRAINERS["supervised"] = pretrain_supervised


def train(recipe, model, data, verbose="auto"):
    """Runs the fine-tuning strategy's stages with `tfptm.finetune`; returns the per-epoch history."""
    stages = STAGES[recipe.finetune.strategy](recipe.finetune)
    history = tfptm.finetune(model, data.train, stages, validation_data=data.validation, verbose=verbose)
    return {k: [v if isinstance(v, str) else float(v) for v in vs] for k, vs in history.items()}


def evaluate(model, data):
    """Test-set classification metrics (`tfptm.evaluate`) of `model`."""
    return tfptm.evaluate(model, data.x_test, data.y_test, data.class_names)


def export(recipe, model, data, base_dir):
    """Exports what `recipe.export` asks for under `base_dir` and checks each artifact against Keras.

    Returns `(artifacts, parity, sizes)`, each keyed by artifact kind.
    """
    section, base_dir = recipe.export, Path(base_dir)
    artifacts, parity = {}, {}
    if section.saved_model:
        path = tfptm.export.saved_model(model, base_dir, section.model_name, class_names=data.class_names)
        artifacts["saved_model"] = path
        if section.parity:
            parity["saved_model"] = tfptm.export.check_saved_model(path, model, data.x_test)
    for quantization in section.tflite:
        several = len(section.tflite) > 1
        kind = f"tflite_{quantization}" if several else "tflite"
        name = f"{section.model_name}_{quantization}" if several else section.model_name
        representative = {"train": data.x_train, "test": data.x_test}.get(section.representative_data)
        lite = tfptm.export.tflite(
            model,
            base_dir / f"{name}.tflite",
            quantization=quantization,
            representative_data=representative if quantization == "int8" else None,
            int8_io=section.int8_io,
            class_names=data.class_names,
            metadata={"task": recipe.head.task, "recipe": recipe.name},
        )
        artifacts[kind] = lite.path
        if section.parity:
            parity[kind] = tfptm.export.check_tflite(lite.path, model, data.x_test, data.y_test)
    sizes = {kind: directory_size(path) for kind, path in artifacts.items()}
    return artifacts, parity, sizes


def default_run_dir(recipe):
    return Path("runs") / f"{recipe.name}-{datetime.datetime.now():%Y%m%d-%H%M%S}"


def run_recipe(recipe, run_dir=None, progress=None, verbose=0, origin=None):
    """Runs a whole recipe into a staged run directory and returns its summary.

    The run directory appears only when complete, holding `summary.json`,
    `recipe.yaml` (resolved: running it again repeats the run), `history.json`,
    `model.keras`, `report.md` with its PNGs, and `export/` unless
    `export.dir` points elsewhere.
    """
    check_supported(recipe)
    progress = progress or Progress()
    run_dir = Path(run_dir or default_run_dir(recipe))
    with staged_directory(run_dir, "run directory") as staging:
        keras.utils.set_random_seed(recipe.seed)
        strategy = tfptm.training.get_strategy(recipe.distribute.strategy)
        progress(f"loading data ({recipe.data.source})")
        data = load_data(recipe.data, recipe.seed)
        progress(f"{len(data.x_train)} training and {len(data.x_test)} test examples, {len(data.class_names)} classes")
        metrics = {}
        with strategy.scope():
            progress(f"building backbone {recipe.backbone.name!r} with a {recipe.head.task} head")
            backbone = make_backbone(recipe)
            if recipe.pretrain:
                backbone, metrics["pretrain"] = PRETRAINERS[recipe.pretrain.objective](recipe, backbone, progress, verbose)
            model = build(recipe, backbone, data.class_names, data.x_train.shape[1:])
        progress(f"training: strategy {recipe.finetune.strategy}")
        history = train(recipe, model, data, verbose=verbose)
        progress(f"evaluating on {len(data.x_test)} test examples")
        metrics["model"] = evaluate(model, data)
        model.save(staging / MODEL_FILE)
        export_base = Path(recipe.export.dir) if recipe.export.dir else staging / "export"
        if recipe.export.saved_model or recipe.export.tflite:
            progress(f"exporting to {recipe.export.dir or run_dir / 'export'}")
        artifacts, parity, sizes = export(recipe, model, data, export_base)
        summary = write_run(staging, run_dir, recipe, metrics, {"model": staging / MODEL_FILE, **artifacts},
                            parity, sizes, history, model, origin)
    summary["run_dir"] = str(run_dir)
    progress(f"done: {run_dir / 'report.md'}")
    return summary


def write_run(staging, run_dir, recipe, metrics, artifacts, parity, sizes, history, model, origin=None):
    """Writes recipe.yaml, history.json, summary.json and report.md; paths under `staging` are recorded as under `run_dir`."""
    final = {kind: _final(path, staging, run_dir) for kind, path in artifacts.items()}
    sizes = {**sizes, **{k: directory_size(p) for k, p in artifacts.items() if k not in sizes and Path(p).exists()}}
    write_text_atomic(staging / RECIPE_FILE, dump_recipe(recipe, origin))
    write_json_atomic(staging / HISTORY_FILE, history)
    summary = write_summary(staging, metrics, final, parity, sizes=sizes, recipe=recipe.name)
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
            backbone, metrics = PRETRAINERS[recipe.pretrain.objective](recipe, make_backbone(recipe), progress, verbose)
        backbone.save(staging / "pretrained_backbone.keras")
        write_text_atomic(staging / RECIPE_FILE, dump_recipe(recipe))
        summary = write_summary(staging, {"pretrain": metrics}, {"pretrained_backbone": run_dir / "pretrained_backbone.keras"}, {})
    progress(f"done: {run_dir / 'pretrained_backbone.keras'}")
    return summary
