"""One registry that resolves a backbone name to a plain functional `keras.Model`."""

import dataclasses
import difflib
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


def get(name, **kwargs):
    """Builds the backbone registered as `name` with the builder's keyword arguments.

    The result is a functional `keras.Model` named `"backbone"` that takes raw
    inputs (its preprocessing lives inside the graph) and returns features.

    Example:
    >>> import tfptm
    >>> backbone = tfptm.backbones.get("vgg_cnn", input_shape=(8, 8, 1), filters=(8, 16))
    >>> backbone.name, backbone.output.shape
    ('backbone', (None, 4, 4, 16))
    """
    built = entry(name).builder(**kwargs)
    built.name = BACKBONE_NAME
    return built


# Layer-name prefixes that mark the blocks of the backbones tfptm builds or
# wraps, in the order they are tried: `block3_conv1` (local CNNs, VGG,
# EfficientNet's `block3a_`), `conv4_block2_` (ResNet), `block_12_` (MobileNetV2).
_BLOCK_PATTERN = re.compile(r"^(conv\d+_block\d+|block_?\d+[a-z]?)_")


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
