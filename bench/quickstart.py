"""The README quickstart, timed: `tfptm quickstart` as a user runs it, its numbers saved with the machine.

Runs the command in a fresh temporary directory (the text variant by default:
all-MiniLM-L6-v2 fine-tuned on 16 labelled docstring summaries per class vs
the same recipe from random weights vs a distilled student; `--variant
digits` for the small CNN) and saves the wall time, the accuracies, the
transfer gain and the parity checks in `bench/results/quickstart_<variant>.json`.

Run: `.venv/bin/python bench/quickstart.py` (about 3 minutes on 2 cores).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import save  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", choices=("text", "digits"), default="text")
    parser.add_argument("--quick", action="store_true", help="a short run (few epochs): checks the script only")
    args = parser.parse_args(argv)
    tfptm = [str(Path(sys.executable).with_name("tfptm"))]
    extra = (["--epochs", "1"] if args.variant == "text" else ["--source-epochs", "1", "--head-epochs", "1",
                                                               "--finetune-epochs", "1", "--scratch-epochs", "1"])
    with tempfile.TemporaryDirectory() as work:
        command = [*tfptm, "quickstart", args.variant, "--out", "run", "--export-dir", "export",
                   *(extra if args.quick else [])]
        started = time.perf_counter()
        result = subprocess.run(command, cwd=work, capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - started
        print(result.stdout)
        if result.returncode != 0:
            sys.exit(f"bench: {' '.join(command[1:])} failed with status {result.returncode}:\n{result.stderr[-3000:]}")
        summary = json.loads((Path(work) / "run" / "summary.json").read_text())
    results = {
        "command": "tfptm " + " ".join(command[1:]),
        "wall_seconds": seconds,
        "metrics": {name: {k: m[k] for k in ("accuracy", "f1_macro", "parameters") if k in m}
                    for name, m in summary["metrics"].items()},
        "transfer_gain_points": summary.get("transfer_gain_points"),
        "parity": {kind: {k: v for k, v in check.items() if isinstance(v, (int, float, bool, str))}
                   for kind, check in summary["parity"].items()},
        "sizes": summary.get("sizes", {}),
        "task": summary.get("task"),
        "stdout": result.stdout,
    }
    path = save(f"quickstart_{args.variant}" + ("_quick" if args.quick else ""), vars(args), results)
    print(f"{seconds:.0f} s; saved {path}")


if __name__ == "__main__":
    main()
