"""Structured pruning of Transformer encoders: fewer feed-forward units and fewer layers, a smaller model (floor 3).

Unstructured sparsity (`tfptm.compress.pruning`) leaves every matrix its
shape, so LiteRT runs the same dense kernels. `prune_transformer` removes
whole units and layers of the KerasHub `TransformerEncoder` layers of any
functional model (a `tfptm.build_model` text model, its backbone, an
embedder) and returns a new, smaller model of the same inputs and outputs:

* feed-forward units: in each layer, the `feedforward` share of the
  intermediate units with the smallest importance `||W_in[:, j]|| * ||W_out[j, :]||`
  (the unit's weight into and out of the block) goes, both matrices shrink;
* whole layers: `drop_layers` (indices of `transformer_layer_<i>`) go, and
  the layer after reads what the dropped one read (the residual stream).

Attention heads are not removed: KerasHub's `TransformerEncoder` ties each
head's width to `hidden_dim // num_heads`, so fewer heads would change every
head's shape. Fine-tune the result briefly: the removed parts carried signal.

Example:
>>> import keras_hub, tfptm
>>> bert = keras_hub.models.BertBackbone(30, num_layers=3, num_heads=2, hidden_dim=8, intermediate_dim=16)
>>> model = tfptm.build_model(tfptm.backbones.presets.features_model(bert), tfptm.Head("binary", pooling="first"))
>>> small = prune_transformer(model, feedforward=0.5, drop_layers=[1])
>>> [layer["intermediate_dim"] for layer in transformer_layers(small).values()]
[8, 8]
"""

import copy

import keras
import numpy as np

from tfptm.compress.pruning import all_layers
from tfptm.errors import TfptmError

LAYER_CLASS = "TransformerEncoder"
INTERMEDIATE, OUTPUT = "feedforward_intermediate_dense", "feedforward_output_dense"


def transformer_layers(model):
    """`{layer name: its config}` of the KerasHub `TransformerEncoder` layers in `model` (at any depth), in order."""
    found = {}
    _walk(model.get_config(), lambda layer: found.setdefault(layer["config"]["name"], layer["config"])
          if layer.get("class_name") == LAYER_CLASS else None)  # fmt: skip
    return found


def prune_transformer(model, feedforward=0.0, drop_layers=()):
    """A smaller copy of `model`: each Transformer layer keeps `1 - feedforward` of its feed-forward units (the
    most important), and the layers `drop_layers` (indices in order) are removed. The original is unchanged."""
    if not isinstance(model, keras.Model) or not hasattr(model, "_functional") and not model.inputs:
        raise TfptmError(f"prune_transformer: expected a functional keras.Model; got {type(model).__name__}")
    if not 0.0 <= feedforward < 1.0:
        raise TfptmError(f"prune_transformer: feedforward is {feedforward}; expected 0 <= feedforward < 1")
    names = list(transformer_layers(model))
    if not names:
        raise TfptmError(f"prune_transformer: model {model.name!r} has no KerasHub TransformerEncoder layers; "
                         "expected a Transformer text model (e.g. a BERT preset)")
    bad = [i for i in drop_layers if not (isinstance(i, int) and 0 <= i < len(names))]
    if bad or len(set(drop_layers)) >= len(names):
        raise TfptmError(f"prune_transformer: drop_layers is {list(drop_layers)}; expected distinct indices in "
                         f"0..{len(names) - 1}, keeping at least one of the {len(names)} layers")
    layers = {layer.name: layer for layer in all_layers(model) if type(layer).__name__ == LAYER_CLASS}
    dropped = {names[i] for i in drop_layers}
    keep_units = {name: _important_units(layers[name], feedforward) for name in names if name not in dropped}

    config = copy.deepcopy(model.get_config())
    _walk(config, lambda layer: _shrink(layer, keep_units))
    for name in dropped:
        _remove_layer(config, name)
    pruned = type(model).from_config(config)
    _copy_weights(model, pruned, layers, keep_units)
    return pruned


def _important_units(layer, share):
    w_in = np.asarray(getattr(layer, f"_{INTERMEDIATE}").kernel)  # (hidden, units)
    w_out = np.asarray(getattr(layer, f"_{OUTPUT}").kernel)  # (units, hidden)
    importance = np.linalg.norm(w_in, axis=0) * np.linalg.norm(w_out, axis=1)
    keep = w_in.shape[1] - int(round(share * w_in.shape[1]))
    return np.sort(np.argsort(-importance, kind="stable")[:max(keep, 1)])


def _shrink(layer, keep_units):
    if layer.get("class_name") == LAYER_CLASS and layer["config"]["name"] in keep_units:
        layer["config"]["intermediate_dim"] = int(len(keep_units[layer["config"]["name"]]))


def _remove_layer(config, name):
    """Removes layer `name` from the functional config that holds it; what read its output reads its first input."""
    def visit(node):
        if isinstance(node, dict) and isinstance(node.get("layers"), list):
            entries = [layer for layer in node["layers"] if layer.get("name") == name]
            if entries:
                source = entries[0]["inbound_nodes"][0]["args"][0]["config"]["keras_history"]
                node["layers"].remove(entries[0])
                _replace_history(node, name, source)
                return True
        children = node.values() if isinstance(node, dict) else node if isinstance(node, (list, tuple)) else ()
        return any(visit(child) for child in children)

    visit(config)


def _replace_history(node, name, source):
    if isinstance(node, dict):
        history = node.get("keras_history")
        if isinstance(history, list) and history and history[0] == name:
            node["keras_history"] = list(source)
        for child in node.values():
            _replace_history(child, name, source)
    elif isinstance(node, (list, tuple)):  # configs hold tuples too (a node's args)
        if isinstance(node, list) and len(node) == 3 and node[0] == name and isinstance(node[1], int):
            node[:] = list(source)  # output_layers entries
        for child in node:
            _replace_history(child, name, source)


def _copy_weights(source, target, layers, keep_units):
    old = {v.path: v for v in source.weights}
    for variable in target.weights:
        if variable.path not in old:
            raise TfptmError(f"prune_transformer: the pruned model's weight {variable.path!r} has no original")
        value = np.asarray(old[variable.path])
        parts = variable.path.split("/")
        units = keep_units.get(parts[0]) if len(parts) > 2 else None
        if units is not None and parts[-2] == INTERMEDIATE:
            value = value[..., units]
        elif units is not None and parts[-2] == OUTPUT and parts[-1] == "kernel":
            value = value[units]
        variable.assign(value)


def _walk(node, visit):
    if isinstance(node, dict):
        if "class_name" in node and "config" in node:
            visit(node)
        for child in node.values():
            _walk(child, visit)
    elif isinstance(node, (list, tuple)):
        for child in node:
            _walk(child, visit)
