"""What a SavedModel serves: its signatures, as `saved_model_cli show --all` prints them."""

from pathlib import Path

from tfptm.errors import TfptmError


def describe_saved_model(path, tag="serve"):
    """Reads `saved_model.pb` and returns the signatures a model server would offer.

    Returns `{"path", "tags", "signatures", "text"}`: `signatures` maps each
    served signature name to its `inputs` and `outputs` (name -> `{"dtype":
    "DT_FLOAT", "shape": [-1, 8, 8, 1]}`, `None` for an unknown rank) and
    `method_name`; `text` is the SignatureDef listing in exactly the words of
    `saved_model_cli show --dir PATH --all`, internal signatures included. No
    TensorFlow graph is loaded, so this is fast and runs no model code.

    Example:
    >>> import tempfile, tfptm
    >>> backbone = tfptm.backbones.get("vgg_cnn", input_shape=(8, 8, 1), filters=(8,))
    >>> model = tfptm.build_model(backbone, tfptm.Head("multiclass", num_classes=2))
    >>> info = describe_saved_model(tfptm.export.saved_model(model, tempfile.mkdtemp(), "digits"))
    >>> info["signatures"]["serving_default"]["inputs"]
    {'pixels': {'dtype': 'DT_FLOAT', 'shape': [-1, 8, 8, 1]}}
    """
    from tensorflow.core.protobuf import saved_model_pb2

    pb = Path(path) / "saved_model.pb"
    if not pb.is_file():
        raise TfptmError(f"{str(path)!r} is not a SavedModel directory: it has no saved_model.pb")
    proto = saved_model_pb2.SavedModel()
    try:
        proto.ParseFromString(pb.read_bytes())
    except Exception:  # protobuf's DecodeError
        raise TfptmError(f"{str(pb)!r} is corrupt: it does not parse as a SavedModel protocol buffer") from None
    graphs = [g for g in proto.meta_graphs if tag in g.meta_info_def.tags]
    if not graphs:
        raise TfptmError(f"SavedModel {str(path)!r} has no MetaGraph with tag {tag!r}")
    graph = graphs[0]
    tags = sorted(graph.meta_info_def.tags)
    signatures = {
        name: {
            "inputs": {k: _tensor(v) for k, v in sorted(d.inputs.items())},
            "outputs": {k: _tensor(v) for k, v in sorted(d.outputs.items())},
            "method_name": d.method_name,
        }
        for name, d in sorted(graph.signature_def.items())
        if not name.startswith("__")
    }
    return {"path": str(path), "tags": tags, "signatures": signatures, "text": _cli_text(graph, tags)}


def _tensor(info):
    from tensorflow.core.framework import types_pb2

    shape = None if info.tensor_shape.unknown_rank else [d.size for d in info.tensor_shape.dim]
    return {"dtype": types_pb2.DataType.Name(info.dtype), "shape": shape}


def _cli_text(graph, tags):
    """The SignatureDef part of `saved_model_cli show --all`, line for line."""
    from tensorflow.core.framework import types_pb2

    tag_set = ", ".join(repr(t) for t in tags) if len(tags) > 1 else repr(tags[0])
    lines = ["", f"MetaGraphDef with tag-set: {tag_set} contains the following SignatureDefs:", ""]
    for name, signature in sorted(graph.signature_def.items()):
        lines.append(f"signature_def[{name!r}]:")
        for kind, tensors in (("input", signature.inputs), ("output", signature.outputs)):
            lines.append(f"  The given SavedModel SignatureDef contains the following {kind}(s):")
            for key, info in sorted(tensors.items()):
                if info.tensor_shape.unknown_rank:
                    shape = "unknown_rank"
                else:
                    dims = [str(d.size) for d in info.tensor_shape.dim]
                    shape = f"({', '.join(dims)})"
                lines += [
                    f"    {kind}s[{key!r}] tensor_info:",
                    f"        dtype: {types_pb2.DataType.Name(info.dtype)}",
                    f"        shape: {shape}",
                    f"        name: {info.name}",
                ]
        lines += [f"  Method name is: {signature.method_name}", ""]
    return "\n".join(lines[:-1])
