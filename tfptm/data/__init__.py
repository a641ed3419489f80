"""Data loaders and tf.data pipeline defaults (floor 1)."""

from tfptm.data.arrays import check_arrays, sample_per_class, select_classes, train_test_split
from tfptm.data.digits import DIGITS_PIXEL_MAX, load_digits
from tfptm.data import text
from tfptm.data.pipeline import from_arrays

__all__ = [
    "DIGITS_PIXEL_MAX",
    "check_arrays",
    "from_arrays",
    "load_digits",
    "sample_per_class",
    "select_classes",
    "text",
    "train_test_split",
]
