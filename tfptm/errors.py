"""The one exception type tfptm raises for problems with what the user gave it."""


class TfptmError(ValueError):
    """A user error: bad input, a missing file, an offline download, a bad recipe.

    The message says what was wrong, where, and what was expected. The CLI
    prints it as one line and exits with status 2; Python callers can catch it
    (or `ValueError`, which it subclasses).
    """

    exit_code = 2

    def __init__(self, message=""):
        # One line whatever was quoted into it (a library's multi-line message, a path with a newline).
        super().__init__(" ".join(str(message).split()))


def one_line(error, limit=300):
    """An exception's message on one line, cut to `limit` characters, to quote inside a `TfptmError`.

    Example:
    >>> one_line(ValueError("Bad file.\\n  Details follow."))
    'Bad file. Details follow.'
    """
    return " ".join(str(error).split())[:limit]
