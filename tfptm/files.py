"""Writing files and directories so that readers never see them half-written."""

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from tfptm.errors import TfptmError


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _usual_mode(path, directory):
    """Gives `path` the mode a plain `open`/`mkdir` would have had.

    `tempfile` creates its files 0600 and directories 0700, which would leave
    exported models unreadable to a model server running as another user.
    """
    os.chmod(path, (0o777 if directory else 0o666) & ~_umask())


def ensure_writable_dir(path, what="output directory"):
    """Creates `path` (and parents) or raises one clear error saying why it can't be written."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=path, prefix=".tfptm-probe-")
        probe.close()
    except OSError as error:
        raise TfptmError(f"Cannot write {what} {str(path)!r}: {error.strerror or error}") from None
    return path


@contextlib.contextmanager
def staged_directory(final_path, what="output directory"):
    """Yields a hidden sibling directory to fill; renames it to `final_path` only on success.

    A crash or an exception leaves nothing at `final_path` (and the staging
    directory is removed), so a reader polling the parent, such as TF Serving
    watching its model base, never sees a half-written directory. Staging
    names start with a dot, which TF Serving and tfptm ignore.
    """
    final_path = Path(final_path)
    if final_path.exists() and (not final_path.is_dir() or any(final_path.iterdir())):
        raise TfptmError(f"{what} {str(final_path)!r} already exists and is not empty; choose another path")
    parent = ensure_writable_dir(final_path.parent, what=f"parent of the {what}")
    staging = Path(tempfile.mkdtemp(dir=parent, prefix=f".{final_path.name}.partial-"))
    _usual_mode(staging, directory=True)
    try:
        yield staging
        if final_path.exists():
            final_path.rmdir()
        os.rename(staging, final_path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def write_bytes_atomic(path, data):
    """Writes `data` to `path` through a temporary file in the same directory and a rename."""
    path = Path(path)
    ensure_writable_dir(path.parent, what=f"directory for {path.name}")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.partial-")
    try:
        _usual_mode(tmp, directory=False)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    return path


def write_text_atomic(path, text):
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path, obj):
    return write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def directory_size(path):
    """Total bytes of the files under `path` (or of the file itself)."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
