"""Backbones from `keras.applications`, with their ImageNet preprocessing inside the model.

Each backbone is the Keras Applications architecture without its classifier
(`include_top=False`), built on an input that takes raw RGB pixels in 0-255:
the model family's own preprocessing runs inside the graph as standard Keras
layers, so callers, exported SavedModels and TFLite files feed plain pixels.

`SPECS` documents every model with its source (timm's `pretrained_cfg`
style): the Keras constructor, the preprocessing mode, the default input size
it was trained at and the ImageNet weights file Keras would use.

Weights are `None` (random), `"imagenet"` or a path to a local weights file.
`"imagenet"` downloads Keras's file with `keras.utils.get_file` and its MD5
check into `$KERAS_HOME/models` (default `~/.keras/models`), from
`TFPTM_KERAS_WEIGHTS_URL` (default Keras's own storage) so a mirror can stand
in; a failed download leaves nothing in that cache. Offline
(`TFPTM_OFFLINE=1`) only the cached file loads, else one `TfptmError` names
the file to copy there, or to pass as `weights=PATH`.
"""

import dataclasses
import hashlib
import math
import os
import tempfile

import keras
from keras.src.backend.config import keras_home  # where keras.utils.get_file caches (no public accessor)

from tfptm import downloads
from tfptm.backbones.registry import BACKBONE_NAME, register
from tfptm.errors import TfptmError, one_line

_IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
_IMAGENET_STD_RGB = (0.229, 0.224, 0.225)
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)

# Sizes for which Keras ships MobileNetV2 ImageNet files; others load the 224 file.
_MOBILENET_V2_SIZES = (96, 128, 160, 192, 224)


@keras.saving.register_keras_serializable(package="tfptm")
class ReverseChannels(keras.layers.Layer):
    """Reverses the channel axis (RGB <-> BGR), for models trained on BGR pixels.

    Example:
    >>> import numpy as np
    >>> ReverseChannels()(np.array([[1.0, 2.0, 3.0]])).numpy().tolist()
    [[3.0, 2.0, 1.0]]
    """

    def call(self, inputs):
        return keras.ops.flip(inputs, axis=-1)

    def compute_output_shape(self, input_shape):
        return input_shape


def preprocess(pixels, mode):
    """Applies Keras's ImageNet preprocessing `mode` to 0-255 RGB `pixels`, as layers.

    Modes follow `keras.applications.imagenet_utils.preprocess_input`:
    `"caffe"` (RGB to BGR, minus the ImageNet BGR mean), `"torch"` (0-1, then
    ImageNet mean and std per channel), `"tf"` (to -1..1) and `None` (the model
    preprocesses itself). Works on a symbolic `keras.Input` or on arrays.

    Example:
    >>> import numpy as np
    >>> preprocess(np.array([[0.0, 127.5, 255.0]]), "tf").numpy().tolist()
    [[-1.0, 0.0, 1.0]]
    """
    if mode is None:
        return pixels
    if mode == "caffe":
        bgr = ReverseChannels(name="preprocess_bgr")(pixels)
        return keras.layers.Rescaling(1.0, offset=[-m for m in _CAFFE_MEAN_BGR], name="preprocess")(bgr)
    if mode == "torch":
        scale = [1.0 / (255.0 * s) for s in _IMAGENET_STD_RGB]
        offset = [-m / s for m, s in zip(_IMAGENET_MEAN_RGB, _IMAGENET_STD_RGB)]
        return keras.layers.Rescaling(scale, offset=offset, name="preprocess")(pixels)
    if mode == "tf":
        return keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="preprocess")(pixels)
    raise TfptmError(f"preprocess: unknown mode {mode!r}; expected 'caffe', 'torch', 'tf' or None")


