"""The benchmarks in the repository's `bench/` folder, run by `tfptm bench`.

Every script in `bench/` with a `__main__` block is a benchmark, described by
the first line of its docstring. Scripts take
`--quick` for a short smoke run and write their results under `bench/results/`.

Example:
>>> isinstance(BENCHMARKS, dict)
True
"""

import ast
import subprocess
import sys
from pathlib import Path

from tfptm.errors import TfptmError

BENCH_DIR = Path(__file__).resolve().parents[2] / "bench"


def benchmarks(directory=BENCH_DIR):
    """Every benchmark script in `directory`: name -> (file name, the first line of its docstring).

    A benchmark is a script with a `__main__` block (`common.py` and other
    shared modules have none), so each new script is listed without registering it.

    >>> "export" in benchmarks() if BENCH_DIR.is_dir() else True
    True
    """
    found = {}
    for script in sorted(Path(directory).glob("*.py")) if Path(directory).is_dir() else []:
        source = script.read_text(encoding="utf-8")
        if '__name__ == "__main__"' not in source:
            continue
        doc = ast.get_docstring(ast.parse(source)) or ""
        found[script.stem] = (script.name, doc.strip().splitlines()[0] if doc.strip() else "")
    return found


#: name -> (script in bench/, one-line description), read from the scripts themselves.
BENCHMARKS = benchmarks()


def run_benchmark(name, quick=False):
    """Runs `bench/<script> [--quick]` with this Python; returns its exit status."""
    if name not in BENCHMARKS:
        known = ", ".join(BENCHMARKS) or "none yet"
        raise TfptmError(f"Unknown benchmark {name!r}; expected one of: {known}")
    script = BENCH_DIR / BENCHMARKS[name][0]
    if not script.is_file():
        raise TfptmError(f"Benchmark script {str(script)!r} is missing; benchmarks run from a source checkout of tfptm")
    return subprocess.run([sys.executable, str(script), *(["--quick"] if quick else [])], check=False).returncode
