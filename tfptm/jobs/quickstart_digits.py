"""The quickstart: transfer learning on scikit-learn's digits, end to end.

Pre-trains a small CNN on digits 0-4 (the source task), transfers it to
digits 5-9 with only a few labelled images per class, compares it with the
same network trained from scratch on those labels, exports the fine-tuned
model for TF Serving and TFLite, and checks both artifacts against Keras.
It is written only against tfptm's public API, as a user would write it.
"""

import dataclasses
import datetime
from pathlib import Path

import keras

import tfptm
from tfptm.evaluation.report import write_report
from tfptm.files import directory_size, staged_directory, write_json_atomic
from tfptm.progress import Progress
from tfptm.rundir import HISTORY_FILE, MODEL_FILE, REPORT_FILE, SUMMARY_FILE, write_representative, write_summary

SOURCE_CLASSES = [0, 1, 2, 3, 4]
TARGET_CLASSES = [5, 6, 7, 8, 9]


@dataclasses.dataclass(frozen=True)
class QuickstartConfig:
    """Sizes of the quickstart; the defaults finish in well under 3 minutes on 2 CPU cores."""

    shots: int = 10
    source_epochs: int = 30
    head_epochs: int = 40
    finetune_epochs: int = 40
    finetune_learning_rate: float = 3e-4
    # The baseline gets 2.5x the fine-tuning epochs at a higher rate: with so
    # few steps per epoch, fewer leave BatchNorm's moving statistics
    # unconverged and the baseline looks worse than it is.
    scratch_epochs: int = 200
    scratch_learning_rate: float = 3e-3
    filters: tuple = (32, 64)
    # Flatten keeps where in the 8x8 image a stroke is; average pooling loses it.
    pooling: str = "flatten"
    dropout: float = 0.2
    seed: int = 0
    model_name: str = "digits"


def default_run_dir():
    return Path("runs") / f"quickstart-{datetime.datetime.now():%Y%m%d-%H%M%S}"


def run_quickstart(run_dir=None, export_dir="export", config=QuickstartConfig(), progress=None, verbose=0):
    """Runs the quickstart and returns its summary (also written to `run_dir/summary.json`).

    The run directory appears only when complete and also holds `report.md`
    (with `curves.png` and `confusion_matrix.png`), `history.json`, the
    fine-tuned `model.keras`, the `pretrained_backbone.keras` and
    `representative.npy` (the few-shot training images), so that
    `tfptm export RUN_DIR` re-exports it with no other arguments.
    """
    return staged_run(run_dir or default_run_dir(), _run, export_dir, config, progress, verbose)


def staged_run(run_dir, body, export_dir, config, progress=None, verbose=0):
    """Runs `body(staging, run_dir, export_dir, config, progress, verbose)` into a run directory that
    appears only when complete (files go to `staging`; paths recorded point to `run_dir`)."""
    progress = progress or Progress()
    run_dir = Path(run_dir)
    with staged_directory(run_dir, "run directory") as staging:
        summary = body(staging, run_dir, Path(export_dir), config, progress, verbose)
    summary["run_dir"] = str(run_dir)
    progress(f"done: {run_dir / SUMMARY_FILE}, {run_dir / REPORT_FILE}")
    return summary


