"""Checks and splits for in-memory NumPy data sets."""

import numpy as np

from tfptm.errors import TfptmError


def check_arrays(x, y=None, where="arrays"):
    """Validates features (and labels) and returns them as NumPy arrays.

    Raises `TfptmError` naming `where` for mismatched lengths, a missing batch
    axis, empty data or non-finite float features.
    """
    x = np.asarray(x)
    if x.ndim < 1 or len(x) == 0:
        raise TfptmError(f"{where}: features are empty (shape {x.shape}); expected at least one example")
    if np.issubdtype(x.dtype, np.floating) and not np.all(np.isfinite(x)):
        bad = int(np.flatnonzero(~np.isfinite(x.reshape(len(x), -1)).all(axis=1))[0])
        raise TfptmError(f"{where}: features contain NaN or infinity (first at example {bad}); expected finite numbers")
    if y is None:
        return x, None
    y = np.asarray(y)
    if y.ndim < 1 or len(y) != len(x):
        raise TfptmError(
            f"{where}: {len(x)} feature rows but labels of shape {y.shape}; expected one label per example"
        )
    return x, y


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
    return x[keep], np.array([remap[v] for v in y[keep]], dtype="int32")


def sample_per_class(x, y, per_class, seed=0):
    """Splits off `per_class` random examples of every class.

    Returns `((x_sampled, y_sampled), (x_rest, y_rest))`; the sample is what a
    few-shot learner sees, the rest can serve as a held-out test set.
    """
    x, y = check_arrays(x, y)
    rng = np.random.default_rng(seed)
    chosen = []
    for label in np.unique(y):
        idx = np.flatnonzero(y == label)
        if len(idx) < per_class:
            raise TfptmError(f"sample_per_class: class {label} has {len(idx)} examples; asked for {per_class}")
        chosen.extend(rng.choice(idx, size=per_class, replace=False))
    chosen = np.sort(np.array(chosen))
    rest = np.setdiff1d(np.arange(len(y)), chosen)
    return (x[chosen], y[chosen]), (x[rest], y[rest])


def train_test_split(x, y, test_fraction=0.2, seed=0):
    """Stratified split into `((x_train, y_train), (x_test, y_test))` with a fixed seed."""
    from sklearn.model_selection import train_test_split as _split

    x, y = check_arrays(x, y)
    if not 0.0 < test_fraction < 1.0:
        raise TfptmError(f"train_test_split: test_fraction is {test_fraction}; expected a number between 0 and 1")
    x_tr, x_te, y_tr, y_te = _split(x, y, test_size=test_fraction, random_state=seed, stratify=y)
    return (x_tr, y_tr), (x_te, y_te)
