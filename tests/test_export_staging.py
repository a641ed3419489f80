"""One export is all-or-nothing: inputs are checked first, every artifact appears together, debris of killed exports goes."""

import contextlib
import io
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import tfptm
from conftest import assert_no_partial
from tfptm.cli import main
from tfptm.errors import TfptmError


def _visible(directory):
    """What a server or a user listing `directory` sees: everything not hidden, recursively."""
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if not any(part.startswith(".") for part in p.relative_to(directory).parts))


@pytest.fixture
def run(tiny_classifier, digit_batch, tmp_path):
    """A run directory (model.keras + representative.npy) exported once: version 1 and its files."""
    run = tmp_path / "run"
    run.mkdir()
    tiny_classifier.save(run / "model.keras")
    np.save(run / "representative.npy", digit_batch[0][:16])
    tfptm.export.export_run(run, tmp_path / "export", "digits")
    return run


def _cli(*argv):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        status = main(list(argv))
    return status, err.getvalue()


@pytest.mark.parametrize("bad", [
    np.zeros((4, 9, 9, 1), "float32"),     # wrong example shape
    np.zeros((4, 8, 8), "float32"),        # wrong rank
    np.array(["a", "b"]),                  # text for an image model
    np.zeros((0, 8, 8, 1), "float32"),     # empty
])
def test_a_bad_representative_file_is_one_error_and_nothing_is_written(run, tmp_path, bad):
    before = _visible(tmp_path / "export")
    record = (tmp_path / "export" / "digits.export.json").read_text()
    np.save(tmp_path / "bad.npy", bad)
    status, err = _cli("export", str(run), "--out", str(tmp_path / "export"), "--name", "digits",
                       "--representative", str(tmp_path / "bad.npy"), "--quantize", "dynamic,int8")
    assert status == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert "representative data" in err or "Representative data" in err
    assert _visible(tmp_path / "export") == before and tfptm.export.existing_versions(tmp_path / "export" / "digits") == [1]
    assert (tmp_path / "export" / "digits.export.json").read_text() == record
    assert_no_partial(tmp_path / "export") and assert_no_partial(tmp_path / "export" / "digits")


def test_a_failure_after_the_saved_model_leaves_no_new_version_and_an_unchanged_record(run, tmp_path, monkeypatch):
    import tfptm.export.exporter as export_run

    def crash(*args, **kwargs):
        raise RuntimeError("killed during TFLite conversion")

    before = {p: (tmp_path / "export" / p).read_bytes() for p in _visible(tmp_path / "export") if (tmp_path / "export" / p).is_file()}
    monkeypatch.setattr(export_run, "write_tflite", crash)
    with pytest.raises(RuntimeError, match="TFLite conversion"):
        tfptm.export.export_run(run, tmp_path / "export", "digits")
    assert tfptm.export.existing_versions(tmp_path / "export" / "digits") == [1]  # version 2 never appeared
    after = {p: (tmp_path / "export" / p).read_bytes() for p in _visible(tmp_path / "export") if (tmp_path / "export" / p).is_file()}
    assert after == before
    assert_no_partial(tmp_path / "export")


def test_every_artifact_and_its_record_describe_the_same_export(run, tmp_path):
    summary = tfptm.export.export_run(run, tmp_path / "export", "digits", quantizations=["float32", "dynamic"])
    record = json.loads((tmp_path / "export" / "digits.export.json").read_text())
    assert record["artifacts"] == summary["artifacts"] and record["artifacts"]["saved_model"].endswith(os.path.join("digits", "2"))
    for path in summary["artifacts"].values():
        assert os.path.exists(path), path  # recorded paths are the final ones, not the staging directory's
    assert summary["parity"]["saved_model"]["ok"] and summary["parity"]["tflite_float32"]["ok"]
    assert_no_partial(tmp_path / "export")


def test_a_backbone_alone_is_refused_naming_the_file(tmp_path):
    backbone = tfptm.backbones.get("vgg_cnn", input_shape=(8, 8, 1), filters=(4,))
    backbone.save(tmp_path / "backbone.keras")
    status, err = _cli("export", str(tmp_path / "backbone.keras"), "--out", str(tmp_path / "export"))
    assert status == 2 and err.count("\n") == 1 and "backbone.keras" in err and "head" in err, err
    assert not (tmp_path / "export").exists()
    with pytest.raises(TfptmError, match="expected one output"):
        tfptm.export.export_checked(backbone, tmp_path / "export2", "b")
    assert not (tmp_path / "export2").exists()


@pytest.mark.parametrize("name", ["../escape", ".hidden", "a/b", ""])
def test_model_names_that_would_escape_the_export_directory_are_refused(tiny_classifier, tmp_path, name):
    with pytest.raises(TfptmError, match="plain directory name"):
        tfptm.export.export_checked(tiny_classifier, tmp_path / "export", name)
    assert os.listdir(tmp_path) == []  # not even the export directory


def test_stale_partials_of_killed_exports_are_removed_on_the_next_export(tiny_classifier, tmp_path):
    base = tmp_path / "export"
    tfptm.export.saved_model(tiny_classifier, base, "digits")
    debris = [base / "digits" / ".2.partial-abc", base / ".digits.group.partial-x1"]  # killed: old and new layout
    for d in debris:
        (d / "variables").mkdir(parents=True)
        (d / "variables" / "data").write_bytes(b"\0" * 1000)
    (base / ".digits.dynamic.tflite.partial-zz").write_bytes(b"half")
    other = base / ".digits.b.group.partial-y"  # another model's staging (`digits.b`): not ours to remove
    other.mkdir()
    summary = tfptm.export.export_checked(tiny_classifier, base, "digits")
    assert summary["artifacts"]["saved_model"] == str(base / "digits" / "2")
    assert not any(d.exists() for d in debris) and not (base / ".digits.dynamic.tflite.partial-zz").exists()
    assert other.exists()
    assert_no_partial(base / "digits")


def test_a_staging_directory_killed_while_renaming_is_finished_not_lost(tiny_classifier, tmp_path):
    base = tmp_path / "export"
    first = tfptm.export.saved_model(tiny_classifier, base, "digits")
    stale = base / ".digits.group.partial-k"
    (stale / "digits").mkdir(parents=True)
    os.rename(first, stale / "digits" / "1")  # as if killed after marking the commit, before renaming version 1
    (stale / "digits.export.json").write_text("{}")
    (stale / ".committed").touch()
    tfptm.export.saved_model(tiny_classifier, base, "digits")
    assert tfptm.export.existing_versions(base / "digits") == [1, 2] and (base / "digits.export.json").is_file()
    assert not stale.exists()


LOCK_HOLDER = textwrap.dedent(
    """
    import fcntl, sys, time
    handle = open(sys.argv[1], "a")
    fcntl.flock(handle, fcntl.LOCK_EX)
    print("locked", flush=True)
    time.sleep(60)
    """
)


def test_a_live_export_is_not_disturbed(tiny_classifier, tmp_path):
    base = tmp_path / "export"
    base.mkdir()
    live = base / ".digits.group.partial-live"
    live.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(base / ".digits.lock")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(TfptmError, match="another process is writing"):
            tfptm.export.export_checked(tiny_classifier, base, "digits")
        assert live.exists() and not (base / "digits").exists()
    finally:
        holder.kill()
        holder.wait()
    tfptm.export.export_checked(tiny_classifier, base, "digits", quantizations=())  # the lock died with its process
    assert not live.exists() and tfptm.export.existing_versions(base / "digits") == [1]
