"""A file given as a hub archive that is not one is refused in one line naming it (issue 16, class 5)."""

import bz2
import gzip
import io
import lzma
import tarfile

import numpy as np
import pytest
import tensorflow as tf

import tfptm
from tfptm.backbones import hub
from tfptm.errors import TfptmError


class Double(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x")])
    def __call__(self, x):
        return 2.0 * x


@pytest.fixture(scope="module")
def saved_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("hub") / "double"
    tf.saved_model.save(Double(), str(path))
    return path


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _tar_bytes(entries, mode="w:gz"):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as tar:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


_BIG = _tar_bytes([("m/saved_model.pb", np.random.default_rng(0).bytes(20000))])

CASES = {
    # name: (file name, bytes, what the one line must say)
    "text": ("notes.tar.gz", b"these are notes, not an archive\n" * 4, "not a tar archive"),
    "empty": ("empty.tgz", b"", "an empty file, not a tar archive"),
    "gzipped text": ("text.tar.gz", gzip.compress(b"hello\n" * 100), "gzip-compressed, but not a tar archive inside"),
    "bzipped text": ("text.tar.gz", bz2.compress(b"hello\n" * 100), "bzip2-compressed, but not a tar archive"),
    "xz text": ("text.tgz", lzma.compress(b"hello\n" * 100), "xz-compressed, but not a tar archive"),
    "plain .tar of text": ("model.tar", b"x" * 700, "not a tar archive"),
    "truncated": ("cut.tar.gz", _BIG[: len(_BIG) // 2], "truncated or corrupt"),
    "no SavedModel": ("other.tar.gz", _tar_bytes([("README", b"hi"), ("a/b/saved_model.pb", b"x")]), "holds no SavedModel"),
    "no members": ("none.tar.gz", _tar_bytes([]), r"holds no SavedModel \(no members"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_file_that_is_not_a_savedmodel_archive_is_one_line_naming_it(tmp_path, cache, case):
    name, data, says = CASES[case]
    path = tmp_path / name
    path.write_bytes(data)
    for load in (hub.resolve, tfptm.backbones.get):
        with pytest.raises(TfptmError) as error:
            load(str(path))
        message = str(error.value)
        assert "\n" not in message and "method gz" not in message and "bz2" not in message, message
        assert str(path) in message and "expected a" in message and ".tar.gz of a SavedModel" in message
        assert __import__("re").search(says, message), message
    assert not cache.exists() or list(cache.iterdir()) == []  # nothing extracted, no staging left


@pytest.mark.parametrize("suffix, mode", [(".tar", "w"), (".tgz", "w:gz"), (".tar.gz", "w:bz2")])
def test_real_archives_of_a_savedmodel_load_whatever_their_compression(saved_dir, tmp_path, cache, suffix, mode):
    archive = tmp_path / f"double{suffix}"
    with tarfile.open(archive, mode) as tar:
        tar.add(saved_dir, arcname="double")
    assert hub.matches(str(archive))
    backbone = tfptm.backbones.get(str(archive))
    np.testing.assert_allclose(backbone.predict(np.ones((2, 3), "float32"), verbose=0), 2.0)
