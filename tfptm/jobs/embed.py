"""Sentence embeddings as jobs: `tfptm train` on an embedding recipe, and `tfptm embed MODEL TEXTS --out vectors.npy`.

`run_embedding_recipe` is the pipeline `read rows -> load_embedder -> retrieval metrics on the held-out rows ->
contrastive fine_tune -> the metrics again -> model.keras -> export (checked by cosine) -> run directory`, each
step a call of `tfptm.data.contrastive` and `tfptm.tasks.embeddings`; the run directory's files are
`tfptm.rundir`'s. `embed_file` turns a file of texts (one per line) into a `.npy` array of vectors, from a run
directory, a `.keras` embedder inside one, or an exported SavedModel's `embed` signature.

Example (the held-out retrieval metrics, by hand):
>>> import numpy as np
>>> retrieval(np.eye(2), np.eye(2), ["a", "b"], ks=(1,))
{'recall@1': 1.0, 'mrr': 1.0, 'queries': 2, 'documents': 2}
"""

import dataclasses
import io
import sys
import time
from pathlib import Path

import keras
import numpy as np

import tfptm
from tfptm.errors import TfptmError, one_line
from tfptm.evaluation.report import write_report
from tfptm.files import staged_directory, write_bytes_atomic, write_json_atomic, write_text_atomic
from tfptm.jobs.data import read_contrastive_splits
from tfptm.jobs.export import run_tokenizer
from tfptm.jobs.model import backbone_args
from tfptm.progress import Progress
from tfptm.recipes.schema import EMBEDDING_POOLINGS
from tfptm.recipes.validate import dump_recipe
from tfptm.rundir import EXPORT_DIR, HISTORY_FILE, MODEL_FILE, RECIPE_FILE, REPORT_FILE, REPRESENTATIVE_EXAMPLES, \
    final_path, load_model, model_path, write_representative, write_summary
from tfptm.tasks import embeddings as E

CHECK_TEXTS = 256  # held-out texts each exported artifact is compared on


def retrieval(query_vectors, corpus_vectors, documents, ks=(1, 10)):
    """`tfptm.tasks.embeddings.retrieval_metrics` of queries against their own documents: query i's relevant
    documents are every copy of `documents[i]` in the corpus (a repeated text is one answer, found at any copy)."""
    where = {}
    for index, text in enumerate(documents):
        where.setdefault(text, set()).add(index)
    return E.retrieval_metrics(query_vectors, corpus_vectors, [where[text] for text in documents], ks=ks)


def embedding_model(recipe):
    """`(model, tokenizer, max_length)`: `load_embedder` on `backbone.name` as the head section says.

    `head.pooling` avg is the mean of the real tokens, first is `[CLS]`;
    `head.normalize` and `data.max_length` null take the checkpoint's own
    (sentence-transformers' files; else L2-normalised, 256 tokens).
    """
    name = recipe.backbone.name
    try:
        model, tokenizer = E.load_embedder(name, pooling=EMBEDDING_POOLINGS[recipe.head.pooling],
                                           normalize=recipe.head.normalize, max_length=recipe.data.max_length,
                                           **backbone_args(recipe))
    except TypeError as error:
        raise TfptmError(f"backbone.args: {one_line(error)}") from None
    if tokenizer is None:
        raise TfptmError(f"backbone.name {name!r}: it has no tokenizer; head.task 'embedding' expected a text "
                         "checkpoint (a KerasHub or Hugging Face preset, e.g. hf://sentence-transformers/all-MiniLM-L6-v2)")
    return model, tokenizer, E.sequence_length(tokenizer)


