"""`tfptm compress RUN`: a finished run made smaller and faster, then exported and checked like `tfptm train` does.

The steps run in the pipeline's order, each on the run's own data (its
`recipe.yaml`: same source, seed and split, so the test split is the one the
run was tested on):

1. `--distill STUDENT`: a student learns from the run's model with
   `tfptm.Distiller` (`HeadDistillation`). STUDENT is a `.keras` model or a run
   directory, or `layers=N` for Transformer text models: the teacher's own
   copy keeping N evenly spaced layers (the DistilBERT initialisation).
2. `--prune S`: magnitude pruning to sparsity S (`MagnitudePruning`),
   reached after 70% of the steps, the rest recovering; or
   `--prune-feedforward S` for structured pruning of Transformers
   (`prune_transformer`), which removes that share of the feed-forward units,
   followed by recovery training.
3. `--qat`: quantization-aware training (`tfptm.compress.quantization_aware`)
   at a tenth of the learning rate; `--to int8` then uses its learned ranges.

Then `--to` (float32, float16, dynamic, int8) is exported with
`export_checked` (a SavedModel too unless `--no-saved-model`): every artifact
is checked against the compressed Keras model, and `summary.json` holds the
test metrics of the original and of the compressed model (Keras, and each
TFLite file's parity), sizes, sparsity and the steps. The output directory is
written in staging and appears only when everything succeeded.

Example:
>>> import tempfile, os
>>> from tfptm.recipes import load_recipe, bundled_path
>>> from tfptm.jobs.train import run_recipe
>>> run = os.path.join(tempfile.mkdtemp(), "run")
>>> recipe = load_recipe(bundled_path("image_transfer"), sets=["pretrain=null", "finetune.head_epochs=1",
...     "finetune.epochs=1", "export.tflite=[]", "export.saved_model=false"])
>>> _ = run_recipe(recipe, run, progress=lambda message: None)
>>> summary = compress_run(run, os.path.join(run, "small"), to="dynamic", prune=0.5, epochs=1, saved_model=False,
...                        progress=lambda message: None)
>>> summary["steps"], round(summary["sparsity"], 2), sorted(summary["parity"])
(['prune 0.5'], 0.5, ['tflite_dynamic'])
"""

import math
from pathlib import Path

import keras
import numpy as np

import tfptm
from tfptm.compress import MagnitudePruning
from tfptm.errors import TfptmError
from tfptm.export.exporter import export_checked
from tfptm.export.litert import QUANTIZATIONS
from tfptm.files import staged_directory
from tfptm.jobs.evaluate import data_for_model
from tfptm.jobs.export import run_tokenizer
from tfptm.jobs.model import check_examples_fit, sample_shape, test_metrics
from tfptm.progress import Progress
from tfptm.recipes import load_recipe
from tfptm.rundir import EXPORT_DIR, MODEL_FILE, RECIPE_FILE, REPRESENTATIVE_EXAMPLES, load_model, model_path, read_representative, \
    read_summary, representative_path, write_summary

PRUNE_REACHED = 0.7  # share of the pruning steps after which the target sparsity holds (the rest recover)
QAT_RATE_SHARE = 0.1  # QAT trains at this share of the learning rate


def check_compress_args(to, qat, prune, prune_feedforward, distill, epochs):
    """Refuses a contradictory or out-of-range request before anything is loaded."""
    if to not in QUANTIZATIONS:
        raise TfptmError(f"compress: --to {to!r}; expected one of {', '.join(QUANTIZATIONS)}")
    if qat and to != "int8":
        raise TfptmError(f"compress: --qat trains for int8 but --to is {to!r}; use --to int8")
    for name, value in (("--prune", prune), ("--prune-feedforward", prune_feedforward)):
        if value is not None and not 0.0 < value < 1.0:
            raise TfptmError(f"compress: {name} {value}; expected a share of weights between 0 and 1, e.g. 0.5")
    if prune is not None and prune_feedforward is not None:
        raise TfptmError("compress: give --prune (weights) or --prune-feedforward (units), not both")
    if not (isinstance(epochs, int) and epochs >= 1):
        raise TfptmError(f"compress: --epochs {epochs!r}; expected an integer >= 1")
    if distill is not None and not str(distill).strip():
        raise TfptmError("compress: --distill is empty; expected a .keras model, a run directory or layers=N")


def student_for(spec, teacher):
    """The student `--distill` names: `layers=N` (a Transformer teacher's N evenly spaced layers) or a saved model."""
    from tfptm.compress import prune_transformer
    from tfptm.compress.structured import transformer_layers

    spec = str(spec)
    if spec.startswith("layers="):
        count = len(transformer_layers(teacher))
        try:
            keep = int(spec.split("=", 1)[1])
        except ValueError:
            keep = 0
        if count == 0 or not 1 <= keep < count:
            raise TfptmError(f"compress: --distill {spec!r}; expected layers=N with 1 <= N < {count}, the teacher's "
                             f"Transformer layers" if count else
                             f"compress: --distill {spec!r} needs a Transformer text model; give a .keras student instead")
        kept = {round(i * (count - 1) / max(keep - 1, 1)) for i in range(keep)} if keep > 1 else {0}
        return prune_transformer(teacher, drop_layers=[i for i in range(count) if i not in kept])
    student = load_model(spec)
    if tuple(student.outputs[0].shape[1:]) != tuple(teacher.outputs[0].shape[1:]):
        raise TfptmError(f"compress: student {spec!r} outputs {tuple(student.outputs[0].shape[1:])}; the teacher "
                         f"outputs {tuple(teacher.outputs[0].shape[1:])}: expected the same classes")
    return student


