"""tf.data pipelines with the defaults that are right for training."""

import tensorflow as tf

from tfptm.data.arrays import check_arrays


def from_arrays(x, y=None, batch_size=32, shuffle=True, seed=None, cache=True):
    """Builds a batched `tf.data.Dataset` from NumPy arrays.

    Defaults: cache the decoded examples, reshuffle every epoch (with `seed`
    the order is deterministic), batch, and prefetch with AUTOTUNE.
    `batch_size` is the global batch size: under a `tf.distribute` strategy it
    is split across replicas.

    Example:
    >>> import numpy as np
    >>> ds = from_arrays(np.zeros((10, 3), "float32"), np.arange(10), batch_size=4, seed=1)
    >>> [int(b[0].shape[0]) for b in ds]
    [4, 4, 2]
    """
    x, y = check_arrays(x, y, where="from_arrays")
    ds = tf.data.Dataset.from_tensor_slices(x if y is None else (x, y))
    return finish(ds, len(x), batch_size=batch_size, shuffle=shuffle, seed=seed, cache=cache)


def finish(ds, num_examples, batch_size=32, shuffle=True, seed=None, cache=True):
    """Applies cache, shuffle, batch and prefetch to an unbatched dataset."""
    if cache:
        ds = ds.cache()
    if shuffle:
        ds = ds.shuffle(min(num_examples, 10_000), seed=seed, reshuffle_each_iteration=True)
    options = tf.data.Options()
    options.deterministic = seed is not None or not shuffle
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE).with_options(options)
