"""TFDS data sets by name: read from `data_dir`, downloaded and prepared there by TFDS when missing.

A prepared data set (`data_dir/name[/config]/version/dataset_info.json`) is
read with `tfds.builder_from_directory`, which needs no network and works for
any builder. A missing one is downloaded and prepared by
`tfds.builder(name, data_dir=...).download_and_prepare()`; in offline mode
(`TFPTM_OFFLINE=1`) it is one `TfptmError` at once, saying how to prepare it.
"""

import os
import re

import tensorflow as tf

from tfptm import downloads
from tfptm.data.loaded import Loaded
from tfptm.data.pipeline import CACHE_LIMIT_BYTES, finish
from tfptm.errors import TfptmError, one_line

_NAME = re.compile(r"^(?P<name>[\w.-]+)(?:/(?P<config>[\w.-]+))?(?::(?P<version>\d+\.\d+\.\d+))?$")
_VERSION = re.compile(r"^\d+\.\d+\.\d+$")


def prepared_dir(name, data_dir):
    """The directory holding prepared TFDS data set `name` (`"name[/config][:version]"`) under `data_dir`.

    Without a version the newest prepared one is used. Raises a `TfptmError`
    naming the data set, `data_dir` and how to prepare it when it is not there.

    Example:
    >>> prepared_dir("mnist", "/nonexistent")
    Traceback (most recent call last):
    ...
    tfptm.errors.TfptmError: TFDS data set 'mnist' is not prepared in data_dir '/nonexistent' (no /nonexistent/mnist/<version>/dataset_info.json)...; prepare it where there is network access with `tfds build mnist --data_dir /nonexistent` (or tfds.builder('mnist', data_dir='/nonexistent').download_and_prepare()) and copy the folder here
    """
    match = _NAME.match(name) if isinstance(name, str) else None
    if not match:
        raise TfptmError(f"TFDS data set name {name!r} is not valid; expected 'name', 'name/config' or 'name:1.0.0'")
    data_dir = os.path.expanduser(os.fspath(data_dir))
    root = os.path.join(data_dir, match["name"])
    if match["config"]:
        root = os.path.join(root, match["config"])
    elif os.path.isdir(root) and not _versions(root):
        configs = sorted(c for c in os.listdir(root) if _versions(os.path.join(root, c)))
        if len(configs) > 1:
            raise TfptmError(f"TFDS data set {name!r} in {data_dir!r} has configs {configs}; expected 'name/config'")
        root = os.path.join(root, configs[0]) if configs else root
    versions = _versions(root)
    if match["version"]:
        versions = [v for v in versions if v == match["version"]]
    if not versions:
        build = match["name"] + (f"/{match['config']}" if match["config"] else "")
        raise TfptmError(
            f"TFDS data set {name!r} is not prepared in data_dir {data_dir!r} (no {root}/"
            f"{match['version'] or '<version>'}/dataset_info.json){_downloads_off()}; prepare it where "
            f"there is network access with `tfds build {build} --data_dir {data_dir}` (or tfds.builder("
            f"{build!r}, data_dir={data_dir!r}).download_and_prepare()) and copy the folder here"
        )
    return os.path.join(root, max(versions, key=lambda v: tuple(int(p) for p in v.split("."))))


def _downloads_off():
    return f" and downloads are off ({downloads.switch_name()})" if downloads.offline() else ""


def download_and_prepare(name, data_dir):
    """The prepared directory of `name` under `data_dir`, downloading and preparing it through TFDS if missing.

    Offline, or for a name TFDS does not know, the error of `prepared_dir`.
    """
    try:
        return prepared_dir(name, data_dir)
    except TfptmError as error:
        if downloads.offline():
            raise
        missing = error
    import tensorflow_datasets as tfds

    try:
        tfds.builder(name, data_dir=os.path.expanduser(os.fspath(data_dir))).download_and_prepare()
    except Exception as error:  # unknown names, network errors, checksum mismatches, manual downloads
        raise TfptmError(f"{missing} (TFDS could not download it: {one_line(error, 200)})") from None
    return prepared_dir(name, data_dir)