@dataclasses.dataclass(frozen=True)
class ApplicationSpec:
    """How tfptm builds one Keras Applications backbone, and what it was trained with.

    Attributes:
        name: the registry name (`tfptm.backbones.get(name)`).
        constructor: the `keras.applications` function name.
        preprocessing: `"caffe"`, `"tf"`, or `None` when the Keras model
            already contains its preprocessing layers.
        input_size: the default (and ImageNet training) image side, in pixels.
        weights_file: the ImageNet no-top file Keras caches under
            `$KERAS_HOME/models`; `{rows}` stands for the MobileNetV2 size.
        title: a readable model name.
        weights_dir: where the file lies under `WEIGHTS_URL`, as in Keras's source.
        weights_md5: its MD5, as Keras checks it (`None`: Keras has none).
    """

    name: str
    constructor: str
    preprocessing: str | None
    input_size: int
    weights_file: str
    title: str
    weights_dir: str
    weights_md5: str | None

    @property
    def default_input_shape(self):
        return (self.input_size, self.input_size, 3)


_KERAS_FILE = "{}_weights_tf_dim_ordering_tf_kernels_notop.h5"
_MOBILENET_V3_FILE = "weights_mobilenet_v3_{}_224_1.0_float_no_top_v2.h5"
_APPS = "tensorflow/keras-applications/"
# Where Keras downloads ImageNet files from; set TFPTM_KERAS_WEIGHTS_URL to a mirror with the same layout.
WEIGHTS_URL = "https://storage.googleapis.com/"
WEIGHTS_URL_ENV = "TFPTM_KERAS_WEIGHTS_URL"

SPECS = {
    spec.name: spec
    for spec in (
        ApplicationSpec("resnet50", "ResNet50", "caffe", 224, _KERAS_FILE.format("resnet50"), "ResNet-50",
                        _APPS + "resnet/", "4d473c1dd8becc155b73f8504c6f6626"),
        ApplicationSpec("resnet101", "ResNet101", "caffe", 224, _KERAS_FILE.format("resnet101"), "ResNet-101",
                        _APPS + "resnet/", "88cf7a10940856eca736dc7b7e228a21"),
        ApplicationSpec("vgg16", "VGG16", "caffe", 224, _KERAS_FILE.format("vgg16"), "VGG-16",
                        _APPS + "vgg16/", "6d6bbae143d832006294945121d1f1fc"),
        ApplicationSpec("vgg19", "VGG19", "caffe", 224, _KERAS_FILE.format("vgg19"), "VGG-19",
                        _APPS + "vgg19/", "253f8cb515780f3b799900260a226db6"),
        ApplicationSpec(
            "mobilenet_v2", "MobileNetV2", "tf", 224,
            "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{rows}_no_top.h5", "MobileNetV2 1.0",
            _APPS + "mobilenet_v2/", None,
        ),
        ApplicationSpec("mobilenet_v3_small", "MobileNetV3Small", None, 224, _MOBILENET_V3_FILE.format("small"),
                        "MobileNetV3-Small", _APPS + "mobilenet_v3/", "d3e8ec802a04aa4fc771ee12a9a9b836"),
        ApplicationSpec("mobilenet_v3_large", "MobileNetV3Large", None, 224, _MOBILENET_V3_FILE.format("large"),
                        "MobileNetV3-Large", _APPS + "mobilenet_v3/", "07fb09a5933dd0c8eaafa16978110389"),
        ApplicationSpec("efficientnet_b0", "EfficientNetB0", None, 224, "efficientnetb0_notop.h5", "EfficientNet-B0",
                        "keras-applications/", "50bc09e76180e00e4465e1a485ddc09d"),
        ApplicationSpec("efficientnet_b1", "EfficientNetB1", None, 240, "efficientnetb1_notop.h5", "EfficientNet-B1",
                        "keras-applications/", "74c4e6b3e1f6a1eea24c589628592432"),
        ApplicationSpec("efficientnet_b2", "EfficientNetB2", None, 260, "efficientnetb2_notop.h5", "EfficientNet-B2",
                        "keras-applications/", "111f8e2ac8aa800a7a99e3239f7bfb39"),
        ApplicationSpec("efficientnet_b3", "EfficientNetB3", None, 300, "efficientnetb3_notop.h5", "EfficientNet-B3",
                        "keras-applications/", "af6d107764bb5b1abb91932881670226"),
    )
}


