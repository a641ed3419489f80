"""SavedModel export in TF Serving's layout: `<base>/<model_name>/<version>/`."""

import tempfile
from pathlib import Path

import keras
import tensorflow as tf

from tfptm.errors import TfptmError
from tfptm.export import signatures as sig
from tfptm.files import staged_group

LABELS_FILE = "labels.txt"
OUTPUTS = sig.output_names("multiclass")  # per task: sig.output_names(task)
RAW_TEXT_PAIRS = "raw_text_pairs"  # the signature of text-pair models: text_a and text_b, tokenized in the graph


def existing_versions(model_dir):
    """The integer versions already present under `model_dir`, sorted.

    Only integer-named directories count, as in TF Serving: a hidden
    `.<version>.partial-*` staging directory left by a killed export is ignored.
    """
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        return []
    return sorted(int(p.name) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit())


def saved_model(
    model, base_dir="export", model_name="model", version=None, class_names=None, tokenizer=None, image_scale=1.0
):
    """Exports a model with a task head for TF Serving and returns the version directory.

    The version (next free integer unless given) is written to a hidden
    staging directory in `base_dir` and renamed into place only when complete,
    so a polling model server never loads half a model; leftovers of killed
    exports of `model_name` are removed first (`tfptm.files.staged_group`). Every signature returns
    what the head's task calls for (`signatures.serving_outputs`), with names
    looked up in the asset `labels.txt` (the label vocabulary):
    multiclass and binary heads `probabilities`, `class_ids` and
    `class_names`; multilabel heads `probabilities`, `labels_present` (0/1 per
    label at 0.5) and `label_names` (the name where present, else "");
    regression heads `values` alone (`labels.txt` then names the values).
    The signatures:

    - `serving_default`: the model's own inputs by name (a dict model such as
      a KerasHub text classifier takes `token_ids`, `padding_mask`, `segment_ids`).
    - image models (float input `(batch, height, width, 1 or 3)`): `pixels`
      (float tensors, as `serving_default`) and `image_bytes` (a 1-D string
      tensor of encoded JPEG/PNG files, decoded and resized inside the graph;
      decoded 0-255 pixels are multiplied by `image_scale` to reach the range
      the model was trained on, e.g. 16/255 for the 0-16 digits).
    - text models given a `tokenizer` (a `tfptm.data.text.TextTokenizer` or a
      KerasHub preprocessor): `raw_text` (a 1-D string tensor `text`,
      tokenized inside the graph) and `token_ids` (as `serving_default`).
    - text-pair models given a `tfptm.tasks.pairs.PairTokenizer`: `raw_text_pairs`
      (two 1-D string tensors `text_a` and `text_b`, packed as
      `[CLS] a [SEP] b [SEP]` inside the graph) and `token_ids`.

    Example:
    >>> import tempfile, tfptm
    >>> backbone = tfptm.backbones.get("vgg_cnn", input_shape=(8, 8, 1), filters=(8,))
    >>> model = tfptm.build_model(backbone, tfptm.Head("multiclass", num_classes=2))
    >>> path = tfptm.export.saved_model(model, tempfile.mkdtemp(), "digits", class_names=["no", "yes"])
    >>> path.parent.name, path.name, sorted(tfptm.export.describe_saved_model(path)["signatures"])
    ('digits', '1', ['image_bytes', 'pixels', 'serving_default'])
    """
    class_names = sig.class_names_or_default(model, class_names)
    check_model_name(model_name)
    spec = sig.input_specs(model)
    if tokenizer is not None and sig.token_spec(spec) is None:
        raise TfptmError(f"A tokenizer was given but model {model.name!r} does not take token ids (it takes {spec})")
    with staged_group(base_dir, model_name, "export", debris=stale_debris(model_name)) as stage:
        version = next_version(Path(base_dir) / model_name, version)
        write_saved_model(model, stage / model_name / str(version), class_names, tokenizer, image_scale)
    return Path(base_dir) / model_name / str(version)


def check_model_name(model_name):
    """Refuses a model name that is not a plain directory name (it names files and directories of the export)."""
    name = str(model_name)
    if not name or name.startswith(".") or any(c in name for c in "/\\\0") or name != name.strip() or len(name) > 100:
        raise TfptmError(f"model_name {model_name!r}: expected a plain directory name (no '/', not starting with '.')")


def stale_debris(model_name):
    """Glob patterns (relative to the export base) of what killed exports of `model_name` leave behind.

    `.N.partial-*` version directories and `.<name>...partial-*` temporary
    files of earlier tfptm versions; `tfptm.files.staged_group` removes them,
    and its own staging directories, while it holds the export's lock.
    """
    return (f"{model_name}/.*.partial-*", f".{model_name}.*.partial-*")


def next_version(model_dir, version=None):
    """`version` checked (a positive integer not yet exported), or the next free one under `model_dir`."""
    if version is None:
        return (existing_versions(model_dir) or [0])[-1] + 1
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise TfptmError(f"version must be a positive integer; got {version!r}")
    if (Path(model_dir) / str(version)).exists():
        raise TfptmError(f"version {version} already exists in {str(model_dir)!r}; choose another (or none for the next)")
    return version


