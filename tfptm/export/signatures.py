"""Input specs and in-graph serving functions shared by the SavedModel and TFLite exporters."""

import tensorflow as tf

from tfptm.errors import TfptmError

IMAGE_CHANNELS = (1, 3)


def input_specs(model):
    """The model's inputs as `tf.TensorSpec`s with a free batch axis, named as the model names them.

    A one-input model gives one spec; a model on a dict of inputs (a KerasHub
    text backbone: `token_ids`, `padding_mask`, `segment_ids`) gives a dict of
    specs named by their keys, which become the serving signature's input names.

    Example:
    >>> import tfptm
    >>> backbone = tfptm.backbones.get("vgg_cnn", input_shape=(8, 8, 1), filters=(8,))
    >>> input_specs(tfptm.build_model(backbone, tfptm.Head("multiclass", num_classes=2)))
    TensorSpec(shape=(None, 8, 8, 1), dtype=tf.float32, name='pixels')
    """
    inputs = model.input
    if isinstance(inputs, dict):
        return {key: _spec(tensor, key) for key, tensor in sorted(inputs.items())}
    if isinstance(inputs, (list, tuple)):
        raise TfptmError(f"Model {model.name!r} takes a list of {len(inputs)} inputs; export takes one input or a dict")
    return _spec(inputs, inputs.name.split(":")[0])


def _spec(tensor, name):
    return tf.TensorSpec([None, *tensor.shape[1:]], tf.as_dtype(tensor.dtype), name=name)


def image_spec(spec):
    """`spec` if it is an image batch `(batch, height, width, 1 or 3)` of floats with a known size, else `None`."""
    if isinstance(spec, dict) or spec.shape.rank != 4 or not spec.dtype.is_floating:
        return None
    height, width, channels = spec.shape[1:]
    return spec if height and width and channels in IMAGE_CHANNELS else None


def token_spec(spec):
    """`spec` if the model takes token ids (a 2-D integer tensor, or a dict with `token_ids`), else `None`."""
    if isinstance(spec, dict):
        return spec if "token_ids" in spec else None
    return spec if spec.shape.rank == 2 and spec.dtype.is_integer else None


def decode_images(image_bytes, spec, scale=1.0):
    """Decodes a 1-D string tensor of JPEG/PNG/GIF/BMP files to the float batch `spec` describes.

    Each image is decoded to `spec`'s channel count, resized (bilinear) to its
    height and width, cast to float32 and multiplied by `scale`: decoded pixels
    are 0-255, and `scale` maps them to the range the model was trained on
    (e.g. 16/255 for scikit-learn's 0-16 digits). The SavedModel's
    `image_bytes` signature and `tfptm.export.predict` both call this.

    Example:
    >>> png = tf.io.encode_png(tf.fill([2, 2, 1], tf.constant(255, tf.uint8)))
    >>> spec = tf.TensorSpec([None, 4, 4, 1], tf.float32)
    >>> float(decode_images(tf.stack([png]), spec, scale=1 / 255).numpy().max())
    1.0
    """
    height, width, channels = spec.shape[1:]

    def decode(data):
        image = tf.io.decode_image(data, channels=channels, expand_animations=False)
        image = tf.image.resize(tf.cast(image, tf.float32), [height, width])
        return tf.ensure_shape(image, [height, width, channels])

    images = tf.map_fn(decode, image_bytes, fn_output_signature=tf.TensorSpec([height, width, channels], tf.float32))
    return tf.cast(images * scale, spec.dtype)


def tokenize(tokenizer, text, spec):
    """Raw strings `(batch,)` to the model's token input(s), cast to the dtypes `spec` names.

    `tokenizer` is a `tfptm.data.text.TextTokenizer` layer or a KerasHub
    preprocessor or tokenizer: anything mapping a string tensor to token ids
    or to a dict of them.
    """
    tokens = tokenizer(text)
    if isinstance(spec, dict):
        if not isinstance(tokens, dict) or set(spec) - set(tokens):
            got = sorted(tokens) if isinstance(tokens, dict) else "one tensor"
            raise TfptmError(f"The tokenizer returns {got}; the model takes {sorted(spec)}")
        return {key: tf.cast(tokens[key], s.dtype) for key, s in spec.items()}
    if isinstance(tokens, dict):
        tokens = tokens["token_ids"]
    return tf.cast(tokens, spec.dtype)


def check_head(model, where=None):
    """Refuses a model without a task head: export needs one output of shape `(batch, units)`.

    A backbone alone (feature maps or sequences) or a model with several
    outputs is not something a serving signature can classify.
    """
    from tfptm.tasks import token_task

    where = where or f"model {model.name!r}"
    outputs = model.outputs
    if len(outputs) == 1 and len(outputs[0].shape) == 3 and token_task(model) is not None:
        return  # a per-token head (tfptm.tasks.tokens, tfptm.tasks.spans)
    if len(outputs) != 1 or len(outputs[0].shape) != 2:
        shapes = ", ".join(str(tuple(o.shape)) for o in outputs)
        raise TfptmError(f"{where}: outputs {shapes}; expected one output (batch, classes) from a task head: a backbone "
                         "alone cannot be exported, build the model with tfptm.build_model(backbone, tfptm.Head(...))")