def _fit(model, data, epochs, learning_rate, callbacks=()):
    from tfptm.training.finetune import recompile

    recompile(model, learning_rate)
    return model.fit(data.train, epochs=epochs, validation_data=data.validation, callbacks=list(callbacks), verbose=0)


def compress_run(source, out_dir, to="int8", qat=False, prune=None, prune_feedforward=None, distill=None, epochs=1,
                 learning_rate=None, saved_model=True, progress=None):  # fmt: skip
    """Compresses the model of run `source` into `out_dir` (see the module); returns the summary."""
    check_compress_args(to, qat, prune, prune_feedforward, distill, epochs)
    progress = progress or Progress()
    path = model_path(source)
    run_dir = path.parent
    if not (run_dir / RECIPE_FILE).is_file():
        raise TfptmError(f"compress: {str(source)!r} is not a run directory with {RECIPE_FILE}; "
                         "compress needs the run's data (train it with tfptm train)")
    recipe = load_recipe(run_dir / RECIPE_FILE)
    progress(f"loading {path}")
    teacher = load_model(path)
    progress(f"loading data ({recipe.data.source})")
    data = data_for_model(recipe, teacher, run_dir)
    rate = learning_rate or recipe.finetune.learning_rate
    metrics = {"original": {**test_metrics(teacher, data), "parameters": teacher.count_params()}}
    model, steps = teacher, []

    if distill is not None:
        from tfptm.compress import HeadDistillation

        model = student_for(distill, teacher)
        check_examples_fit(model, sample_shape(data))
        progress(f"distilling into {model.count_params():,} parameters ({epochs} epochs)")
        with model.distribute_strategy.scope():
            distiller = tfptm.Distiller(teacher, model, HeadDistillation())
            distiller.compile(tfptm.jobs.fit.recipe_optimizer(recipe, rate))
        distiller.fit(data.train, epochs=epochs, verbose=0)
        model.compile_from_config(teacher.get_compile_config())
        steps.append(f"distill {distill}")
    if prune_feedforward is not None:
        from tfptm.compress import prune_transformer

        config = teacher.get_compile_config()
        model = prune_transformer(model, feedforward=prune_feedforward)
        model.compile_from_config(config)
        progress(f"structured pruning: {prune_feedforward:.0%} of the feed-forward units removed; recovering")
        _fit(model, data, epochs, rate)
        steps.append(f"prune-feedforward {prune_feedforward}")
    if prune is not None:
        total = epochs * max(1, tfptm.jobs.fit.steps_per_epoch(data.train, data.num_train, recipe.data.batch_size))
        progress(f"magnitude pruning to {prune:.0%} zero weights ({epochs} epochs)")
        _fit(model, data, epochs, rate, [MagnitudePruning(prune, end_step=max(1, math.floor(PRUNE_REACHED * total)),
                                                          frequency=max(1, total // 20))])
        steps.append(f"prune {prune}")
    if qat:
        from tfptm.compress import quantization_aware

        quantization_aware(model).calibrate(data.train)
        progress(f"quantization-aware training ({epochs} epochs)")
        hold = [MagnitudePruning(prune, initial_sparsity=prune)] if prune is not None else []  # pruned weights stay 0
        _fit(model, data, epochs, rate * QAT_RATE_SHARE, hold)
        steps.append("qat")

    metrics["compressed"] = {**test_metrics(model, data), "parameters": model.count_params()}
    return _write(out_dir, run_dir, model, data, recipe, metrics, steps, to, saved_model, progress)


def _write(out_dir, run_dir, model, data, recipe, metrics, steps, to, saved_model, progress):
    from tfptm.compress import sparsity

    facts = read_summary(run_dir)
    representative = representative_path(run_dir)
    x = read_representative(representative) if representative is not None else \
        keras.tree.map_structure(lambda a: np.asarray(a)[:REPRESENTATIVE_EXAMPLES], data.test_arrays()[0])
    name = facts.get("model_name") or recipe.name or "model"
    progress(f"exporting {to} and checking it against the compressed Keras model")
    with staged_directory(out_dir, "compress output directory") as staging:
        model.save(staging / MODEL_FILE)
        exported = export_checked(
            model, staging / EXPORT_DIR, name, saved_model_export=saved_model, quantizations=(to,),
            class_names=facts.get("class_names"), image_scale=facts.get("image_scale", 1.0),
            tokenizer=run_tokenizer(run_dir, model), representative_data=x, check_data=x,
            metadata={"source": str(run_dir), "compression": steps},
        )
        final = Path(out_dir)
        artifacts = {"model": final / MODEL_FILE, **{
            kind: final / Path(p).relative_to(staging) for kind, p in exported["artifacts"].items()}}
        return write_summary(staging, metrics, artifacts, exported["parity"], sizes=exported["sizes"], steps=steps,
                             sparsity=sparsity(model)["sparsity"], source=str(run_dir), quantization=to,
                             class_names=facts.get("class_names"), model_name=name)

