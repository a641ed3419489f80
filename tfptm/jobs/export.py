"""`tfptm export RUN`: a finished run (or a `.keras` file) exported again with `tfptm.export.export_checked`.

What the run directory knows fills what the caller leaves out: class names,
image scale and model name from `summary.json`; representative inputs
(`representative.npy`, or `.npz` for named inputs) for int8 calibration and
parity; and, for a text run, the tokenizer its text went through (from the
resolved `recipe.yaml`), so the SavedModel gets the same raw-string signature
`tfptm train` gives it (`raw_text`, `raw_text_pairs` for text pairs, `embed`
for an embedder, each checked on the run's raw held-out texts when its data
is still there). File names are `export_checked`'s, as for `tfptm train`.

Example:
>>> import os, tempfile, numpy as np, tfptm
>>> backbone = tfptm.backbones.get("vgg_cnn", input_shape=(8, 8, 1), filters=(8,))
>>> run = tempfile.mkdtemp()
>>> tfptm.build_model(backbone, tfptm.Head("multiclass", num_classes=2)).save(os.path.join(run, "model.keras"))
>>> _ = tfptm.rundir.write_representative(run, np.random.rand(16, 8, 8, 1).astype("float32"))
>>> summary = export_run(run, os.path.join(run, "export"), quantizations=["float32", "int8"])
>>> sorted(summary["parity"]), summary["parity"]["saved_model"]["ok"], summary["parity"]["tflite_float32"]["ok"]
(['saved_model', 'tflite_float32', 'tflite_int8'], True, True)
"""

from pathlib import Path

from tfptm.errors import TfptmError
from tfptm.files import write_json_atomic
from tfptm.export.exporter import FORMATS, export_checked
from tfptm.export.litert import QUANTIZATIONS
from tfptm.export.parity import checked_inputs
from tfptm.export.signatures import EMBEDDINGS, check_head, task as check_head_task
from tfptm.rundir import RECIPE_FILE, REPRESENTATIVE_FILE, load_model, model_path, read_representative, read_summary, \
    representative_path


def export_run(
    source, export_dir="export", model_name=None, formats=FORMATS, quantizations=("dynamic",), class_names=None,
    representative_data=None, image_scale=None, version=None, int8_io=False,
):  # fmt: skip
    """Exports a saved `.keras` model (a file, or a run directory holding `model.keras`) and checks it.

    Writes a SavedModel version under `<export_dir>/<model_name>/` and one
    `<model_name>.<quantization>.tflite` per quantization, checks each against
    the Keras model on the representative inputs (when there are any), and
    writes `<export_dir>/<model_name>.export.json` with paths, sizes,
    signatures and parity. `representative_data` is an array, a dict of
    arrays, or a `.npy`/`.npz` path; by default the run's own.
    """
    path = model_path(source)
    facts = read_summary(path.parent)
    unknown = [f for f in formats if f not in FORMATS] + [q for q in quantizations if q not in QUANTIZATIONS]
    if unknown or not formats:
        raise TfptmError(f"export: unknown {unknown or 'empty formats'}; formats: {FORMATS}, quantizations: {QUANTIZATIONS}")
    if representative_data is None:
        representative_data = representative_path(path.parent)
    where = "representative data"
    if isinstance(representative_data, (str, Path)):
        where = f"representative data {str(representative_data)!r}"
        representative_data = read_representative(representative_data)
    model = load_model(path, compile=False)
    check_head(model, where=str(path))
    data = checked_inputs(model, representative_data, where) if representative_data is not None else None
    if "tflite" in formats and "int8" in quantizations and data is None:
        raise TfptmError(f"int8 export needs representative data: pass representative_data or put {REPRESENTATIVE_FILE} "
                         f"(a few hundred training inputs) beside {str(path)!r}")
    model_name = model_name or facts.get("model_name") or facts.get("config", {}).get("model_name") or path.stem
    tokenizer = run_tokenizer(path.parent, model)
    if check_head_task(model) == EMBEDDINGS:  # a sentence embedder: checked on the run's held-out texts too
        from tfptm.export.tasks import export_embedder

        return {"source": str(path), **export_embedder(
            model, export_dir, model_name, tokenizer, quantizations=quantizations if "tflite" in formats else (),
            check_texts=run_texts(path.parent, "embedding"), version=version, saved_model_export="saved_model" in formats)}
    image_scale = image_scale if image_scale is not None else facts.get("image_scale", 1.0)
    record = {"source": str(path)}
    if data is None:
        record["parity_skipped"] = f"no representative data (pass representative_data or add {REPRESENTATIVE_FILE})"
    summary = export_checked(
        model, export_dir, model_name, saved_model_export="saved_model" in formats,
        quantizations=quantizations if "tflite" in formats else (), class_names=class_names or facts.get("class_names"),
        image_scale=image_scale, tokenizer=tokenizer, version=version, representative_data=data,
        check_data=data, int8_io=int8_io, metadata={"image_scale": image_scale, "source": str(path)}, record=record,
    )
    kind = raw_text_kind(tokenizer)
    texts = run_texts(path.parent, kind) if kind else None
    if texts is not None and "saved_model" in summary["artifacts"]:  # the raw-string check joins the export's record
        check_raw_strings(summary, model, tokenizer, class_names or facts.get("class_names"), texts)
        write_json_atomic(Path(export_dir) / f"{model_name}.export.json", {**record, **summary})
    return {**record, **summary}