def run_embedding_recipe(recipe, run_dir, progress=None, verbose=0, origin=None):
    """Runs an embedding recipe (`head.task: embedding`) into a staged run directory; returns its summary.

    The run directory holds what `tfptm train` writes for a classifier
    (`summary.json`, `recipe.yaml` with `data.max_length` resolved,
    `history.json`, `model.keras`, `report.md`, `representative.npz`,
    `export/`); `summary.json`'s metrics are `pretrained` (the checkpoint as
    it was) and `model` (after fine-tuning), recall@k and MRR of the held-out
    anchors retrieving their positives among all held-out positives. Not
    resumable after a kill yet (run it again).
    """
    progress = progress or Progress()
    run_dir = Path(run_dir)
    data, head, tune = recipe.data, recipe.head, recipe.finetune
    with staged_directory(run_dir, "run directory") as staging:
        keras.utils.set_random_seed(recipe.seed)
        progress(f"reading text pairs ({data.source})")
        train, test = read_contrastive_splits(data, recipe.seed)
        validation = None
        if data.validation_fraction:
            train, validation = train.split(data.validation_fraction / (1 - data.test_fraction), recipe.seed)
        progress(f"loading the embedder {recipe.backbone.name!r}")
        model, tokenizer, length = embedding_model(recipe)
        recipe = dataclasses.replace(recipe, data=dataclasses.replace(data, max_length=length))
        scored = lambda: retrieval(E.embed(model, test.anchors, tokenizer), E.embed(model, test.positives, tokenizer),
                                   test.positives, ks=head.recall_at)
        progress(f"{len(train)} training, {len(validation or ())} validation and {len(test)} held-out pairs")
        metrics = {"pretrained": scored()}
        history, started = {}, time.perf_counter()
        if tune.strategy == "full":
            progress(f"training: contrastive, {tune.epochs} epochs")
            fit = E.fine_tune(
                model, train.anchors, train.positives, tokenizer, negatives=train.negatives, epochs=tune.epochs,
                batch_size=data.batch_size, learning_rate=tune.learning_rate, max_length=length, scale=head.scale,
                warmup_fraction=recipe.optimizer.warmup_fraction, weight_decay=recipe.optimizer.weight_decay,
                validation=None if validation is None else _columns(validation), seed=recipe.seed, verbose=verbose)
            history = {key: [float(v) for v in values] for key, values in fit.history.items()}
        seconds = time.perf_counter() - started
        progress(f"evaluating retrieval on {len(test)} held-out pairs")
        metrics["model"] = scored()
        tfptm.save_model(model, staging / MODEL_FILE)
        texts = train.anchors + train.positives
        write_representative(staging, E.tokenized_inputs(model, texts[:REPRESENTATIVE_EXAMPLES], tokenizer, length))
        export_base = Path(recipe.export.dir) if recipe.export.dir else staging / EXPORT_DIR
        exported = export_embedding(recipe, model, tokenizer, export_base, (test.anchors + test.positives)[:CHECK_TEXTS])
        if exported:
            progress(f"exported to {recipe.export.dir or run_dir / EXPORT_DIR}")
        artifacts = {"model": run_dir.resolve() / MODEL_FILE,
                     **{k: final_path(p, staging, run_dir) for k, p in (exported or {}).get("artifacts", {}).items()}}
        write_text_atomic(staging / RECIPE_FILE, dump_recipe(recipe, origin))
        write_json_atomic(staging / HISTORY_FILE, history)
        summary = write_summary(
            staging, metrics, artifacts, (exported or {}).get("parity", {}), sizes=(exported or {}).get("sizes", {}),
            recipe=recipe.name, model_name=recipe.export.model_name, task="embedding",
            embedding={**E.describe(model), "max_length": length},
            data={"source": data.source, "num_train": len(train), "num_validation": len(validation or ()),
                  "num_test": len(test), **train.summary(), "num_examples": len(train)},
            training={"seconds": seconds, "epochs": len(history.get("loss", []))})
        write_report(staging, summary, history=history or None, model=model,
                     title=f"{recipe.name}: {recipe.description}".rstrip(": "), final_dir=run_dir)
    summary["run_dir"] = str(run_dir)
    progress(f"done: {run_dir / REPORT_FILE}")
    return summary


def _columns(table):
    return (table.anchors, table.positives) + ((table.negatives,) if table.negatives is not None else ())