def imagenet_weights_path(name, input_shape=None):
    """Where Keras caches the ImageNet no-top weights of backbone `name`.

    The file may not exist yet: `weights="imagenet"` downloads it there
    (`imagenet_weights`). Offline, copy it there or pass its path as `weights=`.

    Example:
    >>> os.path.basename(imagenet_weights_path("vgg16"))
    'vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5'
    """
    spec = _spec(name)
    rows, cols = tuple(input_shape or spec.default_input_shape)[:2]
    size = rows if rows == cols and rows in _MOBILENET_V2_SIZES else 224
    # keras.utils.get_file's cache: $KERAS_HOME (read when Keras is imported), or /tmp/.keras if unwritable.
    home = keras_home()
    if not os.access(os.path.expanduser(home), os.W_OK):
        home = os.path.join("/tmp", ".keras")
    return os.path.join(os.path.expanduser(home), "models", spec.weights_file.format(rows=size))


def build(name, input_shape=None, weights=None):
    """Builds Keras Applications backbone `name` (a key of `SPECS`) without its top.

    Args:
        name: e.g. `"resnet50"`, `"vgg16"`, `"mobilenet_v2"`, `"efficientnet_b0"`.
        input_shape: `(height, width, 3)`; defaults to the size the model was
            trained at (`SPECS[name].default_input_shape`). Keras needs 32x32 or more.
        weights: `None`, `"imagenet"` (Keras's cached file, see
            `imagenet_weights_path`; never downloaded) or the path of a weights
            file for this architecture without top, such as that same Keras
            file. Both load alike: an EfficientNet gets the extra ImageNet std
            rescaling that Keras adds only for `"imagenet"`.

    Returns a functional model named `"backbone"` from raw 0-255 RGB pixels
    (input `"pixels"`) to the last feature map.

    Example:
    >>> import numpy as np
    >>> backbone = build("mobilenet_v3_small", input_shape=(32, 32, 3))
    >>> backbone(np.zeros((1, 32, 32, 3), "float32")).shape
    TensorShape([1, 1, 1, 576])
    """
    spec = _spec(name)
    input_shape = tuple(input_shape or spec.default_input_shape)
    if len(input_shape) != 3 or input_shape[-1] != 3:
        raise TfptmError(f"{name}: input_shape is {input_shape}; expected (height, width, 3) RGB images")
    weights_file = _weights_file(name, weights, input_shape)
    pixels = keras.Input(shape=input_shape, name="pixels")
    constructor = getattr(keras.applications, spec.constructor)
    try:
        model = constructor(
            include_top=False, weights=None, input_tensor=preprocess(pixels, spec.preprocessing), input_shape=input_shape
        )
    except ValueError as error:
        raise TfptmError(f"{name}: Keras cannot build it with input_shape={input_shape}: {one_line(error)}") from None
    if weights_file and spec.constructor.startswith("EfficientNet"):
        model = _with_imagenet_std_rescaling(model)
    # Keras returns its inputs as a one-element list; a single input takes plain arrays.
    model = keras.Model(model.inputs[0], model.outputs[0], name=BACKBONE_NAME)
    if weights_file:
        _load_weights_file(name, model, weights_file)
    return model


def _spec(name):
    if name not in SPECS:
        raise TfptmError(f"Unknown Keras Applications backbone {name!r}; expected one of: {', '.join(SPECS)}")
    return SPECS[name]


def _weights_file(name, weights, input_shape):
    """The weights file to load (`"imagenet"`: Keras's file, downloaded once), or `None` for random weights."""
    if weights is None:
        return None
    if weights == "imagenet":
        return imagenet_weights(name, input_shape)
    if not isinstance(weights, (str, os.PathLike)):
        raise TfptmError(f"{name}: weights is {weights!r}; expected None, 'imagenet' or the path of a weights file")
    if not os.path.isfile(weights):
        raise TfptmError(
            f"{name}: weights file {os.fspath(weights)!r} does not exist; expected None, 'imagenet' or a weights file"
        )
    return os.fspath(weights)


