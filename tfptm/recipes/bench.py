"""The benchmarks in the repository's `bench/` folder, run by `tfptm bench`.

Each entry names a script in `bench/` and says what it measures. Scripts take
`--quick` for a short smoke run and write their results under `bench/results/`.

Example:
>>> isinstance(BENCHMARKS, dict)
True
"""

import subprocess
import sys
from pathlib import Path

from tfptm.errors import TfptmError

#: name -> (script in bench/, one-line description). Add a row for each new script.
BENCHMARKS = {
    "distill": ("distill.py", "teacher vs student alone vs distilled student on digits: accuracy, size, TFLite latency"),
    "distill_text": ("distill_text.py", "fine-tuned MiniLM teacher vs BiLSTM student alone vs distilled, scarce labels, real text"),
    "export": ("export.py", "Keras vs every TFLite quantization, image CNN and MiniLM text: size, latency, accuracy"),
    "pretrain_mlm_labels": ("pretrain_mlm_labels.py", "does MLM pre-training help when labels are scarce (text)"),
}

BENCH_DIR = Path(__file__).resolve().parents[2] / "bench"


def run_benchmark(name, quick=False):
    """Runs `bench/<script> [--quick]` with this Python; returns its exit status."""
    if name not in BENCHMARKS:
        known = ", ".join(BENCHMARKS) or "none yet"
        raise TfptmError(f"Unknown benchmark {name!r}; expected one of: {known}")
    script = BENCH_DIR / BENCHMARKS[name][0]
    if not script.is_file():
        raise TfptmError(f"Benchmark script {str(script)!r} is missing; benchmarks run from a source checkout of tfptm")
    return subprocess.run([sys.executable, str(script), *(["--quick"] if quick else [])], check=False).returncode
