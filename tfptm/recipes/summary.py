"""`summary.json`: the one result file every tfptm run writes, in one shape."""

from pathlib import Path

from tfptm.files import write_json_atomic

SUMMARY_FILE = "summary.json"


def write_summary(run_dir, metrics, artifacts, parity, **extra):
    """Writes `{"metrics": ..., "artifacts": ..., "parity": ..., **extra}` to `run_dir/summary.json`.

    `metrics` maps a model name to its metrics, `artifacts` an artifact kind to
    its path (paths are written absolute), `parity` an artifact kind to its check.
    """
    summary = {
        "metrics": metrics,
        "artifacts": {kind: str(Path(path).resolve()) for kind, path in artifacts.items()},
        "parity": parity,
        **extra,
    }
    write_json_atomic(Path(run_dir) / SUMMARY_FILE, summary)
    return summary
