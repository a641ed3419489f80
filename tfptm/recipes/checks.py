"""Value checks for recipe fields: each returns the value (normalized) or raises `Invalid`.

Plain Python, no TensorFlow: recipes are validated before any work starts.

Example:
>>> positive_int(3)
3
>>> try:
...     positive_int("ten")
... except Invalid as error:
...     error.expected
'a positive integer'
"""

import difflib
import math
import re


class Invalid(Exception):
    """A value that does not fit its field: `expected` says what would, `hint` may suggest a fix."""

    def __init__(self, expected, hint=""):
        super().__init__(expected)
        self.expected = expected
        self.hint = hint


def show(value, limit=60):
    """A short, one-line rendering of a user's value for error messages.

    >>> show("ten"), show(None), show(True)
    ("'ten'", 'null', 'true')
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    text = " ".join(repr(value).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check(expected, ok, convert=lambda value: value):
    def run(value):
        if not ok(value):
            raise Invalid(expected)
        return convert(value)

    run.expected = expected
    return run


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


# PyYAML follows YAML 1.1, which reads `1e-4` (no dot) as text; numbers accept it.
_EXPONENT = re.compile(r"^[-+]?\d+(\.\d*)?[eE][-+]?\d+$")


def _number(value):
    if isinstance(value, str) and _EXPONENT.match(value.strip()):
        value = float(value)
    if _is_int(value) and abs(value) < 2**63:
        return float(value)
    if isinstance(value, float) and math.isfinite(value):
        return value
    return None


def _number_check(expected, ok):
    def run(value):
        number = _number(value)
        if number is None or not ok(number):
            raise Invalid(expected)
        return number

    run.expected = expected
    return run


positive_int = _check("a positive integer", lambda v: _is_int(v) and v >= 1)
non_negative_int = _check("an integer >= 0", lambda v: _is_int(v) and v >= 0)
positive_number = _number_check("a positive number", lambda v: v > 0)
non_negative_number = _number_check("a number >= 0", lambda v: v >= 0)
rate = _number_check("a number in [0, 1)", lambda v: 0 <= v < 1)
open_fraction = _number_check("a number between 0 and 1 (exclusive)", lambda v: 0 < v < 1)
weight = _number_check("a number in [0, 1]", lambda v: 0 <= v <= 1)
decay = _number_check("a number in (0, 1]", lambda v: 0 < v <= 1)
boolean = _check("true or false", lambda v: isinstance(v, bool))
text = _check("a non-empty string", lambda v: isinstance(v, str) and v.strip() != "")
any_text = _check("a string", lambda v: isinstance(v, str))

# A name that becomes a directory or file name (run directories, SavedModel model directories, TFLite
# stems) and a Keras model name: letters, digits, `_`, `-`, `.` and inner spaces; no separators, so no escape.
_PLAIN_NAME = re.compile(r"^\w(?:[\w .-]{0,98}[\w.-])?$")
plain_name = _check(
    "a plain name (letters, digits, '_', '-', '.', inner spaces; not starting with '.', no '/'; at most 100 characters)",
    lambda v: isinstance(v, str) and bool(_PLAIN_NAME.fullmatch(v)),
)


def optional(check):
    """`check`, or null."""

    def run(value):
        if value is None:
            return None
        try:
            return check(value)
        except Invalid as invalid:
            raise Invalid(_or_null(invalid.expected), invalid.hint) from None

    run.expected = _or_null(check.expected)
    return run


def _or_null(expected):
    return f"{expected}, or null" if "," in expected else f"{expected} or null"


def choice(*options):
    """One of `options` (strings); a near miss gets a "did you mean".

    >>> choice("full", "partial")("full")
    'full'
    """

    def run(value):
        if value in options and isinstance(value, str):
            return value
        close = difflib.get_close_matches(value, options, n=1) if isinstance(value, str) else []
        raise Invalid(f"one of {', '.join(map(repr, options))}", f"did you mean {close[0]!r}?" if close else "")

    run.expected = f"one of {', '.join(map(repr, options))}"
    return run


def list_of(check, length=None, unique=False):
    """A list whose items pass `check`; returned as a tuple. A scalar is not promoted to a list."""
    expected = f"a list of {length or ''} items, each {check.expected}".replace("  ", " ")

    def run(value):
        if not isinstance(value, list) or (length and len(value) != length):
            raise Invalid(expected)
        try:
            items = tuple(check(item) for item in value)
        except Invalid:
            raise Invalid(expected) from None
        if unique and len(set(items)) != len(items):
            raise Invalid(f"{expected}, without repeats")
        return items

    run.expected = expected
    return run


_SCALARS = (str, int, float, bool, type(None))


def _plain(value, depth=0):
    """True for YAML scalars and (shallowly) nested lists of them: what keyword arguments can hold."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, _SCALARS):
        return True
    return isinstance(value, list) and depth < 2 and all(_plain(item, depth + 1) for item in value)


def keyword_arguments(value):
    """A mapping of names to scalars or lists of scalars (keyword arguments for a builder)."""
    expected = "a mapping of names to numbers, strings, booleans or lists of them"
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and k.isidentifier() for k in value):
        raise Invalid(expected)
    if not all(_plain(v) for v in value.values()):
        raise Invalid(expected)
    return dict(value)


keyword_arguments.expected = "a mapping of names to numbers, strings, booleans or lists of them"
non_negative_int_list = list_of(non_negative_int, unique=True)
