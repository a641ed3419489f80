"""`report.md`: a run's model card, readable without Python (floor 4).

Metrics of every model in the summary, per-class scores and a confusion
matrix of the main one, training curves, parameter counts and size, and the
exported artifacts with their sizes and parity checks. Plots are drawn with
matplotlib's Agg renderer (no display needed) and every file is written
atomically.

Example:
>>> import tempfile
>>> from tfptm.evaluation import classification_metrics
>>> summary = {"metrics": {"model": classification_metrics([0, 1, 1], [0, 1, 0], ["cat", "dog"])},
...            "artifacts": {}, "parity": {}}
>>> run_dir = tempfile.mkdtemp()
>>> sorted(p.name for p in write_report(run_dir, summary, history={"loss": [0.9, 0.5]}))
['confusion_matrix.png', 'curves.png', 'report.md']
"""

import datetime
import io
from pathlib import Path

import numpy as np

from tfptm.files import write_bytes_atomic, write_text_atomic
from tfptm.rundir import CONFUSION_FILE, CURVES_FILE, PER_LABEL_FILE, REPORT_FILE, RESIDUALS_FILE  # noqa: F401


def write_report(run_dir, summary, history=None, model=None, title="tfptm run", primary=None, final_dir=None):
    """Writes `report.md` (and `curves.png`, `confusion_matrix.png`, `per_label_f1.png` for multilabel,
    `residuals.png` for regression, when there is data for them) into `run_dir`.

    Args:
        summary: the `summary.json` dict: `metrics` (model name -> metrics from
            `tfptm.evaluate`: classification, multilabel or regression; each
            task gets its own table), `artifacts`, `parity` and optional `sizes` (bytes).
        history: per-epoch lists as `tfptm.finetune` returns them (a `"stage"`
            list marks the stages on the curves).
        model: the Keras model, for parameter counts (trainable and frozen).
        primary: the model in `summary["metrics"]` whose per-class scores and
            confusion matrix are shown (default `"model"`, else `"finetuned"`, else the first).
        final_dir: where `run_dir` will end up (when it is a staging directory);
            artifact paths under it are shown relative to it.

    Returns the paths written.
    """
    run_dir = Path(run_dir)
    metrics = summary.get("metrics", {})
    primary = primary or next((k for k in ("model", "finetuned") if k in metrics), next(iter(metrics), None))
    written, lines = [], [f"# {title}", "", f"Written by tfptm on {datetime.datetime.now():%Y-%m-%d %H:%M}.", ""]
    lines += _metrics_table(metrics)
    main = metrics.get(primary) or {}
    if main.get("per_class"):
        lines += [f"## Per-class scores ({primary})", "", "| class | precision | recall | F1 | support |", "|---|---:|---:|---:|---:|"]
        lines += [f"| {name} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | {m['support']} |"
                  for name, m in main["per_class"].items()]
        lines.append("")
    if main.get("per_type"):
        lines += [f"## Per-entity-type scores ({primary}, seqeval, {main.get('scheme', 'BIO')})", "",
                  "| type | precision | recall | F1 | support |", "|---|---:|---:|---:|---:|"]
        lines += [f"| {name} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | {m['support']} |"
                  for name, m in main["per_type"].items()]
        lines.append("")
    if main.get("per_label"):
        lines += [f"## Per-label scores ({primary}, threshold {main.get('threshold', 0.5)})", "",
                  "| label | precision | recall | F1 | support |", "|---|---:|---:|---:|---:|"]
        lines += [f"| {name} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | {m['support']} |"
                  for name, m in main["per_label"].items()]
        written.append(_save(run_dir / PER_LABEL_FILE, _per_label_figure(main["per_label"])))
        lines += ["", f"![per-label F1]({PER_LABEL_FILE})", ""]
    if main.get("residual_histogram"):
        written.append(_save(run_dir / RESIDUALS_FILE, _residuals_figure(main["residual_histogram"])))
        lines += [f"## Residuals ({primary})", "", "Prediction minus truth, over the test set.", "",
                  f"![residuals]({RESIDUALS_FILE})", ""]
    if main.get("confusion_matrix"):
        written.append(_save(run_dir / CONFUSION_FILE, _confusion_figure(main["confusion_matrix"], list(main.get("per_class", {})))))
        lines += [f"## Confusion matrix ({primary})", "", "Rows: true class; columns: predicted class.", "",
                  f"![confusion matrix]({CONFUSION_FILE})", ""]
    curves = {k: v for k, v in (history or {}).items() if k != "stage" and v}
    if curves:
        written.append(_save(run_dir / CURVES_FILE, _curves_figure(curves, (history or {}).get("stage"))))
        last = ", ".join(f"{k} {v[-1]:.4g}" for k, v in curves.items())
        lines += ["## Training curves", "", f"![training curves]({CURVES_FILE})", "",
                  f"{len(next(iter(curves.values())))} epochs; last epoch: {last}.", ""]
    lines += _model_section(model, summary.get("sizes", {}))
    lines += _artifacts_section(summary, Path(final_dir or run_dir))
    written.append(write_text_atomic(run_dir / REPORT_FILE, "\n".join(lines)))
    return written


