"""Small real data sets for demos, tests and benchmarks: data, not loaders (those are in `tfptm.data`).

`docstrings`: text classification tasks read from the docstrings of the
Python standard library and of installed packages (text nobody on this
project wrote, on every machine that has tfptm's dependencies).
"""

from tfptm.datasets.docstrings import TASKS, TextTask, docstring_task, docstrings, paragraphs

__all__ = ["TASKS", "TextTask", "docstring_task", "docstrings", "paragraphs"]
