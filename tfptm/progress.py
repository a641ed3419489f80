"""One-line status messages with elapsed time, for long-running commands."""

import sys
import time


class Progress:
    """Prints `[  12.3s] message` lines to `stream` (stderr by default, so stdout stays for results).

    Example:
    >>> import io
    >>> progress = Progress(io.StringIO())
    >>> progress("loading data")
    """

    def __init__(self, stream=None, enabled=True):
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.start = time.monotonic()

    def elapsed(self):
        return time.monotonic() - self.start

    def __call__(self, message):
        if self.enabled:
            print(f"[{self.elapsed():7.1f}s] {message}", file=self.stream, flush=True)
