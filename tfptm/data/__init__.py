"""Data loaders and tf.data pipeline defaults (floor 1).

Loaders check their input first: bad input is one `TfptmError` naming the
file (or line) and what is wrong, or a counted skip (`Loaded.summary()`,
`TextTable.summary()`) that `strict=True` turns into an error.
"""

from tfptm.data import augment, corpus, text
from tfptm.data.arrays import check_arrays, sample_per_class, select_classes, split_indices, train_test_split
from tfptm.data.catalog import prepared_dir, tfds_dataset
from tfptm.data.corpus import read_corpus
from tfptm.data.digits import DIGITS_PIXEL_MAX, load_digits
from tfptm.data.images import check_input_shape, image_folder
from tfptm.data.loaded import Loaded, Skip
from tfptm.data.pipeline import finish, from_arrays
from tfptm.data.reviews import load_reviews
from tfptm.data.sequences import check_tokenizer, text_batches, text_dataset
from tfptm.data.tables import TextTable, read_text_table

__all__ = [
    "DIGITS_PIXEL_MAX",
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
    "load_digits",
    "load_reviews",
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