def export_embedding(recipe, model, tokenizer, base_dir, check_texts=None):
    """What `recipe.export` asks for, by `tfptm.export.tasks.export_embedder` (checked by cosine on `check_texts`
    when `export.parity`); `None` when it asks for nothing."""
    section = recipe.export
    if not (section.saved_model or section.tflite):
        return None
    if "int8" in section.tflite and not check_texts:
        raise TfptmError("export.tflite: int8 needs texts to calibrate on; expected held-out texts")
    from tfptm.export.tasks import export_embedder

    return export_embedder(model, base_dir, section.model_name, tokenizer, quantizations=section.tflite,
                             check_texts=check_texts if section.parity or "int8" in section.tflite else None,
                             max_length=recipe.data.max_length, saved_model_export=section.saved_model)


# ------------------------------------------------------------------------------------------------- tfptm embed


def read_texts(source):
    """The texts of a file (UTF-8, one text per line), or of standard input for `"-"`; an empty line is an error.

    Example:
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "texts.txt")
    >>> _ = open(path, "w").write("open a file\\nplot a line\\n")
    >>> read_texts(path)
    ['open a file', 'plot a line']
    """
    name = "standard input" if source == "-" else str(source)
    try:
        raw = sys.stdin.buffer.read() if source == "-" else Path(source).read_bytes()
        text = raw.decode("utf-8")
    except FileNotFoundError:
        raise TfptmError(f"{name!r} does not exist; expected a text file with one text per line (or - for stdin)") from None
    except IsADirectoryError:
        raise TfptmError(f"{name!r} is a directory; expected a text file with one text per line") from None
    except UnicodeDecodeError as error:
        raise TfptmError(f"{name}: not UTF-8 text ({one_line(error)}); expected one text per line") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the newline that ends the last line
    lines = [line[:-1] if line.endswith("\r") else line for line in lines]
    empty = next((i for i, line in enumerate(lines, start=1) if not line.strip()), None)
    if empty is not None:
        raise TfptmError(f"{name}:{empty}: empty line; expected one text per line (each line becomes one vector)")
    if not lines:
        raise TfptmError(f"{name}: no texts; expected one text per line")
    return lines


def embed_file(model, texts, out):
    """Embeds the texts of file `texts` (or `-`: stdin) with `model` and writes `out` (`.npy`, one row per line).

    `model` is a run directory of an embedding recipe, a `.keras` embedder in
    one (its `recipe.yaml` gives the tokenizer), or an exported SavedModel
    (`EXPORT/NAME` or `EXPORT/NAME/VERSION`) with an `embed` signature.
    `out` is written whole or not at all. Returns `(rows, dimension)`.

    Example:
    >>> import os, tempfile
    >>> embed_file("/no/such/run", "texts.txt", os.path.join(tempfile.mkdtemp(), "v.npy"))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    tfptm.errors.TfptmError: '/no/such/run' is not a .keras file or a run directory with model.keras
    """
    out = Path(out)
    if out.suffix != ".npy" or out.is_dir():
        raise TfptmError(f"--out {str(out)!r}: expected a .npy file path")
    if not out.parent.is_dir():
        raise TfptmError(f"--out {str(out)!r}: directory {str(out.parent)!r} does not exist")
    source = Path(model)
    saved = source.is_dir() and not (source / MODEL_FILE).is_file() and not (source / RECIPE_FILE).is_file()
    keras_file = None if saved else model_path(source)
    lines = read_texts(texts)
    if saved:
        from tfptm.export.predict import embed_saved_model

        vectors = embed_saved_model(source, lines)
    else:
        vectors = embed_run(keras_file, lines)
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(vectors, "float32"), allow_pickle=False)
    write_bytes_atomic(out, buffer.getvalue())
    return vectors.shape


def embed_run(path, texts):
    """Embeds `texts` with the `.keras` embedder at `path`, tokenized as its run's `recipe.yaml` says."""
    tokenizer = run_tokenizer(path.parent)
    if tokenizer is None:
        raise TfptmError(f"{str(path)!r}: no tokenizer; expected the run directory of an embedding recipe (with its "
                         f"{RECIPE_FILE}), or an exported SavedModel with an 'embed' signature")
    embedder = load_model(path, compile=False)
    if not E.is_embedder(embedder):
        raise TfptmError(f"{str(path)!r} is not an embedder (its output is not 'embeddings'); expected a model "
                         "trained by an embedding recipe (head.task: embedding)")
    return E.embed(embedder, texts, tokenizer)