def imagenet_weights(name, input_shape=None):
    """The path of backbone `name`'s ImageNet no-top file, downloaded by `keras.utils.get_file` when missing.

    The file comes from `TFPTM_KERAS_WEIGHTS_URL` (default Keras's storage)
    with Keras's MD5 check, into a staging directory inside Keras's cache, and
    is moved into place only when complete and verified: a network error, a
    404, a truncated file or a wrong hash raises one `TfptmError` and leaves
    nothing in the cache. A cached file is used without any request (and
    re-downloaded if its hash is wrong). Offline (`TFPTM_OFFLINE=1`) a missing
    file is an error at once.
    """
    spec = _spec(name)
    path = imagenet_weights_path(name, input_shape)
    cache, file_name = os.path.split(path)
    provide = f"copy Keras's file {file_name} there, or pass weights='/path/to/{file_name}'"
    if os.path.isfile(path) and spec.weights_md5 in (None, _md5(path)):
        return path
    what = f"{name}: ImageNet weights {file_name!r}"
    if downloads.offline():
        raise downloads.not_cached(what, cache, provide)
    origin = os.environ.get(WEIGHTS_URL_ENV, WEIGHTS_URL).rstrip("/") + "/" + spec.weights_dir + file_name
    os.makedirs(cache, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".partial-", dir=cache) as staging:
        try:
            fetched = keras.utils.get_file(file_name, origin, file_hash=spec.weights_md5, hash_algorithm="md5",
                                           cache_dir=staging, cache_subdir="")
        except Exception as error:  # Keras raises a bare Exception for HTTP and URL errors, ValueError for a bad hash
            raise downloads.failed(f"{what} from {origin}", cache, error, provide) from None
        os.replace(fetched, path)
    return path


def _md5(path):
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _load_weights_file(name, model, path):
    try:
        model.load_weights(path)
    except Exception as error:  # Keras raises ValueError, OSError or KeyError for a file that does not fit.
        raise TfptmError(
            f"{name}: cannot load weights file {path!r} ({one_line(error)}); "
            f"expected {name} weights without top, e.g. Keras's {os.path.basename(imagenet_weights_path(name))}"
        ) from None


def _with_imagenet_std_rescaling(model):
    """The model with the rescaling Keras's EfficientNet adds after its `Normalization` for `"imagenet"` weights.

    Keras's ImageNet file stores the std where `Normalization` expects the
    variance, so Keras divides once more by sqrt(std); it does so only for
    `weights="imagenet"`, not for the same file given by path. tfptm loads
    every weights file by path and adds the rescaling itself.
    """

    def call(layer, *args, **kwargs):
        outputs = layer(*args, **kwargs)
        if isinstance(layer, keras.layers.Normalization):
            scale = [1.0 / math.sqrt(s) for s in _IMAGENET_STD_RGB]
            outputs = keras.layers.Rescaling(scale, name="imagenet_std_rescaling")(outputs)
        return outputs

    return keras.models.clone_model(model, clone_function=lambda layer: layer, call_function=call)


def _register(spec):
    mode = f"{spec.preprocessing} preprocessing" if spec.preprocessing else "its own preprocessing"
    size = f"{spec.input_size}x{spec.input_size}"
    summary = f"{spec.title} from keras.applications (ImageNet, {mode} inside), default input {size}"

    def builder(input_shape=None, weights=None):
        return build(spec.name, input_shape=input_shape, weights=weights)

    builder.__doc__ = f"Builds {spec.title} without its top; see `tfptm.backbones.applications.build`."
    register(spec.name, source="keras.applications", summary=summary)(builder)


for _spec_entry in SPECS.values():
    _register(_spec_entry)
