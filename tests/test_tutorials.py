import os
import subprocess
import sys
from pathlib import Path

import pytest

TUTORIALS = sorted((Path(__file__).parent.parent / "tutorials").glob("[0-9][0-9]_*.py"))
# The three slowest smoke runs (70-135 s each) run with `pytest -m slow`: their recipes' train / export /
# predict paths run end to end in tests/test_jobs_pairs.py, test_jobs_embed.py, test_jobs_tokens.py and
# test_jobs_spans.py on every CI run, which keeps the whole CI under 30 minutes.
SLOW = {"09_text_pairs_and_embeddings.py", "10_token_classification.py", "11_question_answering.py"}


@pytest.mark.parametrize("script", [pytest.param(p, marks=pytest.mark.slow) if p.name in SLOW else p for p in TUTORIALS],
                         ids=lambda p: p.name)
def test_tutorial_runs(script, tmp_path):
    env = {**os.environ, "TFPTM_TUTORIAL_FAST": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "accuracy on" in result.stdout and "'ok': True" in result.stdout
