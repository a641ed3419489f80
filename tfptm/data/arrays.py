"""Checks and splits for in-memory NumPy data sets.

Features `x` are one array with a batch axis first, or a dict of such arrays
of equal length (the inputs of a multi-input model, such as KerasHub's
`{"token_ids", "padding_mask", "segment_ids"}`). Labels `y` are one label per
example: class ids `(n,)` or `(n, 1)`, or one row per example `(n, k)`.
"""

import numpy as np

from tfptm.errors import TfptmError


def check_arrays(x, y=None, where="arrays"):
    """Validates features (and labels) and returns them as NumPy arrays (a dict stays a dict).

    Raises `TfptmError` naming `where` (and the input, for a dict) for
    mismatched lengths, a missing batch axis, ragged rows, empty data or
    non-finite float features, and for labels of the wrong length or rank.

    Example:
    >>> import numpy as np
    >>> x, y = check_arrays({"token_ids": [[5, 6], [7, 0]], "padding_mask": [[1, 1], [1, 0]]}, [0, 1])
    >>> sorted(x), y.tolist()
    (['padding_mask', 'token_ids'], [0, 1])
    >>> check_arrays(np.zeros((3, 2)), np.zeros(4))
    Traceback (most recent call last):
    ...
    tfptm.errors.TfptmError: arrays: 3 feature rows but labels of shape (4,); expected one label per example
    """
    if isinstance(x, dict):
        if not x:
            raise TfptmError(f"{where}: features are an empty dict; expected at least one named input")
        x = {str(name): _check_features(value, f"{where}: input {name!r}") for name, value in x.items()}
        lengths = {name: len(value) for name, value in x.items()}
        if len(set(lengths.values())) > 1:
            raise TfptmError(f"{where}: inputs have different numbers of examples {lengths}; expected equal lengths")
    else:
        x = _check_features(x, where)
    if y is None:
        return x, None
    n = num_examples(x)
    y = _as_array(y, f"{where}: labels")
    if y.ndim < 1 or y.ndim > 2 or len(y) != n:
        raise TfptmError(
            f"{where}: {n} feature rows but labels of shape {y.shape}; expected one label per example"
            + (" (rank 1 or 2)" if y.ndim > 2 else "")
        )
    if np.issubdtype(y.dtype, np.floating) and not np.all(np.isfinite(y)):
        bad = int(np.flatnonzero(~np.isfinite(y.reshape(n, -1)).all(axis=1))[0])
        raise TfptmError(f"{where}: labels contain NaN or infinity (first at example {bad}); expected finite numbers")
    return x, y


def _as_array(value, where):
    try:
        array = np.asarray(value)
    except (ValueError, TypeError) as error:  # ragged nested lists
        raise TfptmError(f"{where}: cannot be made one array ({error}); expected rows of equal shape") from None
    if array.dtype == object and array.ndim >= 1 and any(isinstance(v, (list, tuple, np.ndarray)) for v in array.flat):
        raise TfptmError(f"{where}: rows have different shapes; expected rows of equal shape (pad them first)")
    return strings_for_keras(array, where)


def strings_for_keras(array, where="arrays"):
    """Text as Keras and TensorFlow take it: NumPy's fixed-width `str`/`bytes` arrays become object arrays of `str`.

    `model.predict` refuses `<U..` arrays ("Invalid dtype: str832"), which is
    what `np.array(list_of_strings)` gives; an object array of `str` becomes a
    `tf.string` tensor. Other arrays are returned unchanged.

    Example:
    >>> strings_for_keras(np.array(["a good film", "bad"])).dtype
    dtype('O')
    """
    if array.dtype.kind == "S":
        try:
            return np.vectorize(lambda b: b.decode("utf-8"), otypes=[object])(array)
        except UnicodeDecodeError as error:
            raise TfptmError(f"{where}: bytes that are not UTF-8 ({error.reason}); expected text") from None
    return array.astype(object) if array.dtype.kind == "U" else array


def _check_features(x, where):
    x = _as_array(x, where)
    if x.ndim < 1:
        raise TfptmError(f"{where}: features have shape {x.shape}, no batch axis; expected shape (examples, ...)")
    if len(x) == 0 or x.size == 0:
        raise TfptmError(f"{where}: features are empty (shape {x.shape}); expected at least one example")
    if np.issubdtype(x.dtype, np.floating) and not np.all(np.isfinite(x)):
        bad = int(np.flatnonzero(~np.isfinite(x.reshape(len(x), -1)).all(axis=1))[0])
        raise TfptmError(f"{where}: features contain NaN or infinity (first at example {bad}); expected finite numbers")
    return x