# Per task: the columns of its metrics table, as (heading, key).
_COLUMNS = {
    "classification": [("accuracy", "accuracy"), ("precision (macro)", "precision_macro"),
                       ("recall (macro)", "recall_macro"), ("F1 (macro)", "f1_macro")],
    "multilabel": [("subset accuracy", "subset_accuracy"), ("F1 (micro)", "f1_micro"), ("F1 (macro)", "f1_macro"),
                   ("Hamming loss", "hamming_loss")],
    "regression": [("MAE", "mae"), ("RMSE", "rmse"), ("R²", "r2")],
    "token_classification": [("entity precision", "precision"), ("entity recall", "recall"), ("entity F1", "f1"),
                             ("word accuracy", "word_accuracy")],
    "question_answering": [("exact match", "exact_match"), ("F1", "f1")],
}


def _kind(metrics):
    """Which table a model's metrics go in (classification metrics carry no `task`)."""
    return metrics.get("task") if metrics.get("task") in _COLUMNS else "classification"


def _metrics_table(metrics):
    rows = ["## Metrics", ""]
    for task, columns in _COLUMNS.items():
        models = {name: m for name, m in metrics.items() if _kind(m) == task}
        if not models:
            continue
        rows += ["| model | " + " | ".join(h for h, _ in columns) + " | examples |", "|---|" + "---:|" * (len(columns) + 1)]
        rows += [f"| {name} | " + " | ".join(f"{m.get(k, float('nan')):.3f}" for _, k in columns)
                 + f" | {m.get('num_examples', m.get('num_sentences', ''))} |"
                 for name, m in models.items()]
        rows.append("")
    return rows


def parameter_counts(model):
    """`(trainable, frozen)` parameter counts of a Keras model, as the weights are set now.

    >>> import keras
    >>> layer = keras.layers.Dense(2); layer.build((None, 3))
    >>> model = keras.Sequential([keras.Input((3,)), layer, keras.layers.BatchNormalization()])
    >>> parameter_counts(model)
    (12, 4)
    """
    count = lambda weights: int(sum(int(np.prod(w.shape)) for w in weights))
    return count(model.trainable_weights), count(model.non_trainable_weights)


def _model_section(model, sizes):
    if model is None:
        return []
    trainable, frozen = parameter_counts(model)
    rows = ["## Model", "", "| | |", "|---|---:|", f"| parameters | {trainable + frozen:,} |",
            f"| trainable (at the end of training) | {trainable:,} |", f"| frozen or non-trainable | {frozen:,} |",
            f"| float32 weights | {_size((trainable + frozen) * 4)} |"]
    if "model" in sizes:
        rows.append(f"| model.keras file | {_size(sizes['model'])} |")
    return rows + [""]


def _artifacts_section(summary, final_dir):
    artifacts, parity, sizes = summary.get("artifacts", {}), summary.get("parity", {}), summary.get("sizes", {})
    if not artifacts:
        return []
    rows = ["## Artifacts", "", "| artifact | path | size | parity with Keras |", "|---|---|---:|---|"]
    for kind, path in artifacts.items():
        size = _size(sizes[kind]) if kind in sizes else ""
        rows.append(f"| {kind} | `{_relative(path, final_dir)}` | {size} | {_parity(parity.get(kind))} |")
    return rows + [""]


