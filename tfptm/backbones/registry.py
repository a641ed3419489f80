"""One registry that resolves a backbone name to a plain functional `keras.Model`."""

import dataclasses
import difflib
import os
import re
from typing import Callable

from tfptm.errors import TfptmError

# The name every backbone carries inside a task model, so that
# `model.get_layer(BACKBONE_NAME)` finds it whatever its source.
BACKBONE_NAME = "backbone"


@dataclasses.dataclass(frozen=True)
class BackboneEntry:
    """What the registry knows about one backbone: its source and how to build it."""

    name: str
    source: str
    builder: Callable
    summary: str


_REGISTRY: dict[str, BackboneEntry] = {}


@dataclasses.dataclass(frozen=True)
class HandleSource:
    """A source that loads backbones by handle (a path, URL or preset name) rather than by registered name."""

    source: str
    matches: Callable[[str], bool]
    load: Callable


_HANDLE_SOURCES: list[HandleSource] = []


def register_handle_source(source, matches, load):
    """Registers `load(handle, **kwargs)` for the handles where `matches(handle)` is true.

    Sources are tried in registration order; the first match loads the handle.
    """
    _HANDLE_SOURCES.append(HandleSource(source, matches, load))


def register(name, source, summary):
    """Decorator that registers a builder returning a functional `keras.Model`."""

    def decorate(builder):
        if name in _REGISTRY:
            raise ValueError(f"Backbone {name!r} is registered twice")
        _REGISTRY[name] = BackboneEntry(name, source, builder, summary)
        return builder

    return decorate


def available(source=None):
    """Lists registered backbone names, optionally only those from one `source`."""
    return sorted(n for n, e in _REGISTRY.items() if source is None or e.source == source)


def entry(name):
    """Returns the `BackboneEntry` for `name`, or raises one clear error with suggestions."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    close = difflib.get_close_matches(name, _REGISTRY, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise TfptmError(f"Unknown backbone {name!r}; expected one of: {', '.join(available())}.{hint}")


def _unrecognized(name):
    """Raises the clearest error for a name no registry entry or source claims."""
    looks_like_path = "/" in name or "\\" in name or name.startswith(".") or name.endswith((".keras", ".gz", ".tgz"))
    if not looks_like_path:
        entry(name)  # raises: unknown name, with suggestions
    expected = (
        "a .keras file, a tfptm pre-trained artifact directory (pretrained.json), a TF2 SavedModel directory "
        "or .tar.gz, a KerasHub or Hugging Face preset directory "
        "(config.json or metadata.json), or an https://, kaggle:// or hf:// handle"
    )
    scheme = name.split("://", 1)[0] if "://" in name else None
    if scheme is not None and scheme not in ("https", "file", "kaggle", "hf"):
        raise TfptmError(f"Unsupported handle scheme {scheme + '://'!r} in {name!r}; expected {expected}")
    if not os.path.exists(name):
        raise TfptmError(f"Backbone path {name!r} does not exist; expected {expected}")
    raise TfptmError(f"No backbone source recognizes {name!r}; expected {expected}")


def get(name, **kwargs):
    """Builds the backbone registered as `name`, or loads the one a handle points to.

    `name` is a registered name (`tfptm.backbones.available()`) or a handle
    that a source module recognizes (a file or directory path, a URL, a
    preset name). Keyword arguments go to that builder or loader.

    The result is a functional `keras.Model` named `"backbone"` that takes raw
    inputs (its preprocessing lives inside the graph) and returns features.

    Example:
    >>> import tfptm
    >>> backbone = tfptm.backbones.get("vgg_cnn", input_shape=(8, 8, 1), filters=(8, 16))
    >>> backbone.name, backbone.output.shape
    ('backbone', (None, 4, 4, 16))
    """
    if not isinstance(name, str) or not name:
        raise TfptmError(f"A backbone name or handle must be a non-empty string; got {name!r}")
    if name in _REGISTRY:
        built = _REGISTRY[name].builder(**kwargs)
    else:
        handle_source = next((s for s in _HANDLE_SOURCES if s.matches(name)), None)
        if handle_source is None:
            _unrecognized(name)
        built = handle_source.load(name, **kwargs)
    built.name = BACKBONE_NAME
    return built


# Layer-name prefixes that mark the blocks of the backbones tfptm builds or
# wraps, in the order they are tried: `block3_conv1` (local CNNs, VGG,
# EfficientNet's `block3a_`), `conv4_block2_` (ResNet), `block_12_` (MobileNetV2),
# `expanded_conv_4_` (MobileNetV3; MobileNetV2's first block is `expanded_conv_`),
# and whole KerasHub layers such as `transformer_layer_3` (BERT, GPT-2, Llama),
# `encoder_layer_3`, `transformer_decoder_layer_3` or `decoder_block_3`.
_BLOCK_PATTERN = re.compile(
    r"^(conv\d+_block\d+|block_?\d+[a-z]?|expanded_conv(?:_\d+)?"
    r"|(?:transformer_)?(?:encoder_|decoder_)?layer_\d+|(?:encoder|decoder)_block_\d+)(?:_|$)"
)


def blocks(backbone):
    """Groups a backbone's layers into its blocks, from input to output.

    Returns a list of `(block_name, [layers])`. Layers before the first block
    form the `"stem"`; layers after a block (final norms, pooling) belong to it.
    Partial fine-tuning and gradual unfreezing unfreeze these from the top.
    """
    groups = [("stem", [])]
    for layer in backbone.layers:
        match = _BLOCK_PATTERN.match(layer.name)
        if match and match.group(1) != groups[-1][0]:
            groups.append((match.group(1), []))
        groups[-1][1].append(layer)
    return [g for g in groups if g[1]]
