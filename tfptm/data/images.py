"""Image folders (one sub-folder per class) as tf.data pipelines, every file checked first.

Pixels come out as float32 in 0..255, resized to `image_size`: tfptm
backbones hold their preprocessing inside the model, so training data,
exported SavedModels and TFLite files all take raw pixels.

What is an error and what is skipped (`strict=True` makes skips errors):

| input | result |
|---|---|
| missing, unreadable or non-directory `directory` | `TfptmError` naming it |
| no class sub-folders, or only one | `TfptmError` |
| an empty class folder (or one whose every file is bad) | `TfptmError` naming the folder |
| a file that is not JPEG, PNG, BMP, GIF or WebP, or cannot be read | skipped and counted |
| a corrupt or truncated image | skipped and counted |
| a folder inside a class folder | skipped and counted |

Hidden files (names starting with `.`) are ignored.
"""

import os

import keras
import numpy as np
import tensorflow as tf

from tfptm.data.arrays import split_indices
from tfptm.data.loaded import Loaded, skip_or_raise
from tfptm.data.pipeline import CACHE_LIMIT_BYTES, finish
from tfptm.errors import TfptmError, one_line

_MAGIC = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
)


def image_format(header):
    """The image format named by a file's first bytes, or `None`.

    Example:
    >>> image_format(b"\\x89PNG\\r\\n\\x1a\\n...."), image_format(b"hello")
    ('PNG', None)
    """
    if header[:4] == b"RIFF" and header[8:12] == b"WEBP":
        return "WebP"
    return next((name for magic, name in _MAGIC if header.startswith(magic)), None)


def image_folder(
    directory,
    image_size,
    channels=3,
    validation_fraction=0.2,
    seed=0,
    batch_size=32,
    shuffle=True,
    augment=None,
    strict=False,
    cache="auto",
):
    """Loads `directory/<class name>/<image file>` as a stratified train/validation split.

    Args:
        directory: one sub-folder per class; class names are the sorted folder names.
        image_size: `(height, width)` every image is resized to (bilinear).
        channels: 3 (RGB; grey images are repeated) or 1 (grey).
        validation_fraction: the share of each class held out for validation
            (stratified, fixed by `seed`); 0 or `None` for no validation set.
        seed: fixes the split, the shuffling and seeded augmentation.
        batch_size, shuffle: as in `tfptm.data.from_arrays`.
        augment: `None`, `True` for `tfptm.data.augment.images(seed=seed)`, or
            any callable on image batches; applied to training batches only.
        strict: make every bad file an error instead of a counted skip.
        cache: `"auto"` caches decoded images in memory when they fit
            (`tfptm.data.pipeline.CACHE_LIMIT_BYTES`), else `True`, `False` or a file path.

    Returns:
        A `tfptm.data.Loaded`; `loaded.summary()` counts the skipped files.

    Example:
    >>> import os, tempfile, numpy as np, tensorflow as tf
    >>> root = tempfile.mkdtemp()
    >>> for name in ["cat", "dog"]:
    ...     os.makedirs(os.path.join(root, name))
    ...     for i in range(3):
    ...         png = tf.io.encode_png(np.full((5, 7, 3), 40 * i, "uint8")).numpy()
    ...         _ = open(os.path.join(root, name, f"{i}.png"), "wb").write(png)
    >>> _ = open(os.path.join(root, "dog", "notes.txt"), "w").write("not an image")
    >>> loaded = image_folder(root, (4, 4), validation_fraction=1 / 3, batch_size=8)
    >>> loaded.class_names, loaded.num_train, loaded.num_validation, loaded.summary()["num_skipped"]
    (['cat', 'dog'], 4, 2, 1)
    >>> tuple(next(iter(loaded.train))[0].shape)
    (4, 4, 4, 3)
    """
    size = _image_size(image_size)
    if channels not in (1, 3):
        raise TfptmError(f"image_folder: channels is {channels!r}; expected 1 (grey) or 3 (RGB)")
    class_dirs = _class_folders(directory)
    paths, labels, skipped = [], [], []
    for label, class_dir in enumerate(class_dirs):
        good = _valid_images(class_dir, channels, strict, skipped)
        paths += good
        labels += [label] * len(good)
    labels = np.array(labels, dtype="int32")
    if validation_fraction:
        train, val = split_indices(labels, validation_fraction, seed, where=f"image_folder {directory!r}")
    else:
        train, val = np.arange(len(labels)), np.array([], dtype=int)
    if cache == "auto":
        cache = len(labels) * size[0] * size[1] * channels * 4 <= CACHE_LIMIT_BYTES
    if augment is True:
        from tfptm.data.augment import images as default_augment

        augment = default_augment(seed=seed)
    paths = np.array(paths)

    def pipeline(index, training):
        ds = tf.data.Dataset.from_tensor_slices((paths[index], labels[index]))
        ds = ds.map(lambda p, y: (decode(tf.io.read_file(p), size, channels), y), num_parallel_calls=tf.data.AUTOTUNE)
        return finish(ds, len(index), batch_size, shuffle=shuffle and training, seed=seed, cache=cache,
                      augment=augment if training else None)

    return Loaded(
        train=pipeline(train, True),
        validation=pipeline(val, False) if len(val) else None,
        class_names=[os.path.basename(d) for d in class_dirs],
        num_train=len(train),
        num_validation=len(val),
        skipped=skipped,
    )


