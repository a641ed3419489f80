"""Views of a model for distillation: a `keras.Model` sharing its weights that outputs its final `outputs`, its
`logits` and named layers' outputs (floor 3).

tfptm models output probabilities; their logits are the `head_logits` layer (the Dense before the softmax or
sigmoid). `log(probabilities)` would be valid logits in exact arithmetic but not in float32: a confident model's
small probabilities underflow to 0 or keep few significant digits, and those are the "dark knowledge" a temperature
brings out. Embedders' "logits" are their vectors.

Example:
>>> import tfptm
>>> backbone = tfptm.backbones.get("vgg_cnn", input_shape=(8, 8, 1), filters=(4,))
>>> model = tfptm.build_model(backbone, tfptm.Head("binary"))
>>> sorted(model_view(model, ["backbone"], "student").output)
['layer:backbone', 'logits', 'outputs']
"""

import keras

from tfptm.errors import TfptmError

LOGITS_LAYER = "head_logits"


def model_view(model, layer_names, role):
    """A model sharing `model`'s weights that outputs `outputs`, `logits` and `layer:<name>` for each of `layer_names`."""
    if len(model.outputs) != 1:
        raise TfptmError(f"Distiller: the {role} {model.name!r} has {len(model.outputs)} outputs; expected one")
    outputs = {"outputs": model.outputs[0], "logits": logits_of(model, role)}
    for name in layer_names:
        outputs[f"layer:{name}"] = layer_output(model, name, role)
    return keras.Model(model.input, outputs, name=f"{role}_view")


def logits_of(model, role):
    from tfptm.tasks.embeddings import is_embedder

    if is_embedder(model):
        return model.outputs[0]
    if LOGITS_LAYER in [layer.name for layer in model.layers]:
        return layer_output(model, LOGITS_LAYER, role)
    activation = getattr(getattr(model.layers[-1], "activation", None), "__name__", "")
    if activation in ("softmax", "sigmoid"):
        raise TfptmError(
            f"Distiller: the {role} {model.name!r} ends in a {activation} and has no {LOGITS_LAYER!r} layer; "
            "expected a tfptm.build_model model or a model that outputs logits"
        )
    return model.outputs[0]


def layer_output(model, name, role):
    """The tensor of `model`'s graph that its top-level layer `name` outputs."""
    try:
        layer = model.get_layer(name)
    except ValueError:
        raise TfptmError(
            f"Distiller: the {role} {model.name!r} has no top-level layer {name!r}; "
            f"expected one of {', '.join(layer.name for layer in model.layers)}"
        ) from None
    # A nested model's `.output` is its own inner graph's tensor; the node of
    # its call inside `model` holds the tensor that `model`'s graph uses.
    nodes = layer._inbound_nodes
    if len(nodes) != 1:
        raise TfptmError(f"Distiller: layer {name!r} of the {role} is called {len(nodes)} times; expected once")
    outputs = nodes[0].output_tensors
    if len(outputs) != 1:
        raise TfptmError(f"Distiller: layer {name!r} of the {role} has {len(outputs)} outputs; expected one")
    return outputs[0]
