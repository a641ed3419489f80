"""Backbones that tfptm (or Keras) saved as `.keras` files, loaded by path.

`tfptm quickstart` writes `pretrained_backbone.keras`; any functional backbone
saved with `backbone.save("name.keras")` loads back the same way, through
`tfptm.backbones.get("path/to/name.keras")`. Loading is always in Keras's safe
mode, which refuses files that carry Python code (`Lambda` layers), unless the
caller passes `safe_mode=False` for a file they trust.

A pre-trained artifact (what `tfptm.pretrain.save_pretrained` writes) is a
directory holding the backbone with what is needed to feed it raw text:

    pretrained/
      pretrained.json    format, objective, metrics, tokenizer settings
      backbone.keras     the backbone, as load_saved reads it
      vocabulary.txt     the tokenizer's vocabulary, one token a line (text backbones only)

`tfptm.backbones.get("pretrained/")` returns its backbone;
`load_artifact("pretrained/")` returns `(backbone, tokenizer)`, as
`tfptm.backbones.presets.load_preset` returns `(backbone, preprocessor)`.
"""

import json
import os
import zipfile

import keras

from tfptm.backbones.registry import BACKBONE_NAME, register_handle_source
from tfptm.errors import TfptmError, one_line

SUFFIX = ".keras"
MANIFEST, BACKBONE_FILE, VOCABULARY_FILE = "pretrained.json", "backbone.keras", "vocabulary.txt"
FORMAT, FORMAT_VERSION = "tfptm-pretrained", 1


def load_saved(path, safe_mode=True):
    """Loads the backbone saved at `path` (a `.keras` file) as a `keras.Model` named `"backbone"`.

    Args:
        path: a `.keras` file written by `model.save`, e.g. `pretrained_backbone.keras`.
        safe_mode: Keras's safe mode, on unless this is exactly `False`; only
            turn it off for files you trust, as it lets them run Python code.

    Custom layers must be registered before loading; tfptm's own (such as
    `ReverseChannels`) are registered by `import tfptm.backbones`.

    Example:
    >>> import os, tempfile, tfptm
    >>> path = os.path.join(tempfile.mkdtemp(), "backbone.keras")
    >>> tfptm.backbones.get("vgg_cnn", input_shape=(8, 8, 1), filters=(8,)).save(path)
    >>> load_saved(path).output.shape
    (None, 8, 8, 8)
    """
    model = read_keras_file(path, compile=False, safe_mode=safe_mode, what="Saved backbone")
    model.name = BACKBONE_NAME
    return model


def read_keras_file(path, compile=False, safe_mode=True, what="Model"):
    """Reads a `.keras` file as a `keras.Model`, every failure one `TfptmError` naming the file (`what` says what it is).

    The one reader of `.keras` files: backbones (`load_saved`) and whole
    models (`tfptm.rundir.load_model`) both go through it.

    Example:
    >>> read_keras_file("/no/such/model.keras")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    tfptm.errors.TfptmError: Model '/no/such/model.keras' does not exist; ...
    """
    path = os.fspath(path)
    if not isinstance(safe_mode, bool):
        raise TfptmError(f"load_saved: safe_mode is {safe_mode!r}; expected True (the default) or False")
    if not path.endswith(SUFFIX):
        raise TfptmError(f"{what} {path!r} is not a {SUFFIX} file; expected a file written by model.save('name{SUFFIX}')")
    if not os.path.isfile(path):
        raise TfptmError(
            f"{what} {path!r} does not exist; "
            f"expected a {SUFFIX} file such as tfptm quickstart's pretrained_backbone{SUFFIX} or a run's model{SUFFIX}"
        )
    if not zipfile.is_zipfile(path):
        raise TfptmError(f"{what} {path!r} is corrupt or not a Keras file; expected a {SUFFIX} zip archive written by model.save")
    try:
        model = keras.saving.load_model(path, compile=compile, safe_mode=safe_mode)
    except Exception as error:  # Keras raises ValueError, TypeError, KeyError or OSError for files it cannot read.
        message = one_line(error)
        if safe_mode and "safe_mode" in message:
            raise TfptmError(
                f"{what} {path!r} contains Python code (e.g. a Lambda layer) that safe mode refuses; "
                "rebuild it from standard or registered layers, or pass safe_mode=False if you trust the file"
            ) from None
        raise TfptmError(f"{what} {path!r} cannot be loaded: {message}") from None
    if not isinstance(model, keras.Model):
        raise TfptmError(f"{what} {path!r} holds a {type(model).__name__}; expected a keras.Model")
    return model


