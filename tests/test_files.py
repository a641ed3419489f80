import os
import pytest

from tfptm.errors import TfptmError
from tfptm.files import staged_directory, write_json_atomic


def test_staged_directory_appears_only_when_complete(tmp_path):
    target = tmp_path / "run"
    with staged_directory(target) as staging:
        (staging / "a.txt").write_text("x")
        assert not target.exists()
    assert (target / "a.txt").read_text() == "x"
    assert [p.name for p in tmp_path.iterdir()] == ["run"]


def test_staged_directory_is_removed_on_error(tmp_path):
    with pytest.raises(RuntimeError):
        with staged_directory(tmp_path / "run") as staging:
            (staging / "half.txt").write_text("x")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_existing_nonempty_target_is_refused(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "keep").write_text("mine")
    with pytest.raises(TfptmError, match="already exists and is not empty"):
        with staged_directory(tmp_path / "run"):
            pass
    assert (tmp_path / "run" / "keep").read_text() == "mine"


def test_unwritable_parent_is_one_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(TfptmError, match="Cannot write"):
        write_json_atomic(blocker / "sub" / "summary.json", {})


def test_outputs_get_the_usual_permissions(tmp_path):
    """Readable by a model server running as another user, as a plain mkdir/open would make them (umask 022)."""
    import os
    import stat

    old = os.umask(0o022)
    try:
        with staged_directory(tmp_path / "run") as staging:
            write_json_atomic(staging / "summary.json", {})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "run").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "run" / "summary.json").stat().st_mode) == 0o644


def test_a_failed_staged_directory_removes_the_parents_it_created(tmp_path):
    from tfptm.files import staged_directory

    with pytest.raises(RuntimeError):
        with staged_directory(tmp_path / "runs" / "deeper" / "run") as staging:
            (staging / "half.txt").write_text("x")
            raise RuntimeError("crash")
    assert os.listdir(tmp_path) == []


def test_an_error_message_is_always_one_line():
    from tfptm.errors import TfptmError

    error = TfptmError("file could not be opened successfully:\n- method gz: ReadError('not a gzip file')\n- method bz2: ...")
    assert "\n" not in str(error) and str(error).startswith("file could not be opened successfully: - method gz")