def _run(staging, run_dir, export_dir, config, progress, verbose):
    # Files are written to `staging`; paths recorded point to `run_dir`, where it lands.
    keras.utils.set_random_seed(config.seed)
    progress("loading scikit-learn digits")
    images, labels = tfptm.datasets.load_digits()
    x_source, y_source = tfptm.data.select_classes(images, labels, SOURCE_CLASSES)
    x_target, y_target = tfptm.data.select_classes(images, labels, TARGET_CLASSES)
    (x_few, y_few), (x_test, y_test) = tfptm.data.sample_per_class(x_target, y_target, config.shots, seed=config.seed)
    class_names = [str(c) for c in TARGET_CLASSES]
    # Decoded image files (PNG pixels 0-255) times this are the raw 0-16 digits the model takes.
    image_scale = tfptm.datasets.DIGITS_PIXEL_MAX / 255
    progress(
        f"source task: {len(x_source)} images of digits 0-4; target task: digits 5-9, "
        f"{len(x_few)} labelled ({config.shots} per class), {len(x_test)} held out for testing"
    )

    def new_backbone():
        return tfptm.backbones.get(
            "vgg_cnn", input_shape=(8, 8, 1), filters=config.filters, input_scale=1 / tfptm.datasets.DIGITS_PIXEL_MAX
        )

    def new_head():
        return tfptm.Head("multiclass", num_classes=len(TARGET_CLASSES), pooling=config.pooling, dropout=config.dropout)

    few_shot = tfptm.data.from_arrays(x_few, y_few, batch_size=16, seed=config.seed)

    progress(f"pre-training the backbone on the source task ({config.source_epochs} epochs)")
    source_model = tfptm.build_model(new_backbone(), new_head(), name="source")
    source_data = tfptm.data.from_arrays(x_source, y_source, batch_size=32, seed=config.seed)
    tfptm.finetune(source_model, source_data, tfptm.training.full(config.source_epochs, 1e-3), verbose=verbose)
    backbone = tfptm.backbone_of(source_model)
    backbone.save(staging / "pretrained_backbone.keras")

    progress(
        f"fine-tuning on the target task: head on the frozen backbone ({config.head_epochs} epochs), "
        f"then all but BatchNorm at a lower rate ({config.finetune_epochs} epochs)"
    )
    finetuned = tfptm.build_model(backbone, new_head(), name="finetuned")
    stages = tfptm.training.two_stage(config.head_epochs, config.finetune_epochs, 1e-3, config.finetune_learning_rate)
    finetuned_history = tfptm.finetune(finetuned, few_shot, stages, verbose=verbose)

    progress(f"training the same network from scratch on the same labels ({config.scratch_epochs} epochs)")
    scratch = tfptm.build_model(new_backbone(), new_head(), name="scratch")
    tfptm.finetune(
        scratch, few_shot, tfptm.training.full(config.scratch_epochs, config.scratch_learning_rate), verbose=verbose
    )

    progress(f"evaluating both on {len(x_test)} held-out target images")
    metrics = {
        "finetuned": tfptm.evaluate(finetuned, x_test, y_test, class_names),
        "scratch": tfptm.evaluate(scratch, x_test, y_test, class_names),
    }

    progress(f"exporting the fine-tuned model to {export_dir}")
    exported = tfptm.export.export_checked(
        finetuned, export_dir, config.model_name, quantizations=("dynamic",), class_names=class_names,
        image_scale=image_scale, check_data=(x_test, y_test),
        metadata={"task": "multiclass", "input_normalization": "raw pixels 0-16, rescaled inside the model",
                  "image_scale": image_scale},
    )
    parity = exported["parity"]  # every artifact checked against the Keras model on the held-out images
    finetuned.save(staging / MODEL_FILE)
    write_representative(staging, x_few)
    history = {k: [v if isinstance(v, str) else float(v) for v in vs] for k, vs in finetuned_history.items()}
    write_json_atomic(staging / HISTORY_FILE, history)
    artifacts = {
        "model": run_dir / MODEL_FILE,
        **exported["artifacts"],
        "pretrained_backbone": run_dir / "pretrained_backbone.keras",
    }
    summary = write_summary(
        staging,
        metrics,
        artifacts,
        parity,
        sizes={"model": directory_size(staging / MODEL_FILE), **exported["sizes"]},
        history=history,
        config=dataclasses.asdict(config),
        class_names=class_names,
        image_scale=image_scale,  # with class_names, model_name and representative.npy: what `tfptm export` reads
        model_name=config.model_name,
    )
    write_report(
        staging, summary, history=history, model=finetuned, primary="finetuned", final_dir=run_dir,
        title="tfptm quickstart: digits 0-4 -> 5-9 transfer, fine-tuned vs from scratch",
    )
    return summary


def format_table(summary):
    """The quickstart's results as a short text table."""
    rows = ["model          accuracy  precision  recall     f1"]
    for label, key in (("fine-tuned", "finetuned"), ("from scratch", "scratch")):
        m = summary["metrics"][key]
        rows.append(
            f"{label:<14} {m['accuracy']:>8.3f}  {m['precision_macro']:>9.3f}  {m['recall_macro']:>6.3f}  {m['f1_macro']:>5.3f}"
        )
    gain = summary["metrics"]["finetuned"]["accuracy"] - summary["metrics"]["scratch"]["accuracy"]
    rows.append(f"transfer gain: {100 * gain:+.1f} accuracy points on the held-out target test set")
    saved, lite = summary["parity"]["saved_model"], summary["parity"]["tflite_dynamic"]
    rows.append(
        f"SavedModel  {summary['sizes']['saved_model'] / 1024:8.1f} KiB  max |diff| {saved['max_abs_diff']:.2e} "
        f"(<= {saved['tolerance']:.0e})  {'OK' if saved['ok'] else 'FAILED'}  {summary['artifacts']['saved_model']}"
    )
    rows.append(
        f"TFLite      {summary['sizes']['tflite_dynamic'] / 1024:8.1f} KiB  top-1 agreement {100 * lite['top1_agreement']:.1f}% "
        f"(>= {100 * lite['min_agreement']:.0f}%), max prob diff {lite['max_prob_diff']:.2e}  "
        f"{'OK' if lite['ok'] else 'FAILED'}  {summary['artifacts']['tflite_dynamic']}"
    )
    return "\n".join(rows)
