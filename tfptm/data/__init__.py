"""Data loaders and tf.data pipeline defaults (floor 1).

Loaders check their input first: bad input is one `TfptmError` naming the
file (or line) and what is wrong, or a counted skip (`Loaded.summary()`,
`TextTable.summary()`) that `strict=True` turns into an error.
"""

from tfptm.data import augment, corpus, text
from tfptm.data.arrays import check_arrays, sample_per_class, select_classes, split_indices, train_test_split
from tfptm.data.catalog import prepared_dir, tfds_dataset
from tfptm.data.corpus import read_corpus
from tfptm.data.images import check_input_shape, image_folder
from tfptm.data.loaded import Loaded, Skip
from tfptm.data.pipeline import finish, from_arrays
from tfptm.data.sequences import check_tokenizer, text_batches, text_dataset
from tfptm.data.tables import TextTable, read_text_table

__all__ = [
    "Loaded",
    "Skip",
    "TextTable",
    "augment",
    "check_arrays",
    "check_input_shape",
    "check_tokenizer",
    "corpus",
    "finish",
    "from_arrays",
    "image_folder",
    "prepared_dir",
    "read_corpus",
    "read_text_table",
    "sample_per_class",
    "select_classes",
    "split_indices",
    "tfds_dataset",
    "text",
    "text_batches",
    "text_dataset",
    "train_test_split",
]

#: names that moved to `tfptm.datasets` (demo data, not loaders); kept here for one release.
_MOVED = {"load_digits": "tfptm.datasets", "DIGITS_PIXEL_MAX": "tfptm.datasets", "load_reviews": "tfptm.datasets"}


def __getattr__(name):
    if name in _MOVED:
        from tfptm._moved import moved_attribute

        return moved_attribute(f"tfptm.data.{name}", _MOVED[name], name)
    raise AttributeError(f"module 'tfptm.data' has no attribute {name!r}")