def _parity(check):
    if not check:
        return "not checked"
    verdict = "OK" if check.get("ok") else "FAILED"
    if "min_cosine" in check:  # embeddings
        return (f"{verdict}: least cosine {check['min_cosine']:.6f} (min {check['min_cosine_required']}), max abs diff "
                f"{check['max_abs_diff']:.1e} on {check['num_examples']} examples")
    if "max_abs_diff" in check:
        return f"{verdict}: max abs diff {check['max_abs_diff']:.1e} (tolerance {check['tolerance']:.0e}) on {check['num_examples']} examples"
    if "top1_agreement" in check:
        extra = f", accuracy delta {100 * check['accuracy_delta']:+.1f} points" if "accuracy_delta" in check else ""
        return (f"{verdict}: top-1 agreement {100 * check['top1_agreement']:.1f}% (min {100 * check['min_agreement']:.0f}%)"
                f", max prob diff {check['max_prob_diff']:.1e}{extra} on {check['num_examples']} examples")
    return verdict


def _relative(path, final_dir):
    try:
        return str(Path(path).resolve().relative_to(final_dir.resolve()))
    except ValueError:
        return str(path)


def _size(num_bytes):
    for unit in ("bytes", "KiB", "MiB"):
        if num_bytes < 1024 or unit == "MiB":
            return f"{num_bytes:,} {unit}" if unit == "bytes" else f"{num_bytes:.1f} {unit}"
        num_bytes /= 1024


def _save(path, figure):
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return write_bytes_atomic(path, buffer.getvalue())


def _figure(**kwargs):
    # A bare Figure renders with Agg and touches no pyplot state: safe in threads and without a display.
    from matplotlib.figure import Figure

    return Figure(**kwargs)


def _confusion_figure(matrix, class_names):
    matrix = np.asarray(matrix)
    names = class_names or [str(i) for i in range(len(matrix))]
    size = max(3.0, 0.5 * len(matrix) + 2)
    figure = _figure(figsize=(size, size))
    axes = figure.add_subplot()
    axes.imshow(matrix, cmap="Blues")
    axes.set(xticks=range(len(names)), yticks=range(len(names)), xticklabels=names, yticklabels=names,
             xlabel="predicted", ylabel="true", title="confusion matrix")
    if len(matrix) <= 30:
        threshold = matrix.max() / 2 if matrix.size else 0
        for (i, j), count in np.ndenumerate(matrix):
            axes.text(j, i, str(count), ha="center", va="center", color="white" if count > threshold else "black", fontsize=8)
    return figure


def _per_label_figure(per_label):
    names = list(per_label)
    figure = _figure(figsize=(max(4.0, 0.4 * len(names) + 2), 3.5))
    axes = figure.add_subplot()
    axes.bar(range(len(names)), [per_label[n]["f1"] for n in names])
    axes.set(xticks=range(len(names)), ylim=(0, 1), ylabel="F1", title="F1 per label")
    axes.set_xticklabels(names, rotation=45 if len(names) > 8 else 0, ha="right" if len(names) > 8 else "center")
    return figure


def _residuals_figure(histogram):
    edges, counts = np.asarray(histogram["edges"]), np.asarray(histogram["counts"])
    figure = _figure(figsize=(5, 3.5))
    axes = figure.add_subplot()
    axes.bar(edges[:-1], counts, width=np.diff(edges), align="edge")
    axes.axvline(0.0, color="grey", linestyle="--", linewidth=0.8)
    axes.set(xlabel="prediction - truth", ylabel="examples", title="residuals")
    return figure


def _curves_figure(curves, stages):
    groups = [[k for k in curves if k.removeprefix("val_") == "loss"],
              [k for k in curves if k.removeprefix("val_") != "loss"]]
    groups = [g for g in groups if g]
    figure = _figure(figsize=(5 * len(groups), 3.5))
    for index, keys in enumerate(groups, start=1):
        axes = figure.add_subplot(1, len(groups), index)
        for key in keys:
            axes.plot(range(1, len(curves[key]) + 1), curves[key], label=key)
        for epoch in _stage_starts(stages):
            axes.axvline(epoch + 0.5, color="grey", linestyle="--", linewidth=0.8)
        axes.set(xlabel="epoch", title="loss" if index == 1 and "loss" in keys[0] else "metrics")
        axes.legend(fontsize=8)
    return figure


def _stage_starts(stages):
    """Epochs after which a new stage begins (for dashed lines)."""
    return [i for i in range(1, len(stages or [])) if stages[i] != stages[i - 1]]
