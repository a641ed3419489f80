import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import assert_no_partial

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}


def tfptm(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "tfptm", *args], capture_output=True, text=True, env=ENV, cwd=cwd, timeout=600
    )


def test_help_does_not_import_tensorflow():
    code = "import sys, tfptm.cli; tfptm.cli.build_parser().format_help(); print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("args", [["bogus"], ["quickstart", "--no-such-flag"], [], ["quickstart", "--shots", "0"]])
def test_bad_command_lines_give_usage_and_status_2(args):
    result = tfptm(*args)
    assert result.returncode == 2
    assert "usage: tfptm" in result.stderr
    assert "Traceback" not in result.stderr


def test_unwritable_output_directory_is_one_line_and_leaves_nothing(tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a directory")
    result = tfptm("quickstart", "--out", str(blocker / "run"), "--export-dir", str(tmp_path / "export"))
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("tfptm: error:")]
    assert len(errors) == 1 and "Cannot write" in errors[0] and "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocker"]


def test_quickstart_end_to_end_with_tiny_settings(tmp_path):
    run, export = tmp_path / "run", tmp_path / "export"
    result = tfptm(
        "quickstart", "--out", str(run), "--export-dir", str(export),
        "--source-epochs", "5", "--head-epochs", "5", "--finetune-epochs", "5", "--scratch-epochs", "2",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((run / "summary.json").read_text())
    assert set(summary) >= {"metrics", "artifacts", "parity"}
    for model in ("finetuned", "scratch"):
        metrics = summary["metrics"][model]
        assert set(metrics) >= {"accuracy", "precision_macro", "recall_macro", "f1_macro", "per_class", "confusion_matrix"}
        assert sum(map(sum, metrics["confusion_matrix"])) == metrics["num_examples"] == 846
        assert list(metrics["per_class"]) == ["5", "6", "7", "8", "9"]
    saved = Path(summary["artifacts"]["saved_model"])
    assert saved == (export / "digits" / "1").resolve() and (saved / "saved_model.pb").is_file()
    assert Path(summary["artifacts"]["tflite"]).is_file() and Path(summary["artifacts"]["tflite_labels"]).is_file()
    assert Path(summary["artifacts"]["pretrained_backbone"]).is_file()
    assert summary["parity"]["saved_model"]["ok"] and summary["parity"]["saved_model"]["max_abs_diff"] <= 1e-5
    assert summary["parity"]["tflite"]["ok"] and summary["parity"]["tflite"]["top1_agreement"] >= 0.99
    assert "fine-tuned" in result.stdout and "from scratch" in result.stdout and "SavedModel" in result.stdout
    assert "pre-training the backbone" in result.stderr  # progress lines
    assert_no_partial(tmp_path)
    # the same --out again is refused rather than mixed with the old run
    again = tfptm("quickstart", "--out", str(run), "--export-dir", str(export), "--source-epochs", "1")
    assert again.returncode == 2 and "already exists" in again.stderr