def raw_text_kind(tokenizer):
    """Which raw test strings check the SavedModel a `tokenizer` gives: "pairs", "tagged", "answers" or `None`."""
    from tfptm.tasks.spans import SpanTokenizer
    from tfptm.tasks.tokens import WordTokenizer

    if isinstance(tokenizer, WordTokenizer):
        return "tagged"
    if isinstance(tokenizer, SpanTokenizer):
        return "answers"
    return "pairs" if getattr(tokenizer, "text_inputs", ()) == ("text_a", "text_b") else None


def check_raw_strings(summary, model, tokenizer, class_names, texts):
    """The raw-string signature of `summary`'s SavedModel checked against `model` on the same raw test strings:
    `raw_text_pairs` of a pair classifier (`texts` is `(texts_a, texts_b)`), `raw_text` of a token classifier
    (`texts` is `(texts,)`), `answer` of a question answerer (`(questions, contexts)`)."""
    kind = raw_text_kind(tokenizer)
    if kind == "tagged":
        from tfptm.jobs.tokens import check_raw_tags

        return check_raw_tags(summary, model, tokenizer, class_names, texts[0])
    if kind == "answers":
        from tfptm.jobs.spans import check_raw_answers

        return check_raw_answers(summary, model, tokenizer, *texts)
    return check_raw_pairs(summary, model, tokenizer, *texts)


def check_raw_pairs(summary, model, tokenizer, texts_a, texts_b, limit=256):
    """Adds `parity["saved_model_raw_text_pairs"]` to an `export_checked` summary: the SavedModel's
    `raw_text_pairs(text_a, text_b)` against `model` on the same raw pairs (`tfptm.export.tasks.check_pair_signature`).
    Nothing to check (no SavedModel, no pairs) leaves the summary as it is."""
    from tfptm.export.tasks import check_pair_signature

    if "saved_model" not in summary["artifacts"] or not len(texts_a):
        return summary
    summary["parity"]["saved_model_raw_text_pairs"] = check_pair_signature(
        summary["artifacts"]["saved_model"], model, tokenizer, list(texts_a)[:limit], list(texts_b)[:limit])
    return summary


def run_texts(run_dir, kind, limit=256):
    """Raw held-out texts of a run, read again from its `recipe.yaml`'s data (same seed, same split), for the
    raw-string checks: `(texts_a, texts_b)` of the test pairs (`kind` "pairs"), `(texts,)` of the test sentences'
    words joined by spaces ("tagged"), `(questions, contexts)` of the test questions ("answers"), or the held-out
    anchors and positives (`kind` "embedding"). `None` when the recipe or its data files are gone."""
    recipe_file = Path(run_dir) / RECIPE_FILE
    if not recipe_file.is_file():
        return None
    from tfptm.recipes.validate import load_recipe

    recipe = load_recipe(recipe_file)
    try:
        if kind == "tagged":
            from tfptm.jobs.tokens import read_tagged_splits

            return ([" ".join(words) for words in read_tagged_splits(recipe.data, recipe.seed)[1].sentences[:limit]],)
        if kind == "answers":
            from tfptm.jobs.spans import read_qa_splits

            test = read_qa_splits(recipe.data, recipe.seed)[1]
            return test.questions[:limit], test.contexts[:limit]
        if kind == "pairs":
            from tfptm.jobs.data import read_pair_splits

            test = read_pair_splits(recipe.data, recipe.seed)[1]
            return test.texts_a[:limit], test.texts_b[:limit]
        from tfptm.jobs.data import read_contrastive_splits

        test = read_contrastive_splits(recipe.data, recipe.seed)[1]
        return (test.anchors + test.positives)[:limit]
    except TfptmError:  # the data moved or changed: export without the raw-string check
        return None


def run_tokenizer(run_dir, model=None):
    """The tokenizer a text run's examples went through (`None` for other runs), from its resolved `recipe.yaml`.

    A vocabulary learnt from the training texts is learnt again from them, for `model`'s inputs.

    Example:
    >>> import tempfile
    >>> run_tokenizer(tempfile.mkdtemp()) is None  # no recipe.yaml: not a text run tfptm train wrote
    True
    """
    recipe_file = Path(run_dir) / RECIPE_FILE
    if not recipe_file.is_file():
        return None
    from tfptm.jobs.data import load_recipe_data
    from tfptm.jobs.model import recipe_tokenizer, uses_preset_tokenizer
    from tfptm.recipes.schema import TEXT_FILE_SOURCES
    from tfptm.recipes.validate import load_recipe

    recipe = load_recipe(recipe_file)
    if recipe.data.source not in TEXT_FILE_SOURCES:
        return None
    tokenizer = recipe_tokenizer(recipe, run_dir)
    if tokenizer is None and not uses_preset_tokenizer(recipe):  # a vocabulary learnt from the training texts
        tokenizer = load_recipe_data(recipe, model).tokenizer
    return tokenizer
