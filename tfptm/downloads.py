"""Downloads of pre-trained files: the offline switch and one-line errors. No TensorFlow import.

tfptm downloads nothing itself: KerasHub presets and `hf://` / `kaggle://`
handles arrive through `keras_hub` (huggingface_hub, kagglehub), ImageNet
weights through `keras.utils.get_file`, TFDS data sets through
`tensorflow_datasets`, TF Hub modules through `tensorflow_hub`, each into its
own cache. This module only decides whether downloads are allowed and turns
their failures into one `TfptmError` line naming the handle and the cache.

Offline mode is `TFPTM_OFFLINE=1` (the CLI's `--offline` sets it), or a
source's own switch: `HF_HUB_OFFLINE=1` (or `TRANSFORMERS_OFFLINE=1`) for
Hugging Face handles. Offline, only cached files load; anything else fails at
once saying how to provide the files.

Example:
>>> import os
>>> os.environ["TFPTM_OFFLINE"] = "1"
>>> offline(), offline("hf")
(True, True)
>>> del os.environ["TFPTM_OFFLINE"]
"""

import os

from tfptm.errors import TfptmError, one_line

OFFLINE_ENV = "TFPTM_OFFLINE"
HF_PREFIX = "hf://"
KAGGLE_PREFIX = "kaggle://"
CONFIG = "config.json"  # every KerasHub preset has one
# Each source's own offline switches, honoured besides TFPTM_OFFLINE.
SOURCE_SWITCHES = {"hf": ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
_TRUE = ("1", "true", "yes", "on")


def offline(source=None):
    """Whether downloads are off: `TFPTM_OFFLINE`, or `source`'s own switch (e.g. `"hf"`: `HF_HUB_OFFLINE`)."""
    names = (OFFLINE_ENV, *SOURCE_SWITCHES.get(source, ()))
    if any(os.environ.get(name, "").strip().lower() in _TRUE for name in names):
        return True
    if source == "hf":  # huggingface_hub reads HF_HUB_OFFLINE once, when imported
        import sys

        constants = sys.modules.get("huggingface_hub.constants")
        return bool(getattr(constants, "HF_HUB_OFFLINE", False))
    return False


def switch_name(source=None):
    """The variable that made `source` offline, for messages."""
    for name in (OFFLINE_ENV, *SOURCE_SWITCHES.get(source, ())):
        if os.environ.get(name, "").strip().lower() in _TRUE:
            return f"{name}=1"
    return "offline mode"


def not_cached(what, cache, provide, source=None):
    """The one-line error for a file that is not cached while downloads are off.

    Example:
    >>> import os
    >>> os.environ["TFPTM_OFFLINE"] = "1"
    >>> str(not_cached("Hugging Face model 'a/b'", "/cache", "pass a local directory"))
    "Hugging Face model 'a/b' is not in the cache /cache and downloads are off (TFPTM_OFFLINE=1); pass a local directory"
    """
    return TfptmError(f"{what} is not in the cache {cache} and downloads are off ({switch_name(source)}); {provide}")


def failed(what, cache, error, provide):
    """The one-line error for a download that failed online (network, 404, truncated, bad hash)."""
    return TfptmError(f"Cannot download {what} into {cache}: {one_line(error, 240)}; {provide}")


def cached_dir(handle):
    """The cached directory of an `hf://` or versioned `kaggle://` handle, asking the hub library's cache; else `None`.

    An unversioned Kaggle handle is never cached as such: finding its newest
    version needs the network.
    """
    if handle.startswith(HF_PREFIX):
        import huggingface_hub

        try:
            config = huggingface_hub.try_to_load_from_cache(hf_repo(handle), CONFIG)
        except ValueError:  # huggingface_hub's HFValidationError for an invalid repo id
            return None
        return os.path.dirname(config) if isinstance(config, str) else None
    from kagglehub.cache import Cache
    from kagglehub.handle import parse_model_handle

    try:
        model = parse_model_handle(handle[len(KAGGLE_PREFIX) :].strip("/"))
    except ValueError:
        return None
    if not model.is_versioned():
        return None
    cache = Cache()
    found = cache.load_from_cache(model, CONFIG) or cache.load_from_cache(model)
    return None if found is None else (os.path.dirname(found) if found.endswith(CONFIG) else found)


def cache_location(handle):
    """The directory of the hub library's cache that `handle` downloads into (for messages)."""
    if handle.startswith(HF_PREFIX):
        from huggingface_hub import constants

        return constants.HF_HUB_CACHE
    from kagglehub.config import get_cache_folder

    return get_cache_folder()


def hf_repo(handle):
    return handle[len(HF_PREFIX) :].strip("/")


def handle_status(handle):
    """Where a hub handle stands, without TensorFlow or network: `"cached"`, `"will download"` or, offline, an error.

    Only `hf://` and `kaggle://` handles are looked up here (in the hub
    library's own cache); others return `None`.

    Example:
    >>> handle_status("models/minilm") is None
    True
    """
    if not handle.startswith((HF_PREFIX, KAGGLE_PREFIX)):
        return None
    source = "hf" if handle.startswith(HF_PREFIX) else "kaggle"
    cache = cache_location(handle)
    if cached_dir(handle) is not None:
        return f"cached in {cache}"
    if offline(source):
        raise not_cached(repr(handle), cache, "download it where there is network, or pass a local preset directory",
                         source)
    return f"will download into {cache}"