def _versions(directory):
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    return [v for v in names if _VERSION.match(v) and os.path.isfile(os.path.join(directory, v, "dataset_info.json"))]


def tfds_dataset(name, data_dir, split="train", validation_split=None, image_size=None, batch_size=32,
                 shuffle=True, seed=0, augment=None, cache="auto"):
    """Loads prepared TFDS data set `name` from `data_dir` as batched `(features, label)` pairs.

    Args:
        name: `"name"`, `"name/config"` or `"name:1.0.0"`; see `prepared_dir`.
        data_dir: where it is prepared (`tfds build --data_dir`), or is
            downloaded and prepared by TFDS when missing (not offline).
        split, validation_split: TFDS split strings, slices included
            (`"train[:80%]"`, `"train[80%:]"`); `validation_split=None` for none.
        image_size: `(height, width)` to resize image features to; images
            come out as float32 in 0..255 either way.
        batch_size, shuffle, seed, augment, cache: as in `tfptm.data.image_folder`.

    Returns:
        A `tfptm.data.Loaded` with the label feature's class names.

    Example (given a prepared data set):
    >>> loaded = tfds_dataset("mnist", "~/tensorflow_datasets", "train[:80%]", "train[80%:]")  # doctest: +SKIP
    >>> loaded.class_names[:3], loaded.num_train  # doctest: +SKIP
    (['0', '1', '2'], 48000)
    """
    import tensorflow_datasets as tfds

    directory = download_and_prepare(name, data_dir)
    try:
        builder = tfds.builder_from_directory(directory)
    except Exception as error:  # TFDS raises many types for a damaged directory
        raise TfptmError(f"TFDS data set {name!r}: cannot read {directory!r} ({one_line(error)})") from None
    info = builder.info
    if not info.supervised_keys:
        raise TfptmError(f"TFDS data set {name!r} has no supervised (features, label) keys; expected a labelled data set")
    feature_key, label_key = info.supervised_keys[:2]
    label = info.features[label_key]
    class_names = list(label.names) if hasattr(label, "names") else []
    if augment is True:
        from tfptm.data.augment import images as default_augment

        augment = default_augment(seed=seed)

    def pipeline(split_name, training):
        try:
            count = int(info.splits[split_name].num_examples)
            ds = builder.as_dataset(split=split_name, as_supervised=True, shuffle_files=False)
        except Exception as error:  # unknown split names and bad slices raise ValueError or KeyError
            raise TfptmError(
                f"TFDS data set {name!r}: split {split_name!r} cannot be read ({one_line(error)}); "
                f"expected one of {sorted(info.splits)} or a slice such as 'train[:80%]'"
            ) from None
        ds = ds.map(lambda x, y: (_to_float(x, image_size), y), num_parallel_calls=tf.data.AUTOTUNE)
        fits = _example_bytes(ds.element_spec[0], count) <= CACHE_LIMIT_BYTES
        return finish(ds, count, batch_size, shuffle=shuffle and training, seed=seed,
                      cache=fits if cache == "auto" else cache, augment=augment if training else None), count

    train, num_train = pipeline(split, True)
    validation, num_validation = pipeline(validation_split, False) if validation_split else (None, 0)
    return Loaded(train, validation, class_names, num_train, num_validation, [])


def _to_float(features, image_size):
    if features.shape.rank == 3:  # an image: float pixels in 0..255, as image_folder gives
        features = tf.cast(features, tf.float32)
        if image_size is not None:
            features = tf.image.resize(features, image_size)
    return features


def _example_bytes(spec, count):
    known = [d if d is not None else 256 for d in spec.shape]
    size = 1
    for d in known:
        size *= d
    return size * count * max(spec.dtype.size, 1)
