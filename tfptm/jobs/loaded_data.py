"""`LoadedData`: a recipe's data section loaded, whatever its source (what `tfptm.jobs.data.load_data` returns).

Example:
>>> import numpy as np, tfptm
>>> batches = tfptm.data.from_arrays(np.zeros((4, 2)), np.array([0, 1, 0, 1]), batch_size=2, shuffle=False)
>>> LoadedData(batches, None, batches, ["a", "b"], num_train=4, num_validation=0, num_test=4).summary()["num_test"]
4
"""

import dataclasses

import numpy as np
import tensorflow as tf

from tfptm.data.loaded import skip_summary
from tfptm.data.tagging import IGNORE
from tfptm.errors import TfptmError

PARITY_EXAMPLES = 1024  # pipeline examples an export's parity check (and int8 calibration) runs on; arrays: all


@dataclasses.dataclass
class LoadedData:
    """A data section loaded: batched `train`, optional `validation` and a fixed-order `test` pipeline.

    `x_train`... `y_test` hold the arrays for in-memory sources (else `None`);
    `tokenizer` is what turned text into token ids (else `None`); `skipped`
    lists the inputs the loaders left out (see `summary`). Made by `load_data`.

    Example:
    >>> import numpy as np, tfptm
    >>> batches = tfptm.data.from_arrays(np.zeros((4, 2)), np.array([0, 1, 0, 1]), batch_size=2, shuffle=False)
    >>> data = LoadedData(batches, None, batches, ["a", "b"], num_train=4, num_validation=0, num_test=4)
    >>> data.test_arrays()[0].shape, data.summary()["num_test"]
    ((4, 2), 4)
    """

    train: tf.data.Dataset
    validation: tf.data.Dataset | None
    test: tf.data.Dataset
    class_names: list
    num_train: int
    num_validation: int
    num_test: int
    source: str = ""
    skipped: list = dataclasses.field(default_factory=list)
    tokenizer: object = None
    x_train: object = None
    y_train: np.ndarray | None = None
    x_test: object = None
    y_test: np.ndarray | None = None
    test_texts: tuple | None = None  # raw test strings for the raw-string signature checks: (texts_a, texts_b) of
    # text pairs, (texts,) of tagged sentences (their words joined by spaces)
    test_table: object = None  # token classification: the test `TagTable` that `test_metrics` scores

    def summary(self):
        """A JSON-ready dict for summary.json: examples per split, class names and skipped inputs."""
        return {"source": self.source, "num_train": self.num_train, "num_validation": self.num_validation,
                "num_test": self.num_test, "class_names": list(self.class_names), **skip_summary(self.skipped)}

    def test_arrays(self, limit=PARITY_EXAMPLES):
        """The test examples as arrays `(x, y)` (a dict `x` for dict inputs), for export checks:
        all of them for array sources, else the first `limit` of the test pipeline."""
        if self.x_test is not None:
            return self.x_test, self.y_test
        return dataset_arrays(self.test, limit)

    def train_arrays(self, limit=PARITY_EXAMPLES):
        """Training examples as arrays, as `test_arrays`, for int8 calibration (`representative_data: train`)."""
        if self.x_train is not None:
            return self.x_train, self.y_train
        return dataset_arrays(self.train, limit)


def dataset_arrays(dataset, limit=PARITY_EXAMPLES):
    """The first `limit` examples of a batched `(x, y)` dataset as arrays.

    Batches padded to different lengths (text) are padded with zeros to the
    longest; a padding mask, where there is one, marks the padding as such.

    Example:
    >>> import tensorflow as tf
    >>> ds = tf.data.Dataset.from_tensor_slices(([[1, 2], [3, 0]], [0, 1])).batch(1)
    >>> x, y = dataset_arrays(ds)
    >>> x.tolist(), y.tolist()
    ([[1, 2], [3, 0]], [0, 1])
    """
    xs, ys, count = [], [], 0
    for x, y in dataset:
        xs.append(tf.nest.map_structure(lambda t: t.numpy(), x))
        ys.append(y.numpy())
        count += len(ys[-1])
        if count >= limit:
            break
    if isinstance(xs[0], dict):
        x = {key: _concat_padded([batch[key] for batch in xs]) for key in xs[0]}
    else:
        x = _concat_padded(xs)
    return _head(x, limit), _concat_padded(ys, IGNORE)[:limit]  # per-token labels: padding is IGNORE


def _concat_padded(arrays, value=0):
    if arrays[0].ndim >= 2 and len({a.shape[1:] for a in arrays}) > 1:
        longest = max(a.shape[1] for a in arrays)
        arrays = [np.pad(a, [(0, 0), (0, longest - a.shape[1])] + [(0, 0)] * (a.ndim - 2), constant_values=value)
                  for a in arrays]
    return np.concatenate(arrays)


def _head(x, limit):
    return {k: v[:limit] for k, v in x.items()} if isinstance(x, dict) else x[:limit]


# --- in-memory sources -------------------------------------------------------------------------------


def check_classes(class_names, where):
    """Raises a `TfptmError` unless the data has at least two classes: one class leaves nothing to learn.

    Example:
    >>> try:
    ...     check_classes(["spam"], "data.path 'mail.csv'")
    ... except TfptmError as error:
    ...     print(error)
    data.path 'mail.csv': every example has the label 'spam' (1 class); expected at least 2 classes
    """
    if len(class_names) < 2:
        found = f"the label {class_names[0]!r} (1 class)" if class_names else "no labels"
        raise TfptmError(f"{where}: every example has {found}; expected at least 2 classes")
