"""Writing files and directories so that readers never see them half-written."""

import contextlib
import fcntl
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
    with created_parents(final_path, what):
        staging = Path(tempfile.mkdtemp(dir=final_path.parent, prefix=f".{final_path.name}.partial-"))
        _usual_mode(staging, directory=True)
        try:
            yield staging
            if final_path.exists():
                final_path.rmdir()
            os.rename(staging, final_path)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise


@contextlib.contextmanager
def created_parents(path, what="output directory"):
    """Creates the missing parents of `path`; if the block fails, removes those it created (when still empty).

    So an error leaves no empty `runs/` (or deeper) directory behind.
    """
    path = Path(path)
    missing = [p for p in reversed(path.parents) if not p.exists()]
    ensure_writable_dir(path.parent, what=f"parent of the {what}")
    try:
        yield path.parent
    except BaseException:
        for created in reversed(missing):
            with contextlib.suppress(OSError):
                created.rmdir()  # only if empty: never removes anything another writer put there
        raise


_HELD_LOCKS = {}
COMMITTED = ".committed"


@contextlib.contextmanager
def exclusive_lock(path, what):
    """Holds an exclusive `flock` on file `path` for the block; another process holding it is a `TfptmError`.

    The kernel releases the lock when its process dies, so a held lock proves
    a live writer and a free one proves that no process is writing.
    Re-entrant within one process.
    """
    path = Path(path).absolute()
    if path in _HELD_LOCKS:
        yield
        return
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise TfptmError(f"{what}: another process is writing it (it holds {str(path)!r}); expected one writer at a time") from None
        _HELD_LOCKS[path] = handle
        try:
            yield
        finally:
            del _HELD_LOCKS[path]


@contextlib.contextmanager
def staged_group(directory, name, what="export", debris=()):
    """Yields a hidden staging directory whose contents all appear in `directory` together, on success only.

    For artifacts that must stay in step (a SavedModel version, TFLite files
    and the sidecar files describing them): fill the staging directory as
    `directory` should look (e.g. `stage / "model" / "3" / ...`,
    `stage / "model.dynamic.tflite"`), and on success every entry is renamed
    into `directory` (directories first, then files by name). An exception
    leaves nothing in `directory`.

    The block holds the lock `<directory>/.<name>.lock`, so one writer per
    `name` at a time. On entry, staging directories of `name` left by killed
    processes are dealt with: one killed while renaming (it holds the
    `.committed` mark) is finished, any other is removed, as are older
    leftovers matching the glob patterns `debris` (relative to `directory`).
    """
    directory = Path(directory)
    lock = directory / f".{name}.lock"
    fresh = not directory.exists()
    with created_parents(directory / name, what), _removed_on_error(lock if fresh else None):
        with exclusive_lock(lock, f"{what} {str(directory / name)!r}"):
            for stale in sorted(directory.glob(f".{name}.group.partial-*")):
                if (stale / COMMITTED).is_file():
                    with contextlib.suppress(OSError):
                        _merge(stale, directory)
                _remove(stale)
            for pattern in debris:
                for stale in directory.glob(pattern):
                    if ".group.partial-" not in stale.name:  # another name's staging: its own lock guards it
                        _remove(stale)
            staging = Path(tempfile.mkdtemp(dir=directory, prefix=f".{name}.group.partial-"))
            _usual_mode(staging, directory=True)
            try:
                yield staging
                (staging / COMMITTED).touch()
                _merge(staging, directory)
            finally:
                _remove(staging)


@contextlib.contextmanager
def _removed_on_error(path):
    try:
        yield
    except BaseException:
        if path is not None:
            _remove(path)
        raise


def _merge(source, target):
    """Renames every entry of `source` into `target`; directories that exist in both are merged."""
    entries = sorted(source.iterdir(), key=lambda p: (not p.is_dir(), p.name))
    for entry in entries:
        if entry.name == COMMITTED:
            continue
        destination = target / entry.name
        if entry.is_dir() and destination.is_dir():
            _merge(entry, destination)
        elif entry.is_dir() and destination.exists():
            raise TfptmError(f"{str(destination)!r} exists and is not a directory; expected a directory there")
        else:
            os.replace(entry, destination)  # a directory only moves onto a free name (or an empty directory)


def _remove(path):
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink()


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