def num_examples(x):
    """The number of examples in checked features (an array or a dict of arrays)."""
    return len(next(iter(x.values()))) if isinstance(x, dict) else len(x)


def take(x, index):
    """Rows `index` of an array or of every array in a dict."""
    return {name: value[index] for name, value in x.items()} if isinstance(x, dict) else x[index]


def select_classes(x, y, classes):
    """Keeps the examples whose label is in `classes`, relabelled `0..len(classes)-1`.

    Example:
    >>> import numpy as np
    >>> x, y = select_classes(np.arange(6), np.array([5, 0, 7, 5, 1, 7]), [5, 7])
    >>> x.tolist(), y.tolist()
    ([0, 2, 3, 5], [0, 1, 0, 1])
    """
    x, y = check_arrays(x, y)
    classes = list(classes)
    missing = [c for c in classes if not np.any(y == c)]
    if missing:
        raise TfptmError(f"select_classes: no examples of classes {missing}; labels present are {sorted(set(y.tolist()))}")
    keep = np.isin(y, classes)
    remap = {c: i for i, c in enumerate(classes)}
    return take(x, keep), np.array([remap[v] for v in y[keep]], dtype="int32")


def sample_per_class(x, y, per_class, seed=0):
    """Splits off `per_class` random examples of every class.

    Returns `((x_sampled, y_sampled), (x_rest, y_rest))`; the sample is what a
    few-shot learner sees, the rest can serve as a held-out test set.

    Example:
    >>> import numpy as np
    >>> (xs, ys), (xr, yr) = sample_per_class(np.arange(6), np.array([0, 0, 0, 1, 1, 1]), 2, seed=0)
    >>> np.bincount(ys).tolist(), len(xr)
    ([2, 2], 2)
    """
    x, y = check_arrays(x, y)
    rng = np.random.default_rng(seed)
    chosen = []
    for label in np.unique(y):
        idx = np.flatnonzero(y == label)
        if len(idx) < per_class:
            raise TfptmError(f"sample_per_class: class {label} has {len(idx)} examples; asked for {per_class}")
        chosen.extend(rng.choice(idx, size=per_class, replace=False))
    chosen = np.sort(np.array(chosen, dtype=int))
    rest = np.setdiff1d(np.arange(len(y)), chosen)
    return (take(x, chosen), y[chosen]), (take(x, rest), y[rest])


def split_indices(labels, test_fraction=0.2, seed=0, where="train_test_split"):
    """Stratified `(train_indices, test_indices)` for `labels`, the same for the same seed.

    Every class needs at least one example on each side; otherwise a
    `TfptmError` says which class is too small.

    Example:
    >>> train, test = split_indices([0, 0, 0, 0, 1, 1, 1, 1], test_fraction=0.25, seed=0)
    >>> len(train), len(test)
    (6, 2)
    """
    from sklearn.model_selection import train_test_split as _split

    labels = np.asarray(labels)
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, (int, float)) or not 0.0 < test_fraction < 1.0:
        raise TfptmError(f"{where}: test_fraction is {test_fraction!r}; expected a number between 0 and 1")
    stratify = labels if labels.ndim == 1 and np.issubdtype(labels.dtype, np.integer) else None  # class ids only
    if stratify is not None:
        values, counts = np.unique(labels, return_counts=True)
        n_test = int(np.ceil(test_fraction * len(labels)))
        if counts.min() < 2 or n_test < len(values) or len(labels) - n_test < len(values):
            small = values[int(np.argmin(counts))]
            raise TfptmError(
                f"{where}: cannot split {len(labels)} examples of {len(values)} classes with test_fraction="
                f"{test_fraction} so that every class is on both sides (class {small!r} has {counts.min()}); "
                "expected more examples per class or another fraction"
            )
    train, test = _split(np.arange(len(labels)), test_size=test_fraction, random_state=seed, stratify=stratify)
    return np.sort(train), np.sort(test)


def train_test_split(x, y, test_fraction=0.2, seed=0):
    """Stratified split into `((x_train, y_train), (x_test, y_test))` with a fixed seed.

    Example:
    >>> import numpy as np
    >>> (x_tr, y_tr), (x_te, y_te) = train_test_split(np.arange(10), np.arange(10) % 2, test_fraction=0.2)
    >>> len(x_tr), sorted(y_te.tolist())
    (8, [0, 1])
    """
    x, y = check_arrays(x, y, where="train_test_split")
    train, test = split_indices(y, test_fraction, seed)
    return (take(x, train), y[train]), (take(x, test), y[test])
