"""Small real data sets for demos, tests and benchmarks: data, not loaders (those are in `tfptm.data`).

`digits`: scikit-learn's 8x8 handwritten digits (the digits quickstart and tests).
`reviews`: GENERATED short reviews with disjoint train/test vocabulary (tests and benchmarks only).
`docstrings`: text classification tasks read from the docstrings of the
Python standard library and of installed packages (text nobody on this
project wrote, on every machine that has tfptm's dependencies).
"""

from tfptm.datasets.digits import DIGITS_PIXEL_MAX, load_digits
from tfptm.datasets.docstrings import TASKS, TextTask, docstring_task, docstrings, paragraphs
from tfptm.datasets.reviews import load_reviews

__all__ = ["DIGITS_PIXEL_MAX", "TASKS", "TextTask", "docstring_task", "docstrings", "load_digits", "load_reviews",
           "paragraphs"]