def decode(data, image_size, channels=3):
    """Decodes image bytes (a string tensor) to float32 pixels in 0..255 of shape `(*image_size, channels)`.

    Example:
    >>> import numpy as np, tensorflow as tf
    >>> png = tf.io.encode_png(np.full((2, 3, 1), 200, "uint8"))
    >>> pixels = decode(png, (4, 4))
    >>> pixels.shape, float(pixels[0, 0, 0])
    (TensorShape([4, 4, 3]), 200.0)
    """
    image = tf.io.decode_image(data, channels=channels, expand_animations=False)
    image.set_shape([None, None, channels])
    return tf.image.resize(image, image_size)


def check_input_shape(backbone, shape, where="images"):
    """Raises a `TfptmError` unless `backbone` can take examples of `shape` (no batch axis).

    Fixed input dimensions must match; where the backbone leaves them free
    (`None`), its layers must still produce a non-empty output from `shape`.

    Example:
    >>> import keras
    >>> inputs = keras.Input((32, 32, 3))
    >>> backbone = keras.Model(inputs, keras.layers.Conv2D(4, 3)(inputs))
    >>> check_input_shape(backbone, (32, 32, 3))
    >>> check_input_shape(backbone, (16, 16, 3))
    Traceback (most recent call last):
    ...
    tfptm.errors.TfptmError: images: examples of shape (16, 16, 3) do not fit the backbone, which takes (32, 32, 3); resize them to (32, 32, 3) (e.g. image_size=(32, 32))
    """
    expected = backbone.input_shape
    if isinstance(expected, (dict, list)):
        raise TfptmError(f"{where}: the backbone takes several inputs ({expected}); expected a single image input")
    expected, shape = tuple(expected[1:]), tuple(int(s) for s in shape)
    hint = f"resize them to {expected}" + (f" (e.g. image_size={expected[:2]})" if len(expected) == 3 else "")
    if len(shape) != len(expected) or any(e is not None and e != s for e, s in zip(expected, shape)):
        raise TfptmError(f"{where}: examples of shape {shape} do not fit the backbone, which takes {expected}; {hint}")
    if None not in expected:
        return
    try:
        output = backbone.compute_output_spec(keras.KerasTensor((1, *shape), dtype=backbone.input.dtype))
        bad = any(d is not None and d <= 0 for d in output.shape)
        problem = f"its output would have shape {tuple(output.shape)}"
    except Exception as error:  # layers raise ValueError (or TF errors) for inputs they cannot reduce
        bad, problem = True, one_line(error, 200)
    if bad:
        raise TfptmError(f"{where}: examples of shape {shape} are too small for the backbone ({problem}); use larger images")


def _image_size(image_size):
    try:
        size = tuple(int(s) for s in image_size)
    except (TypeError, ValueError):
        size = ()
    if len(size) != 2 or min(size) < 1:
        raise TfptmError(f"image_folder: image_size is {image_size!r}; expected (height, width) in pixels")
    return size


def _listdir(path, what):
    try:
        return sorted(entry for entry in os.listdir(path) if not entry.startswith("."))
    except FileNotFoundError:
        raise TfptmError(f"{what} {path!r} does not exist") from None
    except NotADirectoryError:
        raise TfptmError(f"{what} {path!r} is a file; expected a folder") from None
    except OSError as error:
        raise TfptmError(f"{what} {path!r} cannot be read ({error.strerror or error}); check its permissions") from None


def _class_folders(directory):
    directory = os.fspath(directory)
    names = _listdir(directory, "image_folder: directory")
    folders = [os.path.join(directory, n) for n in names if os.path.isdir(os.path.join(directory, n))]
    if len(folders) < 2:
        found = f"only {os.path.basename(folders[0])!r}" if folders else "none"
        raise TfptmError(
            f"image_folder: {directory!r} has {len(folders)} class sub-folder(s) ({found}); "
            "expected one sub-folder per class and at least two classes"
        )
    return folders


def _valid_images(class_dir, channels, strict, skipped):
    names = _listdir(class_dir, "image_folder: class folder")
    if not names:
        raise TfptmError(f"image_folder: class folder {class_dir!r} is empty; expected image files (or remove the folder)")
    good = []
    for name in names:
        path = os.path.join(class_dir, name)
        problem = _image_problem(path, channels)
        if problem:
            skip_or_raise(skipped, path, problem, strict, what="image")
        else:
            good.append(path)
    if not good:
        raise TfptmError(f"image_folder: class folder {class_dir!r} has no readable image ({len(names)} bad files)")
    return good


def _image_problem(path, channels):
    """Why `path` is not a usable image, or `None` if it decodes."""
    if os.path.isdir(path):
        return "is a folder; class folders hold image files only"
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as error:
        return f"cannot be read ({error.strerror or error})"
    kind = image_format(data[:16])
    if kind is None:
        return "not an image (expected JPEG, PNG, BMP, GIF or WebP)"
    try:
        image = tf.io.decode_image(data, channels=channels, expand_animations=False)
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError):  # TF's message names its kernels, not the file
        return f"corrupt or truncated image (a {kind} file that cannot be decoded)"
    if min(image.shape[:2]) < 1:
        return "image has no pixels"
    return None
