"""tf.data pipelines with the defaults that are right for training."""

import tensorflow as tf

from tfptm.data.arrays import check_arrays, num_examples
from tfptm.errors import TfptmError

# Decoded examples up to this many bytes are cached in memory by default ("auto").
CACHE_LIMIT_BYTES = 2 * 1024**3
POOL_BATCHES = 16  # length-aware training batches: examples are sorted by length within pools of 16 batches


def from_arrays(x, y=None, batch_size=32, shuffle=True, seed=None, cache=True):
    """Builds a batched `tf.data.Dataset` from NumPy arrays, or a dict of equal-length arrays.

    Defaults: cache the decoded examples, reshuffle every epoch (with `seed`
    the order is deterministic), batch, and prefetch with AUTOTUNE.
    `batch_size` is the global batch size: under a `tf.distribute` strategy it
    is split across replicas. A dict of features (KerasHub's
    `{"token_ids", "padding_mask", "segment_ids"}`) gives dict batches.

    Example:
    >>> import numpy as np
    >>> ds = from_arrays(np.zeros((10, 3), "float32"), np.arange(10), batch_size=4, seed=1)
    >>> [int(b[0].shape[0]) for b in ds]
    [4, 4, 2]
    >>> ids = np.ones((5, 3), "int32")
    >>> batch, labels = next(iter(from_arrays({"token_ids": ids, "padding_mask": ids > 0}, np.arange(5), batch_size=2)))
    >>> sorted(batch), tuple(batch["token_ids"].shape)
    (['padding_mask', 'token_ids'], (2, 3))
    """
    x, y = check_arrays(x, y, where="from_arrays")
    ds = tf.data.Dataset.from_tensor_slices(x if y is None else (x, y))
    return finish(ds, num_examples(x), batch_size=batch_size, shuffle=shuffle, seed=seed, cache=cache)


def finish(ds, num_examples, batch_size=32, shuffle=True, seed=None, cache=True, batch=None, augment=None):
    """Applies cache, shuffle, batch, augmentation and prefetch to an unbatched dataset.

    Args:
        ds: unbatched examples, `x` or `(x, y)`.
        num_examples: how many there are (sizes the shuffle buffer).
        batch_size: examples per batch.
        shuffle: reshuffle every epoch; with `seed` the order is deterministic.
        seed: makes shuffling (and `augment`, if seeded) repeatable.
        cache: `True` (in memory), `False`, or a file path prefix for an on-disk cache.
        batch: a function `ds -> batched ds` replacing `ds.batch(batch_size)`,
            e.g. padding each batch to its longest sequence.
        augment: a callable (such as `tfptm.data.augment.images()`) applied with
            `training=True` to each batch of features, for training data only:
            it stays out of the model and so out of every exported graph.

    Example:
    >>> import tensorflow as tf
    >>> ds = finish(tf.data.Dataset.range(5), 5, batch_size=2, shuffle=False)
    >>> [b.numpy().tolist() for b in ds]
    [[0, 1], [2, 3], [4]]
    """
    if isinstance(cache, str):
        ds = ds.cache(cache)
    elif cache:
        ds = ds.cache()
    if shuffle:
        ds = ds.shuffle(max(1, min(num_examples, 10_000)), seed=seed, reshuffle_each_iteration=True)
    ds = batch(ds) if batch is not None else ds.batch(batch_size)
    if augment is not None:
        if not callable(augment):
            raise TfptmError(f"augment must be a callable such as tfptm.data.augment.images(); got {augment!r}")
        # Seeded random layers draw from one state: parallel calls would hand the draws out in any order.
        parallel = None if seed is not None else tf.data.AUTOTUNE
        ds = ds.map(_augmenter(augment, ds.element_spec), num_parallel_calls=parallel)
    options = tf.data.Options()
    options.deterministic = seed is not None or not shuffle
    return ds.prefetch(tf.data.AUTOTUNE).with_options(options)


def _augmenter(augment, spec):
    if isinstance(spec, tuple):
        return lambda x, *rest: (augment(x, training=True), *rest)
    return lambda x: augment(x, training=True)


def trimmed_batches(x, y, batch_size=32, shuffle=True, seed=None, trim_labels=True):
    """Padded token arrays (a dict with `padding_mask`) and labels as batches cut to each batch's longest sequence.

    For token-level tasks, whose examples were packed and padded to the
    longest of the lot: each batch keeps only the columns its own examples
    use (`y` too when `trim_labels`, i.e. one label per token), so short
    sentences do not pay for the longest. With `shuffle`, examples are
    reshuffled each epoch, then sorted by length within pools of
    `POOL_BATCHES` batches so that a batch holds similar lengths, and the
    batches are shuffled again.

    Example:
    >>> import numpy as np
    >>> x = {"token_ids": np.array([[2, 5, 3, 0], [2, 5, 6, 3]]), "padding_mask": np.array([[1, 1, 1, 0], [1, 1, 1, 1]])}
    >>> [tuple(b[0]["token_ids"].shape) for b in trimmed_batches(x, np.zeros((2, 4)), batch_size=1, shuffle=False)]
    [(1, 3), (1, 4)]
    """
    if not isinstance(x, dict) or "padding_mask" not in x:
        raise TfptmError("trimmed_batches: expected a dict of padded token arrays with a padding_mask")
    lengths = tf.reduce_sum(tf.cast(tf.convert_to_tensor(x["padding_mask"]), tf.int32), axis=1)
    ds = tf.data.Dataset.from_tensor_slices((x, y, lengths))
    count = int(lengths.shape[0])

    def trim(features, labels, length):
        longest = tf.reduce_max(length)
        features = {key: value[:, :longest] for key, value in features.items()}
        return features, labels[:, :longest] if trim_labels else labels

    def sort_pool(features, labels, length):
        order = tf.argsort(length, stable=True)
        return tf.nest.map_structure(lambda t: tf.gather(t, order), (features, labels, length))

    def batch(ds):
        if shuffle:
            ds = ds.batch(POOL_BATCHES * batch_size).map(sort_pool).unbatch()
        ds = ds.batch(batch_size).map(trim)
        if shuffle:
            ds = ds.shuffle(POOL_BATCHES, seed=seed, reshuffle_each_iteration=True)
        return ds.apply(tf.data.experimental.assert_cardinality(-(-count // batch_size)))

    return finish(ds, count, batch_size, shuffle=shuffle, seed=seed, batch=batch)