def write_saved_model(model, out, class_names, tokenizer=None, image_scale=1.0):
    """Writes the serving SavedModel into directory `out` (created), with no staging: callers stage.

    A sentence embedder (`sig.task` is `"embeddings"`) gets `serving_default`
    and `token_ids` on token inputs, and with a `tokenizer` `embed` on raw
    strings, each returning `embeddings` (no labels).
    """
    from tfptm.tasks import token_task

    if sig.task(model) == sig.EMBEDDINGS or token_task(model) is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        if token_task(model) is not None:  # per-token heads own their signatures (tfptm.tasks.tokens, .spans)
            archive = token_task(model).serving_archive(model, tokenizer, class_names, sig.input_specs(model))
            _save_each_variable_once(archive)
        else:
            archive = _embedding_archive(model, tokenizer)
        archive.write_out(str(out), verbose=False)
        return Path(out)
    with tempfile.TemporaryDirectory() as scratch:
        labels = Path(scratch) / LABELS_FILE
        labels.write_text("\n".join(class_names) + "\n", encoding="utf-8")
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        _serving_archive(model, labels, tokenizer, image_scale).write_out(str(out), verbose=False)
    return Path(out)


def _save_each_variable_once(archive):
    """Lists the tf.Variables inside the Keras variables that `ExportArchive.track` listed.

    Keras 3's TensorFlow `ExportArchive` keeps each tracked Keras variable
    (a trackable saved under `variables/`) and, for the endpoints, the
    `tf.Variable` inside it (saved again under `_all_variables/`): every
    weight was written twice, a SavedModel twice the model's size. With the
    same `tf.Variable` objects in both lists, the checkpoint holds each once.
    """
    tracked = archive._tf_trackable
    for name in ("variables", "trainable_variables", "non_trainable_variables"):
        inner = [variable if getattr(variable, "_value", None) is None else variable._value
                 for variable in getattr(tracked, name)]
        setattr(tracked, name, inner)


def _serving_archive(model, labels_path, tokenizer=None, image_scale=1.0):
    table = tf.lookup.StaticHashTable(
        tf.lookup.TextFileInitializer(
            str(labels_path),
            tf.int64,
            tf.lookup.TextFileIndex.LINE_NUMBER,
            tf.string,
            tf.lookup.TextFileIndex.WHOLE_LINE,
        ),
        default_value="",
    )
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.track(table)
    _save_each_variable_once(archive)
    spec = sig.input_specs(model)

    task = sig.task(model)

    def classify(inputs):
        return sig.serving_outputs(task, model(inputs, training=False), table.lookup)

    archive.add_endpoint("serving_default", classify, input_signature=[spec])
    if sig.image_spec(spec) is not None:
        archive.add_endpoint("pixels", classify, input_signature=[spec])
        archive.add_endpoint(
            "image_bytes",
            lambda image_bytes: classify(sig.decode_images(image_bytes, spec, image_scale)),
            input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")],
        )
    if tokenizer is not None:
        if not tokenizer.built:
            tokenizer(tf.constant([""]))  # ExportArchive tracks only built layers
        archive.track(tokenizer)
        archive.add_endpoint("token_ids", classify, input_signature=[spec])
        names = tuple(getattr(tokenizer, "text_inputs", ("text",)))  # a pair tokenizer (tfptm.tasks.pairs) takes two
        if len(names) == 2:
            archive.add_endpoint(
                RAW_TEXT_PAIRS,
                lambda text_a, text_b: classify(sig.tokenize(tokenizer, (text_a, text_b), spec)),
                input_signature=[tf.TensorSpec([None], tf.string, name=name) for name in names],
            )
            return archive
        archive.add_endpoint(
            "raw_text",
            lambda text: classify(sig.tokenize(tokenizer, text, spec)),
            input_signature=[tf.TensorSpec([None], tf.string, name="text")],
        )
    return archive


def _embedding_archive(model, tokenizer=None):
    """A `keras.export.ExportArchive` with `serving_default`/`token_ids` on token inputs and `embed` on raw strings."""
    archive = keras.export.ExportArchive()
    archive.track(model)
    _save_each_variable_once(archive)
    spec = sig.input_specs(model)

    def vectors(inputs):
        return {sig.EMBEDDINGS: model(inputs, training=False)}

    archive.add_endpoint("serving_default", vectors, input_signature=[spec])
    archive.add_endpoint("token_ids", vectors, input_signature=[spec])
    if tokenizer is not None:
        if not tokenizer.built:
            tokenizer(tf.constant([""]))  # ExportArchive tracks only built layers
        archive.track(tokenizer)

        def embed_text(text):
            inputs = sig.tokenize(tokenizer, text, spec)
            # the tokenizer pads to its full length; padding is at the end, so cut every column to the longest text
            mask = tf.cast(inputs["padding_mask"], tf.int32)
            longest = tf.maximum(tf.reduce_max(tf.reduce_sum(mask, axis=1)), 1)
            return vectors({key: value[:, :longest] for key, value in inputs.items()})

        archive.add_endpoint("embed", embed_text, input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    return archive