def save_artifact(path, backbone, tokenizer=None, info=None):
    """Writes a pre-trained artifact directory: `backbone.keras`, the tokenizer's vocabulary, `pretrained.json`.

    The directory appears complete or not at all (it is staged, then renamed).

    Args:
        path: the directory to create; it must not exist or be empty.
        backbone: the pre-trained backbone (a `keras.Model`).
        tokenizer: a `tfptm.data.text.TextTokenizer` for text backbones, or `None`.
        info: JSON-serializable facts to keep in `pretrained.json` (objective, metrics...).

    Example:
    >>> import os, tempfile, tfptm
    >>> path = os.path.join(tempfile.mkdtemp(), "pretrained")
    >>> backbone = tfptm.backbones.get("vgg_cnn", input_shape=(8, 8, 1), filters=(8,))
    >>> sorted(os.listdir(save_artifact(path, backbone, info={"objective": "supervised"})))
    ['backbone.keras', 'pretrained.json']
    """
    from tfptm.files import staged_directory, write_json_atomic, write_text_atomic

    if not isinstance(backbone, keras.Model):
        raise TfptmError(f"save_artifact: backbone must be a keras.Model; got {type(backbone).__name__}")
    manifest = {"format": FORMAT, "version": FORMAT_VERSION, "backbone": BACKBONE_FILE, "tokenizer": None}
    if tokenizer is not None:
        manifest["tokenizer"] = {
            "vocabulary": VOCABULARY_FILE,
            "kind": tokenizer.kind,
            "lowercase": tokenizer.lowercase,
            "sequence_length": tokenizer.sequence_length,
        }
    manifest["info"] = info or {}
    try:
        json.dumps(manifest)
    except TypeError as error:
        raise TfptmError(f"save_artifact: info must be JSON-serializable ({one_line(error)})") from None
    with staged_directory(path, "pre-trained artifact") as staging:
        backbone.save(staging / BACKBONE_FILE)
        if tokenizer is not None:
            write_text_atomic(staging / VOCABULARY_FILE, "\n".join(tokenizer.vocabulary) + "\n")
        write_json_atomic(staging / MANIFEST, manifest)
    return os.fspath(path)


def load_artifact(path, safe_mode=True):
    """Loads a pre-trained artifact directory as `(backbone, tokenizer)`; `tokenizer` is `None` if it has none.

    The tokenizer is a `tfptm.data.text.TextTokenizer` that tokenizes raw
    strings exactly as pre-training did, producing the backbone's input dict:
    `build_model(backbone, head)` then `with_tokenizer(model, tokenizer)`
    gives a model on raw text. `read_manifest(path)` returns the rest.

    Example:
    >>> import os, tempfile, tfptm
    >>> path = save_artifact(os.path.join(tempfile.mkdtemp(), "p"), tfptm.backbones.get("vgg_cnn", input_shape=(8, 8, 1), filters=(8,)))
    >>> backbone, tokenizer = load_artifact(path)
    >>> backbone.name, tokenizer
    ('backbone', None)
    """
    from tfptm.data.text import tokenizer_layer

    manifest = read_manifest(path)
    backbone = load_saved(os.path.join(path, manifest["backbone"]), safe_mode=safe_mode)
    settings = manifest["tokenizer"]
    if settings is None:
        return backbone, None
    vocabulary_path = os.path.join(path, settings["vocabulary"])
    try:
        with open(vocabulary_path, encoding="utf-8") as file:
            vocabulary = file.read().split("\n")[:-1]
    except (OSError, UnicodeDecodeError) as error:
        raise TfptmError(f"Pre-trained artifact {path!r}: cannot read {vocabulary_path!r} ({one_line(error)})") from None
    outputs = sorted(backbone.input) if isinstance(backbone.input, dict) else "token_ids"
    tokenizer = tokenizer_layer(
        vocabulary, settings["sequence_length"], kind=settings["kind"], lowercase=settings["lowercase"], outputs=outputs
    )
    return backbone, tokenizer


def read_manifest(path):
    """The parsed `pretrained.json` of an artifact directory, checked for format and version.

    Example:
    >>> read_manifest("/no/such/dir")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    tfptm.errors.TfptmError: Pre-trained artifact '/no/such/dir' has no pretrained.json; ...
    """
    path = os.fspath(path)
    manifest_path = os.path.join(path, MANIFEST)
    if not os.path.isfile(manifest_path):
        raise TfptmError(
            f"Pre-trained artifact {path!r} has no {MANIFEST}; expected a directory written by tfptm.pretrain.save_pretrained"
        )
    try:
        with open(manifest_path, encoding="utf-8") as file:
            manifest = json.load(file)
    except (OSError, ValueError) as error:
        raise TfptmError(f"Pre-trained artifact {path!r}: {MANIFEST} is unreadable ({one_line(error)})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or manifest.get("version") != FORMAT_VERSION:
        raise TfptmError(
            f"Pre-trained artifact {path!r}: {MANIFEST} is not format {FORMAT!r} version {FORMAT_VERSION}; "
            "expected a directory written by tfptm.pretrain.save_pretrained"
        )
    return manifest


def _load(handle, safe_mode=True):
    if os.path.isdir(handle):
        return load_artifact(handle, safe_mode=safe_mode)[0]
    return load_saved(handle, safe_mode=safe_mode)


def _matches(handle):
    return handle.endswith(SUFFIX) or os.path.isfile(os.path.join(handle, MANIFEST))


register_handle_source("saved", _matches, _load)
