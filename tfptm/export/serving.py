"""SavedModel export in TF Serving's layout: `<base>/<model_name>/<version>/`."""

import tempfile
from pathlib import Path

import keras
import tensorflow as tf

from tfptm.errors import TfptmError
from tfptm.export.signatures import class_ids as predicted_ids, class_names_or_default, input_spec
from tfptm.files import ensure_writable_dir, staged_directory

LABELS_FILE = "labels.txt"


def existing_versions(model_dir):
    """The integer versions already present under `model_dir`, sorted."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        return []
    return sorted(int(p.name) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit())


def saved_model(model, base_dir="export", model_name="model", version=None, class_names=None):
    """Exports a classifier for TF Serving and returns the version directory.

    The version (next free integer unless given) is written to a hidden
    staging directory beside it and renamed into place only when complete, so
    a polling model server never loads half a model. `serving_default` takes
    the model's input by name and returns `probabilities`, `class_ids` and
    `class_names`; the label vocabulary is stored as the asset `labels.txt`.

    Example:
    >>> import tempfile, tfptm
    >>> backbone = tfptm.backbones.get("vgg_cnn", input_shape=(8, 8, 1), filters=(8,))
    >>> model = tfptm.build_model(backbone, tfptm.Head("multiclass", num_classes=2))
    >>> path = tfptm.export.saved_model(model, tempfile.mkdtemp(), "digits", class_names=["no", "yes"])
    >>> path.parent.name, path.name
    ('digits', '1')
    """
    class_names = class_names_or_default(model, class_names)
    if not str(model_name) or "/" in str(model_name) or str(model_name).startswith("."):
        raise TfptmError(f"model_name {model_name!r} must be a plain directory name")
    model_dir = ensure_writable_dir(Path(base_dir) / model_name, what="export directory")
    if version is None:
        version = (existing_versions(model_dir) or [0])[-1] + 1
    if not isinstance(version, int) or version < 1:
        raise TfptmError(f"version must be a positive integer; got {version!r}")
    with tempfile.TemporaryDirectory() as scratch, staged_directory(model_dir / str(version), "model version") as out:
        labels = Path(scratch) / LABELS_FILE
        labels.write_text("\n".join(class_names) + "\n", encoding="utf-8")
        _serving_archive(model, labels).write_out(str(out), verbose=False)
    return model_dir / str(version)


def _serving_archive(model, labels_path):
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

    def serve(inputs):
        probabilities = model(inputs, training=False)
        class_ids = predicted_ids(probabilities)
        return {
            "probabilities": probabilities,
            "class_ids": class_ids,
            "class_names": table.lookup(tf.cast(class_ids, tf.int64)),
        }

    archive.add_endpoint("serving_default", serve, input_signature=[input_spec(model)])
    return archive
