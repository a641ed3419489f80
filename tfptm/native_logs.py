"""Keeps TensorFlow's C++ log lines off a command's standard error, where users read them as errors.

TensorFlow 2.21 writes its C++ (absl) log lines straight to file descriptor 2
before any log level applies, so `TF_CPP_MIN_LOG_LEVEL` does not hide them:
on a CPU machine every command printed `failed call to cuInit ... (303)`,
`Could not find cuda drivers` and oneDNN notices. `filter_native_logs`
routes descriptor 2 through a pipe and forwards every line except those, so
tfptm's own messages, Python warnings and tracebacks still reach the terminal.
Fatal (`F`) lines always pass.
"""

import atexit
import os
import re
import sys
import threading

# An absl/glog line: severity letter I, W or E, date, time, thread id, file:line]
NATIVE_LINE = re.compile(rb"^[IWE]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ [\w./-]+:\d+\] ")
NOISE = (
    re.compile(rb"^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"),
    re.compile(rb"^To enable the following instructions: .* rebuild TensorFlow with the appropriate compiler flags\."),
)


def is_native_log(line):
    """True for a TensorFlow C++ log line (or absl's preamble) that `filter_native_logs` drops.

    Example:
    >>> is_native_log(b"E0000 00:00:1796081482.218694   13291 cuda_platform.cc:52] failed call to cuInit")
    True
    >>> is_native_log(b"[    0.0s] reading data (csv)"), is_native_log(b"F0000 00:00:1.2 1 x.cc:1] fatal")
    (False, False)
    """
    return bool(NATIVE_LINE.match(line)) or any(pattern.match(line) for pattern in NOISE)


def filter_native_logs():
    """Drops TensorFlow's C++ log lines from this process's standard error from now on (once per process)."""
    if getattr(filter_native_logs, "active", False):
        return
    try:
        sys.stderr.flush()
        terminal = os.dup(2)
        read_end, write_end = os.pipe()
        os.dup2(write_end, 2)
        os.close(write_end)
    except OSError:  # no descriptor 2 to filter (e.g. closed): nothing to do
        return
    filter_native_logs.active = True

    def forward():
        with os.fdopen(read_end, "rb", buffering=0) as pipe:
            pending = b""
            while chunk := pipe.read(65536):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                kept = b"".join(line + b"\n" for line in lines if not is_native_log(line))
                if kept:
                    os.write(terminal, kept)
            if pending and not is_native_log(pending):
                os.write(terminal, pending)

    thread = threading.Thread(target=forward, name="tfptm-native-logs", daemon=True)
    thread.start()

    def drain():
        sys.stderr.flush()
        os.dup2(terminal, 2)  # closes the pipe's last write end: the thread reads to the end
        thread.join(timeout=5)

    atexit.register(drain)
