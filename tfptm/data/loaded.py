"""What a loader returns: the datasets, the class names and what it skipped, ready for summary.json."""

import dataclasses

import tensorflow as tf

from tfptm.errors import TfptmError


@dataclasses.dataclass(frozen=True)
class Skip:
    """One input a loader left out: where it is (a file, or `file:line`) and why."""

    where: str
    reason: str


@dataclasses.dataclass
class Loaded:
    """A loaded data set: batched `train` (and `validation`) datasets plus what was read and skipped.

    Attributes:
        train: batched `(features, labels)` for training, shuffled and augmented as asked.
        validation: batched, in a fixed order and never augmented; `None` without a split.
        class_names: label `i` is `class_names[i]`.
        num_train, num_validation: examples in each.
        skipped: the `Skip`s (bad files or rows) left out; see `summary()`.

    Example:
    >>> import tensorflow as tf
    >>> loaded = Loaded(tf.data.Dataset.range(2), None, ["a", "b"], 2, 0, [Skip("x.jpg", "not an image")])
    >>> loaded.summary()["num_skipped"], loaded.summary()["skipped"][0]["where"]
    (1, 'x.jpg')
    """

    train: tf.data.Dataset
    validation: tf.data.Dataset | None
    class_names: list
    num_train: int
    num_validation: int
    skipped: list = dataclasses.field(default_factory=list)

    @property
    def num_classes(self):
        return len(self.class_names)

    def summary(self):
        """A JSON-ready dict of counts and skips for a run's summary.json."""
        return {
            "num_train": self.num_train,
            "num_validation": self.num_validation,
            "class_names": list(self.class_names),
            **skip_summary(self.skipped),
        }


def skip_summary(skipped):
    """Counts of skipped inputs, in total and by reason, and the list itself, as JSON-ready values.

    Example:
    >>> skip_summary([Skip("a.png", "corrupt"), Skip("b.png", "corrupt")])["skipped_by_reason"]
    {'corrupt': 2}
    """
    by_reason = {}
    for skip in skipped:
        by_reason[skip.reason] = by_reason.get(skip.reason, 0) + 1
    return {
        "num_skipped": len(skipped),
        "skipped_by_reason": by_reason,
        "skipped": [dataclasses.asdict(skip) for skip in skipped],
    }


def skip_or_raise(skipped, where, reason, strict, what="input"):
    """Records a `Skip`, or with `strict=True` raises a `TfptmError` naming the input and the problem."""
    if strict:
        raise TfptmError(f"{where}: {reason}; expected a valid {what} (strict=True makes every bad {what} an error)")
    skipped.append(Skip(str(where), reason))
