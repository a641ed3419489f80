"""Backbones that tfptm (or Keras) saved as `.keras` files, loaded by path.

`tfptm quickstart` writes `pretrained_backbone.keras`; any functional backbone
saved with `backbone.save("name.keras")` loads back the same way, through
`tfptm.backbones.get("path/to/name.keras")`. Loading is always in Keras's safe
mode, which refuses files that carry Python code (`Lambda` layers), unless the
caller passes `safe_mode=False` for a file they trust.
"""

import os
import zipfile

import keras

from tfptm.backbones.registry import BACKBONE_NAME, register_handle_source
from tfptm.errors import TfptmError, one_line

SUFFIX = ".keras"


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
    path = os.fspath(path)
    if not isinstance(safe_mode, bool):
        raise TfptmError(f"load_saved: safe_mode is {safe_mode!r}; expected True (the default) or False")
    if not path.endswith(SUFFIX):
        raise TfptmError(
            f"Saved backbone {path!r} is not a {SUFFIX} file; expected a file written by model.save('name{SUFFIX}')"
        )
    if not os.path.isfile(path):
        raise TfptmError(
            f"Saved backbone {path!r} does not exist; "
            f"expected a {SUFFIX} file such as tfptm quickstart's pretrained_backbone{SUFFIX}"
        )
    if not zipfile.is_zipfile(path):
        raise TfptmError(
            f"Saved backbone {path!r} is corrupt or not a Keras file; "
            f"expected a {SUFFIX} zip archive written by model.save"
        )
    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=safe_mode)
    except Exception as error:  # Keras raises ValueError, TypeError, KeyError or OSError for files it cannot read.
        message = one_line(error)
        if safe_mode and "safe_mode" in message:
            raise TfptmError(
                f"Saved backbone {path!r} contains Python code (e.g. a Lambda layer) that safe mode refuses; "
                "rebuild it from standard or registered layers, or pass safe_mode=False if you trust the file"
            ) from None
        raise TfptmError(f"Saved backbone {path!r} cannot be loaded: {message}") from None
    if not isinstance(model, keras.Model):
        raise TfptmError(f"Saved backbone {path!r} holds a {type(model).__name__}; expected a keras.Model")
    model.name = BACKBONE_NAME
    return model


def _matches(handle):
    return handle.endswith(SUFFIX)


register_handle_source("saved", _matches, load_saved)