def check_inputs(model, x, where):
    """Refuses checked arrays `x` (an array, or a dict by input name) that the model's inputs cannot take.

    Compares the example shape (dimensions the model fixes) and the kind
    (text or numbers) with `input_specs(model)`, so a wrong representative
    file is refused before an export writes anything.
    """
    spec = input_specs(model)
    if isinstance(spec, dict) != isinstance(x, dict):
        wanted = f"a dict of arrays named {sorted(spec)}" if isinstance(spec, dict) else "one array"
        raise TfptmError(f"{where}: got {'a dict' if isinstance(x, dict) else 'one array'}; model {model.name!r} takes {wanted}")
    named = x if isinstance(x, dict) else {spec.name: x}
    for name, s in (spec.items() if isinstance(spec, dict) else [(spec.name, spec)]):
        if name not in named:
            raise TfptmError(f"{where}: no input {name!r}; model {model.name!r} takes {sorted(spec)}")
        value, wanted = named[name], tuple(s.shape[1:])
        shape = tuple(value.shape[1:])
        if len(shape) != len(wanted) or any(w is not None and w != d for w, d in zip(wanted, shape)):
            shown = ", ".join("any" if w is None else str(w) for w in wanted)
            raise TfptmError(f"{where}: examples of shape {shape} for input {name!r}; model {model.name!r} takes ({shown})")
        text = value.dtype.kind in "OUS"
        if text != (s.dtype == tf.string):
            raise TfptmError(f"{where}: input {name!r} holds {'text' if text else 'numbers'}; model {model.name!r} takes "
                             f"{'text' if s.dtype == tf.string else s.dtype.name}")


EMBEDDINGS = "embeddings"  # the task (and output) of sentence embedders (tfptm.tasks.embeddings.build_embedder)
#: least cosine between an exported embedder's vectors and the Keras model's, per artifact (TFLite: per quantization)
MIN_COSINE = {"saved_model": 0.99999, "float32": 0.9999, "float16": 0.999, "dynamic": 0.99, "int8": 0.95}


def task(model):
    """The task of `model`'s head (`tfptm.evaluation.task_of`): what its serving outputs are; `"embeddings"`
    for a sentence embedder (its output layer is named `embeddings`)."""
    from tfptm.evaluation.metrics import task_of
    from tfptm.tasks import token_task

    if token_task(model) is not None:
        return token_task(model).TASK
    if model.layers[-1].name == EMBEDDINGS and len(model.outputs) == 1:
        return EMBEDDINGS
    return task_of(model)


def output_names(task_name):
    """The names of the outputs every serving signature of a `task_name` model returns.

    Example:
    >>> output_names("multiclass"), output_names("multilabel"), output_names("regression")
    (('probabilities', 'class_ids', 'class_names'), ('probabilities', 'labels_present', 'label_names'), ('values',))
    """
    if task_name == "regression":
        return ("values",)
    if task_name == "multilabel":
        return ("probabilities", "labels_present", "label_names")
    return ("probabilities", "class_ids", "class_names")


def class_names_or_default(model, class_names):
    """`class_names` checked against the model's output width, or defaults.

    They name the classes (multiclass, binary), the labels (multilabel) or the
    predicted values (regression; default `["value"]` for one output). The
    default is "0".."n-1".
    """
    regression = task(model) == "regression"
    units = model.outputs[0].shape[-1] if regression else num_classes(model)
    if class_names is None:
        return ["value"] if regression and units == 1 else [str(i) for i in range(units)]
    class_names = [str(c) for c in class_names]
    if len(class_names) != units:
        what = "value names" if regression else "class names"
        raise TfptmError(f"{len(class_names)} {what} given for a model with {units} outputs")
    if any(not c or "\n" in c for c in class_names):
        raise TfptmError("class names must be non-empty single-line strings")
    return class_names


def num_classes(model):
    """Classes a classifier predicts: its output width, or 2 for one sigmoid unit."""
    units = model.outputs[0].shape[-1]
    return 2 if units == 1 else units


def class_ids(probabilities):
    """Predicted class ids in the graph: argmax, or probability >= 0.5 for one sigmoid unit."""
    if probabilities.shape[-1] == 1:
        return tf.cast(probabilities[:, 0] >= 0.5, tf.int32)
    return tf.argmax(probabilities, axis=-1, output_type=tf.int32)


def serving_outputs(task_name, outputs, lookup, threshold=0.5):
    """The dict a serving signature returns for a batch of head `outputs`, by task (`output_names`).

    `lookup` maps int64 class (or label) indices to their names (the
    SavedModel's `labels.txt` table). Multiclass and binary: `probabilities`,
    `class_ids` (argmax, or >= 0.5 for one sigmoid unit) and `class_names`.
    Multilabel: `probabilities`, `labels_present` (int32 0/1, one column per
    label, 1 where the probability is >= `threshold`) and `label_names` (the
    label's name where present, "" elsewhere). Regression: `values`, the
    predicted values, and nothing else.
    """
    if task_name == "regression":
        return {"values": outputs}
    if task_name == "multilabel":
        present = outputs >= threshold
        names = lookup(tf.range(tf.shape(outputs, out_type=tf.int64)[-1]))
        shown = tf.where(present, tf.broadcast_to(names, tf.shape(outputs)), tf.constant(""))
        return {"probabilities": outputs, "labels_present": tf.cast(present, tf.int32), "label_names": shown}
    ids = class_ids(outputs)
    return {"probabilities": outputs, "class_ids": ids, "class_names": lookup(tf.cast(ids, tf.int64))}
